"""ICRP-110 development cases: orientation, reference volumes, lumbar levels, CT grid.

Skips when ``../shared/data/icrp110/Input_GateLab_2019-04-02.zip`` is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.segment import labels as L

icrp110 = pytest.importorskip("sample_data.icrp110")

ZIP = icrp110.default_zip_path()

#: ICRP Publication 89 reference masses (g) over the phantoms' densities (g/mL) -> mL.
#: AF: liver 1400 g, kidneys 275 g (both), spleen 130 g; AM: liver 1800 g, kidneys 310 g, spleen 150 g.
ICRP89_ML = {
    "AF": {L.LIVER: 1400 / 1.05, L.KIDNEY_LEFT: 275 / 2 / 1.05, L.KIDNEY_RIGHT: 275 / 2 / 1.05,
           L.SPLEEN: 130 / 1.04},
    "AM": {L.LIVER: 1800 / 1.05, L.KIDNEY_LEFT: 310 / 2 / 1.05, L.KIDNEY_RIGHT: 310 / 2 / 1.05,
           L.SPLEEN: 150 / 1.04},
}


@pytest.fixture(scope="module", params=["AF", "AM"])
def case(request):
    if not ZIP.is_file():
        pytest.skip(f"ICRP-110 phantoms not found at {ZIP}")
    ph = icrp110.load_phantom(ZIP, request.param)
    ct = icrp110.make_ct(ph, (4.0, 4.0, 5.0), seed=0, z_range_mm=icrp110.fov_z_range(ph, "trunk"))
    ref, levels = icrp110.reference_labels(ph, ct)
    return ph, ct, ref, levels


def _centroid(ref, lid):
    return ref.index_to_world(np.argwhere(np.asarray(ref.array) == lid).mean(axis=0))


def test_orientation_from_anatomy(case):
    ph, ct, ref, levels = case
    # RAS+: +x toward the patient's right, +y anterior, +z superior
    assert ph.orientation["signs"] == (-1, -1, 1)
    liver, spleen = _centroid(ref, L.LIVER), _centroid(ref, L.SPLEEN)
    kl, kr = _centroid(ref, L.KIDNEY_LEFT), _centroid(ref, L.KIDNEY_RIGHT)
    spine = _centroid(ref, L.VERTEBRAE_L2L4)
    assert liver[0] > spleen[0] and liver[0] > 0 > spleen[0]  # liver on the right
    assert kr[0] > spine[0] > kl[0]
    assert spine[1] < liver[1]  # spine posterior
    # head is +z: lungs above the liver, kidneys and L2-L4 below it
    lungs = ph.labels.index_to_world(np.argwhere(np.isin(np.asarray(ph.labels.array), (97, 99))).mean(axis=0))
    assert lungs[2] > liver[2] > spine[2]
    assert levels["L1"]["z_range_mm"][0] > levels["L5"]["z_range_mm"][1]


def test_reference_volumes_match_icrp89(case):
    ph, ct, ref, _ = case
    a = np.asarray(ref.array)
    for lid, ml in ICRP89_ML[ph.name].items():
        v = (a == lid).sum() * ref.voxel_volume_ml
        assert v == pytest.approx(ml, rel=0.15), (L.FIXED_LABELS[lid], v, ml)


def test_five_lumbar_levels_in_order(case):
    ph, ct, ref, levels = case
    assert levels["_checks"]["count"] == 5
    assert levels["_checks"]["thoracic_above_with_ribs"] and levels["_checks"]["sacrum_below"]
    ranges = [levels[n]["z_range_mm"] for n in ("L5", "L4", "L3", "L2", "L1")]
    for (lo, hi) in ranges:
        assert 20.0 <= hi - lo <= 35.0
    for below, above in zip(ranges, ranges[1:]):
        assert below[1] <= above[0]  # no overlap, inferior to superior
    for n in ("L2", "L3", "L4"):
        lo, hi = levels[n]["z_range_mm"]
        assert lo < levels[n]["centroid_ras_mm"][2] < hi
        assert 15.0 < levels[n]["body_volume_ml"] < 60.0


def test_vertebral_bodies_exclude_the_arch(case):
    ph, ct, ref, levels = case
    a = np.asarray(ref.array)
    vb = a == L.VERTEBRAE_L2L4
    z = ref.index_to_world(np.argwhere(vb))[:, 2]
    assert z.min() >= levels["L4"]["z_range_mm"][0] - 5.0 and z.max() <= levels["L2"]["z_range_mm"][1] + 5.0
    # the posterior arch (spinous process) lies 40+ mm behind the body's front: none of it is labelled
    y = ref.index_to_world(np.argwhere(vb))[:, 1]
    assert np.ptp(y) < 55.0


def test_ct_numbers_grid_and_table(case):
    ph, ct, ref, _ = case
    c, a = np.asarray(ct.array), np.asarray(ref.array)
    assert ct.same_grid(ref) and ct.unit == "HU"
    assert np.allclose(ct.voxel_size_mm, (4.0, 4.0, 5.0))
    assert 40 < np.median(c[a == L.LIVER]) < 80
    assert 150 < np.median(c[a == L.VERTEBRAE_L2L4]) < 450
    # noise: the SD of the liver's inside is the requested noise (17 HU at 4 x 4 x 5 mm) and more
    inner = ndi.binary_erosion(a == L.LIVER, iterations=2)
    assert 0.8 * ct.meta["noise_hu"] < np.std(c[inner]) < 2.0 * ct.meta["noise_hu"]
    # the table: dense voxels behind (more posterior than) the body
    body_y = ct.index_to_world(np.argwhere(a > 0))[:, 1].min()
    dense = ct.index_to_world(np.argwhere((c > 100) & (a == 0)))[:, 1]
    assert (dense < body_y).sum() > 100


def test_make_ct_is_deterministic(case):
    ph = case[0]
    a = icrp110.make_ct(ph, (4.0, 4.0, 5.0), seed=3, z_range_mm=(150.0, 250.0))
    b = icrp110.make_ct(ph, (4.0, 4.0, 5.0), seed=3, z_range_mm=(150.0, 250.0))
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)


def test_truncated_case_flags_organs():
    if not ZIP.is_file():
        pytest.skip(f"ICRP-110 phantoms not found at {ZIP}")
    from pipeline.segment.evaluate import compare_labels

    cases = icrp110.development_cases(ZIP)
    assert {"AF_2mm", "AF_4mm", "AM_2mm", "AM_4mm", "AF_3mm_abdomen"} <= set(cases)
    ct, ref, levels = icrp110.load_case(None, "AF_3mm_abdomen")
    res = compare_labels(ref, ref)
    assert res["liver"]["truncated"]  # the liver dome is above the field of view
    assert res["kidney_left"]["dice"] == 1.0 and not res["kidney_left"]["truncated"]


def test_a_lung_bases_field_of_view_runs_from_the_sacrum_to_above_the_lowest_lung_voxel():
    if not ZIP.is_file():
        pytest.skip(f"ICRP-110 phantoms not found at {ZIP}")
    ph = icrp110.load_phantom(ZIP, "AF")
    lab = np.asarray(ph.labels.array)

    def z_of(ids):
        ks = np.flatnonzero(np.isin(lab, ids).any(axis=(0, 1)))[[0, -1]]
        return ph.labels.index_to_world(np.c_[np.zeros(2), np.zeros(2), ks])[:, 2]

    lo, hi = icrp110.fov_z_range(ph, "bases:40:10")
    assert lo == pytest.approx(np.max(z_of(icrp110.IDS["sacrum"])) - 10.0)
    assert hi == pytest.approx(np.min(z_of(icrp110.IDS["lungs"])) + 40.0)
    with pytest.raises(ValueError, match="bases:LUNG_MM:SACRUM_MM"):
        icrp110.fov_z_range(ph, "bases:forty:10")
