"""The README's promises: two quick-start commands, CI runs its test command, badges follow
the one repository address in pyproject.toml."""

import re
import shutil
import subprocess
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
OWNER_REPO = REPOSITORY.removeprefix("https://github.com/")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_quick_start_is_exactly_make_lab_and_make_test():
    assert quick_start_commands() == ["make lab", "make test"]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == quick_start_commands()[1]


def _github_projects(text: str) -> set[str]:
    """Every owner/name that a GitHub, Colab or Binder link in ``text`` points at."""
    patterns = [r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)",
                r"mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)",
                r"(?<!colab\.research\.google\.com/)github\.com/([\w.-]+/[\w.-]+)"]
    found = set()
    for pattern in patterns:
        found |= {m.removesuffix(".git") for m in re.findall(pattern, text)}
    return found


def test_every_badge_and_link_uses_the_repository_in_pyproject():
    assert "Binder" in README and "Colab" in README
    assert _github_projects(README) == {OWNER_REPO}
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert _github_projects(notebook.read_text()) == {OWNER_REPO}, notebook.name


def test_badges_open_notebooks_that_exist():
    for path in re.findall(r"notebooks/([\w.-]+\.ipynb)", README):
        assert (ROOT / "notebooks" / path).exists(), path


def test_make_repository_rewrites_every_place(tmp_path):
    fork = tmp_path / "fork"
    (fork / "notebooks").mkdir(parents=True)
    for name in ("README.md", "pyproject.toml", "Makefile"):
        shutil.copy(ROOT / name, fork / name)
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(notebook, fork / "notebooks")
    subprocess.run(["make", "-s", "repository", "NEW=someone/fork"], cwd=fork, check=True)
    assert _github_projects((fork / "README.md").read_text()) == {"someone/fork"}
    assert 'Repository = "https://github.com/someone/fork"' in (fork / "pyproject.toml").read_text()
    for notebook in (fork / "notebooks").glob("*.ipynb"):
        assert _github_projects(notebook.read_text()) == {"someone/fork"}


def test_the_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save files
    namespace = {}
    for block in re.findall(r"```python\n(.*?)```", README, re.S):
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["history"].val_accuracy[-1] > 0.85
    assert namespace["diagnose"](namespace["history"]).verdict in ("good", "underfitting", "overfitting")
    assert namespace["low"] < namespace["high"]
    assert namespace["recipe"].final_accuracy > 0.9
    assert (tmp_path / "recipe.html").read_text().count("<img") == 5
    assert len(namespace["search"].completed()) == 8
