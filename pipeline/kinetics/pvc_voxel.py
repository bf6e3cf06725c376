"""Voxel-level partial-volume correction of each registered SPECT, before the voxel fits.

The SPECT point-spread function (PSF) is a 3-D Gaussian with a full width at half maximum
``fwhm_mm = (FWHM_i, FWHM_j, FWHM_k)`` along the SPECT grid axes (for an axial reconstruction:
two transaxial values and the axial one; one value = isotropic), applied as in
:mod:`pipeline.kinetics.recovery`: :func:`scipy.ndimage.gaussian_filter`, ``truncate=4``,
``sigma_axis = FWHM_axis / (2 sqrt(2 ln 2)) / voxel_size_axis`` (voxels), but with
``mode="nearest"``: beyond the SPECT field of view the image is taken to continue as its edge
slice (a body cut by the axial field of view goes on beyond it, and the activity there spills
in as much as the edge slices spill out; with ``mode="constant"`` the edge slices would be
"corrected" up by a factor of about 2). Each region is blurred on its bounding box grown by the
kernel radius, which equals the full-grid filter (the box either reaches the grid edge or ends in
zeros).

Regions (:func:`build_regions`), as fractions ``f_j(v)`` of every SPECT voxel that sum to one:

- every label of the label map except the background labels (organs, marrow VOI, vertebrae,
  lesions), from the fractional occupancy (:mod:`pipeline.kinetics.tac`); each kidney as two
  regions, the outer :data:`KIDNEY_CORTEX_MM` (cortex) and the inside (:func:`split_by_depth`, on
  the label map's grid): with one uniform kidney region the hot cortex around a colder medulla is
  misplaced (sample patient kidneys -5 % instead of 0 %); the vertebrae label's voxels within 4 mm of
  the marrow VOI (trabecular rim) as a region of their own (with one uniform vertebra region the
  marrow VOI was over-corrected by 18 %); see :mod:`pipeline.kinetics.pvc_regions`;
- the part of the field of view in no label (air when the body label 7 is present) as one region;
- the background, i.e. the body label (7) (without a body label: the part of the field of view in
  no label), split into uptake classes so that one region does not mix very different uptake (bladder, blood pool
  and bowel against fat and muscle): each background voxel goes to the class of its observed
  concentration relative to the median background concentration, with edges
  :data:`BACKGROUND_EDGES_REL` (x median), after a 1-voxel Gaussian smoothing against noise. The
  classes are drawn at each time point from that time point's image. The CT is not used (the
  kinetics stage does not read it; soft-tissue CT classes do not separate uptake for these tracers).

Geometric transfer matrix (Rousset et al., J Nucl Med 1998;39:904-911) over these regions::

    W_ij = sum_v f_i(v) (G * f_j)(v) / sum_v f_i(v),     t_i = sum_v f_i(v) y(v) / sum_v f_i(v),
    W c = t   ->   c_j (regional mean concentration, Bq/mL)

``"rbv"``: region-based voxel-wise correction (Thomas et al., Eur J Nucl Med Mol Imaging
2011;38:1104-1119)::

    P(v) = sum_j max(c_j, 0) f_j(v)      (piecewise-constant synthetic image)
    x(v) = y(v) P(v) / (G * P)(v)

The observed image ``y`` keeps its within-region structure; only the blur of the region
pattern is divided out. ``"iy"``: iterative Yang (Erlandsson et al., Phys Med Biol
2012;57:R119-R159), without the matrix inversion: start from ``c = max(t, 0)`` and repeat
``c_j <- c_j x mean over f_j of y / (G * P)`` until every ``c_j`` changes by less than
:data:`IY_TOLERANCE` (relative) or :data:`IY_MAX_ITERATIONS`; then ``x`` as for RBV. (The
textbook update ``c_j = mean of x over f_j`` takes the voxel value of mixed boundary voxels for
the region's own concentration; on 4.8 mm voxels that biases small organs by 5-10 %, so the
region's own share of each voxel is used, below.)

Organ activity from the corrected image: a 4.8 mm voxel on an organ boundary holds a mixture, so
``sum_v f_L(v) x(v)`` would mix the neighbours in. The share of region ``j`` in voxel ``v`` is
``c_j f_j(v) y(v) / (G * P)(v)`` (the shares add up to ``x(v)``); the organ activity is the sum of
its shares (:func:`region_activity`). For the body label, split into uptake classes, ``c_j`` is the
mean of each voxel's class. The voxel TIA map keeps the mixed voxel values: its sum over a small
organ with the occupancy weights stays below the organ TIA (as it would for the true activity
sampled on the same grid); ``voxel_check`` in fits.json shows the ratio.

Where ``(G * P)`` is below :data:`MIN_MODEL_FRACTION` of its maximum the factor is 1 (no
information). Negative GTM means are set to 0 in ``P`` (and reported). The factor
``P / (G * P)`` is never negative, so the sign of every voxel is kept: the correction introduces
no negative voxel (negative voxels of the input, e.g. from interpolation, stay negative and are
reported). Conservation: the corrected image is scaled by one factor so that its total over the
SPECT field of view equals the observed total (the PSF moves activity, it does not create any);
the total before that scaling is reported (``raw_total_ratio``) and flagged when it differs from
1 by more than :data:`RAW_TOTAL_WARN`. Activity outside the SPECT field of view (spilling in
across its ends) is not modelled.

Regions with a volume below ``2 x FWHM_i FWHM_j FWHM_k`` are flagged: their correction is unstable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..grid import bounding_box
from .pvc_regions import (BACKGROUND_EDGES_REL, BACKGROUND_LABELS, INNER_OFFSET, KIDNEY_CORTEX_MM, KIDNEY_LABELS,
                          MARROW_MARGIN_MM, Regions, build_regions)
from .recovery import MAX_CONDITION, TRUNCATE
from .tac import Occupancy

__all__ = ["VOXEL_PVC_METHODS", "blur_nearest", "BACKGROUND_LABELS", "BACKGROUND_EDGES_REL", "psf_fwhm_vector",
           "psf_sigma_voxels", "Regions", "build_regions", "transfer_matrix", "correct_image",
           "voxel_partial_volume_correction", "VoxelPvc", "small_region_volume_ml"]

#: Voxel-level methods (``KineticsOptions.pvc``).
VOXEL_PVC_METHODS = ("rbv", "iy")
#: Below this fraction of its maximum, the blurred model image carries no information: factor 1.
MIN_MODEL_FRACTION = 1e-4
#: Iterative Yang: stop when every regional mean changes by less than this (relative) ...
IY_TOLERANCE = 1e-4
#: ... or after this many iterations.
IY_MAX_ITERATIONS = 30
#: Warn when the corrected total before rescaling differs from the observed total by more than this.
RAW_TOTAL_WARN = 0.05

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def psf_fwhm_vector(fwhm_mm) -> np.ndarray:
    """PSF FWHM per grid axis, mm, shape (3,), from one value (isotropic) or three (i, j, k).

    Raises
    ------
    InputError
        Not 1 or 3 finite positive numbers.
    """
    try:
        v = np.atleast_1d(np.asarray(fwhm_mm, dtype=float)).ravel()
    except (TypeError, ValueError):
        raise InputError(None, f"PSF FWHM must be 1 or 3 positive numbers of mm, got {fwhm_mm!r}") from None
    if v.size == 1:
        v = np.repeat(v, 3)
    if v.size != 3 or not np.all(np.isfinite(v)) or not np.all(v > 0):
        raise InputError(None, f"PSF FWHM must be 1 or 3 positive numbers of mm, got {fwhm_mm!r}")
    return v


def psf_sigma_voxels(fwhm_mm, voxel_size_mm) -> np.ndarray:
    """Gaussian SD per grid axis, voxels, shape (3,)."""
    return psf_fwhm_vector(fwhm_mm) / _FWHM_PER_SIGMA / np.asarray(voxel_size_mm, float)


def small_region_volume_ml(fwhm_mm) -> float:
    """``2 x FWHM_i FWHM_j FWHM_k`` in mL: regions below it are flagged as too small for the resolution."""
    return 2.0 * float(np.prod(psf_fwhm_vector(fwhm_mm))) / 1000.0


def blur_nearest(array: np.ndarray, sigma_voxels) -> np.ndarray:
    """The PSF model of the voxel correction: Gaussian, ``mode="nearest"``, ``truncate=4``, float32."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(array, np.float32), sigma_voxels, mode="nearest", truncate=TRUNCATE)


