"""Voxel-wise cumulative dose of a course: alignment of a cycle's dose, sum, course DVHs."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.course.cumulative import align_cycle_dose, cumulative_dose_gy, dose_volume_histograms
from pipeline.image import Image


def _phantom_ct(shift_mm=0.0):
    """A 64^3, 4 mm body cylinder (0 HU) with an off-centre bone rod and a sphere, shifted along x."""
    n, v = 64, 4.0
    aff = np.diag([v, v, v, 1.0])
    aff[:3, 3] = -n * v / 2
    c = (np.arange(n) + 0.5) * v - n * v / 2
    x, y, z = np.meshgrid(c - shift_mm, c, c, indexing="ij")
    hu = np.full((n, n, n), -1000.0)
    hu[(x / 90) ** 2 + (y / 70) ** 2 < 1] = 0.0
    hu[((x - 30) ** 2 + (y + 20) ** 2 < 12 ** 2)] = 700.0
    hu[(x + 35) ** 2 + (y - 15) ** 2 + (z - 20) ** 2 < 18 ** 2] = 400.0
    return Image(hu, aff, "HU"), (x, y, z)


def test_aligned_dose_follows_the_patient_between_cycles():
    ref, (x, y, z) = _phantom_ct()
    moved_ct, (xm, ym, zm) = _phantom_ct(shift_mm=12.0)
    # the "organ" dose sits at the same anatomy: in the moved scan it is 12 mm along x
    dose_ref = np.where((x + 35) ** 2 + (y - 15) ** 2 + (z - 20) ** 2 < 18 ** 2, 2.0, 0.0)
    dose_moved = np.where((xm + 35) ** 2 + (ym - 15) ** 2 + (zm - 20) ** 2 < 18 ** 2, 3.0, 0.0)
    aligned, rec = align_cycle_dose(ref, moved_ct, moved_ct.with_array(dose_moved, unit="Gy"))
    assert rec["registered"] and rec["translation_mm"] == pytest.approx(12.0, abs=1.0)
    organ = dose_ref > 0
    core = (x + 35) ** 2 + (y - 15) ** 2 + (z - 20) ** 2 < 12 ** 2
    assert np.asarray(aligned.array)[core].mean() == pytest.approx(3.0, rel=0.02)
    unaligned, rec0 = align_cycle_dose(ref, moved_ct, moved_ct.with_array(dose_moved, unit="Gy"), register=False)
    assert not rec0["registered"]
    assert np.asarray(unaligned.array)[organ].mean() < 0.8 * np.asarray(aligned.array)[organ].mean()
    total = cumulative_dose_gy([dose_ref, aligned.array])
    assert total[core].mean() == pytest.approx(5.0, rel=0.02)


def test_dvh_statistics_of_known_doses():
    dose = np.arange(100, dtype=float).reshape(10, 10, 1) / 10.0  # 0.0 .. 9.9 Gy
    labels = np.zeros((10, 10, 1), int)
    labels[:5] = 1
    edges, vf, stats = dose_volume_histograms(dose, labels, {1: "kidney_left", 2: "absent"})
    assert set(stats) == {"kidney_left"}
    assert stats["kidney_left"]["mean_gy"] == pytest.approx(np.mean(np.arange(50) / 10.0))
    assert stats["kidney_left"]["n_voxels"] == 50
    assert vf["kidney_left"][0] == 1.0
    i = np.searchsorted(edges, 2.5)
    assert vf["kidney_left"][i] == pytest.approx(np.mean(np.arange(50) / 10.0 >= edges[i]))


def test_errors():
    ref, _ = _phantom_ct()
    other = Image(np.zeros((4, 4, 4)), np.eye(4), "Gy")
    with pytest.raises(ValueError, match="one grid"):
        align_cycle_dose(ref, ref, other)
    with pytest.raises(ValueError):
        cumulative_dose_gy([])
    with pytest.raises(ValueError, match="one grid"):
        cumulative_dose_gy([np.zeros((2, 2, 2)), np.zeros((3, 3, 3))])
