"""The bad-input corpus (``sample_data.input_corpus``) run through ``spectdose ingest``.

Every ``fail`` case: exit code 2, exactly one line ``spectdose ingest: error: <file>: <problem>`` naming
the file (or option) and the problem, no traceback, nothing left in the output folder. Every ``run``
case: exit 0 and the same ingest result as the unmodified patient (times, nuclide, injected activity
and every SPECT voxel), hence the same doses: later stages are deterministic functions of it
(``tests/pipeline/test_determinism.py``); ``test_run_cases_give_the_same_doses`` checks two of them
through the whole chain (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.imageio import read_image
from pipeline.ingest.cli import main as ingest_main
from sample_data.input_corpus import CASES, build_case, nifti_base

FAIL = [c for c in CASES if c.expect == "fail"]
RUN = [c for c in CASES if c.expect == "run"]


@pytest.fixture(scope="session")
def corpus_base(tmp_path_factory):
    """The noise-free small sample patient (DICOM), its ingest and its NIfTI export."""
    from sample_data.generator import generate

    root = tmp_path_factory.mktemp("corpus")
    dicom = generate(root / "dicom_base", preset="small", noise=False)
    baseline = root / "baseline_ingest"
    assert ingest_main([str(dicom / "manifest.yaml"), "--patient-id", "SAMPLE01", "--out", str(baseline)]) == 0
    nifti = root / "nifti_base"
    nifti_base(baseline, nifti)
    return dicom, nifti, baseline


def _run(case, corpus_base, tmp_path, capsys):
    dicom, nifti, _ = corpus_base
    case_dir = tmp_path / "case"
    path, extra, pid = build_case(case, dicom, nifti, case_dir)
    out = tmp_path / "results" / "P" / "ingest"
    if "--out-is-file" in extra:
        extra = [a for a in extra if a != "--out-is-file"]
        out.parent.mkdir(parents=True)
        out.write_text("not a folder\n")
    capsys.readouterr()
    code = ingest_main([str(path), "--patient-id", pid, "--out", str(out), *extra])
    err = capsys.readouterr().err
    return code, err, out, case_dir


def test_the_corpus_has_the_seven_reported_cases_and_thirty_more():
    names = {c.name for c in CASES}
    assert {"huge_values", "year_later", "y90_manifest_vs_lu177_dicom", "rescale0", "spacing_lie",
            "one_slice_spect", "nifti_negative"} <= names
    assert len(CASES) >= 37 and len(names) == len(CASES)
    assert {c.category for c in CASES} >= {"dicom", "nifti", "timing", "geometry", "config", "cli"}


@pytest.mark.parametrize("case", FAIL, ids=[c.name for c in FAIL])
def test_bad_input_stops_with_one_line_naming_the_file(case, corpus_base, tmp_path, capsys):
    code, err, out, case_dir = _run(case, corpus_base, tmp_path, capsys)
    assert code == 2, f"{case.name}: exit {code}\n{err}"
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("spectdose ingest: error: ")]
    assert len(lines) == 1, err
    line = lines[0]
    assert case.problem in line, line
    assert case.names in line or str(case_dir / case.names) in line, line
    if case.name == "out_is_a_file":
        assert out.read_text() == "not a folder\n"
    else:
        assert not out.exists() or not any(out.iterdir()), "a failed ingest must write nothing"
        assert not any(p.name.startswith(".") for p in out.parent.glob("*")) if out.parent.exists() else True


def _ingest_summary(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {"nuclide": manifest["radionuclide"], "injected": manifest["injected_activity_mbq"],
            "times": {tp["time_point"]: tp["time_after_injection_s"] for tp in manifest["time_points"]}}


@pytest.mark.parametrize("case", RUN, ids=[c.name for c in RUN])
def test_recoverable_input_gives_the_unmodified_result(case, corpus_base, tmp_path, capsys):
    code, err, out, _ = _run(case, corpus_base, tmp_path, capsys)
    assert code == 0, err
    assert "Traceback" not in err
    baseline = corpus_base[2]
    assert _ingest_summary(out) == _ingest_summary(baseline)
    for tp in _ingest_summary(baseline)["times"]:
        got, _ = read_image(out / tp / "spect.nii.gz")
        ref, _ = read_image(baseline / tp / "spect.nii.gz")
        assert got.same_grid(ref)
        total_got = float(np.clip(got.array, 0, None).sum(dtype=np.float64))
        total_ref = float(ref.array.sum(dtype=np.float64))
        assert abs(total_got / total_ref - 1) < 1e-3, (tp, total_got / total_ref)
        np.testing.assert_allclose(got.array, ref.array, rtol=0, atol=1e-5 * float(ref.array.max()))
    qc = json.loads((out / "manifest.json").read_text())["qc_summary"]
    assert qc["fail"] == 0


def _doses(ingest_dir: Path, sample: Path, root: Path) -> dict:
    """kinetics -> dose on an ingest folder (truth labels, noise-free CT): organ mean doses (Gy)."""
    import csv

    from pipeline.dose.cli import main as dose_main
    from pipeline.kinetics.cli import main as kinetics_main

    labels = str(sample / "truth" / "labels.nii.gz")
    assert kinetics_main(["--register-dir", str(ingest_dir), "--labels", labels, "--out", str(root / "kinetics"),
                          "--voxel-method", "organ-shape"]) == 0
    assert dose_main(["--kinetics-dir", str(root / "kinetics"), "--labels", labels,
                      "--ct", str(sample / "truth" / "ct_noisefree.nii.gz"), "--out", str(root / "dose")]) == 0
    rows = csv.DictReader((root / "dose" / "organ_doses.csv").open())
    return {r["name"]: float(r["mean_gy"]) for r in rows}


@pytest.fixture(scope="session")
def baseline_doses(corpus_base, tmp_path_factory):
    dicom, _, baseline = corpus_base
    return _doses(baseline, dicom, tmp_path_factory.mktemp("baseline_dose"))


@pytest.mark.slow
@pytest.mark.parametrize("case", RUN, ids=[c.name for c in RUN])
def test_recoverable_input_gives_the_same_organ_doses_within_1_percent(case, corpus_base, baseline_doses, tmp_path,
                                                                      capsys):
    code, err, out, _ = _run(case, corpus_base, tmp_path, capsys)
    assert code == 0, err
    doses = _doses(out, corpus_base[0], tmp_path)
    for organ in ("kidney_left", "kidney_right", "liver", "spleen", "marrow_L2L4"):
        assert doses[organ] == pytest.approx(baseline_doses[organ], rel=0.01), organ