def _radius(sigma) -> np.ndarray:
    return np.array([int(TRUNCATE * float(s) + 0.5) for s in sigma])


def transfer_matrix(fractions, sigma_voxels) -> np.ndarray:
    """Geometric transfer matrix ``W_ij = sum f_i (G * f_j) / sum f_i``, dimensionless, shape (R, R)."""
    radius = _radius(sigma_voxels)
    boxes = [bounding_box(f) for f in fractions]
    sums = np.array([float(f.sum(dtype=np.float64)) for f in fractions])
    n = len(fractions)
    w = np.zeros((n, n))
    for j, fj in enumerate(fractions):
        box = bounding_box(fj, radius)
        g = blur_nearest(fj[box], sigma_voxels)
        for i, fi in enumerate(fractions):
            inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(boxes[i], box))
            if any(s.stop <= s.start for s in inter):
                continue
            sub = g[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, box))]
            w[i, j] = float(np.dot(fi[inter].ravel().astype(np.float64), sub.ravel().astype(np.float64)))
    return w / sums[:, None]


def _regional_means(fractions, image: np.ndarray) -> np.ndarray:
    out = np.zeros(len(fractions))
    for n, f in enumerate(fractions):
        box = bounding_box(f)
        out[n] = float(np.dot(f[box].ravel().astype(np.float64), image[box].ravel().astype(np.float64))
                       / f.sum(dtype=np.float64))
    return out


