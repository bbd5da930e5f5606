"""How the browser tests find their Chromium (tests/chromium.py), on a PATH of our own."""

import os

from chromium import SYSTEM_NAMES, system_chromium


def _program(folder, name, executable=True):
    path = folder / name
    path.write_text("#!/bin/sh\n")
    os.chmod(path, 0o755 if executable else 0o644)
    return str(path)


def test_a_system_chromium_on_path_is_found_in_the_order_of_names(tmp_path):
    chrome = _program(tmp_path, "google-chrome")
    assert system_chromium(str(tmp_path), places=()) == chrome
    chromium = _program(tmp_path, "chromium")
    assert system_chromium(str(tmp_path), places=()) == chromium == str(tmp_path / SYSTEM_NAMES[0])


def test_files_that_cannot_run_are_passed_over_for_the_usual_places(tmp_path):
    _program(tmp_path, "chromium", executable=False)
    usual = _program(tmp_path, "Google Chrome")
    assert system_chromium(str(tmp_path), places=(str(tmp_path / "absent"), usual)) == usual
    assert system_chromium(str(tmp_path), places=()) is None
