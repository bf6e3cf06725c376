"""The one in-memory image model of spectdose.

An :class:`Image` is a voxel array, a 4x4 affine that maps voxel indices
``(i, j, k)`` to world coordinates in RAS+ millimetres (the NIfTI
convention), and the unit of the voxel values. Every stage works on this
type; conversions to and from SimpleITK (LPS) and NIfTI live in
:mod:`pipeline.imageio` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Image", "affine_from_geometry"]


def affine_from_geometry(origin_ras_mm, direction_ras, voxel_size_mm):
    """Build a RAS+ affine from an origin, direction cosines and voxel size.

    Parameters
    ----------
    origin_ras_mm : array_like, shape (3,)
        World position of the centre of voxel (0, 0, 0), RAS+ mm.
    direction_ras : array_like, shape (3, 3)
        Columns are the unit vectors of the i, j, k axes in RAS+.
    voxel_size_mm : array_like, shape (3,)
        Voxel spacing along i, j, k in mm.

    Returns
    -------
    numpy.ndarray, shape (4, 4)
        Affine from voxel index to RAS+ mm.
    """
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction_ras, float) @ np.diag(np.asarray(voxel_size_mm, float))
    affine[:3, 3] = np.asarray(origin_ras_mm, float)
    return affine


@dataclass(frozen=True, eq=False)
class Image:
    """A 3-D image: voxel values, their unit and their place in the world.

    Parameters
    ----------
    array : numpy.ndarray, shape (I, J, K)
        Voxel values, indexed ``[i, j, k]``.
    affine : numpy.ndarray, shape (4, 4)
        Maps homogeneous voxel index ``(i, j, k, 1)`` to RAS+ world mm.
    unit : str
        Unit of the voxel values, e.g. ``"HU"``, ``"Bq/mL"``, ``"Gy"``,
        ``"label"``.
    """

    array: np.ndarray
    affine: np.ndarray
    unit: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise ValueError(f"Image array must be 3-D, got shape {array.shape}")
        affine = np.asarray(self.affine, dtype=float)
        if affine.shape != (4, 4) or not np.allclose(affine[3], [0, 0, 0, 1]):
            raise ValueError("Image affine must be a 4x4 homogeneous matrix")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("Image affine is singular")
        affine = affine.copy()
        affine.setflags(write=False)
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "affine", affine)

    # -- geometry ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        return tuple(int(n) for n in self.array.shape)

    @property
    def voxel_size_mm(self) -> np.ndarray:
        """Voxel spacing along i, j, k in mm, shape (3,)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    @property
    def direction_ras(self) -> np.ndarray:
        """Unit direction cosines of the i, j, k axes in RAS+ (columns), shape (3, 3)."""
        return self.affine[:3, :3] / self.voxel_size_mm

    @property
    def origin_ras_mm(self) -> np.ndarray:
        """World position (RAS+ mm) of the centre of voxel (0, 0, 0), shape (3,)."""
        return self.affine[:3, 3].copy()

    def index_to_world(self, ijk) -> np.ndarray:
        """Map voxel indices to RAS+ mm.

        Parameters
        ----------
        ijk : array_like, shape (..., 3)
            Voxel indices (may be fractional).

        Returns
        -------
        numpy.ndarray, shape (..., 3)
            RAS+ world coordinates in mm.
        """
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, xyz_ras_mm) -> np.ndarray:
        """Map RAS+ mm to fractional voxel indices, shape (..., 3)."""
        xyz = np.asarray(xyz_ras_mm, dtype=float)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def world_grid(self) -> np.ndarray:
        """RAS+ mm of every voxel centre, shape (I, J, K, 3)."""
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), axis=-1)
        return self.index_to_world(idx)

    def same_grid(self, other: "Image", atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and the same voxel-to-world map."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol_mm)

    def with_array(self, array, unit: str | None = None, **meta) -> "Image":
        """A new image on the same grid with other values (and optionally unit)."""
        merged = {**self.meta, **meta}
        return Image(array, self.affine, self.unit if unit is None else unit, merged)

    def __repr__(self) -> str:
        vs = ", ".join(f"{v:.3g}" for v in self.voxel_size_mm)
        return f"Image(shape={self.shape}, voxel_size_mm=({vs}), unit={self.unit!r}, dtype={self.array.dtype})"
