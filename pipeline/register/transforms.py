"""SimpleITK transforms seen from the RAS+ image model.

ITK transforms act on LPS millimetres. A registration transform maps a point
of the reference (fixed) space to the corresponding point of the moving space
(``moved(x) = moving(T(x))``). The functions here express the same maps on
RAS+ millimetres, the convention of :class:`pipeline.image.Image`, using the
one LPS/RAS matrix of :mod:`pipeline.imageio`.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..image import Image
from ..imageio import LPS_FROM_RAS, from_sitk, to_sitk

__all__ = [
    "affine_ras",
    "euler_from_affine_ras",
    "rotation_angle_deg",
    "displacement_field_ras",
    "invert_displacement_field",
    "jacobian_determinant",
]

_FLIP4 = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_ras(transform) -> np.ndarray:
    """The 4x4 matrix of a linear SimpleITK transform, on RAS+ millimetres.

    Parameters
    ----------
    transform : SimpleITK.Transform
        A linear transform (Euler, affine, translation, identity, or a
        composite of these), acting on LPS mm.

    Returns
    -------
    numpy.ndarray, shape (4, 4)
        ``M`` with ``T(x_ras) = M @ [x_ras, 1]``.

    Raises
    ------
    ValueError
        When the transform is not linear (e.g. contains a B-spline).
    """
    if not transform.IsLinear():
        raise ValueError("affine_ras needs a linear transform")
    basis = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    images = np.array([transform.TransformPoint(p) for p in basis])
    lps = np.eye(4)
    lps[:3, 3] = images[0]
    lps[:3, :3] = (images[1:] - images[0]).T
    return _FLIP4 @ lps @ _FLIP4


def euler_from_affine_ras(matrix_ras, center_ras_mm=None) -> sitk.Euler3DTransform:
    """A ``SimpleITK.Euler3DTransform`` (LPS) equal to a rigid RAS+ 4x4 matrix.

    Parameters
    ----------
    matrix_ras : array_like, shape (4, 4)
        Rigid map on RAS+ mm (rotation part orthonormal, determinant +1).
    center_ras_mm : array_like, shape (3,), optional
        Centre of rotation to store in the transform (RAS+ mm); default the origin.
    """
    m = _FLIP4 @ np.asarray(matrix_ras, float) @ _FLIP4
    rot = m[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
        raise ValueError("matrix is not a proper rotation")
    center = np.zeros(3) if center_ras_mm is None else LPS_FROM_RAS @ np.asarray(center_ras_mm, float)
    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(v) for v in center])
    tx.SetMatrix([float(v) for v in rot.ravel()], 1e-6)
    # T(x) = R (x - c) + c + t  =>  t = m_t - c + R c
    tx.SetTranslation([float(v) for v in m[:3, 3] - center + rot @ center])
    return tx


def rotation_angle_deg(matrix) -> float:
    """Angle of the rotation part of a 3x3 or 4x4 matrix, in degrees."""
    rot = np.asarray(matrix, float)[:3, :3]
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def displacement_field_ras(transform, grid: Image) -> np.ndarray:
    """Displacement ``T(x) - x`` at every voxel centre of ``grid``, RAS+ mm.

    Parameters
    ----------
    transform : SimpleITK.Transform
        Any transform (LPS mm).
    grid : Image
        Defines the sample points (its values are not used).

    Returns
    -------
    numpy.ndarray, shape (I, J, K, 3), float64
        Displacement vectors in RAS+ mm, indexed like ``grid.array``.
    """
    ref = to_sitk(grid.with_array(np.zeros(grid.shape, np.uint8)))
    field = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, ref.GetSize(), ref.GetOrigin(), ref.GetSpacing(),
        ref.GetDirection())
    comps = []
    for c in range(3):
        comp = sitk.VectorIndexSelectionCast(field, c, sitk.sitkFloat64)
        comp.CopyInformation(ref)
        comps.append(from_sitk(comp, "mm").array)
    lps = np.stack(comps, axis=-1)
    return lps @ LPS_FROM_RAS.T


def invert_displacement_field(displacement_mm: np.ndarray, grid: Image, iterations: int = 30,
                              tolerance_mm: float = 0.01) -> tuple[np.ndarray, float]:
    """Inverse of ``x -> x + u(x)`` as a displacement field on the same grid.

    Solves ``v(z) = -u(z + v(z))`` by fixed-point iteration with trilinear
    interpolation of ``u`` (converges when the deformation gradient is below
    one, which any plausible, non-folding registration satisfies).

    Parameters
    ----------
    displacement_mm : numpy.ndarray, shape (I, J, K, 3)
        Forward displacement ``u`` on ``grid``, RAS+ mm.
    grid : Image
        The grid on which ``u`` is sampled and ``v`` is returned.
    iterations : int
        Maximum number of iterations.
    tolerance_mm : float
        Stop when the largest update is below this (mm).

    Returns
    -------
    inverse_mm : numpy.ndarray, shape (I, J, K, 3)
        Inverse displacement ``v`` in RAS+ mm.
    residual_mm : float
        Largest ``|z + v + u(z + v) - z|`` over the grid after the last step (mm),
        evaluated where ``z + v`` falls inside the grid.
    """
    from scipy.ndimage import map_coordinates

    u = np.asarray(displacement_mm, float)
    to_index = np.linalg.inv(grid.affine[:3, :3])
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in grid.shape], indexing="ij"), 0)

    def sample(vec):
        pos = idx + np.einsum("ab,ijkb->aijk", to_index, vec)
        out = np.stack([map_coordinates(u[..., c], pos, order=1, mode="nearest") for c in range(3)], -1)
        return out, pos

    v = -u.copy()
    for _ in range(iterations):
        uv, _pos = sample(v)
        new = -uv
        step = float(np.max(np.abs(new - v))) if v.size else 0.0
        v = new
        if step < tolerance_mm:
            break
    uv, pos = sample(v)
    inside = np.all((pos >= 0) & (pos <= (np.array(grid.shape) - 1)[:, None, None, None]), axis=0)
    resid = np.linalg.norm(v + uv, axis=-1)
    residual = float(resid[inside].max()) if inside.any() else 0.0
    return v, residual


def jacobian_determinant(displacement_mm: np.ndarray, grid: Image) -> np.ndarray:
    """Determinant of the Jacobian of ``x -> x + u(x)`` at every voxel, shape (I, J, K).

    Values below zero mean folding; 1 means volume preserved.
    """
    u = np.asarray(displacement_mm, float)
    # derivatives with respect to voxel index, then chain rule to world mm
    grads = np.stack([np.stack(np.gradient(u[..., c], axis=(0, 1, 2)), -1) for c in range(3)], -2)
    to_index = np.linalg.inv(grid.affine[:3, :3])  # d(index)/d(x)
    jac = np.eye(3) + grads @ to_index
    return np.linalg.det(jac)
