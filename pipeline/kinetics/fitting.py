"""Fitting of time-activity curves, model selection and time-integrated activity.

Error model
-----------
Weighted least squares with a relative error model and a floor::

    sigma_i = relative_sd * max(|y_i|, floor_fraction * max_j |y_j|)

``relative_sd`` (default 0.10) is the assumed relative standard deviation of
one quantitative SPECT measurement of an organ's activity; the floor keeps
the weights finite for zero or negative points. The weights depend on the
data only, so every candidate model is fitted with the same weights and
their weighted residual sums of squares (WRSS) are comparable (Glatting et
al., Med Phys 2007;34:4285). The parameter covariance is ``(J^T J)^-1`` of
the weighted residuals (absolute sigma), multiplied by the reduced
chi-square ``WRSS / (N - K)`` when that exceeds one: the data may widen the
error model, never narrow it.

Model selection
---------------
Corrected Akaike information criterion (physics notes, section 5)::

    AICc = N ln(WRSS / N) + 2K + 2K(K + 1) / (N - K - 1)

computed only where N > K + 1; Akaike weights over the admissible, converged
candidates; the candidate with the largest weight is chosen. Every candidate
is reported. WRSS is floored at ``N * 1e-8`` (a weighted RMS residual of
1e-4, i.e. a relative misfit of 1e-5 with the default error model): below
that two fits are equally exact and the penalty terms decide, which makes
selection on noise-free data well defined.

Fallbacks (recorded in :attr:`TacFit.fallbacks`)
-------------------------------------------------
- all points <= 0: TIA = 0, no fit;
- N = 1: single-time-point formula (Hanscheid 2018, or Madsen 2018 with a
  population effective rate constant when one is given);
- no admissible model (N <= 3 for the mono-exponential): the mono-exponential
  fit, without model selection, when N >= 2;
- the AICc choice fails a chi-square goodness-of-fit test against the
  stated error model (``P(chi2_{N-K} >= WRSS) < 1e-3``: the data are
  incompatible with it even at the assumed uncertainty): the simplest
  fitted model with at least one degree of freedom that passes is used
  (e.g. a bi-exponential with N = 5 = K + 1, outside AICc's domain), and
  the substitution is recorded; if none passes, the AICc choice is kept
  with a warning;
- the chosen fit failed or is not finite: the model-free estimate.

Before the first time point
---------------------------
A fitted model is integrated from t = 0 with its own form: the uptake
models start from 0 at injection, the mono- and bi-exponential extrapolate
their exponentials back to t = 0 (the activity is taken as already present
at injection). ``fits.json`` gives each chosen fit's integral before the
first point, over the measured range and after the last point.

Model-free estimate
-------------------
Trapezoid between the measured points, plus:

- before the first point (``head``): ``"linear"`` (default) assumes the
  activity rises linearly from 0 at t = 0 to the first measurement (area
  ``y_1 t_1 / 2``), the right choice when the first scan is taken during
  uptake; ``"constant"`` back-extrapolates the first value (area ``y_1 t_1``),
  for curves that are already falling at the first scan;
- after the last point (``tail``): ``"fitted"`` (default) a mono-exponential
  through the last two positive points (log-linear), its rate floored at the
  physical decay constant; ``"physical"`` physical decay only (``y_N / lp``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import chi2

from ..errors import InputError
from . import models as _models
from .models import MODEL_NAMES, evaluate, get_model, integrate

__all__ = [
    "ErrorModel",
    "FitResult",
    "ModelFreeResult",
    "TacFit",
    "check_curve",
    "fit_model",
    "fit_models",
    "akaike_weights",
    "aicc",
    "model_free_tia",
    "hanscheid_tia",
    "madsen_tia",
    "fit_tac",
]

#: Upper bound of every biological rate constant, 1/h (half-life 2 min).
MAX_RATE_PER_H = 20.0
#: Function evaluations per start of the optimiser.
MAX_NFEV = 400
#: WRSS floor per point (see module docstring).
WRSS_FLOOR_PER_POINT = 1e-8
#: Chi-square goodness-of-fit level below which the AICc choice is rejected (see module docstring).
GOF_ALPHA = 1e-3


@dataclass(frozen=True)
class ErrorModel:
    """Stated error model of the activity measurements.

    ``sigma_i = relative_sd * max(|y_i|, floor_fraction * max|y|)``.

    Attributes
    ----------
    relative_sd : float
        Relative standard deviation of one measurement (0.10 = 10 %).
    floor_fraction : float
        Floor of the error as a fraction of the largest measurement.
    """

    relative_sd: float = 0.10
    floor_fraction: float = 0.02

    def sigma(self, y) -> np.ndarray:
        """Standard deviation of each measurement, unit of ``y``; shape of ``y``."""
        y = np.abs(np.asarray(y, dtype=float))
        floor = self.floor_fraction * float(y.max()) if y.size else 0.0
        sig = self.relative_sd * np.maximum(y, floor)
        return np.where(sig > 0, sig, 1.0)  # an all-zero curve: unit weights

    def describe(self) -> str:
        return (f"sigma_i = {self.relative_sd:g} * max(|y_i|, {self.floor_fraction:g} * max|y|)"
                " (relative error model with a floor); covariance inflated by the reduced "
                "chi-square when it exceeds 1")


@dataclass(frozen=True, eq=False)
class FitResult:
    """One model fitted to one time-activity curve.

    Attributes
    ----------
    model : str
        Model name (see :mod:`pipeline.kinetics.models`).
    params : tuple of float
        Fitted parameters in the order of ``param_names``; activities in the
        unit of the data (MBq for organ curves), rates in 1/h.
    param_names : tuple of str
    param_sd : tuple of float
        Standard deviations of the parameters (sqrt of the covariance diagonal).
    covariance : numpy.ndarray, shape (K, K)
    decay_constant_per_h : float
        Physical decay constant used, 1/h.
    tia_mbq_h : float
        Integral from 0 to infinity (MBq*h for organ curves).
    tia_sd_mbq_h : float
        Its standard deviation from the covariance (delta method).
    aicc : float or None
        Corrected AIC; ``None`` where N <= K + 1 (not admissible).
    akaike_weight : float or None
        Akaike weight among the admissible candidates.
    effective_half_lives_h : dict
        Phase -> effective half-life, h.
    wrss : float
        Weighted residual sum of squares.
    n, k : int
        Number of points and of fitted parameters.
    status : str
        ``"ok"``, ``"failed"`` or ``"too_few_points"``.
    warnings : tuple of str
    chi2_p_value : float or None
        Probability of a WRSS at least this large if the model were true and
        the error model right (chi-square with N - K degrees of freedom);
        ``None`` where N <= K.
    """

    model: str
    params: tuple
    param_names: tuple
    param_sd: tuple
    covariance: np.ndarray
    decay_constant_per_h: float
    tia_mbq_h: float
    tia_sd_mbq_h: float
    aicc: float | None
    akaike_weight: float | None
    effective_half_lives_h: dict
    wrss: float
    n: int
    k: int
    status: str
    warnings: tuple = ()
    chi2_p_value: float | None = None

    @property
    def admissible(self) -> bool:
        """True when AICc is defined (N > K + 1) and the fit converged."""
        return self.status == "ok" and self.aicc is not None

    @property
    def params_dict(self) -> dict:
        """Parameters by name, with ``lambda_phys_per_h`` added (input of :func:`evaluate`)."""
        out = dict(zip(self.param_names, self.params))
        out["lambda_phys_per_h"] = self.decay_constant_per_h
        return out

    def evaluate(self, t_h) -> np.ndarray:
        """Fitted curve at ``t_h`` (h), unit of the data."""
        return evaluate(self.model, self.params, t_h, self.decay_constant_per_h)

    def integrate(self, t0_h=0.0, t1_h=np.inf) -> float:
        """Integral of the fitted curve from ``t0_h`` to ``t1_h`` (h), unit of the data * h."""
        return integrate(self.model, self.params, t0_h, t1_h, self.decay_constant_per_h)

    def evaluate_sd(self, t_h) -> np.ndarray:
        """Standard deviation of the fitted curve at ``t_h`` (delta method), unit of the data."""
        t = np.atleast_1d(np.asarray(t_h, dtype=float))
        grad = _complex_step(lambda p: evaluate(self.model, p, t, self.decay_constant_per_h),
                             np.asarray(self.params, float))  # (len(t), K)
        var = np.einsum("ij,jk,ik->i", grad, self.covariance, grad)
        return np.sqrt(np.maximum(var, 0.0)).reshape(np.shape(t_h))

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "model": self.model,
            "formula": get_model(self.model).formula,
            "status": self.status,
            "params": {**dict(zip(self.param_names, _finite_or_none(self.params))),
                       "lambda_phys_per_h": self.decay_constant_per_h},
            "param_sd": dict(zip(self.param_names, _finite_or_none(self.param_sd))),
            "covariance": [_finite_or_none(row) for row in np.asarray(self.covariance)],
            "lambda_phys_per_h": self.decay_constant_per_h,
            "tia_mbq_h": _finite_or_none([self.tia_mbq_h])[0],
            "tia_sd_mbq_h": _finite_or_none([self.tia_sd_mbq_h])[0],
            "aicc": self.aicc,
            "akaike_weight": self.akaike_weight,
            "effective_half_lives_h": self.effective_half_lives_h,
            "wrss": self.wrss,
            "chi2_p_value": self.chi2_p_value,
            "n_points": self.n,
            "n_params": self.k,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ModelFreeResult:
    """Trapezoid estimate of the time-integrated activity.

    Attributes
    ----------
    tia_mbq_h : float
        Total (head + trapezoid + tail), unit of the data * h.
    tia_sd_mbq_h : float
        Standard deviation from the error model, tail rate held fixed.
    head_mbq_h, trapezoid_mbq_h, tail_mbq_h : float
        The three parts.
    head : str
        ``"linear"`` or ``"constant"``.
    tail : str
        ``"fitted"`` or ``"physical"``.
    tail_rate_per_h : float
        Effective rate of the tail, 1/h.
    """

    tia_mbq_h: float
    tia_sd_mbq_h: float
    head_mbq_h: float
    trapezoid_mbq_h: float
    tail_mbq_h: float
    head: str
    tail: str
    tail_rate_per_h: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class TacFit:
    """Everything known about one time-activity curve after fitting.

    Attributes
    ----------
    method : str
        What the reported TIA comes from: a model name, ``"model_free"``,
        ``"hanscheid"``, ``"madsen"`` or ``"zero"``.
    tia_mbq_h, tia_sd_mbq_h : float
        Reported time-integrated activity and its standard deviation.
    chosen : FitResult or None
        The chosen fit, when ``method`` is a model.
    candidates : tuple of FitResult
        Every model tried.
    model_free : ModelFreeResult or None
    single_time_point : dict or None
        Both single-time-point estimates when N = 1.
    fallbacks : tuple of str
        Decisions taken because the preferred route was impossible.
    warnings : tuple of str
    """

    method: str
    tia_mbq_h: float
    tia_sd_mbq_h: float
    chosen: FitResult | None
    candidates: tuple
    model_free: ModelFreeResult | None
    single_time_point: dict | None
    time_h: np.ndarray
    activity: np.ndarray
    decay_constant_per_h: float
    error_model: ErrorModel = field(default_factory=ErrorModel)
    fallbacks: tuple = ()
    warnings: tuple = ()

    def _parts(self) -> dict | None:
        """Chosen fit's integral before the first point, between the points, after the last."""
        if self.chosen is None or not self.time_h.size:
            return None
        t0, t1 = float(self.time_h[0]), float(self.time_h[-1])
        return {"before_first_point": self.chosen.integrate(0.0, t0),
                "measured_range": self.chosen.integrate(t0, t1),
                "after_last_point": self.chosen.integrate(t1, np.inf)}

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "tia_mbq_h": self.tia_mbq_h,
            "tia_sd_mbq_h": self.tia_sd_mbq_h,
            "tia_relative_sd": (self.tia_sd_mbq_h / self.tia_mbq_h) if self.tia_mbq_h else None,
            "chosen_model": self.chosen.model if self.chosen is not None else None,
            "chosen_params": self.chosen.to_dict()["params"] if self.chosen is not None else None,
            "tia_parts_mbq_h": self._parts(),
            "time_h": self.time_h.tolist(),
            "activity_mbq": self.activity.tolist(),
            "lambda_phys_per_h": self.decay_constant_per_h,
            "error_model": self.error_model.describe(),
            "candidates": [c.to_dict() for c in self.candidates],
            "model_free": self.model_free.to_dict() if self.model_free is not None else None,
            "single_time_point": self.single_time_point,
            "fallbacks": list(self.fallbacks),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------
