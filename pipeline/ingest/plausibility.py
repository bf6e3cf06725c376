"""The ingest plausibility gate: checks with physical grounds on times, geometry and activity.

Every check is a :class:`pipeline.qc.Check` (pass / warn / fail) written to
``timepoint.json`` and ``manifest.json`` under ``qc``; a failed check stops the
ingest before anything is written (one line naming the file). The thresholds
and their grounds:

Times (header level, :func:`timing_checks`)
    A scan more than :data:`FAIL_HALF_LIVES` (10) physical half-lives after the
    injection holds less than 2**-10 = 0.1 % of the injected activity: nothing
    that can be imaged for dosimetry, so the date is wrong (a year typed wrong,
    a scan of another cycle). Above :data:`WARN_HALF_LIVES` (5, 3 %) it warns.
    Two scans less than :data:`MIN_SEPARATION_S` (60 s) apart are one scan
    listed twice (the fits need strictly increasing times).

Slice spacing and axial range (:func:`spacing_check`, :func:`ct_coverage_check`)
    An NM tomogram is placed by SpacingBetweenSlices alone. SPECT is usually
    reconstructed on cubic voxels whose slice thickness equals the spacing; a
    SpacingBetweenSlices that disagrees (by more than 1 %) with SliceThickness
    *and* with both pixel spacings is suspicious (some exports do write a
    different thickness), and fails when a second, independent witness agrees:
    the SPECT then reaches beyond the CT it was attenuation-corrected with
    (less than :data:`WARN_CT_COVERAGE`, 95 %, of its axial range inside the
    CT's). Whatever the header, a SPECT with less than :data:`FAIL_CT_COVERAGE`
    (80 %) of its axial range inside its CT fails: it cannot have been
    attenuation corrected with that CT, so its geometry (spacing, position) or
    the pairing is wrong. For a one-slice-per-file series the positions give
    the spacing; a SpacingBetweenSlices header off by more than 1 % from them
    fails (the series was edited or assembled from different reconstructions).

SPECT volume (pixel level, :func:`spect_checks`)
    - non-finite voxels fail (no activity is NaN);
    - axial extent: below :data:`FAIL_AXIAL_EXTENT_MM` (40 mm) or fewer than 3
      slices fails: a kidney, the smallest organ the stage doses, is 100-120 mm
      long, and with a 10-15 mm PSF nothing inside a slab of a few slices is
      quantitative; below :data:`WARN_AXIAL_EXTENT_MM` (100 mm) it warns (not
      even one kidney fits);
    - activity in the field of view over the injected activity decayed to the
      scan: the camera cannot see more than was injected. Dose-calibrator
      accuracy is +-5 % (acceptance tolerance of clinical dose calibrators) and
      quantitative SPECT recovers total activity within about +-10 % in
      phantom studies: a ratio above :data:`WARN_FOV_RATIO` (1.05, beyond the
      calibrator alone) warns, above :data:`FAIL_FOV_RATIO` (1.20, beyond both
      errors at their extreme in the same direction, 1.05 x 1.10 = 1.16, plus
      margin) fails. An image with no positive activity at all (blank series,
      lost scale) fails. There is no lower bound short of that: the share of the
      injected activity inside a field of view depends on the field of view and
      the agent (a small field at 7 days may hold well under 1 %), so a low ratio
      is only recorded;
    - negative voxels: OSEM, the reconstruction of quantitative SPECT, cannot
      produce negative values; resampling and filtering add small negative
      ringing at edges (a few per cent of the local peak). Counted are the
      negative voxels and those below -:data:`NOISE_FRACTION_OF_MAX` (1 %) of the
      maximum ("beyond noise"). The check is on the negative share,
      -sum(negative)/sum(positive): above :data:`WARN_NEGATIVE_SHARE` (0.5 %)
      warns, above :data:`FAIL_NEGATIVE_SHARE` (5 %) fails; a minimum below
      -:data:`FAIL_MIN_OVER_MAX` (10 %) of the maximum also fails (deeper than
      any ringing: the values were shifted or negated).
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.qc import Check, check_lower, check_upper

__all__ = ["timing_checks", "spacing_check", "ct_coverage_check", "spect_checks", "FAIL_HALF_LIVES", "WARN_HALF_LIVES",
           "FAIL_FOV_RATIO", "WARN_FOV_RATIO", "FAIL_AXIAL_EXTENT_MM", "WARN_AXIAL_EXTENT_MM"]

FAIL_HALF_LIVES = 10.0
WARN_HALF_LIVES = 5.0
MIN_SEPARATION_S = 60.0
SPACING_RTOL = 0.01
FAIL_AXIAL_EXTENT_MM = 40.0
WARN_AXIAL_EXTENT_MM = 100.0
MIN_SLICES = 3
WARN_CT_COVERAGE = 0.95
FAIL_CT_COVERAGE = 0.80
WARN_FOV_RATIO = 1.05
FAIL_FOV_RATIO = 1.20
#: "No activity at all": below this share of the decayed injected activity (a blank image).
FAIL_FOV_FRACTION = 1e-9
NOISE_FRACTION_OF_MAX = 0.01
WARN_NEGATIVE_SHARE = 0.005
FAIL_NEGATIVE_SHARE = 0.05
FAIL_MIN_OVER_MAX = 0.10


def timing_checks(time_points, half_life_h: float) -> list[Check]:
    """Checks of the times after injection of the planned time points.

    Parameters
    ----------
    time_points : sequence of PlannedTimePoint
        With ``time_s`` (s after injection), ``id`` and ``spect_path``, sorted by time.
    half_life_h : float
        Physical half-life, h.

    Returns
    -------
    list of Check
    """
    out = []
    for tp in time_points:
        n_half = tp.time_s / 3600.0 / half_life_h
        out.append(check_upper(
            "time_after_injection_in_half_lives", n_half, "physical half-lives", WARN_HALF_LIVES, FAIL_HALF_LIVES,
            f"after 10 half-lives less than 0.1 % of the activity is left to image (scan at {tp.time_h:.1f} h, "
            f"half-life {half_life_h:.4g} h): a wrong date", tp.id, tp.spect_path))
    for a, b in zip(time_points, time_points[1:]):
        gap = float(b.time_s - a.time_s)
        out.append(check_lower(
            "separation_from_previous_scan", gap, "s", None, MIN_SEPARATION_S,
            f"scans less than a minute apart are one scan listed twice (previous: {a.id} at {a.time_h:.4f} h)",
            b.id, b.spect_path))
    return out


def _close(a: float, b: float, rtol: float = SPACING_RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-3


def _z_range(image) -> tuple[float, float]:
    """Superior-inferior (RAS z) range of the volume's outer voxel faces, mm."""
    shape = np.asarray(image.shape[:3], float)
    corners = np.array([[i, j, k, 1.0] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                        for k in (-0.5, shape[2] - 0.5)])
    z = (np.asarray(image.affine, float) @ corners.T)[2]
    return float(z.min()), float(z.max())


