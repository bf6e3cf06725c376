"""Choose the voxel S-values for a dose grid: a direct Monte Carlo cube where one is committed
for that voxel size, else the point-kernel integration (any voxel size, anisotropic too).

Why the direct cube first: it is the engine's answer for exactly that voxel, with its own
per-voxel uncertainty. The point-kernel route agrees with it within 0.4 % in S000 for Cu-67 and
Lu-177 and within 0.1-0.6 % for Y-90 (since the Y-90 kernels were rescored on 1 mm cells;
before, 1.6-2.4 % low: kernels/data/README.md and the validation tests).
"""

from __future__ import annotations

import numpy as np

from .kernel_data import KernelDataError, load_voxel_svalues

__all__ = ["svalues_for_voxel_size"]


def svalues_for_voxel_size(nuclide: str, voxel_size_mm, medium: str = "water", *, photons: bool = True,
                           tolerance_mm: float = 1e-3):
    """Voxel S-values (mGy/(MBq*s), kernel medium) for a grid of ``voxel_size_mm``.

    Parameters
    ----------
    nuclide : str
    voxel_size_mm : float or sequence of 3 floats
    medium : {"water", "tissue"}
    photons : bool
        With ``False`` the photon cube of the result is zero (integration) or ignored
        by the caller (direct cubes carry it; use ``electron_mgy_per_mbq_s``).
    tolerance_mm : float
        How close a cubic voxel must be to a committed size to use its direct cube.

    Returns
    -------
    kernels.kernel_data.VoxelSValues
        Its ``provenance["method"]`` says which route was taken.
    """
    size = np.broadcast_to(np.asarray(voxel_size_mm, float), (3,))
    if np.ptp(size) <= tolerance_mm:
        try:
            direct = load_voxel_svalues(nuclide, medium, round(float(size.mean()), 4))
        except KernelDataError:
            direct = None
        if direct is not None and np.allclose(direct.voxel_size_mm, size, atol=tolerance_mm):
            return direct
    from .cache import get_voxel_svalues

    return get_voxel_svalues(nuclide, size, medium, photons=photons)
