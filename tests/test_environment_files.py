"""pyproject.toml, environment.yml and binder/environment.yml must declare the same dependencies."""

import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "pytorch-cpu": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["lab"])


def conda_requirements(path: Path) -> dict[str, str]:
    found = {}
    for item in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(item, dict):
            found.update(_split(r) for r in item["pip"] if not r.startswith("-e"))
            continue
        name, spec = _split(item)
        if name not in NOT_PACKAGES:
            found[CONDA_TO_PIP.get(name, name)] = spec
    return found


def test_environment_yml_matches_pyproject():
    assert conda_requirements(ROOT / "environment.yml") == pyproject_requirements()


def test_binder_environment_matches_pyproject():
    assert conda_requirements(ROOT / "binder" / "environment.yml") == pyproject_requirements()


def test_all_three_ask_for_the_same_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        pythons = [d for d in yaml.safe_load(path.read_text())["dependencies"]
                   if isinstance(d, str) and _split(d)[0] == "python"]
        assert pythons == [f"python{project['requires-python']}"], path


def test_binder_postbuild_installs_the_package_and_stops_on_errors():
    lines = (ROOT / "binder" / "postBuild").read_text().splitlines()
    commands = [l.strip() for l in lines if l.strip() and not l.startswith("#")]
    assert commands[0] == "set -e"
    assert any(re.search(r"pip install .*-e \.$", c) for c in commands)


def test_the_checker_sees_a_disagreement(tmp_path):
    text = (ROOT / "environment.yml").read_text().replace("numpy>=1.24", "numpy>=1.20")
    (tmp_path / "environment.yml").write_text(text)
    assert conda_requirements(tmp_path / "environment.yml") != pyproject_requirements()
