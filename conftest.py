"""Marks the notebooks nbval collects, so `pytest -m "not notebooks"` skips the course."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.startswith("notebooks/"):
            item.add_marker(pytest.mark.notebooks)
