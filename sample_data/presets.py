"""Presets of the sample patient: grids, imaging and noise parameters.

All lengths in mm, times in s unless named otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Preset", "PRESETS", "NUCLIDES", "get_preset", "CT_Z_RANGE_MM"]

#: Superior-inferior extent of the CT scan range in the reference frame (RAS+ z, mm): from
#: below the bladder / femoral heads to the lung bases and the T9 body (see anatomy.py).
CT_Z_RANGE_MM = (-270.0, 160.0)


@dataclass(frozen=True)
class Preset:
    """Grid and imaging parameters of one preset.

    Parameters
    ----------
    name : str
    ct_matrix : int
        CT in-plane matrix (square).
    ct_pixel_mm : float
        CT in-plane pixel size, mm.
    ct_slice_mm : float
        CT slice spacing (= thickness), mm.
    ct_noise_hu : float
        Standard deviation of the CT noise in HU (low-dose attenuation CT, 20-30 HU:
        e.g. SPECT/CT CTAC at 20-40 mAs, Tonkopi et al. 2013 report 15-35 HU in soft tissue).
    ct_blur_mm : float
        FWHM of the CT in-plane/axial blur (scanner MTF), mm.
    spect_matrix : int
        SPECT in-plane matrix (128).
    spect_voxel_mm : float
        SPECT voxel size (4.8 mm, isotropic).
    spect_slices : int
        Number of SPECT slices.
    psf_fwhm_mm : float
        SPECT resolution (Gaussian PSF FWHM), mm; 10-12 mm for Lu-177 with a medium-energy
        collimator after resolution-recovery OSEM.
    sensitivity_cps_per_mbq : float
        System sensitivity of the camera in the photopeak window (counts/s per MBq in the FOV).
        Lu-177, 208 keV window, MELP/MEGP dual head: about 10-12 cps/MBq.
    acquisition_s : float
        SPECT acquisition time (e.g. 60 views x 20 s = 1200 s).
    margin_mm : float
        Extra phantom extent beyond the CT scan range at each end (z), so that repositioning
        never shows the end of the digital body.
    """

    name: str
    ct_matrix: int
    ct_pixel_mm: float
    ct_slice_mm: float
    ct_noise_hu: float = 25.0
    ct_blur_mm: float = 1.2
    spect_matrix: int = 128
    spect_voxel_mm: float = 4.8
    spect_slices: int = 90
    psf_fwhm_mm: float = 11.0
    sensitivity_cps_per_mbq: float = 12.0
    acquisition_s: float = 1200.0
    margin_mm: float = 45.0

    @property
    def ct_slices(self) -> int:
        """Number of CT slices covering :data:`CT_Z_RANGE_MM`."""
        lo, hi = CT_Z_RANGE_MM
        return int(round((hi - lo) / self.ct_slice_mm))


PRESETS = {
    # small: coarse, for fast tests (< 15 s, < 50 MB on disk)
    "small": Preset("small", ct_matrix=128, ct_pixel_mm=3.5, ct_slice_mm=5.0, ct_blur_mm=3.0),
    # standard: clinical-like low-dose CTAC grid
    "standard": Preset("standard", ct_matrix=320, ct_pixel_mm=1.5, ct_slice_mm=3.0, ct_blur_mm=1.2),
}

#: Nuclides with a preset (kinetics and camera). Y-90 has no gamma: its "SPECT" is
#: bremsstrahlung imaging, with lower sensitivity and worse resolution (lit: Y-90 bremsstrahlung
#: SPECT about 15 mm FWHM after resolution recovery); Cu-67 (185 keV) images like Lu-177.
NUCLIDES = {
    "Lu-177": {"sensitivity_cps_per_mbq": 12.0, "psf_fwhm_mm": 11.0, "photopeak_kev": 208.4},
    "Cu-67": {"sensitivity_cps_per_mbq": 30.0, "psf_fwhm_mm": 11.0, "photopeak_kev": 184.6},
    "Y-90": {"sensitivity_cps_per_mbq": 4.0, "psf_fwhm_mm": 15.0, "photopeak_kev": None},
}


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name`` (``"small"`` or ``"standard"``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