def _synthetic(fractions, means) -> np.ndarray:
    p = np.zeros(fractions[0].shape, np.float32)
    for f, c in zip(fractions, means):
        if c > 0:
            p += np.float32(c) * f
    return p


def _ratio(y: np.ndarray, p: np.ndarray, sigma) -> tuple:
    """``q = y / (G * P)`` where the model carries information (else 0) and that mask."""
    gp = blur_nearest(p, sigma)
    floor = MIN_MODEL_FRACTION * float(gp.max()) if gp.size else 0.0
    ok = gp > floor
    q = np.zeros_like(gp)
    np.divide(y, gp, out=q, where=ok)
    return q, ok


def correct_image(observed: np.ndarray, regions: Regions, sigma_voxels, method: str = "rbv") -> tuple:
    """Partial-volume corrected image of one time point.

    Parameters
    ----------
    observed : numpy.ndarray, shape (I, J, K)
        Activity concentration, Bq/mL.
    regions : Regions
    sigma_voxels : array_like, shape (3,)
        PSF Gaussian SD per grid axis, voxels.
    method : {"rbv", "iy"}

    Returns
    -------
    corrected : numpy.ndarray, float32, Bq/mL
        ``x = y P / (G * P)`` with ``P`` from the clipped means, scaled to the observed total.
    info : dict
        ``observed_mean_bq_per_ml`` (t), ``regional_mean_bq_per_ml`` (c: GTM solution for "rbv",
        converged means for "iy"), ``condition_number`` (rbv), ``iterations`` (iy),
        ``negative_means_clipped`` (names), ``raw_total_ratio``, ``rescale_factor``,
        ``negative_voxels_in`` / ``negative_voxels_out``.
    parts : tuple
        What :func:`region_activity` needs (clipped means, scaled ``y / (G * P)``, mask, ``y``).
    """
    y = np.asarray(observed, np.float32)
    fr = regions.fractions
    t = _regional_means(fr, y)
    info = {"observed_mean_bq_per_ml": t}
    if method == "rbv":
        w = transfer_matrix(fr, sigma_voxels)
        cond = float(np.linalg.cond(w))
        if not math.isfinite(cond) or cond > MAX_CONDITION:
            raise InputError(None, f"geometric transfer matrix is singular (condition number {cond:.3g}): regions "
                                   "too small or indistinguishable at this resolution; merge labels")
        c = np.linalg.solve(w, t)
        q, ok = _ratio(y, _synthetic(fr, c), sigma_voxels)
        info.update(condition_number=cond)
    elif method == "iy":
        c, it = np.maximum(t, 0.0), 0
        for it in range(1, IY_MAX_ITERATIONS + 1):
            update = _regional_update(fr, *_ratio(y, _synthetic(fr, c), sigma_voxels))
            c_new = c * update
            change = np.abs(c_new - c) / np.maximum(np.abs(c_new), 1e-12 * max(float(np.abs(c_new).max()), 1e-30))
            c = c_new
            if float(change.max()) < IY_TOLERANCE:
                break
        q, ok = _ratio(y, _synthetic(fr, c), sigma_voxels)
        info["iterations"] = it
    else:
        raise InputError(None, f"voxel partial-volume correction must be one of {VOXEL_PVC_METHODS}, got {method!r}")
    cp = np.maximum(np.asarray(c, float), 0.0)
    x = np.where(ok, _synthetic(fr, cp) * q, y)
    total_in = float(y.sum(dtype=np.float64))
    total_raw = float(x.sum(dtype=np.float64))
    scale = total_in / total_raw if total_raw > 0 and total_in > 0 else 1.0
    x = (x * np.float32(scale)).astype(np.float32)
    info.update(regional_mean_bq_per_ml=np.asarray(c, float),
                negative_means_clipped=[n for n, v in zip(regions.names, c) if v < 0],
                raw_total_ratio=total_raw / total_in if total_in > 0 else None, rescale_factor=scale,
                negative_voxels_in=int(np.count_nonzero(y < 0)), negative_voxels_out=int(np.count_nonzero(x < 0)))
    share = np.where(ok, q * np.float32(scale), np.float32(scale)).astype(np.float32)
    return x, info, (cp, share, ok, y)


