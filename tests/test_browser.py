"""The widgets in real JupyterLab, started as `make lab` starts it, driven in headless Chromium.

Runs the widgets tour up to the range-test widget, clicks Run and waits for the plot and the
suggestion; runs the training widget on a long schedule, clicks Stop and sees it stop; checks
that no cell shows an error. Screenshots of every step go to a temporary folder (printed).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from chromium import MISSING, find_chromium

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "dw-browser-test"

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    """JupyterLab via `make lab` on a free loopback port, with pop-ups configured away."""
    home = Path(tempfile.mkdtemp(prefix="dw-lab-"))
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # render every cell up front: with windowing, cells move while the notebook lays out
    notebook_settings = settings.parent / "notebook-extension"
    notebook_settings.mkdir()
    (notebook_settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    port = free_port()
    env = {**os.environ, "JUPYTER_TOKEN": TOKEN, "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "BROWSER": "true"}
    server = subprocess.Popen(["make", "lab", f"PORT={port}"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, "JupyterLab did not start"
            time.sleep(0.5)
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        pytest.fail(MISSING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


class Shots:
    def __init__(self, page):
        self.page, self.folder, self.count = page, Path(tempfile.mkdtemp(prefix="dw-shots-")), 0
        print(f"screenshots in {self.folder}")

    def __call__(self, name):
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}_{name}.png"))


def open_notebook(page, url, name):
    """Open a notebook and wait until all its cells are shown and its kernel is idle (before
    that, JupyterLab shows one empty placeholder cell and an idle indicator)."""
    cells = len(json.loads((ROOT / "notebooks" / name).read_text())["cells"])
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('.jp-Notebook .jp-Cell').length >= {cells}",
                           timeout=60_000)
    page.wait_for_function("() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar')"
                           "?.textContent || '')", timeout=60_000)


def run_cells(page, count):
    """Shift+Enter ``count`` times from the active cell, waiting for the kernel each time."""
    for _ in range(count):
        page.keyboard.press("Shift+Enter")
        wait_idle(page)


def select_cell(page, index):
    """Make cell ``index`` the active one, in command mode."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")


def wait_idle(page, timeout=120_000):
    page.wait_for_function(
        "() => !document.querySelector('.jp-Notebook .jp-Cell .jp-InputPrompt')"
        "?.closest('.jp-Notebook').querySelector('.jp-InputPrompt:is([data-prompt=\"*\"])')"
        " && [...document.querySelectorAll('.jp-InputPrompt')].every(p => !p.textContent.includes('*'))",
        timeout=timeout)


LAYOUT = """() => {
  const problems = [], tracks = [];
  const area = document.querySelector('.jp-NotebookPanel').getBoundingClientRect();
  for (const slider of document.querySelectorAll('.jupyter-widgets.widget-slider')) {
    const track = slider.querySelector('.slider-container, .ui-slider, .noUi-target');
    const width = track ? track.getBoundingClientRect().width : 0;
    tracks.push(width);
    if (width < 150) problems.push(`slider ${slider.textContent.trim()}: ${width} px track`);
  }
  for (const el of document.querySelectorAll('.jupyter-widgets.widget-inline-hbox, ' +
      '.jupyter-widgets.widget-toggle-buttons, .jupyter-widgets.widget-checkbox, .widget-label')) {
    const box = el.getBoundingClientRect();
    if (box.width && (box.right > area.right + 1 || el.scrollWidth > el.clientWidth + 2))
      problems.push(`cut off: ${el.textContent.trim().slice(0, 40)}`);
  }
  return {problems, tracks: tracks.length};
}"""

PLOT_CHANGES = """index => {
  const image = document.querySelectorAll('.jupyter-widgets img')[index];
  window.dwPlotChanges = 0;
  new MutationObserver(() => window.dwPlotChanges++).observe(image, {attributes: true,
                                                               attributeFilter: ['src']});
}"""


