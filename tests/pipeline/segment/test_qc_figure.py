"""The segmentation QC figure's choice of slices."""

import numpy as np

from pipeline.segment.qc import _middle_marrow_voi_centre


def test_the_marrow_panel_shows_the_middle_vertebra_on_a_slice_with_its_voi():
    """Three marrow VOIs (L2 large, L3 and L4 small): the mean of all marrow voxels lies in the
    disc between L2 and L3, a slice without any VOI; the panel must show L3's VOI instead."""
    lab = np.zeros((40, 40, 60), np.uint16)
    lab[5:25, 5:25, 10:15] = 5  # L2: 2000 voxels
    lab[15:25, 15:25, 22:27] = 5  # L3: 500 voxels
    lab[15:25, 15:25, 32:37] = 5  # L4: 500 voxels
    mean_k = np.argwhere(lab == 5)[:, 2].mean()
    assert not (lab[:, :, int(mean_k)] == 5).any()  # the old choice: an empty slice
    c = _middle_marrow_voi_centre(lab, (0, 0, 0))
    assert 22 <= c[2] <= 26 and (lab[:, :, int(c[2])] == 5).any()
    np.testing.assert_allclose(c[:2], (19.5, 19.5))


def test_the_marrow_panel_falls_back_to_the_default_without_a_marrow_voi():
    lab = np.zeros((10, 10, 10), np.uint16)
    np.testing.assert_allclose(_middle_marrow_voi_centre(lab, (1.0, 2.0, 3.0)), (1.0, 2.0, 3.0))