def _regional_update(fractions, q, ok) -> np.ndarray:
    """Iterative-Yang update factor per region: mean over ``f_j`` of ``y / (G * P)`` (1 where no information)."""
    return _regional_means(fractions, np.where(ok, q, 1.0).astype(np.float32))


def region_activity(parts, fraction: np.ndarray, mean_map) -> float:
    """Corrected activity of one region or label, ``sum_v f(v) x_f(v)``, Bq/mL x voxels.

    ``parts`` is the last item returned by :func:`correct_image`; ``mean_map`` the regional mean
    (Bq/mL) that applies to ``fraction`` (a number, or a map for labels split into classes).
    The region's share of a voxel is ``c f y / (G * P)`` (its share of the synthetic image
    times the correction), or ``f y`` where the model carries no information; the shares of all
    regions add up to the corrected voxel value.
    """
    _, share, ok, y = parts
    box = bounding_box(fraction)
    f = fraction[box].astype(np.float64)
    m = mean_map[box] if isinstance(mean_map, np.ndarray) else float(mean_map)
    val = np.where(ok[box], m * share[box], y[box] * share[box])
    return float(np.sum(f * val))


@dataclass(frozen=True, eq=False)
class VoxelPvc:
    """The voxel-level correction of every time point.

    Attributes
    ----------
    method : {"rbv", "iy"}
    fwhm_mm : numpy.ndarray, shape (3,)
        PSF FWHM per grid axis, mm.
    corrected : list of numpy.ndarray
        Corrected activity concentration per time point, Bq/mL, float32.
    regions : list of Regions
        Per time point.
    info : list of dict
        Per time point (see :func:`correct_image`).
    organ_activity_mbq : list of dict
        Per time point: label id -> corrected activity, MBq (the label's share of the corrected
        voxels, :func:`region_activity`).
    small_regions : dict
        Label id -> volume (mL) for label regions below :func:`small_region_volume_ml`.
    warnings : list of str
    """

    method: str
    fwhm_mm: np.ndarray
    corrected: list
    regions: list
    info: list
    organ_activity_mbq: list = field(default_factory=list)
    small_regions: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def describe(self, time_points, voxel_volume_ml: float, psf_source: str | None) -> dict:
        """JSON-ready description (per time point: regions, means, conservation)."""
        ref = {"rbv": "Thomas et al., Eur J Nucl Med Mol Imaging 2011;38:1104-1119 (GTM: Rousset et al., "
                      "J Nucl Med 1998;39:904-911)",
               "iy": "iterative Yang: Erlandsson et al., Phys Med Biol 2012;57:R119-R159"}[self.method]
        per_tp = []
        for tp, reg, inf in zip(time_points, self.regions, self.info):
            per_tp.append({
                "time_point": tp, "regions": list(reg.names),
                "region_volume_ml": [float(v) for v in reg.volume_ml(voxel_volume_ml)],
                "observed_mean_bq_per_ml": [float(v) for v in inf["observed_mean_bq_per_ml"]],
                "regional_mean_bq_per_ml": [float(v) for v in inf["regional_mean_bq_per_ml"]],
                **({"condition_number": inf["condition_number"]} if "condition_number" in inf else {}),
                **({"iterations": inf["iterations"]} if "iterations" in inf else {}),
                "negative_means_clipped": inf["negative_means_clipped"],
                "fov_total_ratio_before_rescale": inf["raw_total_ratio"],
                "rescale_factor": inf["rescale_factor"],
                "negative_voxels_in": inf["negative_voxels_in"], "negative_voxels_out": inf["negative_voxels_out"]})
        return {"level": "voxel", "method": self.method, "reference": ref,
                "psf_fwhm_mm": [float(v) for v in self.fwhm_mm], "psf_fwhm_axes": "SPECT grid axes i, j, k",
                "psf_source": psf_source,
                "psf_model": "3-D Gaussian on the SPECT grid (scipy.ndimage.gaussian_filter, mode='nearest': the "
                             "image continues beyond the field of view as its edge slice, truncate=4)",
                "background_split": {"labels": list(BACKGROUND_LABELS),
                                     "without_them": "outside_labels (field of view in no label) is split instead",
                                     "edges_x_median": list(BACKGROUND_EDGES_REL),
                                     "by": "observed concentration of each time point (1-voxel Gaussian smoothing)"},
                "kidney_split": {"labels": list(KIDNEY_LABELS), "cortex_depth_mm": KIDNEY_CORTEX_MM,
                                 "note": "each kidney is two regions, the outer shell (cortex) and the inside "
                                         "(region '<kidney>_inner'); the kidney's activity is the sum of both"},
                "vertebra_split": {"margin_mm": MARROW_MARGIN_MM,
                                   "note": "vertebrae_L2L4 voxels within the margin of the marrow VOI (trabecular "
                                           "rim) are the region 'vertebrae_L2L4_near_marrow'"},
                "conservation": "corrected image scaled so that its field-of-view total equals the observed total; "
                                "fov_total_ratio_before_rescale is the total before that scaling",
                "negative_voxels": "the factor P/(G*P) is >= 0, so no voxel changes sign",
                "small_region_limit_ml": None if not self.fwhm_mm.size else small_region_volume_ml(self.fwhm_mm),
                "time_points": per_tp}