# helpers


def _finite_or_none(values):
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel()]


def _complex_step(func, x, h=1e-30):
    """Jacobian of a real-analytic function by complex-step differentiation.

    Returns an array of shape ``func(x).shape + (len(x),)``; exact to rounding.
    """
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(x.size):
        xc = x.astype(complex)
        xc[j] += 1j * h
        cols.append(np.imag(np.asarray(func(xc))) / h)
    return np.stack(cols, axis=-1)


def check_curve(time_h, activity, *, source=None):
    """Validate a time-activity curve; return float arrays.

    Raises
    ------
    InputError
        Lengths differ, empty, non-finite values, negative times or times
        that are not strictly increasing.
    """
    t = np.asarray(time_h, dtype=float).ravel()
    y = np.asarray(activity, dtype=float).ravel()
    if t.size == 0:
        raise InputError(source, "no time points")
    if t.size != y.size:
        raise InputError(source, f"{t.size} times but {y.size} activity values")
    if not np.all(np.isfinite(t)):
        raise InputError(source, f"non-finite time in {t.tolist()}")
    if not np.all(np.isfinite(y)):
        raise InputError(source, f"non-finite activity in {y.tolist()}")
    if np.any(t < 0):
        raise InputError(source, f"negative time after injection in {t.tolist()} h")
    bad = np.nonzero(np.diff(t) <= 0)[0]
    if bad.size:
        i = int(bad[0])
        raise InputError(source, f"times must be strictly increasing: t[{i + 1}] = {t[i + 1]:g} h "
                                 f"follows t[{i}] = {t[i]:g} h")
    return t, y


