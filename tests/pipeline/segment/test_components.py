import numpy as np
from scipy import ndimage as ndi

from pipeline.segment.components import (component_sizes, fill_holes, largest_component, select_labels,
                                         without_thin_appendages)


def test_select_labels_equals_isin_including_absent_and_out_of_range_ids():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 20, (30, 20, 10)).astype(np.int32)
    for ids in ([3, 7], [0], [], [19, 25, 40], np.array([5, 5, 2])):
        assert np.array_equal(select_labels(lab, ids), np.isin(lab, ids))
    assert select_labels(np.zeros((0, 3), np.int32), [1]).shape == (0, 3)


def test_component_sizes_equal_scipy_sum_labels():
    rng = np.random.default_rng(1)
    mask = ndi.gaussian_filter(rng.normal(size=(40, 30, 20)), 1.5) > 0.1
    lab, n = ndi.label(mask)
    assert n > 5
    want = ndi.sum_labels(mask, lab, np.arange(1, n + 1))
    assert np.array_equal(component_sizes(lab, n), want)
    assert component_sizes(np.zeros((4, 4), np.int32), 0).shape == (0,)


def test_largest_component_is_the_biggest_piece_with_its_size_and_empty_gives_nothing():
    m = np.zeros((20, 20, 5), bool)
    m[1:4, 1:4, 1:3] = True  # 18 voxels
    m[10:15, 10:15, 1:4] = True  # 75 voxels
    piece, size = largest_component(m)
    assert size == 75 and piece.sum() == 75 and piece[12, 12, 2] and not piece[2, 2, 2]
    empty, n = largest_component(np.zeros((4, 4), bool))
    assert n == 0 and not empty.any() and empty.dtype == bool


def _ball(shape, centre, radius_vox):
    g = np.indices(shape)
    return sum((g[a] - c) ** 2 for a, c in enumerate(centre)) <= radius_vox ** 2


def test_a_thin_sheet_sticking_out_of_an_organ_is_cut_and_the_organ_keeps_its_outline():
    organ = _ball((60, 60, 60), (30, 30, 30), 12)  # 24 mm radius at 2 mm voxels
    sheet = np.zeros_like(organ)
    sheet[30:58, 28:31, 20:40] = True  # 6 mm thick, reaching 32 mm beyond the organ
    out = without_thin_appendages(organ | sheet, (2.0, 2.0, 2.0), 6.0)
    assert out[organ].all()  # the organ's own voxels, outline included, all stay
    beyond = sheet & (ndi.distance_transform_edt(~organ, sampling=2.0) > 10.0)  # > 10 mm out of the organ
    assert beyond.sum() > 500 and not out[beyond].any()


def test_a_mask_thinner_than_the_ball_everywhere_is_returned_unchanged():
    plate = np.zeros((40, 40, 40), bool)
    plate[5:35, 5:35, 18:21] = True  # 6 mm thick
    np.testing.assert_array_equal(without_thin_appendages(plate, (2.0, 2.0, 2.0), 6.0), plate)
    np.testing.assert_array_equal(without_thin_appendages(plate, (2.0, 2.0, 2.0), 0.0), plate)


def test_fill_holes_equals_scipy_in_3d_and_slice_by_slice_on_random_masks():
    # random masks of every density, some touching the border, some opened into blobs with cavities
    rng = np.random.default_rng(3)
    for t in range(120):
        shape = tuple(int(v) for v in rng.integers(1, 13, 3))
        m = rng.random(shape) < rng.uniform(0.3, 0.9)
        if t % 2:
            m = ndi.binary_opening(m)
        assert np.array_equal(fill_holes(m), ndi.binary_fill_holes(m))
        by_slice = np.stack([ndi.binary_fill_holes(m[:, :, k]) for k in range(shape[2])], axis=2)
        assert np.array_equal(fill_holes(m, per_slice=True), by_slice)


def test_fill_holes_fills_a_closed_shell_but_not_a_cup_open_to_the_border():
    shell = np.zeros((9, 9, 9), bool)
    shell[2:7, 2:7, 2:7] = True
    shell[3:6, 3:6, 3:6] = False
    assert fill_holes(shell)[4, 4, 4]
    cup = shell.copy()
    cup[4, 4, 6] = False  # a hole in the wall: the cavity reaches the background outside the shell
    assert not fill_holes(cup)[4, 4, 4]
    # slice by slice, the shell's middle slices are rings: their centre is a hole in-plane
    assert fill_holes(cup, per_slice=True)[4, 4, 4]
    assert not fill_holes(np.zeros((4, 4, 4), bool)).any()