def ct_coverage(spect, ct) -> float:
    """Fraction of the SPECT's axial range that lies inside the CT's axial range (0-1)."""
    s0, s1 = _z_range(spect)
    c0, c1 = _z_range(ct)
    length = s1 - s0
    return max(0.0, min(s1, c1) - max(s0, c0)) / length if length > 0 else 0.0


def ct_coverage_check(spect, ct, spacing: Check | None, subject: str, path) -> Check:
    """The SPECT's axial range inside its CT's; fails with a suspicious spacing (module docstring).

    Parameters
    ----------
    spect, ct : pipeline.image.Image
    spacing : Check or None
        The :func:`spacing_check` of this SPECT; its ``warn`` turns a coverage warning into a failure.
    """
    frac = ct_coverage(spect, ct)
    check = check_lower("spect_axial_range_inside_ct", frac, "1", WARN_CT_COVERAGE, FAIL_CT_COVERAGE,
                        "the SPECT was attenuation corrected with its CT, so it lies inside the CT's axial range",
                        subject, path)
    if check.status == "warn" and spacing is not None and spacing.status == "warn":
        check = Check(check.name, check.value, check.unit, check.expected,
                      check.source + "; with a SpacingBetweenSlices that no other header value confirms, the "
                      "spacing is wrong", "fail", subject, check.path)
    return check