def voxel_partial_volume_correction(spects, occupancy: Occupancy, names: dict, method: str, fwhm_mm, *,
                                    region_occupancy: Occupancy | None = None, parent: dict | None = None) -> VoxelPvc:
    """Correct every time point (see the module docstring).

    Parameters
    ----------
    spects : sequence of Image
        Registered activity concentration, Bq/mL, on ``occupancy.grid``.
    occupancy : Occupancy
    names : dict
        Label id -> name.
    method : {"rbv", "iy"}
    fwhm_mm : float or sequence of 3 float
        PSF FWHM, mm (per grid axis when three).
    region_occupancy : Occupancy, optional
        Occupancy of a label map with labels split into sub-regions (:func:`split_by_depth`);
        default ``occupancy``.
    parent : dict, optional
        Sub-region id -> label id of ``occupancy`` it belongs to.
    """
    if method not in VOXEL_PVC_METHODS:
        raise InputError(None, f"voxel partial-volume correction must be one of {VOXEL_PVC_METHODS}, got {method!r}")
    fwhm = psf_fwhm_vector(fwhm_mm)
    sigma = psf_sigma_voxels(fwhm, occupancy.grid.voxel_size_mm)
    limit = small_region_volume_ml(fwhm)
    small = {}
    warns = []
    for lid in occupancy.label_ids:
        v = occupancy.volume_ml(lid)
        if lid not in BACKGROUND_LABELS and 0 < v < limit:
            small[lid] = v
            warns.append(f"{names.get(lid, lid)}: {v:.3g} mL is below 2 x FWHM^3 = {limit:.3g} mL; its partial-volume "
                         "correction is unstable")
    corrected, regions, infos, acts = [], [], [], []
    for s in spects:
        rocc = region_occupancy or occupancy
        rnames = {**{k: f"{names.get(v, v)}_{'inner' if k - v == INNER_OFFSET else 'near_marrow'}"
                     for k, v in (parent or {}).items()}, **names}
        reg = _split_regions(rocc, np.asarray(s.array, np.float32), rnames, sigma)
        x, inf, parts = correct_image(s.array, reg, sigma, method)
        sub = _label_activities(rocc, reg, parts, s.voxel_volume_ml)
        act = {lid: 0.0 for lid in occupancy.label_ids}
        for lid, a in sub.items():
            act[(parent or {}).get(lid, lid)] += a
        acts.append(act)
        del parts
        corrected.append(x)
        regions.append(reg)
        infos.append(inf)
        r = inf["raw_total_ratio"]
        if r is not None and abs(r - 1.0) > RAW_TOTAL_WARN:
            warns.append(f"voxel PVC ({method}) changed the field-of-view total by {100 * (r - 1):+.1f} % before "
                         "rescaling (PSF or regions may not fit the image)")
        if inf["negative_means_clipped"]:
            warns.append(f"voxel PVC ({method}): negative regional means set to 0: "
                         f"{', '.join(inf['negative_means_clipped'])}")
    return VoxelPvc(method, fwhm, corrected, regions, infos, acts, small, warns)


