"""The image model: geometry helpers and validation."""

import numpy as np
import pytest

from pipeline.image import Image, affine_from_geometry


def test_voxel_size_and_volume_come_from_the_affine():
    img = Image(np.zeros((2, 3, 4)), affine_from_geometry((0, 0, 0), np.diag([-1, -1, 1]), (2, 3, 4)), "HU")
    np.testing.assert_allclose(img.voxel_size_mm, [2, 3, 4])
    assert img.voxel_volume_ml == pytest.approx(0.024)


def test_world_to_index_inverts_index_to_world():
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    img = Image(np.zeros((4, 4, 4)), affine_from_geometry((10, -5, 3), rot, (1.5, 2, 3)), "HU")
    ijk = np.array([[1.25, 2.0, 3.5], [0, 0, 0]])
    np.testing.assert_allclose(img.world_to_index(img.index_to_world(ijk)), ijk, atol=1e-12)


def test_image_is_frozen_and_its_affine_read_only():
    img = Image(np.zeros((2, 2, 2)), np.eye(4), "HU")
    with pytest.raises(Exception):
        img.unit = "Gy"
    with pytest.raises(ValueError):
        img.affine[0, 0] = 3


@pytest.mark.parametrize("shape", [(2, 2), (2, 2, 2, 2)])
def test_non_3d_arrays_are_refused(shape):
    with pytest.raises(ValueError, match="3-D"):
        Image(np.zeros(shape), np.eye(4), "HU")


def test_singular_affine_is_refused():
    affine = np.eye(4)
    affine[2, 2] = 0
    with pytest.raises(ValueError, match="singular"):
        Image(np.zeros((2, 2, 2)), affine, "HU")