def assert_usable_layout(page, width):
    """Every slider's track at least 150 px, no control or label cut off, at ``width`` px."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_timeout(500)
    found = page.evaluate(LAYOUT)
    assert found["tracks"] >= 8 and not found["problems"], (width, found)


def test_widgets_in_jupyterlab(lab, page):
    """At a laptop's 1024 px: the range test, then training with a control moved and another
    cell run while it trains, and Stop; the layout is checked at 1024 and 1280 px."""
    shots = Shots(page)
    page.set_viewport_size({"width": 1024, "height": 1000})
    open_notebook(page, f"{lab}/lab/tree/widgets_tour.ipynb?token={TOKEN}", "widgets_tour.ipynb")
    shots("opened")

    # Run the title, set-up, data and range-test cells (5 cells), leaving the widget idle.
    select_cell(page, 0)
    run_cells(page, 5)
    run_button = page.locator(".jupyter-widgets button", has_text="Run").first
    run_button.wait_for(timeout=60_000)
    run_button.scroll_into_view_if_needed()
    shots("range_widget_shown")
    plot = page.locator(".jupyter-widgets img").first
    before = plot.get_attribute("src")
    run_button.click()
    suggestion = page.locator(".widget-html", has_text="steepest").first
    suggestion.wait_for(timeout=60_000)
    page.wait_for_function("src => document.querySelector('.jupyter-widgets img').src !== src",
                           arg=before, timeout=30_000)
    shots("range_test_done")
    assert "bounds" in suggestion.inner_text()

    # Show the schedule and training widgets (cells 7 to 10; the blocking run cell is skipped).
    select_cell(page, 7)
    run_cells(page, 4)
    shots("schedule_and_trainer_shown")
    for width in (1280, 1024):
        assert_usable_layout(page, width)
        shots(f"layout_{width}")
    epochs = page.locator(".widget-text:has(label:text-is('epochs')) input").first
    epochs.fill("400")
    epochs.press("Enter")
    page.evaluate(PLOT_CHANGES, 2)  # the training widget's plot (after the range test's, schedule's)
    train_run = page.locator(".jupyter-widgets button", has_text="Run").nth(1)
    train_run.scroll_into_view_if_needed()
    train_run.click()
    progress = page.locator(".jupyter-widgets .progress-bar").nth(1)
    page.wait_for_timeout(1500)
    # while it trains: the x axis moved, and another cell run (the set-up cell: cheap)
    page.locator(".widget-toggle-button", has_text="step").last.click()
    prompt = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-InputPrompt")
    count_before = prompt.inner_text()
    select_cell(page, 2)
    page.keyboard.press("Control+Enter")
    page.wait_for_function("([index, text]) => { const p = document.querySelectorAll("
                           "'.jp-Notebook .jp-Cell')[index].querySelector('.jp-InputPrompt');"
                           " return p.textContent !== text && !p.textContent.includes('*'); }",
                           arg=[2, count_before], timeout=30_000)
    stop = page.locator(".jupyter-widgets button", has_text="Stop").nth(1)
    trained_during_the_cell = stop.is_enabled()  # the cell ended before the training did
    page.wait_for_timeout(1500)
    shots("training")
    stop.click()
    page.locator(".widget-html", has_text="stopped after").first.wait_for(timeout=30_000)
    shots("stopped")
    assert trained_during_the_cell  # the cell was served while the widget trained
    assert page.evaluate("window.dwPlotChanges") >= 3  # the plot moved during the run
    assert progress.count() == 1
    assert page.locator(".widget-html", has_text="steps, final train loss").count() == 1

    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    assert not any("Traceback" in t or "Error" in t for t in texts), texts
    assert page.locator(".jupyter-widgets span[style*='c62828']").count() == 0


def test_search_widget_in_jupyterlab(lab, page):
    """Chapter 7's SearchWidget: Run fills the grid live, Stop puts the running trial back."""
    # a fresh tab in its own workspace: leaving an edited notebook would ask to stay, and two
    # tabs on one workspace keep rearranging each other
    page = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    shots = Shots(page)
    open_notebook(page, f"{lab}/lab/workspaces/search/tree/07_search_strategies.ipynb?token={TOKEN}",
                  "07_search_strategies.ipynb")
    for index in (1, 2, 4, 7, 8):  # the code cells up to the widget; no search has run yet
        select_cell(page, index)
        run_cells(page, 1)
    shots("cells_run")
    summary = page.locator(".widget-html", has_text="queued").first
    summary.wait_for(timeout=60_000)
    assert "0 of 16 complete" in summary.inner_text()
    run_button = page.locator(".jupyter-widgets button", has_text="Run").first
    run_button.scroll_into_view_if_needed()
    shots("search_widget_shown")
    run_button.click()
    page.locator(".jupyter-widgets img").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_function(
        "() => /([3-9]|1[0-6]) of 16 complete/.test(document.body.innerText)", timeout=60_000)
    shots("search_running")
    page.locator(".jupyter-widgets button", has_text="Stop").first.click()
    page.locator(".widget-html", has_text="stopped after").first.wait_for(timeout=30_000)
    shots("search_stopped")
    text = page.locator(".widget-html", has_text="of 16 complete").first.inner_text()
    assert "0 running" in text and "failed" in text
    assert page.locator(".dw-search-table tbody tr").count() >= 3
    assert page.locator(".jupyter-widgets span[style*='c62828']").count() == 0
