"""compare_labels / compare_levels on analytic masks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.image import Image
from pipeline.segment import labels as L
from pipeline.segment.evaluate import (compare_labels, compare_levels, format_label_table,
                                       format_level_table, resample_nearest)


def _grid(shape, vs, origin=(0.0, 0.0, 0.0), flip=(1, 1, 1)):
    aff = np.eye(4)
    aff[:3, :3] = np.diag(np.asarray(flip, float) * np.asarray(vs, float))
    aff[:3, 3] = origin
    return aff


def _sphere_image(shape, vs, centre_mm, radius_mm, lid, affine=None):
    affine = _grid(shape, vs) if affine is None else affine
    img = Image(np.zeros(shape, np.uint16), affine, "label")
    d = np.linalg.norm(img.world_grid() - np.asarray(centre_mm), axis=-1)
    a = np.zeros(shape, np.uint16)
    a[d <= radius_mm] = lid
    return img.with_array(a)


def _cap_volume(r, h):
    return np.pi * h * h * (3 * r - h) / 3.0


def test_identical_masks():
    img = _sphere_image((40, 40, 40), (1.0, 1.0, 1.0), (20, 20, 20), 10.0, L.LIVER)
    res = compare_labels(img, img)
    assert res["liver"]["dice"] == 1.0
    assert res["liver"]["volume_error_percent"] == 0.0
    assert res["liver"]["centroid_distance_mm"] == pytest.approx(0.0, abs=1e-9)
    assert res["kidney_left"]["status"] == "absent"
    assert not res["liver"]["truncated"]


def test_offset_spheres_dice_by_formula():
    # two spheres of radius r, centres d apart: overlap = 2 caps of height r - d/2
    # (lens volume pi (4r + d)(2r - d)^2 / 12); Dice = overlap / sphere volume
    r, d = 12.0, 8.0
    shape, vs = (96, 64, 64), (0.5, 0.5, 0.5)  # both spheres wholly inside
    ref = _sphere_image(shape, vs, (16, 16, 16), r, L.SPLEEN)
    test = _sphere_image(shape, vs, (16 + d, 16, 16), r, L.SPLEEN)
    res = compare_labels(test, ref)["spleen"]
    expected = 2 * _cap_volume(r, r - d / 2) / (4 / 3 * np.pi * r ** 3)
    assert res["dice"] == pytest.approx(expected, abs=0.01)
    assert res["centroid_distance_mm"] == pytest.approx(d, abs=0.05)
    assert res["volume_reference_ml"] == pytest.approx(4 / 3 * np.pi * r ** 3 / 1000, rel=0.02)
    assert abs(res["volume_error_percent"]) < 0.5


def test_different_grids_and_orientation():
    # reference on a 1 mm RAS grid, test on a 2 mm flipped (LPS-ordered) grid
    ref = _sphere_image((60, 60, 60), (1, 1, 1), (30, 30, 30), 15.0, L.KIDNEY_RIGHT)
    aff = _grid((30, 30, 30), (2, 2, 2), origin=(59.5, 59.5, 0.5), flip=(-1, -1, 1))
    test = _sphere_image((30, 30, 30), (2, 2, 2), (30, 30, 30), 15.0, L.KIDNEY_RIGHT, affine=aff)
    res = compare_labels(test, ref)["kidney_right"]
    assert res["dice"] > 0.9
    assert abs(res["volume_error_percent"]) < 8.0
    assert res["centroid_distance_mm"] < 1.0
    # nearest-neighbour resampling on the same grid is the identity
    assert np.array_equal(resample_nearest(ref, ref), ref.array)


def test_truncated_and_missing_and_marrow_counts_as_vertebra():
    a = np.zeros((20, 20, 20), np.uint16)
    a[5:10, 5:10, 0:6] = L.LIVER  # touches the first slice: cut by the field of view
    a[12:16, 12:16, 8:12] = L.VERTEBRAE_L2L4
    ref = Image(a, np.eye(4), "label")
    t = a.copy()
    t[t == L.LIVER] = 0
    t[13:15, 13:15, 9:11] = L.MARROW_L2L4
    res = compare_labels(ref.with_array(t), ref)
    assert res["liver"]["status"] == "missing" and res["liver"]["truncated"]
    assert res["liver"]["dice"] == 0.0
    assert res["vertebrae_L2L4"]["dice"] == 1.0
    text = format_label_table(res)
    assert "liver" in text and "truncated" in text


def test_compare_levels():
    ref = {"L2": (100.0, 130.0), "L3": {"z_range_mm": (65.0, 95.0)}, "L4": (30.0, 60.0)}
    test = {"L2": 115.0, "L3": {"centre_ras_mm": [0.0, -10.0, 97.0]}}
    res = compare_levels(test, ref, tolerance_mm=0.0)
    assert res["L2"]["match"] and res["L2"]["offset_mm"] == pytest.approx(0.0)
    assert not res["L3"]["match"] and res["L3"]["status"] == "mismatch"
    assert res["L4"]["status"] == "not found"
    assert compare_levels(test, ref, tolerance_mm=3.0)["L3"]["match"]
    assert "L3" in format_level_table(res)
