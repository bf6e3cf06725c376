"""TotalSegmentator backend: never downloads, no usage statistics, clear message without weights."""

import json

import pytest

from pipeline.errors import SpectdoseError
from pipeline.segment import totalsegmentator as ts


def test_weights_folder_follows_totalsegmentator_rules(tmp_path):
    assert ts.weights_dir({"TOTALSEG_WEIGHTS_PATH": str(tmp_path / "w")}) == tmp_path / "w"
    assert ts.weights_dir({"TOTALSEG_HOME_DIR": str(tmp_path / "h")}) == tmp_path / "h" / "nnunet" / "results"


def test_missing_weights_are_listed(tmp_path):
    assert ts.missing_weights(tmp_path / "absent") == [291, 292, 293, 294, 295]
    for d in (291, 292, 293):
        (tmp_path / f"Dataset{d}_TotalSegmentator_part").mkdir()
    assert ts.missing_weights(tmp_path) == [294, 295]
    assert ts.missing_weights(tmp_path, fast=True) == [297]


def test_not_installed_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(ts, "find_executable", lambda: None)
    with pytest.raises(SpectdoseError, match="not installed"):
        ts.run_totalsegmentator(tmp_path / "ct.nii.gz", tmp_path / "out")


def test_absent_weights_stop_before_running_and_say_how_to_provide_them(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(ts, "find_executable", lambda: "/nonexistent/TotalSegmentator")
    monkeypatch.setattr(ts.subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "empty"))
    with pytest.raises(SpectdoseError) as err:
        ts.run_totalsegmentator(tmp_path / "ct.nii.gz", tmp_path / "out")
    msg = str(err.value)
    assert "never downloads" in msg and "TOTALSEG_WEIGHTS_PATH" in msg and "Dataset291" in msg
    assert calls == []  # TotalSegmentator was not started


def test_child_environment_disables_statistics_and_network(monkeypatch, tmp_path):
    weights = tmp_path / "w"
    for d in (291, 292, 293, 294, 295):
        (weights / f"Dataset{d}_x").mkdir(parents=True)
    seen = {}

    class Done:
        returncode = 0
        stdout = stderr = ""

    def fake_run(cmd, env, **kw):
        seen["cmd"], seen["env"] = cmd, env
        with open(f"{env['TOTALSEG_HOME_DIR']}/config.json") as f:
            seen["config"] = json.load(f)
        return Done()

    monkeypatch.setattr(ts, "find_executable", lambda: "/opt/bin/TotalSegmentator")
    monkeypatch.setattr(ts.subprocess, "run", fake_run)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(weights))
    ts.run_totalsegmentator(tmp_path / "ct.nii.gz", tmp_path / "out")
    assert seen["config"]["send_usage_stats"] is False
    assert seen["env"]["TOTALSEG_WEIGHTS_PATH"] == str(weights)
    assert seen["env"]["HTTPS_PROXY"].startswith("http://127.0.0.1")
    assert "-ta" in seen["cmd"] and "total" in seen["cmd"]
