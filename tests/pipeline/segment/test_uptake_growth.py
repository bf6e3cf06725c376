"""Tests of :mod:`pipeline.segment.uptake_growth` (hot organs grown on the SPECT and the CT).

The veto, the single-organ growth and the basin test are tested in ``test_atlas.py``, where they
were written before the module was split from :mod:`pipeline.segment.atlas_refine`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from pipeline.segment.uptake_growth import grow_together, uptake_bulk_level


def test_organs_grown_together_share_the_tissue_between_them_at_the_geodesic_midpoint():
    # two organ seeds 30 voxels apart along x, every voxel between them allowed to both
    shape = (60, 20, 20)
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[10:15, 5:15, 5:15] = True
    b[45:50, 5:15, 5:15] = True
    allowed = np.zeros(shape, bool)
    allowed[5:55, 5:15, 5:15] = True
    out = grow_together({"a": a, "b": b}, {"a": allowed, "b": allowed}, (2.0, 2.0, 2.0), max_mm=100.0)
    assert not (out["a"] & out["b"]).any()
    xa = np.flatnonzero(out["a"].any(axis=(1, 2)))
    xb = np.flatnonzero(out["b"].any(axis=(1, 2)))
    # the 30-voxel gap (x 15..44) split in the middle
    assert xa.max() == 29 and xb.min() == 30
    assert xa.min() == 5 and xb.max() == 54
    # grown one after the other, the first organ would have taken the whole gap
    seq = a.copy()
    for _ in range(50):
        seq |= ndi.binary_dilation(seq) & allowed & ~b
    assert np.flatnonzero(seq.any(axis=(1, 2))).max() == 44


def test_organs_grown_together_give_a_contested_voxel_to_the_organ_it_resembles():
    shape = (31, 5, 5)
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[0, 2, 2] = True
    b[30, 2, 2] = True
    allowed = np.zeros(shape, bool)
    allowed[:, 2, 2] = True
    # a 29-voxel gap: both reach its middle voxel (x 15) in the same step; without a closeness it goes to neither
    out = grow_together({"a": a, "b": b}, {"a": allowed, "b": allowed}, (1.0, 1.0, 1.0), 40.0)
    assert not out["a"][15, 2, 2] and not out["b"][15, 2, 2] and out["a"][14, 2, 2] and out["b"][16, 2, 2]
    closeness = {"a": np.zeros(shape), "b": np.ones(shape)}  # every voxel looks like a
    out = grow_together({"a": a, "b": b}, {"a": allowed, "b": allowed}, (1.0, 1.0, 1.0), 40.0, closeness)
    assert out["a"][15, 2, 2] and not out["b"][15, 2, 2]
    # a mask not in ``allowed`` does not grow but blocks
    out = grow_together({"a": a, "b": b}, {"a": allowed}, (1.0, 1.0, 1.0), 40.0)
    assert out["b"].sum() == 1 and out["a"].sum() == 30


def test_bulk_level_of_an_organ_without_lesions_is_its_median():
    rng = np.random.default_rng(0)
    v = 2.0 * (1.0 + 0.1 * rng.standard_normal(5000))
    assert uptake_bulk_level(v) == np.median(v)


def test_bulk_level_of_an_organ_without_uptake_is_its_median_and_never_loops():
    # a SPECT that ends before the organ (zeros) or holds negative reconstruction values: the
    # clip at twice a level <= 0 would drop every positive value
    assert uptake_bulk_level(np.zeros(100)) == 0.0
    assert uptake_bulk_level(np.array([-1.0, -0.5, -0.2, 3.0, 4.0])) == -0.2


def test_bulk_level_sheds_hot_lesions_in_a_third_of_the_organ():
    # a blurred liver with metastases: parenchyma at 2.0 (10 % noise) in 40 % of the voxels,
    # parenchyma raised by the lesions' spill (2.5-6) in 30 %, lesions (6-25) in 30 % (the
    # shape of the ICRP-110 AF_3mm liver's histogram with 30 % metastases at an early session):
    # the median is raised to 1.8 times the parenchyma, the bulk level stays within 10 %
    rng = np.random.default_rng(1)
    v = np.concatenate([2.0 * (1.0 + 0.1 * rng.standard_normal(4000)), rng.uniform(2.5, 6.0, 3000),
                        rng.uniform(6.0, 25.0, 3000)])
    assert np.median(v) > 3.5
    assert abs(uptake_bulk_level(v) - 2.0) / 2.0 < 0.10