def _jacobian(model_name, p, t, lp):
    """Analytic d f(t_i) / d p_j of the public parameters, shape (N, K)."""
    if model_name == "mono":
        e1 = np.exp(-(p[1] + lp) * t)
        return np.stack([e1, -p[0] * t * e1], axis=1)
    if model_name == "uptake_washout":
        e1, e2 = np.exp(-(p[1] + lp) * t), np.exp(-(p[2] + lp) * t)
        return np.stack([e1 - e2, -p[0] * t * e1, p[0] * t * e2], axis=1)
    if model_name == "bi":
        e1, e2 = np.exp(-(p[1] + lp) * t), np.exp(-(p[3] + lp) * t)
        return np.stack([e1, -p[0] * t * e1, e2, -p[2] * t * e2], axis=1)
    e1, e2, e3 = (np.exp(-(p[j] + lp) * t) for j in (1, 3, 4))
    return np.stack([e1 - e3, -p[0] * t * e1, e2 - e3, -p[2] * t * e2, (p[0] + p[2]) * t * e3], axis=1)


# Internal parametrisation: p = T @ x with x >= 0 keeps rate orderings as bounds.
def _transform(model_name: str) -> np.ndarray:
    k = get_model(model_name).n_params
    T = np.eye(k)
    if model_name == "uptake_washout":  # x = (A, lw, d): lu = lw + d
        T[2, 1] = 1.0
    elif model_name == "bi":  # x = (A1, l1, A2, d): l2 = l1 + d
        T[3, 1] = 1.0
    elif model_name == "tri_uptake":  # x = (A1, l1, A2, d2, d3): l2 = l1 + d2, lu = l2 + d3
        T[3, 1] = 1.0
        T[4, 1] = T[4, 3] = 1.0
    return T


