"""Uncertainty of a reduced-protocol cycle's organ TIA (one or two scans and an earlier cycle's kinetics).

A later cycle of a course imaged once or twice gets its organ TIA from its scans ``A_i`` at
``t_i`` and an assumed curve shape (:mod:`pipeline.kinetics.reduced`, recorded per organ in its
``fits.json`` under ``single_time_point``)::

    prior_cycle  TIA = s(A, p) I(p),  s = sum_i A_i f(t_i; p) / sum_i f(t_i; p)^2,  I = int_0^inf f(t; p) dt
    madsen       TIA = A_n exp(k(p) t_n) / k(p),   k the terminal effective rate of f(.; p)
    haenscheid   TIA = A_n 2 t_n / ln 2

with ``f(.; p)`` the organ's fitted curve of the earlier cycle (parameters ``p`` with covariance
``C_p`` from that cycle's ``fits.json``, chosen candidate) and ``A_n`` the latest scan. First-order
propagation (Gear et al. 2018, eq. 3), relative to the TIA:

- ``activity_noise``: ``sum_i (dTIA/dA_i sigma_i)^2``, ``sigma_i`` the per-scan SD of the same
  noise model as for fitted cycles (no chi-square inflation: with one or two scans and one free
  scale there is no residual to estimate it from);
- ``registration``: ``sum_i (dTIA/dA_i r_i A_i)^2``, ``r_i`` the misregistration SD of scan ``i``;
- ``prior_kinetics``: ``g_p^T C_p g_p`` with ``g_p = dTIA/dp`` (complex step, exact to rounding):
  the shape of the earlier curve (prior_cycle), or its terminal rate ``k`` (madsen:
  ``dTIA/dk = TIA (t_n - 1/k)``);
- ``reduced_method``: Hänscheid's approximation (see :func:`haenscheid_method_relative_sd`).

The Monte Carlo draws the scans as for the fitted cycles, ``p* ~ N(p, C_p)`` (rates kept >= 0),
evaluates the same formula for every draw (no refit: the formula is the estimator) and multiplies
by ``1 + u_H z`` for Hänscheid's method uncertainty.

Not included (stated in the output): a change of the kinetics between the cycles beyond the
earlier fit's own uncertainty, and the model choice of the earlier cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..kinetics.models import MODEL_NAMES, evaluate, exponential_terms, get_model, integrate

__all__ = ["REDUCED_SOURCES", "REDUCED_SOURCE_REFERENCES", "HAENSCHEID_STATED_ERROR", "HAENSCHEID_RANGE",
           "ReducedProtocol",
           "haenscheid_method_relative_sd", "reduced_tia", "reduced_tia_many", "reduced_gradients",
           "reduced_relative_variances", "reduced_ratio_draws", "reduced_protocol_of", "prior_fits_path"]

#: Sources that only a reduced-protocol cycle has (added to its budget after ``SOURCE_NAMES``).
REDUCED_SOURCES = ("prior_kinetics", "reduced_method")
#: Hänscheid et al. 2018: the approximation is within this relative error for t/T_eff in :data:`HAENSCHEID_RANGE`.
HAENSCHEID_STATED_ERROR = 0.10
#: Range of t / T_eff where Hänscheid et al. 2018 state the 10 % accuracy.
HAENSCHEID_RANGE = (0.77, 2.44)
#: Why the reduced-protocol sources are what they are (written with a reduced cycle's result).
REDUCED_SOURCE_REFERENCES = {
    "activity_noise": "the scans' activities with the same per-scan SD as a fitted cycle (settings.activity_noise), "
                      "through dTIA/dA_i of the reduced formula; no chi-square inflation (one free scale, at most "
                      "two scans: no residual to estimate it from)",
    "registration": "misregistration SD of each scan (as a fitted cycle) through dTIA/dA_i; 0 for a single scan "
                    "(the reference time point)",
    "prior_kinetics": "the earlier cycle's organ curve: g^T C g with g = dTIA/dp (complex step) and C the chosen "
                      "candidate's parameter covariance in the earlier fits.json (prior_cycle: the curve shape; "
                      "madsen: its terminal effective rate k, dTIA/dk = TIA (t - 1/k)); a change of the kinetics "
                      "between the cycles beyond that fit's own uncertainty is not included",
    "reduced_method": "Hanscheid et al. J Nucl Med 2018;59:75 state A(t) 2t/ln2 within 10 % of the TIA for "
                      "0.77 <= t/T_eff <= 2.44; rectangular error of half-width 10 % (or the mono-exponential "
                      "error 1 - x 2^(1-x), x = t/T_eff, where larger): SD 0.10/sqrt(3) = 5.8 %; 0 for prior_cycle "
                      "and madsen (exact for the assumed curve, whose uncertainty is prior_kinetics)",
}
#: The reduced-protocol formulas (``single_time_point.method_used``) this module propagates.
_FORMULA_METHODS = ("prior_cycle", "madsen", "haenscheid")


@dataclass(frozen=True)
class ReducedProtocol:
    """How a reduced cycle's organ TIA was computed, with what its uncertainty needs.

    Attributes
    ----------
    method : {"prior_cycle", "madsen", "haenscheid"}
        The formula used (``single_time_point.method_used``).
    prior_model : str or None
        Chosen model of the earlier cycle's organ curve (prior_cycle, madsen).
    prior_params : tuple of float
        Its parameters in model order (activity in MBq, rates in 1/h).
    prior_covariance : tuple of tuple of float
        Their covariance (units of the parameters squared), from the earlier ``fits.json``.
    prior_source : str or None
        The earlier cycle's ``fits.json``.
    method_relative_sd : float
        Relative SD of the formula itself (Hänscheid's approximation; 0 for the others).
    t_over_teff : float or None
        Latest scan time over the effective half-life (Hänscheid), when it can be estimated.
    teff_source : str
        Where the effective half-life of ``t_over_teff`` comes from (or why it is unknown).
    """

    method: str
    prior_model: str | None = None
    prior_params: tuple = ()
    prior_covariance: tuple = ()
    prior_source: str | None = None
    method_relative_sd: float = 0.0
    t_over_teff: float | None = None
    teff_source: str = ""

    def describe(self) -> dict:
        """JSON-ready description (``uncertainty.json``, per organ ``reduced_protocol``)."""
        out = {"method": self.method, "prior_source": self.prior_source, "prior_model": self.prior_model}
        if self.prior_model:
            sd = np.sqrt(np.maximum(np.diag(np.asarray(self.prior_covariance, float)), 0.0))
            names = get_model(self.prior_model).param_names
            out["prior_params"] = dict(zip(names, (float(v) for v in self.prior_params)))
            out["prior_param_sd"] = dict(zip(names, (float(v) for v in sd)))
        if self.method == "haenscheid":
            out.update({"method_relative_sd": self.method_relative_sd, "t_over_teff": self.t_over_teff,
                        "teff_source": self.teff_source,
                        "method_uncertainty_source": (
                            f"Hanscheid et al. J Nucl Med 2018;59:75: A(t) 2t/ln2 within "
                            f"{100 * HAENSCHEID_STATED_ERROR:g} % of the TIA for {HAENSCHEID_RANGE[0]} <= t/T_eff "
                            f"<= {HAENSCHEID_RANGE[1]} (for a mono-exponential the formula over the truth is "
                            "x 2^(1-x), x = t/T_eff: never above 1, 0.90 at both ends). Taken as a rectangular "
                            "(GUM type B) error of half-width a = 10 % (or 1 - x 2^(1-x) where larger): "
                            "SD a/sqrt(3), which is also the RMS of a one-sided error uniform in 0..a")})
        return out


def haenscheid_method_relative_sd(t_over_teff: float | None) -> tuple[float, bool]:
    """Relative SD of Hänscheid's single-time-point TIA, and whether ``t/T_eff`` is in the stated range.

    Parameters
    ----------
    t_over_teff : float or None
        Scan time over the organ's effective half-life (dimensionless); None when unknown.

    Returns
    -------
    relative_sd : float
        ``a / sqrt(3)`` with ``a = max(0.10, 1 - x 2^(1-x))`` (Hänscheid et al. 2018 state 10 % for
        0.77 <= x <= 2.44; outside it the mono-exponential error ``1 - x 2^(1-x)`` where larger).
    in_range : bool or None
        None when ``t_over_teff`` is unknown.
    """
    a = HAENSCHEID_STATED_ERROR
    if t_over_teff is None or not np.isfinite(t_over_teff) or t_over_teff <= 0:
        return a / math.sqrt(3.0), None
    x = float(t_over_teff)
    a = max(a, 1.0 - x * 2.0 ** (1.0 - x))
    return a / math.sqrt(3.0), bool(HAENSCHEID_RANGE[0] <= x <= HAENSCHEID_RANGE[1])


def _terminal_index(model: str, params, lp: float) -> int:
    """Index (in :func:`exponential_terms` order) of the slowest term with a positive coefficient."""
    coef, rate = exponential_terms(model, np.asarray(params, float), lp)
    rate = np.where(np.real(coef) > 0, np.real(rate), np.inf)
    return int(np.argmin(rate))


def reduced_tia(red: ReducedProtocol, time_h, activity_mbq, lp: float, params=None):
    """TIA (MBq*h) of the reduced-protocol formula; works on complex ``activity_mbq`` / ``params``.

    Parameters
    ----------
    red : ReducedProtocol
    time_h, activity_mbq : array_like, shape (N,)
        This cycle's scan times (h) and organ activities (MBq).
    lp : float
        Physical decay constant, 1/h.
    params : array_like, optional
        The earlier curve's parameters (default ``red.prior_params``).
    """
    t = np.asarray(time_h, float)
    a = np.asarray(activity_mbq)
    if red.method == "haenscheid":
        return a[-1] * 2.0 * t[-1] / math.log(2.0)
    p = np.asarray(red.prior_params if params is None else params)
    if red.method == "prior_cycle":
        f = evaluate(red.prior_model, p, t, lp)
        return np.sum(a * f) / np.sum(f * f) * integrate(red.prior_model, p, 0.0, np.inf, lp)
    if red.method == "madsen":
        _, rate = exponential_terms(red.prior_model, p, lp)
        k = rate[_terminal_index(red.prior_model, np.real(p), lp)]
        return a[-1] * np.exp(k * t[-1]) / k
    raise ValueError(f"unknown reduced-protocol method {red.method!r}")


def _terms_many(model: str, p: np.ndarray, lp: float):
    """Coefficients and effective rates of many parameter vectors (M, K) -> (M, terms) each."""
    if model == "mono":
        c, k = [p[:, 0]], [p[:, 1]]
    elif model == "uptake_washout":
        c, k = [p[:, 0], -p[:, 0]], [p[:, 1], p[:, 2]]
    elif model == "bi":
        c, k = [p[:, 0], p[:, 2]], [p[:, 1], p[:, 3]]
    elif model == "tri_uptake":
        c, k = [p[:, 0], p[:, 2], -(p[:, 0] + p[:, 2])], [p[:, 1], p[:, 3], p[:, 4]]
    else:
        raise ValueError(f"unknown model {model!r}")
    return np.stack(c, 1), np.stack(k, 1) + lp


def reduced_tia_many(red: ReducedProtocol, time_h, activity_mbq, lp: float, params) -> np.ndarray:
    """TIA (MBq*h) of many draws: ``activity_mbq`` (M, N), ``params`` (M, K) -> (M,).

    The terms are those of :func:`pipeline.kinetics.models.exponential_terms` (same order), so the
    madsen draws use the same terminal phase as the central estimate.
    """
    t = np.asarray(time_h, float)
    a = np.asarray(activity_mbq, float)
    if red.method == "haenscheid":
        return a[:, -1] * 2.0 * t[-1] / math.log(2.0)
    c, k = _terms_many(red.prior_model, np.asarray(params, float), lp)
    if red.method == "prior_cycle":
        f = np.einsum("mj,mnj->mn", c, np.exp(-k[:, None, :] * t[None, :, None]))
        return np.sum(a * f, axis=1) / np.sum(f * f, axis=1) * np.sum(c / k, axis=1)
    j = _terminal_index(red.prior_model, red.prior_params, lp)
    return a[:, -1] * np.exp(k[:, j] * t[-1]) / k[:, j]


def reduced_gradients(red: ReducedProtocol, time_h, activity_mbq, lp: float) -> tuple[np.ndarray, np.ndarray]:
    """``dTIA/dA_i`` (h, shape (N,)) and ``dTIA/dp`` (shape (K,), empty for Hänscheid), by complex step."""
    a = np.asarray(activity_mbq, float)
    p = np.asarray(red.prior_params, float)
    h = 1e-30
    g_a = np.empty(a.size)
    for i in range(a.size):
        q = a.astype(complex)
        q[i] += 1j * h
        g_a[i] = np.imag(reduced_tia(red, time_h, q, lp)) / h
    g_p = np.empty(p.size)
    for j in range(p.size):
        q = p.astype(complex)
        q[j] += 1j * h
        g_p[j] = np.imag(reduced_tia(red, time_h, a, lp, q)) / h
    return g_a, g_p


def reduced_relative_variances(red: ReducedProtocol, time_h, activity_mbq, sigma_mbq, registration_relative_sd,
                               lp: float, tia_mbq_h: float) -> dict:
    """Relative variance of the TIA per source (first order): activity_noise, registration,
    prior_kinetics, reduced_method (dimensionless)."""
    y = np.asarray(activity_mbq, float)
    g_a, g_p = reduced_gradients(red, time_h, y, lp)
    sig = np.asarray(sigma_mbq, float)
    reg = np.asarray(registration_relative_sd, float) * y
    cov = np.asarray(red.prior_covariance, float)
    var_p = float(g_p @ cov @ g_p) if g_p.size else 0.0
    return {"activity_noise": float(np.sum((g_a * sig) ** 2)) / tia_mbq_h ** 2,
            "registration": float(np.sum((g_a * reg) ** 2)) / tia_mbq_h ** 2,
            "prior_kinetics": max(var_p, 0.0) / tia_mbq_h ** 2,
            "reduced_method": red.method_relative_sd ** 2}


def reduced_ratio_draws(red: ReducedProtocol, time_h, activity_mbq, sigma_mbq, registration_relative_sd,
                        lp: float, tia_mbq_h: float, rng, n: int) -> np.ndarray:
    """TIA*/TIA of ``n`` Monte Carlo draws: scans resampled (noise and misregistration), the earlier
    curve's parameters drawn from ``N(p, C_p)`` (rates >= 0), the formula evaluated, Hänscheid's
    method error drawn as ``1 + u_H z``."""
    y = np.asarray(activity_mbq, float)
    sig = np.asarray(sigma_mbq, float)
    reg = np.asarray(registration_relative_sd, float) * y
    z = rng.standard_normal((3, n, y.size))
    y_star = y + sig * z[0] + reg * z[1]
    if red.prior_model:
        p = np.asarray(red.prior_params, float)
        cov = np.asarray(red.prior_covariance, float)
        # symmetric square root (works for a semi-definite covariance, e.g. an amplitude that does not matter)
        w, v = np.linalg.eigh(0.5 * (cov + cov.T))
        root = v * np.sqrt(np.maximum(w, 0.0))
        p_star = p + rng.standard_normal((n, p.size)) @ root.T
        rate = np.ones(p.size, bool)
        rate[list(get_model(red.prior_model).activity_params)] = False
        p_star[:, rate] = np.maximum(p_star[:, rate], 0.0)
    else:
        p_star = np.zeros((n, 0))
    tia = reduced_tia_many(red, time_h, y_star, lp, p_star)
    method = 1.0 + red.method_relative_sd * rng.standard_normal(n)
    return tia / tia_mbq_h * method


def prior_fits_path(fits: dict, fits_path: Path, explicit: Path | None = None) -> Path | None:
    """The earlier cycle's ``fits.json`` of a reduced cycle, or None when it names none.

    ``explicit`` (``--prior-fits``) first; else ``options.reduced_protocol.prior_fits`` as written
    (absolute, or relative to the working folder of the workflow), else the cycle of that name
    beside this one (``<course results>/<cycle>/kinetics/fits.json``: the results moved).
    """
    if explicit is not None:
        if not Path(explicit).is_file():
            raise InputError(explicit, "earlier cycle's fits.json not found")
        return Path(explicit)
    named = ((fits.get("options") or {}).get("reduced_protocol") or {}).get("prior_fits")
    if not named:
        return None
    p = Path(named)
    if p.is_file():
        return p
    sibling = Path(fits_path).parent.parent.parent / p.parent.parent.name / "kinetics" / "fits.json"
    if sibling.is_file():
        return sibling
    raise InputError(fits_path, f"names the earlier cycle's fits {named}, which is not found (nor {sibling}); "
                                "pass it with --prior-fits")


def _prior_covariance(organ: dict, model: str, params: tuple, source) -> tuple:
    """Covariance of the chosen candidate in the earlier ``fits.json`` (K x K, finite)."""
    cand = next((c for c in organ.get("candidates") or () if c.get("model") == model), None)
    cov = None if cand is None else cand.get("covariance")
    k = len(params)
    try:
        arr = np.array([[np.nan if v is None else float(v) for v in row] for row in cov], float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (k, k) or not np.all(np.isfinite(arr)):
        raise InputError(source, f"the chosen {model} fit has no finite parameter covariance "
                                 "(candidates[].covariance): the earlier curve's uncertainty is unknown")
    return tuple(tuple(float(v) for v in row) for row in arr)


def _two_scan_teff_h(time_h, activity_mbq) -> float | None:
    """Effective half-life (h) between two scans, None when the activity does not fall."""
    t, y = (np.asarray(v, float) for v in (time_h, activity_mbq))
    if t.size < 2 or not (y[-2] > y[-1] > 0) or not t[-1] > t[-2]:
        return None
    return float(math.log(2.0) * (t[-1] - t[-2]) / math.log(y[-2] / y[-1]))


def reduced_protocol_of(name: str, organ: dict, prior_fits: dict | None, prior_path,
                        fits_path) -> ReducedProtocol | None:
    """The :class:`ReducedProtocol` of one organ of a reduced cycle's ``fits.json``, None when not reduced.

    Parameters
    ----------
    name : str
        Structure name (its entry in the earlier ``fits.json``).
    organ : dict
        The organ's entry of this cycle's ``fits.json``.
    prior_fits : dict or None
        The earlier cycle's parsed ``fits.json`` (needed for prior_cycle and madsen).
    prior_path, fits_path : path
        For the error messages and the record.

    Raises
    ------
    InputError
        The earlier curve is missing, has no covariance, or does not reproduce this cycle's TIA
        (the earlier fits changed after this cycle's kinetics ran).
    """
    stp = organ.get("single_time_point") or {}
    used = stp.get("method_used") or organ.get("method")
    if not stp.get("reduced_protocol") or used not in _FORMULA_METHODS:
        return None
    lp = float(organ.get("lambda_phys_per_h") or 0.0)
    t, y = organ.get("time_h") or [], organ.get("activity_mbq") or []
    if used == "haenscheid":
        teff, src = _two_scan_teff_h(t, y), "the two scans of this cycle"
        if teff is None and stp.get("prior_terminal_effective_half_life_h"):
            teff, src = float(stp["prior_terminal_effective_half_life_h"]), "the earlier cycle's terminal phase"
        if teff is None and prior_fits is not None:
            p = (prior_fits.get("organs") or {}).get(name) or {}
            if p.get("chosen_model") in MODEL_NAMES and isinstance(p.get("chosen_params"), dict):
                _, rate = exponential_terms(p["chosen_model"], p["chosen_params"])
                j = _terminal_index(p["chosen_model"], [p["chosen_params"][n] for n in
                                                        get_model(p["chosen_model"]).param_names],
                                    float(p["chosen_params"].get("lambda_phys_per_h", lp)))
                teff, src = float(math.log(2.0) / np.real(rate[j])), f"the terminal phase in {prior_path}"
        x = float(stp.get("time_h") or t[-1]) / teff if teff else None
        sd, _ = haenscheid_method_relative_sd(x)
        red = ReducedProtocol("haenscheid", method_relative_sd=sd, t_over_teff=x,
                              teff_source=src if teff else "unknown (one scan, no earlier curve): range not checked")
    else:
        if prior_fits is None:
            raise InputError(fits_path, f"{name}: TIA by {used} needs the earlier cycle's fits.json "
                                        "(options.reduced_protocol.prior_fits, or --prior-fits)")
        p = (prior_fits.get("organs") or {}).get(name) or {}
        model, params = p.get("chosen_model"), p.get("chosen_params")
        if model not in MODEL_NAMES or not isinstance(params, dict) or p.get("method") != model:
            raise InputError(prior_path, f"{name}: no fitted curve, but {fits_path} used one ({used})")
        vec = tuple(float(params[n]) for n in get_model(model).param_names)
        red = ReducedProtocol(used, prior_model=model, prior_params=vec,
                              prior_covariance=_prior_covariance(p, model, vec, prior_path),
                              prior_source=str(prior_path))
    tia = float(organ.get("tia_mbq_h") or 0.0)
    again = float(np.real(reduced_tia(red, t, y, lp)))
    if not math.isclose(again, tia, rel_tol=1e-6, abs_tol=1e-9):
        raise InputError(prior_path if red.prior_model else fits_path,
                         f"{name}: {used} with these inputs gives TIA {again:.6g} MBq*h, {fits_path} holds "
                         f"{tia:.6g} (the earlier cycle's fits changed after this cycle's kinetics ran?)")
    return red