def _split_regions(occupancy: Occupancy, y: np.ndarray, names: dict, sigma) -> Regions:
    """Regions with the background split by uptake, classified on ``y`` minus the labels' blurred activity.

    A first GTM with one background region gives the labels' means; their blurred pattern is
    subtracted before the background is classified, so the spill-out halo around a hot organ does not
    become a "hot background" region of its own (which the GTM would then trade activity with).
    """
    one = build_regions(occupancy, y, names, edges_rel=())
    c = np.linalg.solve(transfer_matrix(one.fractions, sigma), _regional_means(one.fractions, y))
    own = [(f, v) for f, v, lid in zip(one.fractions, c, one.label_ids) if lid is not None]
    spill = blur_nearest(_synthetic([f for f, _ in own], [v for _, v in own]), sigma) if own else 0.0
    return build_regions(occupancy, y - spill, names)


def _label_activities(occupancy: Occupancy, regions: Regions, parts, voxel_volume_ml: float) -> dict:
    """Label id -> corrected activity (MBq) at one time point."""
    cp = parts[0]
    out = {}
    own = {lid: n for n, lid in enumerate(regions.label_ids) if lid is not None}
    bg_map = None
    for lid, f in zip(occupancy.label_ids, occupancy.fractions):
        if lid in own:
            a = region_activity(parts, f, cp[own[lid]])
        elif float(f.sum(dtype=np.float64)) <= 0:
            a = 0.0
        else:  # a background label: the mean of the uptake class of each voxel
            if bg_map is None:
                num = np.zeros(f.shape, np.float32)
                den = np.zeros(f.shape, np.float32)
                for n, (g, name) in enumerate(zip(regions.fractions, regions.names)):
                    if regions.label_ids[n] is None and name != "outside_labels":
                        num += np.float32(cp[n]) * g
                        den += g
                bg_map = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
            a = region_activity(parts, f, bg_map)
        out[lid] = a * voxel_volume_ml * 1e-6
    return out
