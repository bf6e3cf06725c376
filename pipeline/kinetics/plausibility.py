"""The kinetics plausibility gate: fitted curves and TIAs against what physics allows.

Checks (each a :class:`pipeline.qc.Check`, written to ``fits.json`` under ``qc``):

Extrapolated share (:data:`WARN_EXTRAPOLATED_SHARE`, :data:`FAIL_EXTRAPOLATED_SHARE`)
    The chosen model's integral before the first scan and after the last, as
    shares of its TIA. These parts come from the model, not from measurements.
    With the usual protocol (last scan at 5-7 d for Lu-177) organ tails are
    5-15 % and lesion tails up to about 30 % (sample patient: 4-9 % organs,
    30 % bone lesion): above 35 % warns (sampling shorter than usual for this
    curve); above 50 % the unmeasured part dominates the TIA and the organ
    (fixed ids 1-6) fails. For the body and lesions it warns only: their TIA
    sets no limit of the treatment.
Effective half-life (:func:`_half_life_check`)
    Biological clearance cannot be negative: the slowest effective half-life
    of the chosen model may not exceed the physical half-life beyond two
    standard deviations of the fitted biological rate (warn when it exceeds it
    at all). For a model-free estimate, its fitted tail rate is checked the same way.
Organ TIA (:data:`WARN_TIA_RATIO`, :data:`FAIL_TIA_RATIO`)
    No structure can hold more than all the injected activity for ever:
    TIA <= A0 / lambda_phys (MBq*h). Same tolerances as the ingest's activity
    in the field of view (calibrator +-5 %, quantitative SPECT +-10 %):
    warn above 1.05, fail above 1.20. The voxel TIA map's total is checked the same way.
Voxel-level partial-volume correction (:data:`WARN_PVC_TOTAL_CHANGE`, :data:`FAIL_PVC_TOTAL_CHANGE`)
    Per time point, the relative change of the field-of-view total made by the correction before
    it is rescaled to the observed total: warn above 5 %, fail above 25 %.
"""

from __future__ import annotations

import math

import numpy as np

from ..qc import Check, check_upper

__all__ = ["kinetics_checks", "WARN_EXTRAPOLATED_SHARE", "FAIL_EXTRAPOLATED_SHARE", "WARN_TIA_RATIO",
           "FAIL_TIA_RATIO"]

WARN_EXTRAPOLATED_SHARE = 0.35
FAIL_EXTRAPOLATED_SHARE = 0.50
WARN_TIA_RATIO = 1.05
FAIL_TIA_RATIO = 1.20
#: Voxel-level partial-volume correction: change of the field-of-view total before the rescaling
#: (the PSF moves activity, it does not create any; measured 0.1-0.5 % on the sample patient with
#: the right PSF). Beyond 5 % the PSF or the regions do not fit the image; beyond 25 % the
#: correction is not trusted.
WARN_PVC_TOTAL_CHANGE = 0.05
FAIL_PVC_TOTAL_CHANGE = 0.25
#: Labels whose extrapolated share can fail (DESIGN ids: kidneys, liver, spleen, marrow, vertebrae).
GATED_ORGANS = (1, 2, 3, 4, 5, 6)
_SOURCE_CAL = "calibrator +-5 %, quantitative SPECT +-10 %"


def _extrapolation_checks(label: int, name: str, fit, path) -> list[Check]:
    if fit.chosen is None or not fit.time_h.size or not fit.tia_mbq_h > 0:
        return []
    parts = fit._parts()
    fail = FAIL_EXTRAPOLATED_SHARE if label in GATED_ORGANS else math.inf
    out = []
    for key, what in (("before_first_point", "before the first scan"), ("after_last_point", "after the last scan")):
        share = float(parts[key]) / float(fit.tia_mbq_h)
        check = check_upper(f"tia_share_{key}", share, "1", WARN_EXTRAPOLATED_SHARE, fail,
                            f"share of the {fit.chosen.model} TIA {what}: model, not measurement", name, path)
        if label not in GATED_ORGANS:
            check = Check(check.name, check.value, check.unit,
                          f"<= {WARN_EXTRAPOLATED_SHARE:g} (warn above; body and lesions never fail)",
                          check.source, check.status, name, check.path)
        out.append(check)
    return out