def _rate_mask(model_name: str) -> np.ndarray:
    spec = get_model(model_name)
    mask = np.ones(spec.n_params, bool)
    mask[list(spec.activity_params)] = False
    return mask


def _tail_rate(t, y, lp, n_tail=2):
    """Effective rate from a log-linear fit through the last positive points, floored at lp."""
    pos = np.nonzero(y > 0)[0]
    use = pos[-n_tail:] if pos.size >= 2 else pos
    if use.size < 2:
        return lp
    tt, ly = t[use], np.log(y[use])
    slope = np.polyfit(tt, ly, 1)[0]
    return max(-slope, lp)


def _starts(model_name, t, y, lp, sigma):
    """Initial internal parameter vectors: rate grids, amplitudes by weighted linear least squares."""
    k_tail = _tail_rate(t, y, lp, n_tail=3 if t.size >= 4 else 2)
    lw = max(k_tail - lp, 0.0)
    fast = (0.05, 0.3, 1.5)
    if model_name == "mono":
        rate_sets = [(lw,), (0.0,), (0.1,)]
    elif model_name == "uptake_washout":
        rate_sets = [(lw, u) for u in (0.2, 1.0, 5.0)] + [(0.0, 1.0)]
    elif model_name == "bi":
        rate_sets = [(lw, max(lw, f) + f) for f in fast] + [(0.0, 0.3)]
    else:
        rate_sets = [(lw, max(lw, f) + f, max(lw, f) + f + u) for f in fast for u in (0.5, 3.0)]
    starts = []
    for rates in rate_sets:
        rates = np.minimum(np.asarray(rates, float), MAX_RATE_PER_H * 0.9)
        kk = rates + lp
        e = np.exp(-np.outer(t, kk))
        if model_name == "mono":
            basis = e[:, :1]
        elif model_name == "uptake_washout":
            basis = (e[:, 0] - e[:, 1])[:, None]
        elif model_name == "bi":
            basis = e
        else:
            basis = np.stack([e[:, 0] - e[:, 2], e[:, 1] - e[:, 2]], axis=1)
        amp, *_ = np.linalg.lstsq(basis / sigma[:, None], y / sigma, rcond=None)
        amp = np.maximum(amp, 1e-6 * max(float(np.max(np.abs(y))), 1e-30))
        if model_name == "mono":
            p = [amp[0], rates[0]]
        elif model_name == "uptake_washout":
            p = [amp[0], rates[0], rates[1]]
        elif model_name == "bi":
            p = [amp[0], rates[0], amp[1], rates[1]]
        else:
            p = [amp[0], rates[0], amp[1], rates[1], rates[2]]
        x = np.linalg.solve(_transform(model_name), np.asarray(p, float))
        starts.append(np.maximum(x, 0.0))
    return starts


