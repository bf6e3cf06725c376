"""Synthetic label maps and CTs for the segment tests (small grids, fast)."""

from __future__ import annotations

import numpy as np
from pipeline.image import Image, affine_from_geometry


def rotation(axis, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def make_grid(shape=(48, 40, 30), voxel=(2.5, 2.5, 4.0), oblique=False, feet_first=False):
    """An Image geometry: LPS-like axial (i -> left, j -> posterior) or oblique / feet-first."""
    direction = np.diag([-1.0, -1.0, 1.0])
    if feet_first:
        direction = np.diag([1.0, -1.0, -1.0])  # FFS: i to the right, k inferior
    if oblique:
        direction = rotation(0, 12.0) @ rotation(2, 20.0) @ direction
    origin = np.array([60.0, 50.0, -60.0])
    return affine_from_geometry(origin, direction, voxel)


def organ_phantom(shape=(48, 40, 30), affine=None):
    """Label map with ellipsoid organs (DESIGN ids) and a CT with organ HU values, on one grid."""
    affine = make_grid(shape) if affine is None else affine
    ii, jj, kk = np.indices(shape)

    def ell(c, r):
        return ((ii - c[0]) / r[0]) ** 2 + ((jj - c[1]) / r[1]) ** 2 + ((kk - c[2]) / r[2]) ** 2 <= 1.0

    lab = np.zeros(shape, np.uint16)
    lab[ell((24, 20, 15), (22, 18, 14))] = 7
    lab[ell((14, 14, 18), (7, 6, 6))] = 3
    lab[ell((34, 14, 18), (4, 4, 4))] = 4
    lab[ell((12, 26, 12), (3, 3, 4))] = 1
    lab[ell((36, 26, 12), (3, 3, 4))] = 2
    lab[ell((24, 28, 12), (5, 5, 5))] = 6
    lab[ell((24, 28, 12), (2, 2, 2))] = 5
    ct = np.full(shape, -1000.0, np.float32)
    for v, hu in ((7, 0.0), (3, 60.0), (4, 45.0), (1, 30.0), (2, 30.0), (6, 400.0), (5, 200.0)):
        ct[lab == v] = hu
    return Image(lab, affine, "label"), Image(ct, affine, "HU")


