"""The Chromium that the browser tests drive: found, or installed by `make test`'s set-up step.

Looked for in this order: Playwright's own Chromium; a system Chromium or Google Chrome (on
PATH, or at its usual place on Linux and macOS). ``python tests/browser.py`` (the set-up step
of `make test`) installs one when none is found: ``python -m playwright install chromium``,
and only where that fails and the user is root on Debian or Ubuntu, ``apt-get install -y
chromium``. When all of that fails it says what to install and `make test` goes on: the
browser tests then fail with the same message.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SYSTEM_PATHS = (
    "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
    "/snap/bin/chromium", "/opt/google/chrome/chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
MISSING = ("no Chromium for the browser tests: run `.venv/bin/python -m playwright install "
           "chromium`, or install Chromium or Google Chrome (Debian/Ubuntu: `apt-get install "
           "chromium`; macOS: `brew install --cask chromium`), then run `make test` again")


def playwright_chromium() -> str | None:
    """The Chromium that ``python -m playwright install chromium`` put in place, if it did."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if Path(path).is_file() else None


def system_chromium(search_path: str | None = None, places=SYSTEM_PATHS) -> str | None:
    """A Chromium or Chrome on ``search_path`` (default ``$PATH``), else at one of ``places``."""
    for name in SYSTEM_NAMES:
        found = shutil.which(name, path=search_path)
        if found:
            return found
    return next((place for place in places if os.access(place, os.X_OK)), None)


def find_chromium() -> str | None:
    """The executable the browser tests launch, or None."""
    return playwright_chromium() or system_chromium()


def _root_on_debian() -> bool:
    release = Path("/etc/os-release")
    if os.name != "posix" or os.geteuid() != 0 or not release.exists():
        return False
    fields = dict(line.split("=", 1) for line in release.read_text().splitlines() if "=" in line)
    family = f"{fields.get('ID', '')} {fields.get('ID_LIKE', '')}".replace('"', "").split()
    return bool({"debian", "ubuntu"} & set(family))


def _quiet(command: list[str]) -> bool:
    """Runs ``command``; prints the first lines of its output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0:
        head = (done.stderr or done.stdout).strip().splitlines()[:2]
        print(f"`{' '.join(command)}` failed:", *head, sep="\n  ")
    return done.returncode == 0


def install_chromium() -> str | None:
    """Playwright's download first, then Debian's package (as root only); the path, or None."""
    print("no Chromium found: running `python -m playwright install chromium`")
    _quiet([sys.executable, "-m", "playwright", "install", "chromium"])
    found = find_chromium()
    if found is None and _root_on_debian():
        print("installing Debian's chromium with apt-get (about a minute)")
        if _quiet(["apt-get", "update", "-q"]):
            _quiet(["apt-get", "install", "-y", "-q", "chromium"])
        found = find_chromium()
    return found


def main() -> None:
    found = find_chromium() or install_chromium()
    print(f"browser tests use {found}" if found else f"WARNING: {MISSING}")


if __name__ == "__main__":
    main()
