"""The CT's numbers measured against fat, and brought back to it before segmentation.

Many steps of the built-in segmenter compare CT numbers with fixed levels: fat below -50 HU
is in no organ, an organ's partial-volume rim ends half-way to fat's -100 HU, bone starts at
150 HU, the spinal canal is below 60 HU. A CT whose soft tissues all read some HU high or
low (calibration, beam hardening in a large patient, scatter, a tube voltage other than
120 kVp) moves every such edge. On the real GE low-dose CT rebinned to 2.2 mm (atlas of the
ICRP-110 phantoms), every voxel of the body raised by 10 HU grew the kidneys by 4 and 6 %
(144 / 161 -> 150 / 170 mL); raised by 15 HU, by 13 and 29 %, and L2-L4 were named one level
high, with only warns; lowered by 30 HU, the levels were named five vertebrae off (caught by
the gate).

Subcutaneous fat is the reference here: its CT number varies little between people (about
-90 to -110 HU at 120 kVp), nearly every abdominal CT holds some, and it does not enhance
with contrast (soft tissue does). Its peak (:func:`fat_peak_hu`) on the development CTs lies
at -106 to -96 HU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

__all__ = ["FAT_REFERENCE_HU", "FAT_TOLERANCE_HU", "MAX_FAT_OFFSET_HU", "fat_peak_hu", "fat_correction_hu"]

#: CT number of subcutaneous fat, HU: the middle of the development CTs' peaks (:func:`fat_peak_hu`:
#: real GE CT -105.6, TotalSegmentator -105.0, ICRP-110 phantoms as simulated -99.4 to -98.4,
#: sample patient -96.3), within the -90 to -110 HU of subcutaneous fat at 120 kVp.
FAT_REFERENCE_HU = -102.0
#: A fat peak within this distance of :data:`FAT_REFERENCE_HU` is left alone (people and
#: scanners differ by that much; every development CT lies inside), HU.
FAT_TOLERANCE_HU = 7.0
#: A fat peak further than this from :data:`FAT_REFERENCE_HU` is not a calibration offset: the
#: image is not a CT in HU (or holds no fat), and the segmenter refuses, HU.
MAX_FAT_OFFSET_HU = 50.0


def fat_peak_hu(ct_hu: np.ndarray, body: np.ndarray, voxel_size_mm, smooth_mm: float = 2.0,
                band_mm: tuple[float, float] = (3.0, 30.0), min_voxels: int = 1000,
                min_fat_fraction: float = 0.25) -> float | None:
    """The subcutaneous fat peak: the mode of the smoothed CT numbers between -200 and -40 HU
    in the body's outer band.

    The band is ``band_mm`` deep from the body's outline on each axial slice (below the skin,
    above the muscles): subcutaneous fat. Visceral fat reads higher and varies more (partial
    volume with vessels and bowel; the sample patient's -90 HU visceral fat put the whole
    body's peak at -88 HU against -96 HU in the band). The CT is smoothed first: low-dose noise
    of 50 HU and more at 2 mm (ICRP-110 AM at 2 mm) spreads fat over the whole range, and the
    raw values' mode then lies at its upper end (-42 HU there; -98 HU smoothed by 1.5-3 mm).
    The development CTs' band peaks: real GE CT -105.6 HU (rebinned to 2.2 mm -105.8),
    TotalSegmentator -105.0, ICRP-110 phantoms -99.4 to -98.4, sample patient -96.3.

    Parameters
    ----------
    ct_hu : numpy.ndarray, shape (I, J, K)
        CT numbers, HU, axial slices along the last axis (RAS order; the working grid of about
        2 mm in practice).
    body : numpy.ndarray of bool, shape (I, J, K)
        The patient.
    voxel_size_mm : sequence of 3 float
    smooth_mm : float
        Gaussian smoothing (SD) of the CT before the histogram, mm.
    band_mm : (float, float)
        Depth of the band below the body's outline, in-plane, mm.
    min_voxels : int
        Fewer voxels in the fat range (-200 to -40 HU) than this: None (no fat to measure).
    min_fat_fraction : float
        Fewer of the band's voxels in the fat range than this fraction: None. A subcutaneous
        layer thinner than about 8 mm (a cachectic patient) is mostly partial volume with skin
        and muscle, and its mode is no fat's: on an elliptic trunk with 2 mm voxels and 15 HU
        noise, 6 mm of -105 HU fat read -56 HU (17 % of the band in the range) and 4 mm -79 HU
        (8 %); 8 mm read -99 HU (26 %). The development CTs: 37 % (ICRP-110 AM at 2 mm) to 71 %
        (real GE CT).

    Returns
    -------
    float or None
        HU (1 HU histogram smoothed by 5 HU, refined by a parabola through its highest bin to a
        fraction of 1 HU: a 5 HU histogram read a shift of 15 HU as 17.5); None when there is no
        fat peak (too few voxels, or the mode within 10 HU of -200 or -40 HU).
    """
    vs = np.asarray(voxel_size_mm, float)
    depth = np.zeros(body.shape, np.float32)
    for k in np.flatnonzero(body.any(axis=(0, 1))):
        depth[:, :, k] = ndi.distance_transform_edt(body[:, :, k], sampling=vs[:2])
    band = (depth > band_mm[0]) & (depth <= band_mm[1])
    sm = ndi.gaussian_filter(ct_hu.astype(np.float32), smooth_mm / vs)
    v = sm[band]
    fat = (v >= -200.0) & (v <= -40.0)
    if np.count_nonzero(fat) < max(min_voxels, min_fat_fraction * v.size):
        return None
    edges = np.arange(-200.0, -39.0, 1.0)
    h = ndi.gaussian_filter1d(np.histogram(v[fat], bins=edges)[0].astype(float), 5.0)
    i = int(np.argmax(h))
    if not 10 <= i <= h.size - 11:  # a mode at the range's edge is no peak
        return None
    frac = 0.0
    den = h[i - 1] - 2.0 * h[i] + h[i + 1]
    if den < 0:
        frac = 0.5 * (h[i - 1] - h[i + 1]) / den  # parabola through the peak: a fraction of 1 HU
    return float(edges[i] + 0.5 + frac)


def fat_correction_hu(peak_hu: float | None, path=None, refuse: bool = True) -> float:
    """The offset to subtract from the CT so that its fat peak lies at the reference, HU.

    A fat peak within :data:`FAT_TOLERANCE_HU` of :data:`FAT_REFERENCE_HU` is left alone
    (people differ by that much); beyond it the whole distance is corrected. Correcting only
    the part beyond the tolerance left the rules' kidneys of the sample patient read 25 HU
    low, with a residual of 7.5 HU, missing a kidney: their window is that tight. The
    price is a step of up to the tolerance where a peak crosses it.

    Parameters
    ----------
    peak_hu : float or None
        :func:`fat_peak_hu` (None: no correction).
    path : str, optional
        The CT's file, named in the error.
    refuse : bool
        A peak more than :data:`MAX_FAT_OFFSET_HU` from the reference is no calibration
        offset: refuse (the segmenter), or return 0.0 (the QC gate, whose check then fails).

    Returns
    -------
    float
        HU; 0.0 within the tolerance.

    Raises
    ------
    InputError
        When ``refuse`` and the peak lies more than :data:`MAX_FAT_OFFSET_HU` from the reference.
    """
    if peak_hu is None:
        return 0.0
    d = float(peak_hu) - FAT_REFERENCE_HU
    if abs(d) > MAX_FAT_OFFSET_HU:
        if not refuse:
            return 0.0
        raise InputError(path, f"CT numbers: the body's fat peak is at {peak_hu:.0f} HU, expected "
                               f"{FAT_REFERENCE_HU:.0f} +- {MAX_FAT_OFFSET_HU:.0f} HU: is this a CT in HU "
                               "(rescale slope and intercept applied)?")
    return d if abs(d) > FAT_TOLERANCE_HU else 0.0
