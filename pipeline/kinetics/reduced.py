"""Reduced imaging protocols: one or two scans, with the kinetics of an earlier cycle.

A later cycle of a therapy course is often imaged once or twice. Its organ time-integrated
activity (TIA) then needs an assumption about the curve's shape, chosen explicitly:

``prior_cycle``
    The organ's fitted curve ``f`` of an earlier full-protocol cycle of the same patient (chosen
    model and parameters of its ``fits.json``), scaled to this cycle's scans by least squares,
    ``s = sum(y_i f(t_i)) / sum(f(t_i)^2)``; ``TIA = s * integral_0^inf f``. Exact when only the
    amplitude changed between cycles.
``madsen``
    Madsen et al., Med Phys 2018;45:2318: ``TIA = A(t) e^{k t} / k`` with the patient's own
    effective rate ``k`` (biological + physical, 1/h) of the earlier cycle: the rate of the
    terminal (slowest) phase of its chosen model. Uses the latest scan.
``haenscheid``
    Hänscheid et al., J Nucl Med 2018;59:75: ``TIA = A(t) 2 t / ln 2``, no earlier cycle needed.
    Uses the latest scan. Exact for a mono-exponential at ``t = T_eff``.

A structure without a usable earlier curve (absent from the earlier cycle, or its TIA there came
from a formula rather than a fitted model) falls back to Hänscheid's formula, recorded in the
fit's ``fallbacks``. The physical decay is the same in both cycles (same radionuclide; checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .fitting import ErrorModel, TacFit, check_curve, hanscheid_tia, madsen_tia
from .models import MODEL_NAMES, effective_half_lives_h, evaluate, exponential_terms, integrate

__all__ = ["REDUCED_METHODS", "REDUCED_MAX_SCANS", "PriorKinetics", "prior_from_fits_json", "reduced_fit"]

#: Methods for a cycle with at most :data:`REDUCED_MAX_SCANS` scans.
REDUCED_METHODS = ("prior_cycle", "madsen", "haenscheid")
#: A cycle with this many scans or fewer is a reduced protocol.
REDUCED_MAX_SCANS = 2


@dataclass(frozen=True)
class PriorKinetics:
    """Organ curves of an earlier full-protocol cycle.

    Attributes
    ----------
    source : str
        Where they come from (the earlier cycle's fits.json), recorded in this cycle's fits.json.
    radionuclide : str
    curves : dict
        Structure name -> (model name, parameters mapping incl. ``lambda_phys_per_h``); only
        structures whose earlier TIA came from a fitted model.
    """

    source: str
    radionuclide: str
    curves: dict = field(default_factory=dict)

    def terminal_rate_per_h(self, name: str) -> float:
        """Effective rate of the slowest phase with a positive coefficient, 1/h."""
        model, params = self.curves[name]
        coef, rate = exponential_terms(model, params)
        rate = np.real(rate)[np.real(coef) > 0]
        return float(rate.min())


def prior_from_fits_json(fits: dict, source: str) -> PriorKinetics:
    """The earlier cycle's organ curves from its parsed ``fits.json``."""
    organs = fits.get("organs") if isinstance(fits, dict) else None
    if not isinstance(organs, dict) or not organs:
        raise InputError(source, "holds no organ fits (not a kinetics fits.json)")
    curves = {}
    for name, o in organs.items():
        model, params = o.get("chosen_model"), o.get("chosen_params")
        if model in MODEL_NAMES and isinstance(params, dict) and o.get("method") == model:
            curves[name] = (model, dict(params))
    if not curves:
        raise InputError(source, "no organ of the earlier cycle has a fitted model (was it a reduced protocol too?)")
    return PriorKinetics(source=str(source), radionuclide=str(fits.get("radionuclide", "")), curves=curves)


def reduced_fit(time_h, activity, decay_constant_per_h: float, method: str, name: str,
                prior: PriorKinetics | None = None, error_model: ErrorModel | None = None) -> TacFit:
    """TIA of one organ curve of a reduced protocol (one or two scans).

    Parameters
    ----------
    time_h : array_like, shape (N,)
        Scan times after this cycle's administration, h (N <= 2).
    activity : array_like, shape (N,)
        Organ activity, MBq.
    decay_constant_per_h : float
        Physical decay constant, 1/h.
    method : {"prior_cycle", "madsen", "haenscheid"}
    name : str
        Structure name (to find its earlier curve).
    prior : PriorKinetics, optional
        Needed by ``prior_cycle`` and ``madsen``.
    error_model : ErrorModel, optional

    Returns
    -------
    TacFit
        ``method`` is the method used (after any fallback); ``single_time_point`` holds the
        details (every estimate computed, the earlier cycle, its effective half-life, the scale).
    """
    if method not in REDUCED_METHODS:
        raise InputError(None, f"reduced-protocol method must be one of {REDUCED_METHODS}, got {method!r}")
    t, y = check_curve(time_h, activity, source=name)
    if t.size > REDUCED_MAX_SCANS:
        raise InputError(None, f"{name}: {t.size} scans is not a reduced protocol (at most {REDUCED_MAX_SCANS})")
    em = error_model or ErrorModel()
    base = dict(time_h=t, activity=y, decay_constant_per_h=float(decay_constant_per_h), error_model=em)
    t_last, y_last = float(t[-1]), float(y[-1])
    detail = {"reduced_protocol": method, "time_h": t_last, "n_scans": int(t.size),
              "haenscheid_mbq_h": hanscheid_tia(y_last, t_last)}
    fallbacks = [f"reduced protocol ({t.size} scan{'s' if t.size > 1 else ''}): {method}"]
    if np.all(y <= 0):
        return TacFit("zero", 0.0, 0.0, None, (), None, detail,
                      fallbacks=tuple(fallbacks + ["all activity values are <= 0: TIA set to 0"]), **base)
    used = method
    if method in ("prior_cycle", "madsen"):
        if prior is None:
            raise InputError(None, f"reduced-protocol method {method} needs the kinetics of an earlier cycle")
        detail["prior_source"] = prior.source
        if name not in prior.curves:
            used = "haenscheid"
            fallbacks.append(f"{name}: no fitted curve in the earlier cycle ({prior.source}): Hanscheid's formula used")
        else:
            model, params = prior.curves[name]
            lp_prior = float(params.get("lambda_phys_per_h", decay_constant_per_h))
            if not math.isclose(lp_prior, decay_constant_per_h, rel_tol=1e-6):
                raise InputError(prior.source, f"earlier cycle's physical decay constant {lp_prior:.6g}/h differs from "
                                               f"this cycle's {decay_constant_per_h:.6g}/h (another radionuclide?)")
            k = prior.terminal_rate_per_h(name)
            detail.update({"prior_model": model, "prior_effective_half_lives_h": effective_half_lives_h(model, params),
                           "prior_terminal_effective_half_life_h": math.log(2.0) / k,
                           "madsen_mbq_h": madsen_tia(y_last, t_last, k)})
            f = np.asarray(evaluate(model, params, t), float)
            prior_tia = float(integrate(model, params))
            if np.all(f > 0):
                scale = float(np.sum(y * f) / np.sum(f * f))
                detail.update({"prior_tia_mbq_h": prior_tia, "scale_to_prior": scale,
                               "prior_cycle_mbq_h": scale * prior_tia})
            elif method == "prior_cycle":
                used = "madsen"
                fallbacks.append(f"{name}: the earlier curve is not positive at the scan time: Madsen's formula used")
    tia = detail[f"{used}_mbq_h"]
    detail["method_used"] = used
    # activity noise only (the error model's relative SD per scan, averaged over the scans used); the
    # error of the assumed curve shape is not in it (prior_cycle: none if only the amplitude changed)
    n_used = t.size if used == "prior_cycle" else 1
    sd = abs(float(tia)) * em.relative_sd / math.sqrt(n_used)
    detail["tia_sd_note"] = "activity noise of the scans only (error model); the assumed curve shape is taken as exact"
    return TacFit(used, float(tia), sd, None, (), None, detail, fallbacks=tuple(fallbacks), **base)
