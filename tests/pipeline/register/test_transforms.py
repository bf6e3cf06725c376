"""RAS+ views of SimpleITK transforms, displacement-field inversion and Jacobians."""

import numpy as np
import SimpleITK as sitk
from register_phantom import rigid_ras

from pipeline.image import Image, affine_from_geometry
from pipeline.register.transforms import (
    affine_ras,
    displacement_field_ras,
    euler_from_affine_ras,
    invert_displacement_field,
    jacobian_determinant,
    rotation_angle_deg,
)

FLIP = np.diag([-1.0, -1.0, 1.0])


def _euler(angles_rad, translation, centre):
    tx = sitk.Euler3DTransform()
    tx.SetCenter(centre)
    tx.SetRotation(*angles_rad)
    tx.SetTranslation(translation)
    return tx


def test_affine_ras_agrees_with_itk_point_mapping_through_lps():
    tx = _euler((0.05, -0.03, 0.04), (10.0, -7.0, 12.0), (3.0, 40.0, -20.0))
    m = affine_ras(tx)
    rng = np.random.default_rng(1)
    for p_ras in rng.uniform(-200, 200, (20, 3)):
        itk = FLIP @ np.asarray(tx.TransformPoint((FLIP @ p_ras).tolist()))  # ITK works in LPS
        assert np.allclose(m[:3, :3] @ p_ras + m[:3, 3], itk, atol=1e-9)


def test_euler_from_affine_ras_round_trips_and_keeps_centre():
    m = rigid_ras((2.0, -3.0, 1.5), (4.0, 5.0, -6.0), centre_ras_mm=(10.0, -20.0, 30.0))
    tx = euler_from_affine_ras(m, center_ras_mm=(1.0, 2.0, 3.0))
    assert np.allclose(affine_ras(tx), m, atol=1e-9)
    assert np.allclose(tx.GetCenter(), FLIP @ np.array([1.0, 2.0, 3.0]))


def test_rotation_angle_of_a_known_rotation():
    # 7 degrees about z: the angle is 7 whatever the centre and translation
    m = rigid_ras((0.0, 0.0, 7.0), (30.0, 0.0, 0.0), centre_ras_mm=(50.0, 0.0, 0.0))
    assert abs(rotation_angle_deg(m) - 7.0) < 1e-9


def _grid(shape=(40, 36, 30), voxel=4.0):
    direction = np.diag([-1.0, -1.0, 1.0])
    origin = -direction @ ((np.array(shape) - 1) / 2.0 * voxel)
    return Image(np.zeros(shape, np.uint8), affine_from_geometry(origin, direction, [voxel] * 3),
                 "grid")


def test_displacement_field_of_a_translation_is_the_translation_in_ras():
    grid = _grid()
    tx = sitk.TranslationTransform(3, (2.0, -3.0, 4.0))  # LPS mm
    u = displacement_field_ras(tx, grid)
    assert u.shape == grid.shape + (3,)
    assert np.allclose(u, FLIP @ np.array([2.0, -3.0, 4.0]), atol=1e-9)


def test_inverted_field_composes_to_identity():
    grid = _grid()
    x = grid.world_grid()
    # a smooth Gaussian bump of 6 mm amplitude, sigma 25 mm: gradient well below one
    w = np.exp(-np.sum((x - np.array([10.0, -5.0, 0.0])) ** 2, -1) / (2 * 25.0 ** 2))
    u = w[..., None] * np.array([6.0, -3.0, 4.0])
    v, residual = invert_displacement_field(u, grid)
    # independent check at the grid points: z + v(z) + u(z + v(z)) = z, u evaluated analytically
    p = x + v
    wp = np.exp(-np.sum((p - np.array([10.0, -5.0, 0.0])) ** 2, -1) / (2 * 25.0 ** 2))
    err = np.linalg.norm(v + wp[..., None] * np.array([6.0, -3.0, 4.0]), axis=-1)
    # trilinear sampling of u on a 4 mm grid limits the accuracy to about 0.1 mm
    assert err.max() < 0.1
    assert residual < 0.05


def test_jacobian_of_a_linear_field_is_the_matrix_determinant():
    grid = _grid()
    a = np.array([[0.05, 0.02, 0.0], [0.0, -0.1, 0.03], [0.01, 0.0, 0.2]])
    u = grid.world_grid() @ a.T
    jac = jacobian_determinant(u, grid)
    assert np.allclose(jac, np.linalg.det(np.eye(3) + a), atol=1e-9)
