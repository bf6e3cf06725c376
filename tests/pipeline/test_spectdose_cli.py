"""The spectdose command: version, info, dispatch and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline import __version__
from pipeline.cli import main


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"spectdose {__version__}"


def test_info_lists_engine_versions(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["spectdose"] == __version__
    for engine in ("numpy", "scipy", "numba", "SimpleITK", "nibabel", "pydicom", "snakemake"):
        assert info["engines"][engine], engine


def test_unknown_command_exits_non_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code != 0


def test_console_script_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    from pipeline.cli import run_stage
    from pipeline.errors import InputError
    import argparse

    def fail(args):
        raise InputError(tmp_path / "scan.dcm", "truncated DICOM file")

    code = run_stage("spectdose x", argparse.ArgumentParser(), fail, [])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "scan.dcm: truncated DICOM file" in err
