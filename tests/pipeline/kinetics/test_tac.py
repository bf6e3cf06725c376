"""Label occupancy on the SPECT grid and organ activities."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.image import Image
from pipeline.kinetics.tac import label_occupancy, organ_activity_mbq


def _grids():
    spect_aff = np.diag([-4.0, -4.0, 4.0, 1.0])
    spect_aff[:3, 3] = [40.0, 40.0, -40.0]
    grid = Image(np.zeros((20, 20, 20)), spect_aff, "Bq/mL")
    # label grid 1 mm, 4 label voxels per SPECT voxel along each axis; centres at SPECT index
    # -3/8, -1/8, 1/8, 3/8 of the voxel
    lab_aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    lab_aff[:3, 3] = [40.0 + 1.5, 40.0 + 1.5, -40.0 - 1.5]
    return grid, lab_aff


def test_fractional_occupancy_of_a_box_is_exact_on_aligned_grids():
    grid, lab_aff = _grids()
    lab = np.zeros((80, 80, 80), np.uint8)
    # box of 10 x 6 x 7 label voxels starting at 8, 8, 8 (SPECT voxel 2 starts at label index 8)
    lab[8:18, 8:14, 8:15] = 3
    occ = label_occupancy(Image(lab, lab_aff, "label"), grid)
    f = occ.fraction(3)
    # analytic: 10 label voxels = 2.5 SPECT voxels, 6 = 1.5, 7 = 1.75 -> per-axis fractions
    fx = np.zeros(20); fx[2:4] = 1; fx[4] = 0.5
    fy = np.zeros(20); fy[2] = 1; fy[3] = 0.5
    fz = np.zeros(20); fz[2] = 1; fz[3] = 0.75
    np.testing.assert_allclose(f, np.einsum("i,j,k->ijk", fx, fy, fz), atol=1e-7)
    assert occ.volume_ml(3) == pytest.approx(10 * 6 * 7 / 1000.0, rel=1e-6)
    assert occ.label_volume_ml[3] == pytest.approx(0.42)


def test_organ_activity_of_uniform_concentration_is_concentration_times_volume():
    grid, lab_aff = _grids()
    lab = np.zeros((80, 80, 80), np.uint8)
    xyz = np.stack(np.meshgrid(*[np.arange(80)] * 3, indexing="ij"), -1)
    lab[np.sum((xyz - 40) ** 2, -1) <= 15 ** 2] = 1
    occ = label_occupancy(Image(lab, lab_aff, "label"), grid)
    spect = grid.with_array(np.full(grid.shape, 2.0e5))
    a = organ_activity_mbq(spect, occ)
    # uniform 2e5 Bq/mL over the label's volume (mL) -> MBq
    assert a[1] == pytest.approx(2.0e5 * np.sum(lab == 1) / 1000.0 * 1e-6, rel=1e-6)
    a_rc = organ_activity_mbq(spect, occ, recovery={1: 0.5})
    assert a_rc[1] == pytest.approx(2 * a[1])


def test_nearest_neighbour_occupancy_is_one_hot_and_close_in_volume():
    grid, lab_aff = _grids()
    lab = np.zeros((80, 80, 80), np.uint8)
    lab[8:40, 8:40, 8:40] = 2  # 8 x 8 x 8 SPECT voxels exactly
    occ = label_occupancy(Image(lab, lab_aff, "label"), grid, method="nearest")
    f = occ.fraction(2)
    assert set(np.unique(f)) <= {0.0, 1.0}
    assert f.sum() == 512


def test_label_outside_spect_field_of_view_is_reported_by_volume():
    grid, lab_aff = _grids()
    lab = np.zeros((80, 80, 100), np.uint8)
    lab[10:20, 10:20, 70:100] = 4  # 10 of 30 slices inside the SPECT z-range (80 label slices)
    occ = label_occupancy(Image(lab, lab_aff, "label"), grid)
    assert occ.volume_ml(4) == pytest.approx(occ.label_volume_ml[4] / 3, rel=1e-6)


def test_a_label_map_with_slices_thicker_than_the_spect_voxels_leaves_no_spect_slice_empty():
    # clinical CTs often have 5 mm slices, thicker than 4.8 mm SPECT voxels: every SPECT slice
    # inside an organ must still be occupied (binning CT voxel centres into SPECT voxels left one
    # SPECT slice in 25 empty, 4 % of every organ's activity)
    grid = Image(np.zeros((30, 30, 60)), np.diag([4.8, 4.8, 4.8, 1.0]), "Bq/mL")
    lab_aff = np.diag([1.0, 1.0, 5.0, 1.0])
    lab_aff[:3, 3] = [0.3, 0.1, 1.7]
    lab = np.zeros((140, 140, 60), np.uint8)
    lab[20:120, 20:120, 4:54] = 1  # 100 mm x 100 mm x 250 mm box
    occ = label_occupancy(Image(lab, lab_aff, "label"), grid)
    f = occ.fraction(1)
    # reference: the box's volume, 2500 mL; sub-voxel sampling is exact along x and y (1 mm label
    # voxels on 4.8 mm SPECT voxels sampled at 0.96 mm) to the sub-voxel pitch, and along z each
    # SPECT slice is sampled at 1 point per label slice crossing: 1 % covers a partial end slice
    assert occ.volume_ml(1) == pytest.approx(2500.0, rel=0.01)
    x = grid.world_grid()
    deep = (x[..., 0] > 30) & (x[..., 0] < 105) & (x[..., 1] > 30) & (x[..., 1] < 105) & \
        (x[..., 2] > 30) & (x[..., 2] < 250)
    # every SPECT voxel well inside the box is wholly inside it
    np.testing.assert_allclose(f[deep], 1.0)
    assert deep.sum() > 1000