def _slowest_rate(fit) -> tuple[float, float] | None:
    """Biological rate (1/h) of the slowest clearance of the chosen model and its SD (``None``: n/a)."""
    chosen = fit.chosen
    names = list(chosen.param_names)
    rates = [(float(chosen.params[n]), float(chosen.param_sd[n]) if np.isfinite(chosen.param_sd[n]) else math.inf)
             for n, pname in enumerate(names) if pname.startswith("lambda") and "uptake" not in pname]
    return min(rates) if rates else None


def _half_life_check(name: str, fit, path) -> Check | None:
    lp = float(fit.decay_constant_per_h)
    t_phys = math.log(2.0) / lp
    if fit.chosen is not None:
        slow = _slowest_rate(fit)
        if slow is None:
            return None
        rate, sd = slow
        source = f"{fit.chosen.model} slowest biological rate {rate:.4g} +- {sd:.3g} /h"
    elif fit.model_free is not None and fit.model_free.tail == "fitted":
        rate, sd = float(fit.model_free.tail_rate_per_h) - lp, 0.0
        source = f"model-free fitted tail rate {fit.model_free.tail_rate_per_h:.4g} /h"
    else:
        return None
    t_eff = math.log(2.0) / (rate + lp) if rate + lp > 0 else math.inf
    if rate >= 0:
        status = "pass"
    elif rate + 2.0 * sd >= 0:
        status = "warn"
    else:
        status = "fail"
    return Check("effective_over_physical_half_life", t_eff / t_phys, "1",
                 "<= 1 (biological clearance >= 0; fail beyond 2 SD of the fitted rate)",
                 f"{source}; physical half-life {t_phys:.4g} h", status, name, None if path is None else str(path))


def kinetics_checks(result, injected_mbq: float | None, path=None) -> list[Check]:
    """Every check of the kinetics gate (module docstring).

    Parameters
    ----------
    result : KineticsResult
    injected_mbq : float or None
        Injected activity, MBq (organ TIA bound skipped when unknown).
    path : path, optional
        The file named in a failure (the register folder).

    Returns
    -------
    list of Check
    """
    out = []
    lp = float(result.decay_constant_per_h)
    bound = injected_mbq / lp if injected_mbq else None
    for label, name in result.label_names.items():
        fit = result.fits[label]
        out.extend(_extrapolation_checks(label, name, fit, path))
        hl = _half_life_check(name, fit, path)
        if hl is not None:
            out.append(hl)
        if bound is not None:
            out.append(check_upper("tia_over_injected_times_mean_life", float(fit.tia_mbq_h) / bound, "1",
                                   WARN_TIA_RATIO, FAIL_TIA_RATIO,
                                   f"TIA {fit.tia_mbq_h:.5g} MBq*h, A0/lambda_phys = {bound:.5g} MBq*h: no organ holds "
                                   f"more than all the injected activity for ever ({_SOURCE_CAL})", name, path))
    vp = getattr(result, "voxel_pvc", None)
    for n, info in enumerate(vp.info if vp is not None else []):
        r = info["raw_total_ratio"]
        out.append(check_upper("pvc_fov_total_change_before_rescale", abs(r - 1.0) if r is not None else 0.0, "1",
                               WARN_PVC_TOTAL_CHANGE, FAIL_PVC_TOTAL_CHANGE,
                               "voxel partial-volume correction moves activity, it creates none (sum after / "
                               "before, before the rescaling to the observed total)", f"time point {n + 1}", path))
    if bound is not None:
        total = float(np.asarray(result.tia.array, np.float64).sum()) * result.tia.voxel_volume_ml
        out.append(check_upper("tia_map_total_over_injected_times_mean_life", total / bound, "1",
                               WARN_TIA_RATIO, FAIL_TIA_RATIO,
                               f"voxel TIA map total {total:.5g} MBq*h, A0/lambda_phys = {bound:.5g} MBq*h "
                               f"({_SOURCE_CAL})", "tia map", path))
    return out