def aicc(wrss: float, n: int, k: int) -> float | None:
    """Corrected Akaike information criterion (Glatting 2007); ``None`` unless N > K + 1.

    ``AICc = N ln(WRSS/N) + 2K + 2K(K+1)/(N-K-1)``, WRSS floored at
    ``N * 1e-8`` (see module docstring).
    """
    if n <= k + 1:
        return None
    w = max(float(wrss), WRSS_FLOOR_PER_POINT * n)
    return float(n * math.log(w / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1))


def akaike_weights(aicc_values) -> np.ndarray:
    """Akaike weights ``exp(-delta_i/2) / sum_j exp(-delta_j/2)``; ``None`` entries get weight 0.

    Returns
    -------
    numpy.ndarray
        Weights summing to 1 over the defined values (all zero when none is defined).
    """
    vals = np.array([np.nan if a is None else a for a in aicc_values], dtype=float)
    ok = np.isfinite(vals)
    out = np.zeros(vals.size)
    if ok.any():
        d = vals[ok] - vals[ok].min()
        w = np.exp(-0.5 * d)
        out[ok] = w / w.sum()
    return out


def fit_model(model_name: str, time_h, activity, decay_constant_per_h: float,
              error_model: ErrorModel | None = None) -> FitResult:
    """Fit one model by weighted least squares (bounded, several starts).

    Parameters
    ----------
    model_name : str
        One of :data:`~pipeline.kinetics.models.MODEL_NAMES`.
    time_h : array_like, shape (N,)
        Times after injection, h, strictly increasing.
    activity : array_like, shape (N,)
        Activity at those times (MBq for organ curves).
    decay_constant_per_h : float
        Physical decay constant ln2/T1/2, 1/h.
    error_model : ErrorModel, optional

    Returns
    -------
    FitResult
        ``status`` is ``"too_few_points"`` when N < K (nothing fitted) and
        ``"failed"`` when the optimiser did not converge.
    """
    spec = get_model(model_name)
    t, y = check_curve(time_h, activity)
    em = error_model or ErrorModel()
    lp = float(decay_constant_per_h)
    if not lp > 0:
        raise ValueError("decay_constant_per_h must be positive")
    n, k = t.size, spec.n_params
    nan = np.full(k, np.nan)
    if n < k:
        return FitResult(model_name, tuple(nan), spec.param_names, tuple(nan), np.full((k, k), np.nan), lp,
                         float("nan"), float("nan"), None, None, {}, float("nan"), n, k, "too_few_points",
                         (f"{model_name} has {k} parameters but only {n} time points",))
    sigma = em.sigma(y)
    T = _transform(model_name)
    upper = np.where(_rate_mask(model_name), MAX_RATE_PER_H, np.inf)

    def resid(x):
        return (evaluate(model_name, T @ x, t, lp) - y) / sigma

    def jac(x):
        return _jacobian(model_name, T @ x, t, lp) @ T / sigma[:, None]

    best = None
    starts = _starts(model_name, t, y, lp, sigma)
    if n == k:  # exactly determined: a continuum of exact solutions; a second start adds nothing
        starts = starts[:1]
    for x0 in starts:
        x0 = np.minimum(x0, np.where(np.isfinite(upper), upper * 0.99, x0))
        try:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore", RuntimeWarning)
                sol = least_squares(resid, x0, jac=jac, bounds=(np.zeros(k), upper), method="trf",
                                    x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=MAX_NFEV)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.all(np.isfinite(sol.fun)) and (best is None or sol.cost < best.cost):
            best = sol
    if best is None:
        return FitResult(model_name, tuple(nan), spec.param_names, tuple(nan), np.full((k, k), np.nan), lp,
                         float("nan"), float("nan"), None, None, {}, float("nan"), n, k, "failed",
                         ("the optimiser found no finite solution",))
    x = best.x
    p = T @ x
    wrss = float(np.sum(best.fun ** 2))
    warn = []
    J = jac(x)
    cov_x = np.linalg.pinv(J.T @ J)
    scale = 1.0
    if n > k:
        chi2_red = wrss / (n - k)
        if chi2_red > 1.0:
            scale = chi2_red
            warn.append(f"reduced chi-square {chi2_red:.3g} > 1: covariance inflated accordingly")
    else:
        warn.append(f"N = K = {k}: exactly determined, uncertainty from the error model only")
    cov = scale * (T @ cov_x @ T.T)
    at_upper = np.nonzero(np.isfinite(upper) & (x >= upper * 0.999))[0]
    for j in at_upper:
        warn.append(f"parameter {spec.param_names[j]} reached its upper bound ({MAX_RATE_PER_H} 1/h)")
    rate_mask = _rate_mask(model_name)
    zero_rates = [spec.param_names[j] for j in np.nonzero(rate_mask)[0] if p[j] <= 1e-9]
    if zero_rates:
        warn.append(f"biological rate at its lower bound 0 (physical decay only): {', '.join(zero_rates)}")
    tia = integrate(model_name, p, 0.0, np.inf, lp)
    g = _complex_step(lambda q: integrate(model_name, q, 0.0, np.inf, lp), p)
    tia_sd = float(np.sqrt(max(g @ cov @ g, 0.0)))
    status = "ok" if best.status > 0 else "failed"
    p_chi2 = float(chi2.sf(wrss, n - k)) if n > k else None
    if status == "failed":
        warn.append(f"optimiser: {best.message}")
    return FitResult(
        model=model_name, params=tuple(float(v) for v in p), param_names=spec.param_names,
        param_sd=tuple(float(v) for v in np.sqrt(np.maximum(np.diag(cov), 0.0))),
        covariance=cov, decay_constant_per_h=lp, tia_mbq_h=float(tia), tia_sd_mbq_h=tia_sd,
        aicc=aicc(wrss, n, k), akaike_weight=None,
        effective_half_lives_h=_models.effective_half_lives_h(model_name, p, lp),
        wrss=wrss, n=n, k=k, status=status, warnings=tuple(warn), chi2_p_value=p_chi2)


