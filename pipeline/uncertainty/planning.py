"""Activity that keeps the kidneys and the red marrow below their limits at a stated confidence.

As in the dose stage (:mod:`pipeline.dose.planning`), the dose scales with the administered
activity, ``D = d A`` (``d`` in Gy/GBq from this study), and for a BED limit
``BED = d A + g (d A)^2 / (alpha/beta)``. With ``d`` uncertain, the activity at confidence ``p``
is the largest ``A`` with ``P(D(A) <= limit) >= p``:

- per limit, ``A_p = limit / q_p(d)`` (dose) or the BED root at ``q_p(d)``, ``q_p`` the p-quantile
  of ``d`` (the allowed activity decreases with ``d``); analytic: ``q_p = d (1 + z_p u)`` with
  ``u`` the relative SD (normal);
- jointly (every limit met at once, Monte Carlo only): the (1 - p)-quantile over the draws of
  the smallest allowed activity of that draw. It is never above the per-limit minimum.

At the central estimate (``d`` itself) this is exactly the dose stage's planned activity.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from ..dose.planning import OrganLimit, plan_activity
from ..dose.radiobiology import LQParameters

__all__ = ["allowed_activity_gbq", "plan_with_confidence"]


def allowed_activity_gbq(d_gy_per_gbq, limit: float, quantity: str, g_factor: float = 0.0,
                         alpha_beta_gy: float = 2.6) -> np.ndarray:
    """Activity (GBq) that brings dose (or BED) to ``limit`` for each ``d`` (vectorised)."""
    d = np.asarray(d_gy_per_gbq, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.asarray(g_factor, float)
        if quantity == "bed":  # stable positive root; g = 0 gives limit / d
            a = 2.0 * limit / (d + np.sqrt(d * d + 4.0 * g * d * d * limit / alpha_beta_gy))
        else:
            a = limit / d
    return np.where(d > 0, a, np.inf)


def plan_with_confidence(planning: dict, central: dict, relative_sd: dict, draws: dict, g_draws: dict,
                         injected_gbq: float, confidence: float, lq: dict) -> dict:
    """Central, analytic and Monte Carlo planned activity.

    Parameters
    ----------
    planning : dict
        ``dose/planning.json`` (its ``allowed_activity_gbq`` lists the limits).
    central : dict
        Organ (``kidneys``, ``red_marrow``) -> central dose, Gy.
    relative_sd : dict
        Organ -> analytic relative SD of the dose.
    draws : dict
        Organ -> Monte Carlo dose draws, Gy (same draws index across organs); the stage passes
        the pivot draws ``2 D - D*`` (see :func:`pipeline.uncertainty.propagate.summarise`).
    g_draws : dict
        Organ -> LQ g factor: central value under ``"central"`` and draws under ``"draws"``.
    injected_gbq : float
        Injected activity of the study, GBq.
    confidence : float
    lq : dict
        Organ -> (alpha/beta Gy, repair half-time h).
    """
    limits = [x for x in planning.get("allowed_activity_gbq", []) if x.get("organ") in central]
    if not limits:
        return {"status": "not available: planning.json lists no kidney or marrow limit"}
    z = float(norm.ppf(confidence))
    # central estimate, by the dose stage's own function
    org_limits = []
    for organ in dict.fromkeys(x["organ"] for x in limits):
        dose_lim = next((x["limit"] for x in limits if x["organ"] == organ and x["quantity"] == "absorbed_dose"), None)
        bed_lim = next((x["limit"] for x in limits if x["organ"] == organ and x["quantity"] == "bed"), None)
        ab, trep = lq.get(organ, (2.6, 2.8))
        org_limits.append(OrganLimit(organ, central[organ] / injected_gbq, dose_lim, bed_lim,
                                     g_draws.get(organ, {}).get("central", 0.0), LQParameters(ab, trep)))
    central_plan = plan_activity(org_limits)
    rows, joint = [], None
    for x in limits:
        organ, quantity, limit = x["organ"], x["quantity"], float(x["limit"])
        ab = lq.get(organ, (2.6, 2.8))[0]
        g_c = g_draws.get(organ, {}).get("central", 0.0)
        d_c = central[organ] / injected_gbq
        d_p = d_c * (1.0 + z * relative_sd[organ])
        a_mc = allowed_activity_gbq(draws[organ] / injected_gbq, limit, quantity,
                                    g_draws.get(organ, {}).get("draws", g_c), ab)
        joint = a_mc if joint is None else np.minimum(joint, a_mc)
        rows.append({"organ": organ, "quantity": quantity, "limit": limit,
                     "central_activity_gbq": float(allowed_activity_gbq(d_c, limit, quantity, g_c, ab)),
                     "analytic_activity_gbq": float(allowed_activity_gbq(d_p, limit, quantity, g_c, ab)),
                     "mc_activity_gbq": float(np.quantile(a_mc, 1.0 - confidence))})
    analytic = min(rows, key=lambda r: r["analytic_activity_gbq"])
    mc_min = min(rows, key=lambda r: r["mc_activity_gbq"])
    return {
        "confidence": confidence,
        "central_activity_gbq": central_plan["activity_gbq"],
        "central_limiting_organ": central_plan["limiting_organ"],
        "central_limiting_quantity": central_plan["limiting_quantity"],
        "analytic_activity_gbq": analytic["analytic_activity_gbq"],
        "analytic_limiting": f"{analytic['organ']} {analytic['quantity']}",
        "mc_per_limit_activity_gbq": mc_min["mc_activity_gbq"],
        "mc_per_limit_limiting": f"{mc_min['organ']} {mc_min['quantity']}",
        "mc_joint_activity_gbq": float(np.quantile(joint, 1.0 - confidence)),
        "limits": rows,
        "basis": ("dose proportional to activity at unchanged kinetics (dose stage); d = D / A_injected with "
                  "its uncertainty; per limit: P(D <= limit) >= confidence; joint: every limit at once"),
    }
