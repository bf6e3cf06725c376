"""pyproject.toml and environment.yml pin the same packages at the same versions."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import yaml

# conda-forge name -> PyPI name, where they differ only by case or dashes they are normalised.
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([A-Za-z0-9_.\-+]+)\s*$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins(path: Path) -> dict[str, str]:
    data = tomllib.loads(Path(path).read_text())
    pins = {}
    for req in data["project"]["dependencies"]:
        m = _PIN.match(req)
        assert m, f"{path}: dependency {req!r} is not pinned with =="
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def environment_pins(path: Path) -> dict[str, str]:
    data = yaml.safe_load(Path(path).read_text())
    pins = {}
    for dep in data["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            m = _PIN.match(entry)
            if m:
                pins[_norm(m.group(1))] = m.group(2)
    return pins


def pin_mismatches(pyproject: Path, environment: Path) -> list[str]:
    """Human-readable differences between the two pin sets (empty when they agree)."""
    a, b = pyproject_pins(pyproject), environment_pins(environment)
    problems = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            problems.append(f"{name}: pyproject {a.get(name)} vs environment.yml {b.get(name)}")
    return problems


def test_pyproject_and_environment_yml_agree(repo_root):
    assert pin_mismatches(repo_root / "pyproject.toml", repo_root / "environment.yml") == []


def test_changing_a_pin_in_only_one_file_is_detected(repo_root, tmp_path):
    shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    env = (repo_root / "environment.yml").read_text()
    changed = env.replace("numba==0.68.1", "numba==0.60.0")
    assert changed != env
    (tmp_path / "environment.yml").write_text(changed)
    assert pin_mismatches(tmp_path / "pyproject.toml", tmp_path / "environment.yml") == [
        "numba: pyproject 0.68.1 vs environment.yml 0.60.0"
    ]


def test_a_package_missing_from_one_file_is_detected(repo_root, tmp_path):
    (tmp_path / "environment.yml").write_text(
        (repo_root / "environment.yml").read_text().replace("  - pydicom==3.0.2\n", "")
    )
    assert pin_mismatches(repo_root / "pyproject.toml", tmp_path / "environment.yml") == [
        "pydicom: pyproject 3.0.2 vs environment.yml None"
    ]
