"""The patient's matter on the dose grid: CT densities, the body mask, sub-grids.

Array-in, array-out helpers of the dose stage (:mod:`pipeline.dose.stage`), also used by
the photon transport and the dose-rate maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import bounding_box, resample_to
from ..image import Image

__all__ = ["DoseGridMedium", "medium_on_dose_grid", "density_g_per_ml_from_hu", "sub_grid"]


def density_g_per_ml_from_hu(hu: np.ndarray) -> np.ndarray:
    """Schneider 2000 mass density (g/mL) of every CT voxel.

    Same values as :func:`pipeline.segment.density.hu_to_density_g_per_ml`: a CT
    stored as integers of at most 16 bits takes its densities from a table of that
    function over every representable integer HU (exact, and ~20x faster than
    evaluating the curve voxel by voxel on a whole CT).

    Parameters
    ----------
    hu : numpy.ndarray, shape (I, J, K)
        CT numbers, HU.

    Returns
    -------
    numpy.ndarray, shape (I, J, K), float64
    """
    from ..segment.density import hu_to_density_g_per_ml

    hu = np.asarray(hu)
    if hu.dtype.kind in "iu" and hu.dtype.itemsize <= 2:
        info = np.iinfo(hu.dtype)
        table = hu_to_density_g_per_ml(np.arange(info.min, info.max + 1, dtype=np.float64))
        return table[hu.astype(np.int32) - info.min]
    return hu_to_density_g_per_ml(hu)


def sub_grid(image: Image, box: tuple[slice, slice, slice], values: np.ndarray | None = None,
              unit: str = "1") -> Image:
    """The box ``box`` of ``image``'s grid (same voxel-to-world map, shifted origin) holding
    ``values[box]`` (zeros when ``values`` is None: a target grid for resampling)."""
    affine = np.array(image.affine)
    affine[:3, 3] = image.index_to_world([b.start for b in box])
    array = np.zeros([b.stop - b.start for b in box], np.uint8) if values is None else values[box]
    return Image(array, affine, unit)


@dataclass(frozen=True, eq=False)
class DoseGridMedium:
    """The patient's matter as the dose grid sees it (from the CT and the label map).

    Attributes
    ----------
    density_g_per_ml : numpy.ndarray, shape (I, J, K)
        Mean mass density of each dose voxel (CT density averaged over the voxel:
        Gaussian anti-aliasing matched to the dose voxel, then trilinear sampling).
    body : numpy.ndarray of bool, shape (I, J, K)
        Dose voxels at least half inside the labelled patient.
    """

    density_g_per_ml: np.ndarray
    body: np.ndarray


def medium_on_dose_grid(ct: Image, labels_positive: np.ndarray, grid: Image, rho_ct: np.ndarray) -> DoseGridMedium:
    """Mean density and body mask on the dose grid ``grid`` from CT-grid density and labels.

    Parameters
    ----------
    ct : Image
        Provides the CT grid.
    labels_positive : numpy.ndarray of bool, shape of the CT
        Voxels inside the patient (label > 0).
    grid : Image
        The dose grid (values unused).
    rho_ct : numpy.ndarray, shape of the CT
        Mass density (g/mL) on the CT grid.

    Notes
    -----
    Only the dose voxels inside the body use the density, and the body mask is
    zero far from the labels, so both are resampled from the CT cropped to the
    labelled box plus a margin of three dose voxels and ten anti-aliasing sigmas.
    Inside the body this gives the full-CT values to float rounding: the
    recursive Gaussian's response decays exponentially, and a body voxel is at
    least two dose voxels plus ten sigmas from the edge of the box (checked next
    to a dense couch in the tests). On the standard sample patient the box is
    half of the CT.
    """
    from ..grid import block_average_sigma_mm

    sigma = block_average_sigma_mm(ct.voxel_size_mm, grid.voxel_size_mm)
    margin_mm = 3.0 * float(np.max(grid.voxel_size_mm)) + 10.0 * float(np.max(sigma))
    box = bounding_box(labels_positive, np.ceil(margin_mm / ct.voxel_size_mm).astype(int))
    if box is None:
        zeros = np.zeros(grid.shape)
        return DoseGridMedium(zeros, zeros.astype(bool))
    rho = resample_to(sub_grid(ct, box, rho_ct, "g/mL"), grid, "linear", default_value=0.0, antialias=True).array
    body_frac = resample_to(sub_grid(ct, box, labels_positive), grid, "linear", antialias=True).array
    return DoseGridMedium(rho, body_frac >= 0.5)
