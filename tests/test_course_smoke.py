"""The smoke setting: every chapter's paper branch on the CPU, on a tiny CIFAR-10 written here.

Executing each chapter in it is one run per chapter, shared with the students' copy test
(``test_student_copies.py``: the stubs, the reference solutions, the course's own solutions and
every other cell, in the smoke setting). Here: the setting itself, and that no chapter can move
the offline setting's runs onto a GPU."""

import ast
import json

import pytest
import torch

from course_kernel import CHAPTERS, write_tiny_cifar10
from disciplined_widgets.course import setting

TRAINING_CALLS = {"fit", "lr_range_test", "range_tests", "compare", "TrainWidget", "RangeTestWidget",
                  "CompareWidget", "discipline", "Search", "train_run"}


def test_the_smoke_setting_takes_the_paper_branch_on_the_cpu(tmp_path, monkeypatch):
    write_tiny_cifar10(tmp_path)
    chosen = setting(use_paper="smoke", root=tmp_path)
    assert chosen.paper and chosen.smoke and chosen.kind == "smoke"
    assert chosen.device == torch.device("cpu") and "Smoke setting: the paper branch ran" in chosen.message
    train, _ = chosen.loaders(128)
    x, y = next(iter(train))
    assert x.shape[1:] == (3, 32, 32) and len(train) >= 4, "several steps an epoch"
    assert chosen.make_model()(x).shape == (len(x), 10)
    chosen.check(False, "a claim")  # printed, not raised, in the smoke run
    monkeypatch.setenv("DW_COURSE_SETTING", "smoke")
    monkeypatch.setenv("DISCIPLINED_WIDGETS_DATA", str(tmp_path))
    assert setting().smoke
    monkeypatch.setenv("DW_COURSE_SETTING", "offline")
    offline = setting(offline_options={"num_samples": 500})
    assert offline.kind == "offline" and not offline.paper and offline.device.type == "cpu"
    with pytest.raises(AssertionError, match="a claim"):
        offline.check(False, "a claim")
    monkeypatch.setenv("DW_COURSE_SETTING", "gpu")
    with pytest.raises(ValueError, match="DW_COURSE_SETTING"):
        setting()


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_training_call_runs_on_the_settings_device(path):
    """The offline setting runs on the CPU even where CUDA is there (its checked outputs stay the
    same), so every call that trains must be given ``device=s.device``."""
    missing = []
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "\n".join("" if line.startswith("%") else line
                           for line in "".join(cell["source"]).splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if (name in TRAINING_CALLS and not (name == "Search" and len(node.args) < 2)
                        and not any(k.arg == "device" for k in node.keywords)):
                    missing.append(f"cell {index}, line {node.lineno}: {name}")
    assert not missing, f"{path.name}: calls without device=s.device: {missing}"
