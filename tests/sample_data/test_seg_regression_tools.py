"""Probe tools of the segmentation regression: a stretched phantom and the early-session SPECT.

Skips when ``../shared/data/icrp110/Input_GateLab_2019-04-02.zip`` is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.segment import labels as L

icrp110 = pytest.importorskip("sample_data.icrp110")

ZIP = icrp110.default_zip_path()


@pytest.fixture(scope="module")
def af():
    if not ZIP.is_file():
        pytest.skip(f"ICRP-110 phantoms not found at {ZIP}")
    return icrp110.load_phantom(ZIP, "AF")


def _kidney_ml(ph, voxel=(4.0, 4.0, 5.0)):
    ct = icrp110.make_ct(ph, voxel, seed=0, z_range_mm=icrp110.fov_z_range(ph, "trunk"))
    ref, _ = icrp110.reference_labels(ph, ct)
    return float(np.sum(np.asarray(ref.array) == L.KIDNEY_LEFT)) * ct.voxel_volume_ml, ct, ref


def test_a_stretched_phantom_has_organs_stretched_by_the_product_of_the_factors(af):
    from sample_data.seg_regression import _scaled

    base, _, _ = _kidney_ml(af)
    big, _, _ = _kidney_ml(_scaled(af, 1.2, 1.1))
    # volume scales as 1.2^2 x 1.1 = 1.584; 5 % for the 4 x 4 x 5 mm voxelisation of a 130 mL organ
    assert big / base == pytest.approx(1.2 ** 2 * 1.1, rel=0.05)


def test_the_early_spect_has_a_lower_kidney_to_background_contrast_than_the_24h_one(af):
    from pipeline.grid import resample_to
    from pipeline.segment.evaluate import resample_nearest
    from sample_data import seg_spect

    _, ct, ref = _kidney_ml(af)
    native = resample_nearest(af.labels, ct)
    r = np.asarray(ref.array)
    background = r == L.BODY
    ratios = {}
    for name, (uptake, rest) in {"24h": (seg_spect.REALISTIC_UPTAKE, seg_spect.REALISTIC_REST),
                                 "early": (seg_spect.EARLY_UPTAKE, seg_spect.EARLY_REST)}.items():
        sp, _, _ = seg_spect.realistic_spect(ct, native, uptake=uptake, rest=rest)
        s = np.asarray(resample_to(sp, ct, "linear").array)
        ratios[name] = s[r == L.KIDNEY_LEFT].mean() / s[background].mean()
    # unblurred: cortex 10 / rest 0.3 against cortex 6 / rest 1; the camera's 12 mm blur lowers both
    assert 2.0 < ratios["early"] < 0.5 * ratios["24h"]


def test_an_enlarged_organ_grows_only_over_fat_and_bowel_and_keeps_the_other_organs(af):
    from sample_data.seg_regression import _enlarged

    big, (before, after) = _enlarged(af, "spleen", 15.0)
    a0, a1 = np.asarray(af.labels.array), np.asarray(big.labels.array)
    changed = a0 != a1
    # the spleen (ICRP-110 AF 130 mL at 1.775 x 1.775 x 4.84 mm) more than doubles with 15 mm over the abdomen
    assert 1.5 * before < after < 4.0 * before
    assert np.all(a1[changed] == 127)
    taken = {af.tissue[int(i)] for i in np.unique(a0[changed])}
    assert taken and all(any(w in t for w in ("Adipose", "intestine", "Stomach", "contents", "Pancreas",
                                               "Gallbladder", "Lymph", "Blood")) for t in taken)
    for organ in (89, 90, 91, 92, 93, 94, 95):
        assert np.sum(a1 == organ) == np.sum(a0 == organ)
    assert np.sum(a1 == 127) * np.prod(icrp110._FILES["AF"][1]) / 1000.0 == pytest.approx(after, rel=1e-6)


def test_enlarge_option_rejects_an_unknown_organ():
    from sample_data.seg_regression import main

    with pytest.raises(SystemExit):
        main(["--enlarge", "pancreas:10", "--cases", "sample"])


def test_marrow_share_in_the_reference_bodies_counts_the_voi_voxels_inside_them():
    from pipeline.image import Image
    from sample_data.seg_regression import _marrow_in_bodies_pct

    ref = np.zeros((4, 4, 4), np.uint16)
    ref[:2] = 6  # reference bodies: half the volume
    ref[0, 0, 0] = 5  # a reference VOI carved out of them counts as body
    ours = np.zeros_like(ref)
    ours[1:3, :2, :2] = 5  # 8 voxels, 4 of them in x = 1 (inside), 4 in x = 2 (outside)
    pct = _marrow_in_bodies_pct(Image(ours, np.eye(4), "label"), Image(ref, np.eye(4), "label"))
    assert pct == pytest.approx(50.0)
    ours[0, 0, 0] = 5  # one more, on the reference's own VOI: 5 of 9 inside
    assert _marrow_in_bodies_pct(Image(ours, np.eye(4), "label"),
                                 Image(ref, np.eye(4), "label")) == pytest.approx(round(500 / 9, 1))
    no_bodies = Image(np.zeros_like(ref), np.eye(4), "label")
    assert _marrow_in_bodies_pct(Image(ours, np.eye(4), "label"), no_bodies) is None
