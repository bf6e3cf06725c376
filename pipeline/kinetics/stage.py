"""The kinetics stage on in-memory data: organ curves, fits, voxel TIA map.

:func:`compute_kinetics` is a pure function (no files); :mod:`.cli` does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..image import Image
from .fitting import ErrorModel, TacFit, fit_tac
from .models import MODEL_NAMES
from .pvc_regions import split_by_depth
from .pvc_voxel import VOXEL_PVC_METHODS, VoxelPvc, psf_fwhm_vector, voxel_partial_volume_correction
from .recovery import PVC_METHODS, PartialVolumeCorrection, partial_volume_correction
from .reduced import REDUCED_MAX_SCANS, REDUCED_METHODS, PriorKinetics, reduced_fit
from .tac import DEFAULT_LABEL_NAMES, Occupancy, label_occupancy, organ_activity_mbq
from .voxel import organ_head_factors, smooth_stack, voxel_tia_fit, voxel_tia_organ_shape

__all__ = ["KineticsOptions", "KineticsResult", "compute_kinetics"]


@dataclass(frozen=True)
class KineticsOptions:
    """Choices of the kinetics stage (defaults are the documented ones).

    Attributes
    ----------
    models : tuple of str
        Candidate models for the organ curves.
    error_model : ErrorModel
    head : {"linear", "constant"}
        Area before the first time point of the organ-level model-free estimate.
    voxel_head : {"organ", "linear", "constant"}
        Area before the first time point of the voxel fit: ``"organ"`` (each voxel its
        organ's fitted curve shape, :func:`pipeline.kinetics.voxel.organ_head_factors`), a
        linear rise from 0, or a constant.
    tail : {"fitted", "physical"}
        Tail of the organ-level model-free estimate.
    voxel_method : {"fit", "organ-shape"}
    n_tail : int
        Time points of the voxel-wise tail fit.
    smooth_fwhm_mm : float
        Gaussian smoothing before the voxel-wise computation, mm (0 = none).
    occupancy : {"fractional", "nearest"}
        How labels are brought onto the SPECT grid.
    recovery : dict
        Label name -> recovery coefficient applied to the organ curve.
    population_effective_half_life_h : dict
        Label name -> population effective half-life (h) for Madsen's
        single-time-point formula.
    pvc : {"none", "rc", "gtm", "rbv", "iy"}
        Automatic partial-volume correction. "rc", "gtm": organ level
        (:mod:`pipeline.kinetics.recovery`), the voxel TIA map is not corrected.
        "rbv", "iy": voxel level (:mod:`pipeline.kinetics.pvc_voxel`): every
        SPECT is corrected before the organ curves and the voxel fits, so the
        TIA map is corrected too (the uncorrected map is kept in
        ``KineticsResult.tia_uncorrected``). A manual ``recovery`` entry wins
        for its structure's organ curve.
    psf_fwhm_mm : float, sequence of 3 float, or None
        FWHM of the Gaussian SPECT PSF, mm (required when ``pvc`` is not "none"); three values
        (along the SPECT grid axes i, j, k) only for "rbv" and "iy".
    psf_source : str or None
        Where the FWHM comes from (phantom measurement, vendor data), recorded in fits.json.
    reduced : {"none", "prior_cycle", "madsen", "haenscheid"}
        Method for a reduced protocol (at most :data:`~pipeline.kinetics.reduced.REDUCED_MAX_SCANS`
        scans, a later cycle of a course; :mod:`pipeline.kinetics.reduced`): the organ TIA from the
        scans and an earlier cycle's kinetics, the voxel TIA by organ shape. "none": the default
        single-time-point or mono-exponential handling.
    prior : PriorKinetics or None
        The earlier cycle's organ curves (``prior_cycle`` and ``madsen``).
    """

    models: tuple = MODEL_NAMES
    error_model: ErrorModel = field(default_factory=ErrorModel)
    head: str = "linear"
    voxel_head: str = "organ"
    tail: str = "fitted"
    voxel_method: str = "fit"
    n_tail: int = 3
    smooth_fwhm_mm: float = 0.0
    occupancy: str = "fractional"
    recovery: dict = field(default_factory=dict)
    population_effective_half_life_h: dict = field(default_factory=dict)
    pvc: str = "none"
    psf_fwhm_mm: float | tuple | None = None
    psf_source: str | None = None
    reduced: str = "none"
    prior: PriorKinetics | None = None


@dataclass(frozen=True, eq=False)
class KineticsResult:
    """Output of :func:`compute_kinetics`.

    Attributes
    ----------
    label_names : dict
        Label id -> name (labels present).
    volume_ml : dict
        Label id -> volume inside the SPECT field of view, mL.
    activity_mbq : dict
        Label id -> activity per time point (recovery-corrected), MBq, shape (T,).
    activity_uncorrected_mbq : dict
        The same before the recovery correction.
    fits : dict
        Label id -> :class:`~pipeline.kinetics.fitting.TacFit` (of the corrected curve).
    tia : Image
        Voxel TIA map, MBq*h/mL, on the SPECT grid.
    quality : Image
        Fit-quality map (relative RMS deviation, dimensionless).
    status : Image
        Status codes (uint8, :data:`pipeline.kinetics.voxel.STATUS_CODES`).
    voxel_check : dict
        Label id -> {voxel_sum_mbq_h, organ_tia_mbq_h (uncorrected), ratio}.
    occupancy : Occupancy
    partial_volume : PartialVolumeCorrection or None
        The automatic partial-volume correction built (``options.pvc`` != "none").
    correction : dict
        Label id -> what corrected its curve: "none", "manual", "rc", "gtm", "rbv" or "iy".
    voxel_pvc : VoxelPvc or None
        The voxel-level correction ("rbv", "iy"), with the corrected images.
    tia_uncorrected : Image or None
        With a voxel-level correction: the voxel TIA map of the uncorrected images, MBq*h/mL.
    voxel_head_factors : dict
        Label id -> the head factor its voxels' fits used before the first scan (voxel method
        "fit"; ``KineticsOptions.voxel_head``), dimensionless.
    """

    label_names: dict
    volume_ml: dict
    activity_mbq: dict
    activity_uncorrected_mbq: dict
    fits: dict
    tia: Image
    quality: Image
    status: Image
    voxel_check: dict
    occupancy: Occupancy
    time_h: np.ndarray
    decay_constant_per_h: float
    voxel_method: str
    warnings: tuple = ()
    partial_volume: PartialVolumeCorrection | None = None
    correction: dict = field(default_factory=dict)
    voxel_pvc: VoxelPvc | None = None
    tia_uncorrected: Image | None = None
    voxel_head_factors: dict = field(default_factory=dict)


def _name_map(names: dict, ids) -> dict:
    out = {}
    for i in ids:
        fallback = f"lesion_{i}" if i >= 100 else f"label_{i}"
        out[i] = names.get(i) or DEFAULT_LABEL_NAMES.get(i) or fallback
    return out


def compute_kinetics(spects, time_h, labels: Image, decay_constant_per_h: float, *,
                     label_names: dict | None = None, options: KineticsOptions | None = None) -> KineticsResult:
    """Organ time-activity curves, their fits and the voxel TIA map.

    Parameters
    ----------
    spects : sequence of Image
        Registered activity concentration per time point, Bq/mL, all on one grid.
    time_h : array_like, shape (T,)
        Times after injection, h, strictly increasing.
    labels : Image
        Integer label map (any grid; usually the reference CT's).
    decay_constant_per_h : float
        Physical decay constant of the radionuclide, 1/h.
    label_names : dict, optional
        Label id -> name (defaults: DESIGN.md ids, ``lesion_<id>`` from 100).
    options : KineticsOptions, optional

    Returns
    -------
    KineticsResult
    """
    opt = options or KineticsOptions()
    if opt.voxel_head not in ("organ", "linear", "constant"):
        raise InputError(None, f"voxel head must be organ, linear or constant, not {opt.voxel_head!r}")
    t = np.asarray(time_h, dtype=float)
    if len(spects) != t.size:
        raise InputError(None, f"{len(spects)} SPECT volumes but {t.size} times")
    grid = spects[0]
    for s in spects[1:]:
        if not s.same_grid(grid):
            raise InputError(s.meta.get("source"), "SPECT time points are not on one grid; register them first")
    if opt.pvc not in PVC_METHODS + VOXEL_PVC_METHODS:
        raise InputError(None, f"partial-volume correction must be one of {PVC_METHODS + VOXEL_PVC_METHODS}, "
                               f"got {opt.pvc!r}")
    if opt.pvc != "none" and opt.psf_fwhm_mm is None:
        raise InputError(None, f"partial-volume correction {opt.pvc!r} needs the SPECT PSF FWHM (psf_fwhm_mm)")
    if opt.reduced not in ("none",) + REDUCED_METHODS:
        raise InputError(None, f"reduced-protocol method must be none or one of {REDUCED_METHODS}, got {opt.reduced!r}")
    reduced = opt.reduced != "none" and t.size <= REDUCED_MAX_SCANS
    if reduced and opt.reduced != "haenscheid" and opt.prior is None:
        raise InputError(None, f"reduced-protocol method {opt.reduced} needs the kinetics of an earlier cycle")
    warns = []
    occ = label_occupancy(labels, grid, method=opt.occupancy)
    if not occ.label_ids:
        raise InputError(labels.meta.get("source"), "label map holds no labels")
    names = _name_map(dict(label_names or {}), occ.label_ids)
    by_name = {v: k for k, v in names.items()}
    for name in list(opt.recovery) + list(opt.population_effective_half_life_h):
        if name not in by_name:
            raise InputError(None, f"unknown structure {name!r} (labels: {', '.join(names.values())})")
    recovery = {by_name[n]: float(rc) for n, rc in opt.recovery.items()}
    for n, rc in opt.recovery.items():
        if not 0 < rc <= 1.5:
            raise InputError(None, f"recovery coefficient of {n} must be in (0, 1.5], got {rc}")
    vol = {i: occ.volume_ml(i) for i in occ.label_ids}
    for i in occ.label_ids:
        whole = occ.label_volume_ml.get(i, 0.0)
        if whole > 0 and vol[i] < 0.95 * whole:
            warns.append(f"{names[i]}: only {100 * vol[i] / whole:.0f} % of the label lies in the SPECT field of view")
    raw = [organ_activity_mbq(s, occ) for s in spects]
    act_unc = {i: np.array([r[i] for r in raw]) for i in occ.label_ids}
    act = {i: act_unc[i] / recovery.get(i, 1.0) for i in occ.label_ids}
    correction = {i: ("manual" if i in recovery else "none") for i in occ.label_ids}
    pvc = None
    vpvc = None
    if opt.pvc in VOXEL_PVC_METHODS:
        split_labels, parent = split_by_depth(labels)
        rocc = label_occupancy(split_labels, grid, method=opt.occupancy) if parent else None
        vpvc = voxel_partial_volume_correction(spects, occ, names, opt.pvc, opt.psf_fwhm_mm, region_occupancy=rocc,
                                               parent=parent)
        corrected = vpvc.organ_activity_mbq
        for i in occ.label_ids:
            if i not in recovery:  # a manual recovery coefficient wins for the organ curve
                act[i] = np.array([c[i] for c in corrected])
                correction[i] = opt.pvc
        warns.append(f"voxel-level partial-volume correction ({opt.pvc}, PSF FWHM "
                     f"{', '.join(f'{v:g}' for v in vpvc.fwhm_mm)} mm along i, j, k): the organ curves and the voxel "
                     "TIA map come from the corrected images")
        warns.extend(vpvc.warnings)
    elif opt.pvc != "none":
        fwhm = psf_fwhm_vector(opt.psf_fwhm_mm)
        if not np.all(fwhm == fwhm[0]):
            raise InputError(None, f"organ-level partial-volume correction {opt.pvc!r} takes an isotropic PSF (one "
                                   f"FWHM), got {list(fwhm)} mm; use rbv or iy for an anisotropic PSF")
        pvc = partial_volume_correction(occ, opt.pvc, float(fwhm[0]))
        corrected = [pvc.corrected_activity_mbq(s, occ, r) for s, r in zip(spects, raw)]
        for i in occ.label_ids:
            if i not in recovery and i in pvc.recovery:  # a manual recovery coefficient wins
                act[i] = np.array([c[i] for c in corrected])
                correction[i] = opt.pvc
        warns.append(f"organ activities corrected for partial volume ({opt.pvc}, {pvc.psf_fwhm_mm:g} mm FWHM "
                     "Gaussian PSF); the voxel TIA map is NOT corrected (that would need deconvolution)")
        if pvc.condition_number is not None and pvc.condition_number > 100:
            warns.append(f"geometric transfer matrix condition number {pvc.condition_number:.3g}: noise in the "
                         "organ activities is amplified by up to this factor")
    lp = float(decay_constant_per_h)
    fits: dict[int, TacFit] = {}
    unc_fits: dict[int, TacFit] = {}
    for i in occ.label_ids:
        teff = opt.population_effective_half_life_h.get(names[i])
        k_pop = np.log(2.0) / float(teff) if teff else None
        kw = dict(model_names=opt.models, error_model=opt.error_model, head=opt.head, tail=opt.tail,
                  population_effective_rate_per_h=k_pop, source=names[i])
        if reduced:
            fits[i] = reduced_fit(t, act[i], lp, opt.reduced, names[i], opt.prior, opt.error_model)
        else:
            fits[i] = fit_tac(t, act[i], lp, **kw)
        if correction[i] == "gtm":  # not a constant factor: fit the measured curve for the voxel check
            unc_fits[i] = (reduced_fit(t, act_unc[i], lp, opt.reduced, names[i], opt.prior, opt.error_model)
                           if reduced else fit_tac(t, act_unc[i], lp, **kw))
        elif correction[i] in ("rbv", "iy") and opt.voxel_head == "organ" and not reduced and t.size > 1:
            unc_fits[i] = fit_tac(t, act_unc[i], lp, **kw)  # the measured curve's shape, for the uncorrected map

    # voxel level, concentrations in MBq/mL
    conc = [np.asarray(s.array, np.float64) * 1e-6 for s in spects]
    conc_pvc = None if vpvc is None else [np.asarray(x, np.float64) * 1e-6 for x in vpvc.corrected]
    if opt.smooth_fwhm_mm:
        conc = smooth_stack(conc, grid.voxel_size_mm, opt.smooth_fwhm_mm)
        if conc_pvc is not None:
            conc_pvc = smooth_stack(conc_pvc, grid.voxel_size_mm, opt.smooth_fwhm_mm)
        warns.append(f"voxel TIA computed after {opt.smooth_fwhm_mm:g} mm FWHM smoothing, organ curves without: "
                     "the voxel sums over small structures fall short of the organ TIA by the spill-out")
    any_lab = occ.any_label()
    mask = any_lab > 0
    # organ TIA as measured (before any recovery correction), for the voxel check and the organ shapes
    factor = {i: 1.0 for i in occ.label_ids}
    for i in occ.label_ids:
        if correction[i] == "manual":
            factor[i] = recovery[i]
        elif correction[i] == "rc":
            factor[i] = pvc.recovery[i]
    organ_tia_unc = {i: unc_fits[i].tia_mbq_h if i in unc_fits else fits[i].tia_mbq_h * factor[i]
                     for i in occ.label_ids}
    if vpvc is not None:  # the voxel map is of the corrected images: check it against the corrected organ TIA
        organ_tia_unc = {i: fits[i].tia_mbq_h * factor[i] for i in occ.label_ids}
        act_map = act  # organ-shape voxels: the corrected organ curves
    else:
        act_map = act_unc
    method = opt.voxel_method
    if reduced:
        method = "organ-shape"
        src = f" of {opt.prior.source}" if opt.prior is not None and opt.reduced != "haenscheid" else ""
        warns.append(f"reduced protocol ({t.size} scan{'s' if t.size > 1 else ''}): organ TIA by {opt.reduced}{src}; "
                     "voxel TIA = organ TIA / organ activity x voxel activity (organ shape)")
    elif t.size == 1:
        method = "organ-shape"
        warns.append("single time point: voxel TIA = organ single-time-point factor x voxel activity")
    # the voxel fits' area before the first scan: from the shape of the measured organ curves for a
    # map of the measured images (so organ-level corrections leave the voxel map as it is), of the
    # corrected curves for a map of voxel-corrected images
    head_measured = head_factors = {}
    if method == "fit":
        measured = {i: (unc_fits[i], act_unc[i]) if i in unc_fits else (fits[i], act[i]) for i in occ.label_ids}
        head_measured = _head_factors(opt.voxel_head, measured, vol, t, names, warns)
        head_factors = (_head_factors(opt.voxel_head, {i: (fits[i], act[i]) for i in occ.label_ids}, vol, t, names,
                                      warns) if vpvc is not None else head_measured)
        warns[:] = list(dict.fromkeys(warns))  # a label named once, though both maps fell back for it
    tia_unc_img = None
    if vpvc is not None:
        unc_tia = {}
        if method == "organ-shape":  # the organ TIA of the measured curves, for the uncorrected map
            for i in occ.label_ids:
                unc_tia[i] = (fits[i].tia_mbq_h * factor[i] if correction[i] == "manual" else
                              fit_tac(t, act_unc[i], lp, model_names=opt.models, error_model=opt.error_model,
                                      head=opt.head, tail=opt.tail, source=names[i]).tia_mbq_h)
        tia_unc, _, _ = _voxel_tia(method, conc, t, lp, mask, opt, occ, vol, act_unc, unc_tia, head_measured)
        tia_unc_img = grid.with_array(np.where(mask, tia_unc, 0.0).astype(np.float32), unit="MBq*h/mL",
                                      time_h=t.tolist(), partial_volume_correction="none")
        conc = conc_pvc
    tia, quality, code = _voxel_tia(method, conc, t, lp, mask, opt, occ, vol, act_map, organ_tia_unc, head_factors)
    tia = np.where(mask, tia, 0.0)
    vv = grid.voxel_volume_ml
    check = {}
    for i in occ.label_ids:
        s = occ.weighted_sum(i, tia) * vv
        o = organ_tia_unc[i]
        check[i] = {"voxel_sum_mbq_h": s, "organ_tia_mbq_h": o, "ratio": s / o if o > 0 else None}
    meta = {"time_h": t.tolist()}
    return KineticsResult(
        label_names=names, volume_ml=vol, activity_mbq=act, activity_uncorrected_mbq=act_unc, fits=fits,
        tia=grid.with_array(tia.astype(np.float32), unit="MBq*h/mL", **meta),
        quality=grid.with_array(quality.astype(np.float32), unit="1"),
        status=grid.with_array(code.astype(np.uint8), unit="code"),
        voxel_check=check, occupancy=occ, time_h=t, decay_constant_per_h=lp, voxel_method=method,
        warnings=tuple(warns), partial_volume=pvc, correction=correction, voxel_pvc=vpvc,
        tia_uncorrected=tia_unc_img, voxel_head_factors={i: h for i, (h, _) in head_factors.items()})


def _head_factor(voxel_head: str, fit, first_activity: float, t) -> tuple[float, str]:
    """The head factor (area before the first scan over ``t_1 c_1``, dimensionless) of one label.

    Parameters
    ----------
    voxel_head : {"organ", "linear", "constant"}
        "linear" 0.5, "constant" 1.0; "organ": the label's chosen fitted model,
        ``integral_0^t1 A / (t_1 A(t_1))``, clipped to [0, 10].
    fit : TacFit
        The label's organ-level fit.
    first_activity : float
        The measured activity of the curve at the first scan (any unit of the fit's data).
    t : numpy.ndarray
        Scan times, h.

    Returns
    -------
    factor : float
    source : str
        "fit", or why the linear rise (0.5) or a clipped value was used: no fitted model, a model
        not positive at ``t_1``, or a model more than 25 % off the measured first scan.
    """
    if voxel_head == "linear":
        return 0.5, "linear"
    if voxel_head == "constant":
        return 1.0, "constant"
    chosen = getattr(fit, "chosen", None)
    t1 = float(t[0])
    if chosen is None or t1 <= 0:
        return 0.5, "no fitted model: linear rise"
    at_t1 = float(chosen.evaluate(t1))
    head = float(chosen.integrate(0.0, t1))
    if not (np.isfinite(at_t1) and np.isfinite(head)) or at_t1 <= 0:
        return 0.5, "fitted model not positive at the first scan: linear rise"
    if first_activity > 0 and abs(at_t1 / first_activity - 1.0) > 0.25:
        return 0.5, (f"fitted model {100 * (at_t1 / first_activity - 1):+.0f} % off the first scan: "
                     "linear rise")
    h = head / (t1 * at_t1)
    if h > 10.0:
        return 10.0, f"fit ({h:.3g}), clipped to 10"
    return h, "fit"


def _head_factors(voxel_head: str, curves: dict, vol: dict, t, names: dict, warns: list) -> dict:
    """Label id -> ``(head factor, weight)`` for :func:`organ_head_factors` from ``curves`` (label id ->
    (fit, activity per scan)); the weight is the label's mean concentration at the first scan
    (activity / volume), so that a voxel shared by a hot and a cold label takes mostly the hot
    one's shape. A label whose factor is not its fit's is named in ``warns``."""
    out = {}
    for i, (fit, activity) in curves.items():
        first = float(np.asarray(activity, float)[0]) if len(activity) else 0.0
        h, source = _head_factor(voxel_head, fit, first, t)
        if source not in ("fit", "linear", "constant") and vol.get(i, 0.0) > 0:
            warns.append(f"voxel TIA before the first scan, {names[i]}: {source}")
        out[i] = (h, max(first, 0.0) / vol[i] if vol.get(i, 0.0) > 0 else 0.0)
    return out


def _voxel_tia(method, conc, t, lp, mask, opt, occ, vol, act, organ_tia, head_factors):
    """Voxel TIA by the voxel method ("fit" or "organ-shape"; organ curves ``act`` (MBq), TIA ``organ_tia``;
    ``head_factors`` label id -> (factor, weight) for the fit's area before the first scan)."""
    if method == "fit":
        head = organ_head_factors(occ.fractions, [head_factors[i][0] for i in occ.label_ids],
                                  [head_factors[i][1] for i in occ.label_ids])
        return voxel_tia_fit(conc, t, lp, mask=mask, head=head, n_tail=opt.n_tail)
    if method == "organ-shape":
        g = np.zeros((len(occ.label_ids), t.size))
        gt = np.zeros(len(occ.label_ids))
        for n, i in enumerate(occ.label_ids):
            if vol[i] > 0:
                g[n] = act[i] / vol[i]
                gt[n] = organ_tia[i] / vol[i]
        return voxel_tia_organ_shape(conc, occ.fractions, g, gt)
    raise ValueError(f"voxel method must be 'fit' or 'organ-shape', not {method!r}")