def spacing_check(series, slice_spacing_mm: float, subject: str) -> Check:
    """SpacingBetweenSlices against the other statements of the header (module docstring).

    Parameters
    ----------
    series : DicomSeries
        The SPECT series (``kind``, ``first``, ``headers``, ``files``).
    slice_spacing_mm : float
        Spacing used for the volume: SpacingBetweenSlices (multi-frame) or from the positions (slices).
    subject : str
        Time point id.
    """
    first = series.first
    sbs = first.get("SpacingBetweenSlices")
    sbs = None if sbs in (None, "") else abs(float(sbs))
    path = str(series.files[0])
    if series.kind == "spect_multiframe":
        thickness = first.get("SliceThickness")
        witnesses = [float(v) for v in (first.get("PixelSpacing") or [])]
        if thickness not in (None, ""):
            witnesses.append(float(thickness))
        agree = [w for w in witnesses if _close(w, slice_spacing_mm)]
        status = "warn" if thickness not in (None, "") and not agree else "pass"
        return Check("slice_spacing_consistency", slice_spacing_mm, "mm",
                     "SpacingBetweenSlices equal (1 %) to SliceThickness or to a pixel spacing",
                     f"SliceThickness {thickness}, PixelSpacing {list(first.get('PixelSpacing') or [])}: a SPECT is "
                     "reconstructed on a grid whose slice spacing equals its slice thickness", status, subject, path)
    if sbs is None:
        return Check("slice_spacing_consistency", slice_spacing_mm, "mm", "SpacingBetweenSlices (when stated) "
                     "equal (1 %) to the spacing of the positions", "no SpacingBetweenSlices; positions used",
                     "pass", subject, path)
    status = "pass" if _close(sbs, slice_spacing_mm) else "fail"
    return Check("slice_spacing_consistency", sbs, "mm", f"{slice_spacing_mm:.4g} mm (spacing of the "
                 "ImagePositionPatient values) within 1 %", "the header contradicts the slice positions: edited "
                 "or assembled series", status, subject, path)


def spect_checks(image, time_h: float, injected_mbq: float, half_life_h: float, subject: str, path) -> list[Check]:
    """Pixel-level checks of one SPECT volume in Bq/mL (module docstring).

    Parameters
    ----------
    image : pipeline.image.Image
        Activity concentration, Bq/mL, at acquisition.
    time_h : float
        Time after injection, h.
    injected_mbq : float
        Injected activity, MBq.
    half_life_h : float
        Physical half-life, h.
    subject : str
        Time point id.
    path : path
        The SPECT file (named in a failure).
    """
    arr = np.asarray(image.array)
    out = []
    n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    out.append(check_upper("non_finite_voxels", n_bad, "voxels", None, 0,
                           "activity concentration is a finite number (NaN/inf: a broken export)", subject, path))
    if n_bad:
        return out
    nk = arr.shape[2]
    extent = nk * float(image.voxel_size_mm[2])
    out.append(check_lower("axial_extent", extent, "mm", WARN_AXIAL_EXTENT_MM, FAIL_AXIAL_EXTENT_MM,
                           "a kidney is 100-120 mm long; a slab under 40 mm holds no organ quantitatively "
                           f"({nk} slices of {image.voxel_size_mm[2]:.3g} mm)", subject, path))
    out.append(check_lower("slices", nk, "slices", None, MIN_SLICES,
                           "a tomogram of fewer than 3 slices is a planar or broken export", subject, path))
    voxel_ml = image.voxel_volume_ml
    pos = float(arr[arr > 0].sum(dtype=np.float64))
    neg = float(-arr[arr < 0].sum(dtype=np.float64))
    vmax = float(arr.max(initial=0.0))
    vmin = float(arr.min(initial=0.0))
    n_neg = int(np.count_nonzero(arr < 0))
    n_beyond = int(np.count_nonzero(arr < -NOISE_FRACTION_OF_MAX * vmax)) if vmax > 0 else n_neg
    share = neg / pos + 0.0 if pos > 0 else (math.inf if neg > 0 else 0.0)
    out.append(check_upper(
        "negative_activity_share", share, "1", WARN_NEGATIVE_SHARE, FAIL_NEGATIVE_SHARE,
        f"{n_neg} negative voxels, {n_beyond} below -1 % of the maximum (beyond noise); OSEM cannot make "
        "negative values, resampling ringing adds a few per cent of the local peak at edges", subject, path))
    min_over_max = vmin / vmax if vmax > 0 else (-math.inf if vmin < 0 else 0.0)
    out.append(check_lower(
        "minimum_over_maximum", min_over_max, "1", -NOISE_FRACTION_OF_MAX, -FAIL_MIN_OVER_MAX,
        "a negative voxel deeper than 10 % of the maximum is no noise or ringing: shifted or negated values",
        subject, path))
    fov_mbq = (pos - neg) * voxel_ml / 1e6
    expected_mbq = injected_mbq * math.exp(-math.log(2.0) / half_life_h * time_h)
    ratio = fov_mbq / expected_mbq if expected_mbq > 0 else math.inf
    out.append(check_upper(
        "activity_in_fov_over_injected", ratio, "1", WARN_FOV_RATIO, FAIL_FOV_RATIO,
        f"{fov_mbq:.4g} MBq in the field of view, {expected_mbq:.4g} MBq injected and decayed to the scan: a "
        "camera cannot see more than was injected (dose calibrator +-5 %, quantitative SPECT +-10 %)",
        subject, path))
    out.append(check_lower(
        "activity_in_fov_positive", ratio, "1", None, FAIL_FOV_FRACTION,
        "an image without activity is a blank series or a lost scale", subject, path))
    return out
