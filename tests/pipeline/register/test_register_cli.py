"""``spectdose register`` end to end on ingest-like folders built from the analytic phantom."""

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from register_phantom import (
    KIDNEY_CENTRES,
    LIVER_CENTRE,
    VERTEBRA_Z_MM,
    move,
    rigid_ras,
    spect_grid,
    spect_of,
    transform_points,
    write_ingest_tp,
)

from pipeline.imageio import read_image, write_image
from pipeline.register.cli import main, parse_region
from pipeline.register.transforms import affine_ras

FAST = ["--working-spacing-mm", "4"]
TARGETS = np.array([KIDNEY_CENTRES[1], KIDNEY_CENTRES[2], LIVER_CENTRE] + [(0.0, -60.0, z) for z in VERTEBRA_Z_MM])
TRUTH = {
    "t4h": rigid_ras((3.0, -2.0, 2.5), (10.0, -7.0, 12.0), centre_ras_mm=(0.0, -20.0, 0.0)),
    "t1h": rigid_ras((-1.5, 2.0, -3.0), (-12.0, 5.0, -8.0), centre_ras_mm=(5.0, 0.0, 10.0)),
}
#: kinetics of the synthetic activity: the phantom's activity scaled per time point
SCALE = {"t1h": 1.6, "t4h": 1.3, "t24h": 1.0}


@pytest.fixture(scope="module")
def ingest_dir(tmp_path_factory, torso):
    ct, _, act = torso
    folder = tmp_path_factory.mktemp("ingest")
    grid = spect_grid()
    write_ingest_tp(folder, "t24h", 24.0, ct, spect_of(act.with_array(act.array * SCALE["t24h"]), grid))
    for tp, hours in (("t1h", 1.0), ("t4h", 4.0)):
        m = TRUTH[tp]
        write_ingest_tp(folder, tp, hours, move(ct, m), spect_of(act.with_array(act.array * SCALE[tp]), grid, m))
    return folder