def fit_models(time_h, activity, decay_constant_per_h: float, model_names=MODEL_NAMES,
               error_model: ErrorModel | None = None) -> list[FitResult]:
    """Fit every model in ``model_names`` and attach Akaike weights.

    Weights are computed over the admissible (N > K + 1), converged fits and
    sum to 1 over them; other fits carry ``akaike_weight = None``.
    """
    fits = [fit_model(m, time_h, activity, decay_constant_per_h, error_model) for m in model_names]
    adm = [f.aicc if f.admissible and np.isfinite(f.tia_mbq_h) else None for f in fits]
    w = akaike_weights(adm)
    return [dataclasses.replace(f, akaike_weight=float(wi)) if a is not None else f
            for f, a, wi in zip(fits, adm, w)]


def model_free_tia(time_h, activity, decay_constant_per_h: float, *, head: str = "linear",
                   tail: str = "fitted", error_model: ErrorModel | None = None) -> ModelFreeResult:
    """Trapezoid estimate with an explicit head and tail (see module docstring).

    Parameters
    ----------
    time_h, activity : array_like, shape (N,)
        Curve (h, unit of the data).
    decay_constant_per_h : float
        Physical decay constant, 1/h.
    head : {"linear", "constant"}
        Area before the first point: rise from 0 at t = 0, or constant back-extrapolation.
    tail : {"fitted", "physical"}
        Tail after the last point: mono-exponential through the last two positive points
        (rate >= physical decay constant), or physical decay only.

    Returns
    -------
    ModelFreeResult
    """
    t, y = check_curve(time_h, activity)
    lp = float(decay_constant_per_h)
    if head not in ("linear", "constant"):
        raise ValueError(f"head must be 'linear' or 'constant', not {head!r}")
    if tail not in ("fitted", "physical"):
        raise ValueError(f"tail must be 'fitted' or 'physical', not {tail!r}")
    # TIA = sum_i w_i y_i: weights of each point (tail rate held fixed)
    w = np.zeros(t.size)
    w[0] += t[0] * (0.5 if head == "linear" else 1.0)
    dt = np.diff(t)
    w[:-1] += dt / 2
    w[1:] += dt / 2
    k = _tail_rate(t, y, lp) if tail == "fitted" else lp
    w_tail = 1.0 / k
    head_a = t[0] * (0.5 if head == "linear" else 1.0) * y[0]
    trap = float(np.sum(dt * (y[:-1] + y[1:]) / 2))
    tail_a = float(y[-1] * w_tail)
    w[-1] += w_tail
    sd = float(np.sqrt(np.sum((w * (error_model or ErrorModel()).sigma(y)) ** 2)))
    return ModelFreeResult(float(head_a + trap + tail_a), sd, float(head_a), trap, tail_a, head, tail, float(k))


