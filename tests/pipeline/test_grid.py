"""Resampling onto another grid keeps world positions and means."""

import numpy as np
import pytest

from pipeline.grid import resample_to
from pipeline.image import Image, affine_from_geometry


def _grid(shape, voxel_mm, direction=np.diag([1.0, -1.0, -1.0]), origin=(0.0, 0.0, 0.0)):
    return Image(np.zeros(shape), affine_from_geometry(origin, direction, voxel_mm), "HU")


def test_linear_field_is_reproduced_exactly_on_a_differently_oriented_grid():
    src = _grid((40, 40, 40), (2.0, 2.0, 2.0), origin=(-40, 40, 40))
    xyz = src.world_grid()
    field = 3.0 * xyz[..., 0] - 2.0 * xyz[..., 1] + 0.5 * xyz[..., 2]
    src = src.with_array(field)
    dst = _grid((10, 10, 10), (3.0, 2.5, 4.0), direction=np.diag([-1.0, -1.0, 1.0]), origin=(10, 10, -5))
    out = resample_to(src, dst, "linear")
    w = dst.world_grid()
    np.testing.assert_allclose(out.array, 3.0 * w[..., 0] - 2.0 * w[..., 1] + 0.5 * w[..., 2], atol=1e-9)


def test_nearest_keeps_labels_integer_and_in_place():
    src = _grid((20, 20, 20), (1.0, 1.0, 1.0))
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[5:15, 5:15, 5:15] = 3
    src = src.with_array(lab)
    dst = _grid((10, 10, 10), (2.0, 2.0, 2.0), origin=(0.5, -0.5, -0.5))
    out = resample_to(src, dst, "nearest")
    assert out.array.dtype == np.uint8
    assert set(np.unique(out.array)) == {0, 3}
    # the labelled cube spans 5..14 mm in i: coarse centres 0.5 + 2i inside [4.5, 14.5]
    assert out.array[:, 5, 5].nonzero()[0].tolist() == [2, 3, 4, 5, 6]


def test_antialiased_downsampling_preserves_the_mean_of_a_noisy_uniform_region():
    rng = np.random.default_rng(1)
    src = _grid((60, 60, 60), (1.0, 1.0, 1.0)).with_array(100 + rng.normal(0, 30, (60, 60, 60)))
    dst = _grid((12, 12, 12), (5.0, 5.0, 5.0), origin=(2.0, -2.0, -2.0))
    plain = resample_to(src, dst, "linear").array[2:-2, 2:-2, 2:-2]
    smooth = resample_to(src, dst, "linear", antialias=True).array[2:-2, 2:-2, 2:-2]
    assert smooth.mean() == pytest.approx(100, abs=0.5)
    assert smooth.std() < plain.std() / 3


def test_bounding_box_encloses_the_nonzero_voxels_with_a_clipped_margin():
    from pipeline.grid import bounding_box

    a = np.zeros((10, 12, 14))
    a[2, 5, 7] = 1.0
    a[4, 6, 13] = -2.0  # any non-zero value counts
    assert bounding_box(a) == (slice(2, 5), slice(5, 7), slice(7, 14))
    assert bounding_box(a, 3) == (slice(0, 8), slice(2, 10), slice(4, 14))  # clipped at both ends
    assert bounding_box(a, (0, 1, 2)) == (slice(2, 5), slice(4, 8), slice(5, 14))
    assert bounding_box(np.zeros((3, 3, 3))) is None
