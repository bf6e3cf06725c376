"""Same seed, same output: DICOM files byte for byte, truth arrays voxel for voxel."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.imageio import read_image


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_gives_identical_session_arrays_and_dicom_bytes(tmp_path):
    """The pieces of one session, built twice from the same seed, are identical."""
    import datetime as dt

    from pipeline.image import Image
    from sample_data import imaging
    from sample_data.anatomy import build_model
    from sample_data.dicom import write_ct_series, write_nm_spect

    def session(seed):
        model = build_model("small", seed)
        pose = imaging.random_pose(np.random.default_rng([seed, 23]), deformed=False)
        ct = imaging.simulate_ct(model, pose, np.random.default_rng([seed, 31]), noise=True)
        lut = np.zeros(256)
        lut[1:100] = 1000.0
        shape, affine = imaging.spect_geometry(model.preset)
        binned = imaging.splat(model, pose, shape, affine, lut, model.voxel_volume_ml)
        sp = imaging.add_poisson_noise(binned, 12.0, 1200.0, np.random.default_rng([seed, 37]))
        return model, ct, sp

    m1, ct1, sp1 = session(5)
    m2, ct2, sp2 = session(5)
    assert np.array_equal(ct1, ct2) and np.array_equal(sp1, sp2) and sp1.sum() > 0
    _m3, ct3, _sp3 = session(6)
    assert not np.array_equal(ct1, ct3)
    info = {"patient_id": "P", "time_point": "t1h", "nuclide": "Lu-177", "uid_root": "x", "injected_bq": 7.4e9,
            "half_life_s": 574300.0, "injection_datetime": dt.datetime(2026, 1, 5, 9),
            "spect_datetime": dt.datetime(2026, 1, 5, 10), "ct_datetime": dt.datetime(2026, 1, 5, 9, 55),
            "study_datetime": dt.datetime(2026, 1, 5, 9, 55), "acquisition_s": 1200.0, "photopeak_kev": 208.4,
            "study_uid": "1.2.3", "frame_of_reference_uid": "1.2.4"}
    ct_img = Image(np.rint(ct1[:, :, :4]).astype(np.int16), m1.ct_affine, "HU")
    sp_img = Image(sp1[:, :, :4].astype(np.float32), np.diag([-4.8, -4.8, 4.8, 1.0]), "Bq/mL")
    for name in ("a", "b"):
        write_ct_series(tmp_path / name / "ct", ct_img, info)
        write_nm_spect(tmp_path / name / "nm.dcm", sp_img, info)
    for rel in _files(tmp_path / "a"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


@pytest.mark.slow
def test_same_seed_gives_identical_dicom_and_truth(small_dicom, tmp_path):
    import sample_data

    again = sample_data.generate(tmp_path / "again", preset="small", seed=3, noise=True, fmt="dicom")
    assert _files(again) == _files(small_dicom)
    for rel in _files(small_dicom):
        if rel.suffix == ".dcm":
            assert (again / rel).read_bytes() == (small_dicom / rel).read_bytes(), rel
        elif rel.name.endswith(".nii.gz"):
            a, _ = read_image(small_dicom / rel)
            b, _ = read_image(again / rel)
            assert np.array_equal(a.array, b.array) and np.array_equal(a.affine, b.affine), rel
    # sidecars and truth.json differ only by creation time stamps / measured run time
    assert (again / "manifest.yaml").read_text() == (small_dicom / "manifest.yaml").read_text()


def test_another_seed_gives_other_noise_and_poses(small_dicom, tmp_path):
    import json

    import sample_data

    other = sample_data.generate(tmp_path / "other", preset="small", seed=4, noise=True, fmt="dicom",
                                 time_points_h=(1, 24))
    # same protocol position (first session, CT slice 40), other seed: other pose and noise
    t_other = json.loads((other / "truth" / "truth.json").read_text())
    t_ref = json.loads((small_dicom / "truth" / "truth.json").read_text())
    assert t_other["time_points"][0]["transform"] != t_ref["time_points"][0]["transform"]
    a = (other / "dicom" / "t24h" / "ct" / "CT_0040.dcm").read_bytes()
    b = (small_dicom / "dicom" / "t24h" / "ct" / "CT_0040.dcm").read_bytes()
    assert a != b