@pytest.fixture(scope="module")
def run(ingest_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("register") / "register"
    code = main(["--ingest-dir", str(ingest_dir), "--out", str(out), *FAST])
    return code, out


def test_full_run_writes_the_contract_outputs(run):
    code, out = run
    assert code == 0
    for name in ("reference.json", "reference_ct.nii.gz", "reference_ct.json"):
        assert (out / name).exists(), name
    for tp in ("t1h", "t4h", "t24h"):
        for name in ("spect.nii.gz", "spect.json", "ct.nii.gz", "ct.json", "transform.tfm", "qc.json", "qc.png"):
            assert (out / tp / name).exists(), (tp, name)
    ref = json.loads((out / "reference.json").read_text())
    assert ref["reference_time_point"] == "t24h"  # closest to 24 h
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary leftovers


def test_registered_spect_sits_on_the_reference_spect_grid_with_carried_sidecar(run, ingest_dir):
    _, out = run
    ref_spect, _ = read_image(ingest_dir / "t24h" / "spect.nii.gz")
    for tp, hours in (("t1h", 1.0), ("t4h", 4.0), ("t24h", 24.0)):
        spect, side = read_image(out / tp / "spect.nii.gz")
        assert spect.unit == "Bq/mL" and spect.same_grid(ref_spect)
        assert side["time_point"] == tp and side["time_h"] == hours
        assert side["radionuclide"] == "Lu-177" and side["injected_activity_mbq"] == 7400.0
        assert side["registration"]["reference_time_point"] == "t24h"


def test_activity_is_conserved_on_every_time_point(run, ingest_dir):
    _, out = run
    for tp in ("t1h", "t4h", "t24h"):
        src, _ = read_image(ingest_dir / tp / "spect.nii.gz")
        reg, side = read_image(out / tp / "spect.nii.gz")
        before = float(src.array.astype(np.float64).sum()) * src.voxel_volume_ml
        after = float(reg.array.astype(np.float64).sum()) * reg.voxel_volume_ml
        bal = side["activity_balance"]
        # the limit: 0.5 % for activity inside the field of view
        assert abs(after / (bal["in_fov_before_mbq"] * 1e6) - 1) < 0.005
        # here everything stays inside the FOV, so the whole source total must be found again
        assert bal["left_fov_mbq"] == pytest.approx(0.0, abs=1e-6 * before / 1e6)
        assert abs(after / before - 1) < 0.005


def test_transforms_recover_the_truth_and_organ_activity_lands_in_place(run, torso):
    _, out = run
    _, labels, act = torso
    for tp, truth in TRUTH.items():
        tx = sitk.ReadTransform(str(out / tp / "transform.tfm"))
        est = affine_ras(tx)
        tre = np.linalg.norm(transform_points(est, TARGETS) - transform_points(truth, TARGETS), axis=1)
        assert tre.max() < 2.0, (tp, tre)
    # the kidney activity of every time point, after registration, sits where the reference kidney is
    for tp in ("t1h", "t4h"):
        spect, _ = read_image(out / tp / "spect.nii.gz")
        w = np.where(spect.array > 0.3 * spect.array.max(), spect.array, 0.0).astype(float)
        x = spect.world_grid()
        for lab, centre in KIDNEY_CENTRES.items():
            near = np.linalg.norm(x - np.array(centre), axis=-1) < 60.0
            c = (x[near] * w[near, None]).sum(0) / w[near].sum()
            # SPECT voxels are 4.8 mm; the activity centroid is within 1.5 mm of the kidney centre
            assert np.linalg.norm(c - np.array(centre)) < 1.5, (tp, lab, c)


def test_qc_record_holds_metrics_parameters_and_activity(run):
    _, out = run
    qc = json.loads((out / "t4h" / "qc.json").read_text())
    assert qc["status"] == "registered" and qc["problems"] == []
    m = qc["rigid"]["metric"]
    assert m["final"] < m["scanner_coordinates"]
    assert qc["rigid"]["ct_correlation"]["after"] > 0.9
    assert abs(qc["rigid"]["parameters"]["rotation_deg"] - 4.35) < 0.3
    assert set(qc["activity"]) >= {"source_mbq", "in_fov_before_mbq", "after_mbq", "relative_change_in_fov"}
    png = (out / "t4h" / "qc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000


def test_single_time_point_mode_redoes_only_that_time_point(run, ingest_dir):
    _, out = run
    before = {p: os.stat(p).st_mtime_ns for p in (out / "t4h").iterdir()}
    ref_before = os.stat(out / "reference.json").st_mtime_ns
    code = main(["--ingest-dir", str(ingest_dir), "--out", str(out), "--time-point", "t1h", *FAST])
    assert code == 0
    assert {p: os.stat(p).st_mtime_ns for p in (out / "t4h").iterdir()} == before
    assert os.stat(out / "reference.json").st_mtime_ns == ref_before
    assert (out / "t1h" / "spect.nii.gz").exists()


@pytest.fixture(scope="module")
def broken_ingest(tmp_path_factory, torso):
    """t24h fine, t4h with an empty (all-air) CT."""
    ct, _, act = torso
    folder = tmp_path_factory.mktemp("broken")
    grid = spect_grid()
    write_ingest_tp(folder, "t24h", 24.0, ct, spect_of(act, grid))
    write_ingest_tp(folder, "t4h", 4.0, ct.with_array(np.full(ct.shape, -1000.0, np.float32)), spect_of(act, grid))
    return folder


def test_empty_ct_fails_with_a_clear_error_and_a_qc_record(broken_ingest, tmp_path, capsys):
    out = tmp_path / "register"
    code = main(["--ingest-dir", str(broken_ingest), "--out", str(out), *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "t4h" in err and "no body" in err and "--allow-fallback" in err
    qc = json.loads((out / "t4h" / "qc.json").read_text())
    assert qc["status"] == "failed" and qc["problems"]
    assert not (out / "t4h" / "spect.nii.gz").exists()
    assert (out / "t24h" / "spect.nii.gz").exists()  # the reference is fine


def test_allow_fallback_continues_and_says_so(broken_ingest, tmp_path):
    out = tmp_path / "register"
    code = main(["--ingest-dir", str(broken_ingest), "--out", str(out), "--allow-fallback", *FAST])
    assert code == 0
    qc = json.loads((out / "t4h" / "qc.json").read_text())
    assert qc["status"] == "fallback_identity" and qc["problems"] and "identity" in qc["fallback"]
    _, side = read_image(out / "t4h" / "spect.nii.gz")
    assert side["registration"]["status"] == "fallback_identity"


def test_unknown_time_point_and_missing_folder_are_input_errors(ingest_dir, tmp_path, capsys):
    assert main(["--ingest-dir", str(ingest_dir), "--out", str(tmp_path), "--time-point", "t9h"]) == 2
    assert "t9h" in capsys.readouterr().err
    assert main(["--ingest-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_region_from_a_label_file_and_from_a_slab(torso, tmp_path):
    ct, labels, _ = torso
    write_image(tmp_path / "labels.nii.gz", labels, {"quantity": "labels"})
    kidneys = parse_region(f"{tmp_path / 'labels.nii.gz'}:1,2")
    assert kidneys.array.sum() == np.isin(labels.array, [1, 2]).sum()
    slab = parse_region("z:-30:30", ct)
    z = ct.world_grid()[..., 2]
    assert slab.array.sum() == ((z >= -30) & (z <= 30)).sum()
