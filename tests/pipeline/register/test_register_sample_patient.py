"""The issue's must-show checks on the sample patient (sample_data generator) with its known transforms.

The ingest-like input is made by copying the generator's NIfTI time points
(their sidecars carry time_point, time_h, radionuclide and injected activity)
into ``<ingest>/<tp>/ct.nii.gz`` and ``spect.nii.gz``, so these tests do not
depend on the ingest stage.

Tolerances (the issue's): TRE below 2 mm at organ and vertebra centroids after
rigid registration; with the deformable stage on the deformed variant, kidney
centroid error below 2 mm and kidney Dice at least 0.9; activity inside the
dose-grid field of view conserved within 0.5 % on every time point.
"""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.imageio import read_image
from pipeline.register.transforms import displacement_field_ras

sample_data = pytest.importorskip("sample_data")
try:
    from sample_data import generate  # noqa: F401
except (ImportError, AttributeError):  # generator not there yet
    pytest.skip("sample_data.generate is not available", allow_module_level=True)

from pipeline.register.cli import main  # noqa: E402

TRE_LIMIT_MM = 2.0
KIDNEY_DICE_MIN = 0.9
ACTIVITY_RTOL = 0.005
VERTEBRAE = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")


def make_ingest_dir(sample_dir, ingest_dir):
    """Copy the generator's NIfTI time points into the ingest layout."""
    truth = json.loads((sample_dir / "truth" / "truth.json").read_text())
    for tp in truth["time_points"]:
        dst = ingest_dir / tp["id"]
        dst.mkdir(parents=True, exist_ok=True)
        for kind in ("ct", "spect"):
            for ext in (".nii.gz", ".json"):
                shutil.copy(sample_dir / "nifti" / f"{tp['id']}_{kind}{ext}", dst / f"{kind}{ext}")
    return truth


def targets(sample_dir, truth):
    """Organ (labels 1-4) and vertebral body (cortex + trabecular, T10-L5) centroids, RAS+ mm."""
    labels, _ = read_image(sample_dir / "truth" / "labels.nii.gz")
    tissues, _ = read_image(sample_dir / "truth" / "tissues.nii.gz")
    names = {v["name"]: int(k) for k, v in truth["tissues"].items()}
    x = labels.world_grid()
    out = {}
    for lab, name in ((1, "kidney_left"), (2, "kidney_right"), (3, "liver"), (4, "spleen")):
        out[name] = x[labels.array == lab].mean(0)
    for level in VERTEBRAE:
        ids = [names[f"cortex_{level}"], names[f"trabecular_{level}"]]
        out[level] = x[np.isin(tissues.array, ids)].mean(0)
    return out


def _apply(matrix, points):
    p = np.asarray(points, float)
    return p @ np.asarray(matrix)[:3, :3].T + np.asarray(matrix)[:3, 3]


def _estimated(tx, points_ras):
    flip = np.diag([-1.0, -1.0, 1.0])
    return np.array([flip @ np.asarray(tx.TransformPoint((flip @ p).tolist())) for p in points_ras])


def check_rigid_run(sample_dir, out, truth):
    """TRE and activity checks of a finished run; returns {tp: max TRE mm}."""
    pts = targets(sample_dir, truth)
    names, points = list(pts), np.array(list(pts.values()))
    tres = {}
    for tp in truth["time_points"]:
        tx = sitk.ReadTransform(str(out / tp["id"] / "transform.tfm"))
        tre = np.linalg.norm(_estimated(tx, points) - _apply(tp["transform"]["matrix_ras"], points), axis=1)
        assert tre.max() < TRE_LIMIT_MM, (tp["id"], dict(zip(names, tre.round(2))))
        tres[tp["id"]] = float(tre.max())
        _, side = read_image(out / tp["id"] / "spect.nii.gz")
        bal = side["activity_balance"]
        assert abs(bal["relative_change_in_fov"]) < ACTIVITY_RTOL, (tp["id"], bal)
        # independent: re-sum the written volume
        spect, _ = read_image(out / tp["id"] / "spect.nii.gz")
        after = float(spect.array.astype(np.float64).sum()) * spect.voxel_volume_ml / 1e6
        assert abs(after / bal["in_fov_before_mbq"] - 1) < ACTIVITY_RTOL
    return tres


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_small")
    sample_dir = sample_data.generate(root / "patient", preset="small", seed=0, fmt="nifti")
    truth = make_ingest_dir(sample_dir, root / "ingest")
    return sample_dir, root / "ingest", truth