def hanscheid_tia(activity, time_h):
    """Single-time-point TIA of Hanscheid et al. (J Nucl Med 2018): ``A(t) * 2t / ln2``.

    Exact for a mono-exponential curve measured at ``t = T_eff``; within 10 %
    for 0.77 <= t / T_eff <= 2.44 (physics notes, section 5).

    Parameters
    ----------
    activity : float or numpy.ndarray
        Activity at ``time_h`` (MBq, or MBq/mL per voxel).
    time_h : float
        Time of the measurement after injection, h.
    """
    return activity * (2.0 * float(time_h) / math.log(2.0))


def madsen_tia(activity, time_h, effective_rate_per_h):
    """Single-time-point TIA of Madsen et al. (Med Phys 2018): ``A(t) e^{kt} / k``.

    ``k`` is a population effective rate constant (biological + physical), 1/h.
    Exact for a mono-exponential curve with effective rate ``k``.
    """
    k = float(effective_rate_per_h)
    if not k > 0:
        raise ValueError("the population effective rate constant must be positive")
    return activity * math.exp(k * float(time_h)) / k


def fit_tac(time_h, activity, decay_constant_per_h: float, *, model_names=MODEL_NAMES,
            error_model: ErrorModel | None = None, head: str = "linear", tail: str = "fitted",
            population_effective_rate_per_h: float | None = None, source=None) -> TacFit:
    """Fit, select and integrate one time-activity curve, with recorded fallbacks.

    Parameters
    ----------
    time_h : array_like, shape (N,)
        Times after injection, h (strictly increasing).
    activity : array_like, shape (N,)
        Activity, MBq.
    decay_constant_per_h : float
        Physical decay constant, 1/h.
    model_names : sequence of str
        Candidate models.
    error_model : ErrorModel, optional
    head, tail : str
        Choices of the model-free estimate (see :func:`model_free_tia`).
    population_effective_rate_per_h : float, optional
        Population effective rate constant for Madsen's single-time-point
        formula; without it a single time point uses Hanscheid's.
    source : str, optional
        Name of the curve for error messages.

    Returns
    -------
    TacFit
    """
    t, y = check_curve(time_h, activity, source=source)
    em = error_model or ErrorModel()
    lp = float(decay_constant_per_h)
    for m in model_names:
        get_model(m)
    fallbacks, warns = [], []
    base = dict(time_h=t, activity=y, decay_constant_per_h=lp, error_model=em)
    if np.all(y <= 0):
        fallbacks.append("all activity values are <= 0: TIA set to 0, no fit")
        return TacFit("zero", 0.0, 0.0, None, (), None, None, fallbacks=tuple(fallbacks), **base)
    if np.any(y < 0):
        warns.append(f"{int(np.sum(y < 0))} negative activity value(s) kept in the fit")
    if t.size == 1:
        stp = {"time_h": float(t[0]), "hanscheid_mbq_h": hanscheid_tia(float(y[0]), t[0])}
        if population_effective_rate_per_h is not None:
            stp["madsen_mbq_h"] = madsen_tia(float(y[0]), t[0], population_effective_rate_per_h)
            stp["population_effective_rate_per_h"] = float(population_effective_rate_per_h)
            method = "madsen"
        else:
            method = "hanscheid"
            fallbacks.append("no population rate constant configured: Hanscheid's formula used")
        fallbacks.insert(0, "single time point: no fit possible, single-time-point formula used")
        tia = stp[f"{method}_mbq_h"]
        return TacFit(method, float(tia), float("nan"), None, (), None, stp, fallbacks=tuple(fallbacks),
                      warnings=tuple(warns), **base)
    mf = model_free_tia(t, y, lp, head=head, tail=tail, error_model=em)
    fits = fit_models(t, y, lp, model_names, em)
    for f in fits:
        if f.status == "too_few_points":
            fallbacks.append(f"{f.model}: not fitted, needs at least {f.k} time points (have {f.n})")
        elif f.status == "ok" and f.aicc is None:
            fallbacks.append(f"{f.model}: fitted but excluded from selection, AICc needs N > K + 1 "
                             f"(N = {f.n}, K = {f.k})")
        elif f.status == "failed":
            fallbacks.append(f"{f.model}: fit failed")
    admissible = [f for f in fits if f.akaike_weight is not None]
    chosen = None
    if admissible:
        chosen = max(admissible, key=lambda f: f.akaike_weight)
    else:
        mono = [f for f in fits if f.model == "mono" and f.status == "ok"]
        if not mono and "mono" not in model_names and t.size >= 2:
            mono = [fit_model("mono", t, y, lp, em)]
            mono = [f for f in mono if f.status == "ok"]
        if mono:
            chosen = mono[0]
            fallbacks.append(f"no model admissible for AICc with N = {t.size}: mono-exponential fit used "
                             "without model selection")
    if chosen is not None and chosen.chi2_p_value is not None and chosen.chi2_p_value < GOF_ALPHA:
        alt = [f for f in fits if f.status == "ok" and f.chi2_p_value is not None and f.chi2_p_value >= GOF_ALPHA
               and np.isfinite(f.tia_mbq_h) and f.tia_mbq_h >= 0]
        msg = (f"{chosen.model} (chosen by AICc) fails the chi-square test against the error model "
               f"(WRSS {chosen.wrss:.3g} with {chosen.n - chosen.k} degrees of freedom, p = {chosen.chi2_p_value:.2g})")
        if alt:
            new = min(alt, key=lambda f: (f.k, f.wrss))
            domain = "outside AICc's domain, N <= K + 1" if new.aicc is None else "AICc-admissible"
            fallbacks.append(f"{msg}: {new.model} used instead, the simplest model that passes "
                             f"(p = {new.chi2_p_value:.2g}; N = {new.n}, K = {new.k}, {domain})")
            chosen = new
        else:
            warns.append(f"{msg}; no fitted model passes")
    if chosen is not None and not (np.isfinite(chosen.tia_mbq_h) and chosen.tia_mbq_h >= 0):
        fallbacks.append(f"chosen fit {chosen.model} has a non-finite or negative TIA")
        chosen = None
    if chosen is None:
        fallbacks.append("no usable fit: model-free estimate (trapezoid + tail) reported")
        return TacFit("model_free", mf.tia_mbq_h, mf.tia_sd_mbq_h, None, tuple(fits), mf, None,
                      fallbacks=tuple(fallbacks), warnings=tuple(warns), **base)
    if mf.tia_mbq_h > 0 and abs(chosen.tia_mbq_h / mf.tia_mbq_h - 1) > 0.25:
        warns.append(f"chosen model {chosen.model} and the model-free estimate differ by "
                     f"{100 * (chosen.tia_mbq_h / mf.tia_mbq_h - 1):+.0f} %")
    frac_extrap = 1 - chosen.integrate(0.0, float(t[-1])) / chosen.tia_mbq_h if chosen.tia_mbq_h > 0 else 0
    if frac_extrap > 0.5:
        warns.append(f"{100 * frac_extrap:.0f} % of the TIA lies after the last time point (extrapolated)")
    return TacFit(chosen.model, chosen.tia_mbq_h, chosen.tia_sd_mbq_h, chosen, tuple(fits), mf, None,
                  fallbacks=tuple(fallbacks), warnings=tuple(warns), **base)
