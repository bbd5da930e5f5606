"""SearchWidget: errors shown where the student looks, and a status that says what happens."""

import os
import time

import pytest
import torch

from disciplined_widgets.search import Search
from disciplined_widgets.widgets import SearchWidget


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def unreachable(path):
    """Make the journal file at ``path`` unreadable, as a storage that went away."""
    os.remove(path)
    os.mkdir(path)


def test_a_storage_error_while_following_unticks_follow_and_shows_in_the_status(tmp_path):
    search = Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5,
                    storage=f"journal:{tmp_path}/s.log")
    widget = SearchWidget(search, follow=True, refresh_every=0.02)
    unreachable(tmp_path / "s.log")
    wait_until(lambda: not widget.follow.value)
    assert "IsADirectoryError" in widget.status.value and "s.log" in widget.status.value
    widget._follower.join(5)
    assert not widget._follower.is_alive()
    widget.close()


def test_an_error_of_refresh_is_shown_not_swallowed(tmp_path):
    search = Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5,
                    storage=f"journal:{tmp_path}/s.log")
    widget = SearchWidget(search)
    assert widget.status.value == ""
    unreachable(tmp_path / "s.log")
    widget.refresh_button.click()
    assert "IsADirectoryError" in widget.status.value
    widget.close()


def test_running_is_counted_during_a_run_and_stop_shows_the_trial_queued_again():
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.2]}, sampler="grid", steps=200_000,
                    device="cpu")
    widget = SearchWidget(search)
    assert "0 of 2 complete, 0 running, 2 queued" in widget.summary.value
    widget.start()
    wait_until(lambda: "1 running, 1 queued" in widget.summary.value)
    widget.stop()
    widget.wait(30)
    assert "stopped" in widget.status.value
    summary = widget.summary.value
    assert "0 running, 2 queued, 0 failed (1 interrupted and queued again)" in summary, summary
    widget.close()


def test_the_search_plot_labels_a_log_axis_spanning_less_than_a_decade():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    search = Search("mlp", "digits", {"max_lr": [0.05, 0.1, 0.3], "batch_size": [32, 64]},
                    sampler="grid", steps=3, device="cpu")
    search.run()
    figure = search.plot()
    FigureCanvasAgg(figure).draw()
    for ax in figure.axes:
        assert ax.get_xscale() == "log"
        shown = [(t.get_position()[0], t.get_text()) for t in
                 ax.xaxis.get_majorticklabels() + ax.xaxis.get_minorticklabels()]
        left, right = ax.get_xlim()
        inside = [text for x, text in shown if left <= x <= right and text]
        assert len(inside) >= 2, (ax.get_xlabel(), shown)
    assert inside == ["0.05", "0.1", "0.2"]  # max_lr, the second panel
