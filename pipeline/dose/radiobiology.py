"""Linear-quadratic radiobiology for protracted irradiation: BED and EQD2.

For a dose-rate curve that is a sum of exponentials,
``Ddot(t) = sum_i a_i exp(-lambda_i t)`` (Gy/h, some ``a_i`` may be negative
for uptake), the biologically effective dose with mono-exponential repair of
sublethal damage (repair constant ``mu = ln2 / T_rep``) is (Dale 1985; MIRD
Pamphlet 20, Wessels et al. 2008)

    BED = D + (2 / (alpha/beta)) * int_0^inf Ddot(t) int_0^t Ddot(w) exp(-mu (t - w)) dw dt
        = D + (2 / (alpha/beta)) * sum_ij a_i a_j / ((lambda_i + lambda_j) (lambda_i + mu)),

with ``D = sum_i a_i / lambda_i``. For one exponential this reduces to the
closed form ``BED = D (1 + D lambda / ((mu + lambda) alpha/beta))``. The
double integral is derived in closed form here (inner integral
``a_j (exp(-lambda_j t) - exp(-mu t)) / (mu - lambda_j)``, then the outer one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LQParameters",
    "exponential_terms_dose_gy",
    "lq_g_factor_per_gy",
    "organ_bed_rows",
    "bed_gy",
    "eqd2_gy",
    "bed_mono_exponential_gy",
    "bed_numeric_gy",
]

LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class LQParameters:
    """Linear-quadratic parameters of a tissue.

    Attributes
    ----------
    alpha_beta_gy : float
        alpha/beta ratio in Gy (kidney 2.6 Gy: physics notes section 4).
    repair_half_time_h : float
        Half-time of sublethal-damage repair in h (kidney 2.8 h).
    """

    alpha_beta_gy: float = 2.6
    repair_half_time_h: float = 2.8

    @property
    def repair_constant_per_h(self) -> float:
        """mu = ln2 / T_rep in 1/h."""
        return LN2 / self.repair_half_time_h


def _terms(coefficients, rates_per_h):
    a = np.atleast_1d(np.asarray(coefficients, float))
    lam = np.atleast_1d(np.asarray(rates_per_h, float))
    if a.shape != lam.shape:
        raise ValueError("coefficients and rates must have the same length")
    if np.any(lam <= 0):
        raise ValueError("every effective rate must be positive (physical decay is always present)")
    return a, lam


def exponential_terms_dose_gy(coefficients, rates_per_h) -> float:
    """Absorbed dose (Gy) of ``Ddot(t) = sum a_i exp(-lambda_i t)``: ``sum a_i / lambda_i``.

    Parameters
    ----------
    coefficients : array_like, shape (n,)
        Initial dose rates ``a_i`` in Gy/h.
    rates_per_h : array_like, shape (n,)
        Effective rate constants ``lambda_i`` in 1/h (biological + physical).
    """
    a, lam = _terms(coefficients, rates_per_h)
    return float(np.sum(a / lam))


def lq_g_factor_per_gy(coefficients, rates_per_h, repair_constant_per_h: float) -> float:
    """Protraction factor ``g`` with ``BED = D + g D^2 / (alpha/beta)``.

    Independent of the scale of the dose-rate curve (only its shape matters).

    Returns
    -------
    float
        Dimensionless ``g`` (1 for an acute dose, < 1 for protracted delivery).
    """
    a, lam = _terms(coefficients, rates_per_h)
    mu = float(repair_constant_per_h)
    dose = float(np.sum(a / lam))
    if dose <= 0:
        raise ValueError("the dose-rate curve integrates to a non-positive dose")
    li, lj = lam[:, None], lam[None, :]
    double = 2.0 * np.sum(a[:, None] * a[None, :] / ((li + lj) * (li + mu)))
    return float(double / dose**2)


def bed_gy(dose_gy, g_factor: float, lq: LQParameters):
    """BED (Gy) from absorbed dose (Gy) and the protraction factor ``g``."""
    dose = np.asarray(dose_gy, float)
    return dose + g_factor * dose**2 / lq.alpha_beta_gy


def eqd2_gy(bed, lq: LQParameters):
    """Equivalent dose in 2-Gy fractions (Gy): ``EQD2 = BED / (1 + 2 / (alpha/beta))``."""
    return np.asarray(bed, float) / (1.0 + 2.0 / lq.alpha_beta_gy)


def bed_mono_exponential_gy(dose_gy: float, effective_rate_per_h: float, lq: LQParameters) -> float:
    """Closed form for mono-exponential clearance (physics notes section 4).

    ``BED = D (1 + D lambda / ((mu + lambda) alpha/beta))``.
    """
    lam, mu = float(effective_rate_per_h), lq.repair_constant_per_h
    return float(dose_gy * (1.0 + dose_gy * lam / ((mu + lam) * lq.alpha_beta_gy)))


def bed_numeric_gy(dose_rate_gy_per_h, lq: LQParameters, t_max_h: float, n_steps: int = 200_000) -> float:
    """BED by direct numerical evaluation of the double integral, for any dose-rate curve.

    Uses the recursion ``I(t + dt) = I(t) exp(-mu dt) + int Ddot``: ``I(t)`` is the
    repair-weighted dose delivered up to ``t``. Meant for curves that are not sums
    of exponentials and as an independent check of :func:`lq_g_factor_per_gy`.

    Parameters
    ----------
    dose_rate_gy_per_h : callable
        ``t_h -> Gy/h`` (vectorised over numpy arrays).
    t_max_h : float
        Upper integration limit in h (long enough for the curve to vanish).
    """
    t = np.linspace(0.0, t_max_h, n_steps + 1)
    dt = t[1] - t[0]
    rate = np.asarray(dose_rate_gy_per_h(t), float)
    mu = lq.repair_constant_per_h
    # exact integration of the repair kernel over each step for piecewise-linear dose rate
    decay = np.exp(-mu * dt)
    repair_weight = (1.0 - decay) / (mu * dt)  # mean of exp(-mu (t+dt-w)) over the step
    inner = 0.0
    quad = 0.0
    dose = 0.0
    for n in range(n_steps):
        r0, r1 = rate[n], rate[n + 1]
        inc = 0.5 * (r0 + r1) * dt
        inner_next = inner * decay + inc * repair_weight
        quad += 0.5 * (r0 * inner + r1 * inner_next) * dt
        inner = inner_next
        dose += inc
    return float(dose + 2.0 * quad / lq.alpha_beta_gy)


def _g_factor_of_fit(fit: dict, decay_constant_per_h: float, mu: float) -> float:
    from ..kinetics.models import exponential_terms

    coeffs, rates = exponential_terms(fit["model"], fit["params"], decay_constant_per_h)
    return lq_g_factor_per_gy(np.real(coeffs), np.real(rates), mu)


def organ_bed_rows(organs, fits: dict, decay_constant_per_h: float | None, lq_for) -> list[dict]:
    """BED and EQD2 rows of the organs with a fitted time-activity curve.

    Parameters
    ----------
    organs : list of pipeline.dose.organs.OrganDose
    fits : dict
        Organ name -> ``{"model", "params"}`` (kinetics stage).
    decay_constant_per_h : float or None
        Physical decay constant, 1/h (no rows without it).
    lq_for : callable
        Organ name -> LQParameters.
    """
    rows = []
    for o in organs:
        fit = fits.get(o.name)
        lq = lq_for(o.name)
        if fit is None or decay_constant_per_h is None:
            continue
        g = _g_factor_of_fit(fit, decay_constant_per_h, lq.repair_constant_per_h)
        bed = float(bed_gy(o.mean_gy, g, lq))
        rows.append({"label": o.label, "name": o.name, "mean_dose_gy": o.mean_gy, "model": fit["model"],
                     "g_factor": g, "alpha_beta_gy": lq.alpha_beta_gy,
                     "repair_half_time_h": lq.repair_half_time_h, "bed_gy": bed,
                     "eqd2_gy": float(eqd2_gy(bed, lq))})
    return rows