@pytest.mark.slow
def test_small_sample_rigid_tre_and_activity_on_every_time_point(small_sample, tmp_path):
    sample_dir, ingest, truth = small_sample
    out = tmp_path / "register"
    assert main(["--ingest-dir", str(ingest), "--out", str(out)]) == 0
    tres = check_rigid_run(sample_dir, out, truth)
    assert json.loads((out / "reference.json").read_text())["reference_time_point"] == "t24h"
    print("max TRE per time point (mm):", tres)


def kidney_errors(sample_dir, out, truth, tp):
    """Kidney centroid error (mm) and Dice after registration, against the true (deformed) pose."""
    labels, _ = read_image(sample_dir / "truth" / "labels.nii.gz")
    info = next(t for t in truth["time_points"] if t["id"] == tp)
    m = np.asarray(info["transform"]["matrix_ras"])
    u = None
    if info["deformation"]:  # 4-D (I, J, K, 3) RAS+ mm, on its own grid (the phantom extends beyond the CT)
        import nibabel as nib

        nii = nib.load(str(sample_dir / "truth" / f"deformation_{tp}.nii.gz"))
        u = np.asarray(nii.get_fdata())
        u_from_world = np.linalg.inv(nii.affine)
    tx = sitk.ReadTransform(str(out / tp / "transform.tfm"))
    x = labels.world_grid()
    y_est = x + displacement_field_ras(tx, labels)  # T_est(x) on the CT grid
    results = {}
    from scipy.ndimage import map_coordinates

    def u_at(points):
        if u is None:
            return np.zeros_like(points)
        p = points.reshape(-1, 3)
        idx = (p @ u_from_world[:3, :3].T + u_from_world[:3, 3]).T
        return np.stack([map_coordinates(u[..., c], idx, order=1, mode="nearest") for c in range(3)],
                        -1).reshape(points.shape)

    # x' with M(x' + u(x')) = y_est, by fixed-point iteration (u is smooth, |grad u| << 1)
    z = _apply(np.linalg.inv(m), y_est.reshape(-1, 3)).reshape(y_est.shape)
    xp = z.copy()
    for _ in range(10):
        xp = z - u_at(xp)
    idx = np.rint(labels.world_to_index(xp)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(labels.shape)), axis=-1)
    pulled = np.zeros(labels.shape, labels.array.dtype)
    pulled[inside] = labels.array[idx[inside][:, 0], idx[inside][:, 1], idx[inside][:, 2]]
    for lab, name in ((1, "kidney_left"), (2, "kidney_right")):
        k = labels.array == lab
        y_true = _apply(m, x[k] + u_at(x[k]))
        err = float(np.linalg.norm(y_est[k].mean(0) - y_true.mean(0)))
        a, b = k, pulled == lab
        dice = float(2 * (a & b).sum() / (a.sum() + b.sum()))
        results[name] = (err, dice)
    return results


@pytest.mark.slow
def test_deformed_sample_deformable_stage_kidney_centroid_and_dice(tmp_path):
    sample_dir = sample_data.generate(tmp_path / "patient", preset="small", seed=1, fmt="nifti", deformed=True)
    truth = make_ingest_dir(sample_dir, tmp_path / "ingest")
    out = tmp_path / "register"
    assert main(["--ingest-dir", str(tmp_path / "ingest"), "--out", str(out), "--deformable"]) == 0
    for tp in truth["time_points"]:
        if tp["id"] == truth["reference_time_point"]:
            continue
        for name, (err, dice) in kidney_errors(sample_dir, out, truth, tp["id"]).items():
            print(tp["id"], name, f"centroid error {err:.2f} mm, Dice {dice:.3f}")
            assert err < TRE_LIMIT_MM, (tp["id"], name, err)
            assert dice >= KIDNEY_DICE_MIN, (tp["id"], name, dice)
        qc = json.loads((out / tp["id"] / "qc.json").read_text())
        assert abs(qc["activity"]["relative_change_in_fov"]) < ACTIVITY_RTOL


@pytest.mark.slow
def test_standard_sample_rigid_registration_and_its_time(tmp_path, capsys):
    sample_dir = sample_data.generate(tmp_path / "patient", preset="standard", seed=0, fmt="nifti")
    truth = make_ingest_dir(sample_dir, tmp_path / "ingest")
    out = tmp_path / "register"
    assert main(["--ingest-dir", str(tmp_path / "ingest"), "--out", str(out)]) == 0
    check_rigid_run(sample_dir, out, truth)
    with capsys.disabled():
        for tp in truth["time_points"]:
            qc = json.loads((out / tp["id"] / "qc.json").read_text())
            print(tp["id"], "timings (s):", {k: round(v, 2) for k, v in qc["timings_s"].items()})
