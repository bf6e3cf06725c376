"""Sensitivity of an organ's mean dose to its boundary (segmentation) and to misregistration.

Both use the dose map and the label map on one grid (``dose/dose_ct.nii.gz``,
``segment/labels.nii.gz``), cropped to each organ with a margin.

Boundary shift (segmentation): the signed distance ``phi`` (mm) of every voxel centre to the
organ surface (sub-voxel near the surface: see :func:`_signed_distance_mm`), and fractional
voxel weights
``w(delta) = clip(0.5 + (delta - phi) / s, 0, 1)`` with ``s`` the geometric-mean spacing, so a
shift ``delta`` of a fraction of a voxel changes the boundary voxels' weights continuously.
The relative SD of the mean dose for a boundary-shift SD ``delta`` is
``|D(+delta) - D(-delta)| / (2 D(0))`` (central difference times the SD).

Misregistration: a time point misaligned by a random 3D error of RMS length TRE moves the organ's
activity against its mask. The dose map stands for the activity distribution (it is the TIA
blurred by the camera and the kernel); it is shifted by ``+-TRE/sqrt(3)`` along each axis
(linear interpolation) and the relative change ``r`` of the mask mean recorded; the relative SD
per time point is ``sqrt(sum_axes (r_+^2 + r_-^2) / 2)`` (it keeps the second-order loss of a
hot organ, which has no first-order term, as a variance: conservative).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special

__all__ = ["organ_box", "boundary_shift_relative_sd", "registration_relative_sd"]


def organ_box(mask: np.ndarray, margin_voxels: int) -> tuple:
    """Slices of the bounding box of ``mask`` grown by ``margin_voxels`` (clipped to the array)."""
    idx = np.nonzero(mask)
    if idx[0].size == 0:
        raise ValueError("empty mask")
    return tuple(slice(max(int(i.min()) - margin_voxels, 0), min(int(i.max()) + margin_voxels + 1, n))
                 for i, n in zip(idx, mask.shape))


def _weighted_mean(dose: np.ndarray, weights: np.ndarray) -> float:
    total = float(weights.sum())
    return float(np.sum(dose * weights) / total) if total > 0 else float("nan")


def _signed_distance_mm(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Signed distance (mm, negative inside) of every voxel centre to the surface of ``mask``.

    Far from the surface: the EDT to the nearest voxel of the other side, minus half a voxel.
    Within 1.5 voxels of it: from the mask smoothed by an isotropic Gaussian of SD ``s`` (the
    geometric-mean spacing), ``phi = s sqrt(2) erfinv(1 - 2 m)`` (exact for a plane, the
    smoothed step being ``(1 - erf(phi / (s sqrt 2))) / 2``), which is continuous (sub-voxel)
    where voxel-centre distances take only a few discrete values.
    """
    s = float(np.prod(spacing) ** (1.0 / 3.0))
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    phi = np.where(mask, -inside + 0.5 * s, outside - 0.5 * s)
    smooth = ndimage.gaussian_filter(mask.astype(float), sigma=s / spacing, mode="nearest")
    near = (np.abs(phi) <= 1.5 * spacing.max()) & (smooth > 1e-4) & (smooth < 1 - 1e-4)
    phi[near] = s * np.sqrt(2.0) * special.erfinv(1.0 - 2.0 * smooth[near])
    return phi


def boundary_shift_relative_sd(dose_gy: np.ndarray, mask: np.ndarray, spacing_mm, shift_sd_mm: float) -> dict:
    """Relative SD of the organ mean dose from a boundary-shift SD ``shift_sd_mm``.

    Parameters
    ----------
    dose_gy, mask : ndarray, same shape
    spacing_mm : sequence of 3 float
        Voxel spacing along the array axes, mm.
    shift_sd_mm : float
        SD of the boundary position, mm (positive: the organ grows).

    Returns
    -------
    dict
        ``relative_sd``, the mean doses (Gy) and volumes (mL) at -delta, 0, +delta.
    """
    spacing = np.asarray(spacing_mm, float)
    s = float(np.prod(spacing) ** (1.0 / 3.0))
    margin = int(np.ceil((shift_sd_mm + 2 * s) / spacing.min())) + 2
    box = organ_box(mask, margin)
    m = mask[box].astype(bool)
    d = dose_gy[box].astype(float)
    phi = _signed_distance_mm(m, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = {}
    for key, delta in (("minus", -shift_sd_mm), ("zero", 0.0), ("plus", shift_sd_mm)):
        w = np.clip(0.5 + (delta - phi) / s, 0.0, 1.0)
        out[key] = (_weighted_mean(d, w), float(w.sum()) * voxel_ml)
    d0 = out["zero"][0]
    rel = abs(out["plus"][0] - out["minus"][0]) / (2.0 * d0) if d0 > 0 else 0.0
    return {"relative_sd": rel, "shift_sd_mm": float(shift_sd_mm),
            "mean_gy": {k: v[0] for k, v in out.items()}, "volume_ml": {k: v[1] for k, v in out.items()}}


def registration_relative_sd(dose_gy: np.ndarray, mask: np.ndarray, spacing_mm, tre_mm: float) -> float:
    """Relative SD of an organ's activity at one time point misregistered by RMS error ``tre_mm``."""
    if tre_mm <= 0:
        return 0.0
    spacing = np.asarray(spacing_mm, float)
    per_axis_mm = tre_mm / np.sqrt(3.0)
    margin = int(np.ceil(per_axis_mm / spacing.min())) + 3
    box = organ_box(mask, margin)
    m = mask[box].astype(bool)
    d = dose_gy[box].astype(float)
    base = float(d[m].mean())
    if not base > 0:
        return 0.0
    n_mask = float(m.sum())
    total = 0.0
    for axis in range(3):
        for sign in (1.0, -1.0):
            v = sign * per_axis_mm / spacing[axis]  # dose moved by v voxels: d'(x) = d(x - v)
            k = int(np.floor(v))
            f = v - k  # linear interpolation between the integer shifts k and k + 1
            moved_sum = (1.0 - f) * _shifted_sum(d, m, axis, k) + f * _shifted_sum(d, m, axis, k + 1)
            total += (moved_sum / n_mask / base - 1.0) ** 2 / 2.0
    return float(np.sqrt(total))


def _shifted_sum(d: np.ndarray, m: np.ndarray, axis: int, k: int) -> float:
    """``sum over the mask of d(x - k e_axis)`` (the box has a margin wider than |k|)."""
    if k == 0:
        return float(d[m].sum())
    n = d.shape[axis]
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    if k > 0:
        dst[axis], src[axis] = slice(k, n), slice(0, n - k)
    else:
        dst[axis], src[axis] = slice(0, n + k), slice(-k, n)
    return float(d[tuple(src)][m[tuple(dst)]].sum())
