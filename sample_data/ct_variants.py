"""CT variants of a development CT: a coarse acquisition rebinned to finer voxels.

The held-back real case of issue 14 is a low-dose CT with about 2 mm voxels "rebinned from a
coarser acquisition": the voxels are fine, the image is not. :func:`rebinned_ct` makes such a CT
from a sharper one (the real GE CT, an ICRP-110 case): a Gaussian blur for the coarse
acquisition's own resolution, sampling onto its grid, then linear interpolation onto the fine
grid. Thin bone (a 12th rib, the laminae closing the spinal canal) loses contrast the way it does
on such CTs.
"""

from __future__ import annotations

__all__ = ["rebinned_ct", "resampled_ct"]


def rebinned_ct(image, acquisition_mm: float = 4.42, rebinned_mm: float = 2.21,
                blur_sigma_mm=(1.6, 1.6, 1.0)):
    """``image`` (a :class:`pipeline.imageio.Image` in HU) as a coarse acquisition rebinned.

    Parameters
    ----------
    image : pipeline.imageio.Image
        The sharper CT, HU.
    acquisition_mm : float
        Isotropic voxel size of the coarse acquisition, mm (4.42 mm: a SPECT/CT's CT
        reconstructed on the SPECT's grid).
    rebinned_mm : float
        Isotropic voxel size of the delivered CT, mm.
    blur_sigma_mm : sequence of 3 float
        Standard deviation of the Gaussian standing for the acquisition's resolution, mm, along
        the image's x, y, z (all 0: none, ``image`` is already that blurred).

    Returns
    -------
    pipeline.imageio.Image
        The rebinned CT, HU, float32, same orientation and origin as ``image``; outside the
        original field of view -1024 HU.
    """
    import SimpleITK as sitk

    from pipeline.imageio import from_sitk, to_sitk

    img = sitk.Cast(to_sitk(image), sitk.sitkFloat32)
    if any(float(v) > 0 for v in blur_sigma_mm):
        img = sitk.SmoothingRecursiveGaussian(img, [float(v) for v in blur_sigma_mm])
    return from_sitk(_resample(_resample(img, acquisition_mm), rebinned_mm), "HU")


def resampled_ct(image, voxel_mm: float):
    """``image`` (a :class:`pipeline.imageio.Image` in HU) on isotropic ``voxel_mm`` voxels (mm) by
    linear interpolation, same orientation and origin; -1024 HU outside. Returns a
    :class:`pipeline.imageio.Image` (HU, float32)."""
    import SimpleITK as sitk

    from pipeline.imageio import from_sitk, to_sitk

    return from_sitk(_resample(sitk.Cast(to_sitk(image), sitk.sitkFloat32), voxel_mm), "HU")


def _resample(img, mm: float):
    """SimpleITK float image ``img`` on isotropic ``mm`` voxels (linear, -1024 HU outside)."""
    import SimpleITK as sitk

    size = [max(1, int(round(n * s / mm))) for n, s in zip(img.GetSize(), img.GetSpacing())]
    return sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), (float(mm),) * 3,
                         img.GetDirection(), -1024.0, sitk.sitkFloat32)
