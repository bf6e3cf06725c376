"""Determinism and interruption: the same input gives byte-identical maps and tables; a stage killed
with SIGKILL leaves no half-written output, and its rerun gives the same result.

The kinetics and dose stages read the ingest output directly here (the sample patient's sessions
share one scanner grid, so it is a valid "register" folder), which keeps the chain short.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.ingest.cli import main as ingest_main

REPO = Path(__file__).resolve().parents[2]
#: Outputs that must be byte-identical: maps and tables (sidecars hold creation times).
COMPARED = ("*.nii.gz", "*.csv")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from sample_data.generator import generate

    return generate(tmp_path_factory.mktemp("determinism") / "sample", preset="small", noise=True, seed=2)


def _ingest(sample, out):
    assert ingest_main([str(sample / "manifest.yaml"), "--patient-id", "SAMPLE01", "--out", str(out)]) == 0


def _compared_files(folder: Path) -> list:
    return sorted(p.relative_to(folder) for pattern in COMPARED for p in folder.rglob(pattern))


def _assert_identical(a: Path, b: Path):
    files = _compared_files(a)
    assert files and files == _compared_files(b)
    for rel in files:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), f"{rel} differs between two runs"


def test_ingest_twice_gives_byte_identical_volumes(sample, tmp_path):
    _ingest(sample, tmp_path / "a")
    _ingest(sample, tmp_path / "b")
    _assert_identical(tmp_path / "a", tmp_path / "b")


def _cmd(stage, sample, src, out):
    labels = str(sample / "truth" / "labels.nii.gz")
    if stage == "ingest":
        args = [str(sample / "manifest.yaml"), "--patient-id", "SAMPLE01", "--out", str(out)]
    elif stage == "kinetics":
        args = ["--register-dir", str(src), "--labels", labels, "--out", str(out), "--voxel-method", "organ-shape"]
    else:
        args = ["--kinetics-dir", str(src), "--labels", labels, "--ct", str(sample / "truth" / "ct_noisefree.nii.gz"),
                "--out", str(out)]
    return [sys.executable, "-m", "pipeline", stage, *args]


@pytest.fixture(scope="module")
def chain(sample, tmp_path_factory):
    """ingest -> kinetics -> dose, twice, as subprocesses; returns the two result folders."""
    if not (sample / "truth" / "ct_noisefree.nii.gz").exists():
        pytest.skip("the sample patient has no truth/ct_noisefree.nii.gz")
    roots = []
    for run in ("a", "b"):
        root = tmp_path_factory.mktemp(f"chain_{run}")
        for stage, src in (("ingest", None), ("kinetics", root / "ingest"), ("dose", root / "kinetics")):
            subprocess.run(_cmd(stage, sample, src, root / stage), cwd=REPO, check=True, capture_output=True)
        roots.append(root)
    return roots


@pytest.mark.slow
def test_kinetics_and_dose_twice_give_byte_identical_maps_and_tables(chain):
    a, b = chain
    for stage in ("ingest", "kinetics", "dose"):
        _assert_identical(a / stage, b / stage)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["ingest", "kinetics", "dose"])
def test_sigkill_leaves_no_half_written_output_and_the_rerun_is_identical(stage, sample, chain, tmp_path):
    reference_root = chain[0]
    src = {"ingest": None, "kinetics": reference_root / "ingest", "dose": reference_root / "kinetics"}[stage]
    out = tmp_path / stage
    cmd = _cmd(stage, sample, src, out)
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    duration = time.monotonic() - t0
    import shutil

    shutil.rmtree(out)
    for fraction in (0.3, 0.6, 0.8, 0.95):
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(fraction * duration)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if out.exists():  # the rename happened before the kill: the output must be complete
            _assert_identical(reference_root / stage, out)
            shutil.rmtree(out)
        visible = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
        assert visible == [], f"half-written output after SIGKILL at {fraction:.0%}: {visible}"
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    _assert_identical(reference_root / stage, out)
