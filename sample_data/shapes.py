"""Rasterising analytic shapes onto an axial grid (pure numpy).

A :class:`Canvas` holds an integer tissue array on an axis-aligned grid whose
axes are the HFS DICOM axes: i towards the patient's left (RAS -x), j towards
posterior (RAS -y), k towards superior (RAS +z). Shapes are boolean functions of
broadcast RAS+ coordinate arrays ``X`` (I,1,1), ``Y`` (1,J,1), ``Z`` (1,1,K), in mm,
painted inside a world bounding box so that only the voxels near a shape are
evaluated.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Canvas", "ellipsoid", "capsule", "polyline_capsules", "rotation_matrix"]


def rotation_matrix(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """Rotation about x, then y, then z (RAS axes), angles in degrees; shape (3, 3)."""
    ax, ay, az = np.deg2rad([rx_deg, ry_deg, rz_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ellipsoid(centre, semi_axes_mm, rotation=None):
    """Shape function of a (rotated) ellipsoid.

    ``rotation`` (3, 3): columns are the ellipsoid's local axes in RAS+.
    """
    c = np.asarray(centre, float)
    s = np.asarray(semi_axes_mm, float)
    r = np.eye(3) if rotation is None else np.asarray(rotation, float)

    def fn(X, Y, Z):
        dx, dy, dz = X - c[0], Y - c[1], Z - c[2]
        acc = 0.0
        for n in range(3):
            u = r[0, n] * dx + r[1, n] * dy + r[2, n] * dz
            acc = acc + (u / s[n]) ** 2
        return acc <= 1.0

    bound = np.abs(r) @ s  # half extent of the bounding box
    return fn, c - bound, c + bound


def capsule(p0, p1, radius_mm):
    """Shape function of a capsule (segment p0-p1 swept by a sphere of ``radius_mm``)."""
    p0 = np.asarray(p0, float)
    p1 = np.asarray(p1, float)
    d = p1 - p0
    dd = float(d @ d) or 1e-12

    def fn(X, Y, Z):
        t = ((X - p0[0]) * d[0] + (Y - p0[1]) * d[1] + (Z - p0[2]) * d[2]) / dd
        t = np.clip(t, 0.0, 1.0)
        ex = X - p0[0] - t * d[0]
        ey = Y - p0[1] - t * d[1]
        ez = Z - p0[2] - t * d[2]
        return ex * ex + ey * ey + ez * ez <= radius_mm * radius_mm

    return fn, np.minimum(p0, p1) - radius_mm, np.maximum(p0, p1) + radius_mm


def polyline_capsules(points, radius_mm):
    """Capsule shapes along a polyline (list of (fn, lo, hi))."""
    pts = np.asarray(points, float)
    return [capsule(pts[n], pts[n + 1], radius_mm) for n in range(len(pts) - 1)]


class Canvas:
    """An integer tissue map on an axial HFS grid, painted shape by shape.

    Parameters
    ----------
    shape : tuple of int
        (I, J, K) voxels.
    x_mm, y_mm, z_mm : numpy.ndarray
        RAS+ coordinates of the voxel centres along i (decreasing x), j (decreasing y)
        and k (increasing z), mm.
    """

    def __init__(self, shape, x_mm, y_mm, z_mm, dtype=np.uint8):
        self.array = np.zeros(shape, dtype=dtype)
        self.x = np.asarray(x_mm, float)
        self.y = np.asarray(y_mm, float)
        self.z = np.asarray(z_mm, float)

    def _slices(self, lo, hi):
        def axis(coords, a, b):
            idx = np.nonzero((coords >= a) & (coords <= b))[0]
            if idx.size == 0:
                return None
            return slice(int(idx.min()), int(idx.max()) + 1)

        si = axis(self.x, lo[0], hi[0])
        sj = axis(self.y, lo[1], hi[1])
        sk = axis(self.z, lo[2], hi[2])
        if si is None or sj is None or sk is None:
            return None
        return si, sj, sk

    def coords(self, sl):
        """Broadcast coordinate arrays of the box ``sl``."""
        si, sj, sk = sl
        return (self.x[si][:, None, None], self.y[sj][None, :, None], self.z[sk][None, None, :])

    def mask(self, fn, lo, hi):
        """(slices, boolean mask of the shape inside its box), or None when outside the grid."""
        sl = self._slices(lo, hi)
        if sl is None:
            return None
        X, Y, Z = self.coords(sl)
        m = np.broadcast_to(fn(X, Y, Z), (X.shape[0], Y.shape[1], Z.shape[2]))
        return sl, m

    def paint(self, tissue_id, shape, only=None, where=None):
        """Set voxels inside ``shape`` = (fn, lo, hi) to ``tissue_id``.

        Parameters
        ----------
        only : sequence of int, optional
            Paint only over voxels that currently hold one of these ids.
        where : callable, optional
            Extra condition ``where(X, Y, Z) -> bool`` in world coordinates.
        """
        fn, lo, hi = shape
        got = self.mask(fn, lo, hi)
        if got is None:
            return
        sl, m = got
        if where is not None:
            X, Y, Z = self.coords(sl)
            m = m & where(X, Y, Z)
        sub = self.array[sl]
        if only is not None:
            m = m & np.isin(sub, np.asarray(only))
        sub[m] = tissue_id
