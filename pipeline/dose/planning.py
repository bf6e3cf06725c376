"""Therapeutic activity planning from a pre-therapy (tracer) study.

As in the seed study (Theranostics 2025;15:19): absorbed dose scales linearly
with administered activity, ``D = d A`` with ``d`` the organ's absorbed dose
per unit activity (Gy/GBq) measured in the pre-therapy study, assuming the
same kinetics at therapy. For an absorbed-dose limit ``L``, ``A = L / d``.
For a BED limit, ``BED(A) = d A + g (d A)^2 / (alpha/beta)`` with the
protraction factor ``g`` of the organ's kinetics (independent of A), so
``A`` is the positive root of a quadratic, solved exactly:

    A = (-d + sqrt(d^2 + 4 g d^2 B / (alpha/beta))) / (2 g d^2 / (alpha/beta)).

The prescribed activity is the smallest over the organs at risk; the organ
that sets it is the limiting organ.
"""

from __future__ import annotations

import math

import numpy as np
from dataclasses import dataclass, field

from .radiobiology import LQParameters, bed_gy

__all__ = ["OrganLimit", "activity_for_dose_limit_gbq", "activity_for_bed_limit_gbq", "plan_activity",
           "plan_from_doses", "KIDNEY_LABELS"]

#: Label ids of the kidneys (DESIGN.md).
KIDNEY_LABELS = (1, 2)


@dataclass(frozen=True)
class OrganLimit:
    """A limit for one organ at risk.

    Attributes
    ----------
    organ : str
        Structure name (e.g. ``"kidneys"``, ``"red_marrow"``).
    dose_per_activity_gy_per_gbq : float
        Absorbed dose per administered activity from the tracer study, Gy/GBq.
    dose_limit_gy : float or None
        Absorbed-dose limit in Gy (kidney 23 Gy, red marrow 2 Gy by default).
    bed_limit_gy : float or None
        BED limit in Gy (kidney 40 Gy, 28 Gy with risk factors).
    g_factor : float
        LQ protraction factor of the organ's kinetics (needed for a BED limit).
    lq : LQParameters
        The organ's LQ parameters.
    """

    organ: str
    dose_per_activity_gy_per_gbq: float
    dose_limit_gy: float | None = None
    bed_limit_gy: float | None = None
    g_factor: float = 0.0
    lq: LQParameters = field(default_factory=LQParameters)


def activity_for_dose_limit_gbq(dose_per_activity_gy_per_gbq: float, dose_limit_gy: float) -> float:
    """Activity (GBq) that brings the organ exactly to ``dose_limit_gy``."""
    d = float(dose_per_activity_gy_per_gbq)
    if d <= 0:
        return math.inf
    return float(dose_limit_gy) / d


def activity_for_bed_limit_gbq(dose_per_activity_gy_per_gbq: float, bed_limit_gy: float, g_factor: float,
                               lq: LQParameters) -> float:
    """Activity (GBq) whose BED equals ``bed_limit_gy`` (exact root of the LQ quadratic)."""
    d = float(dose_per_activity_gy_per_gbq)
    if d <= 0:
        return math.inf
    quad = g_factor * d * d / lq.alpha_beta_gy
    if quad <= 0:
        return float(bed_limit_gy) / d
    # numerically stable form of the positive root: 2c / (b + sqrt(b^2 + 4ac))
    return 2.0 * bed_limit_gy / (d + math.sqrt(d * d + 4.0 * quad * bed_limit_gy))


def plan_activity(limits: list[OrganLimit], *, max_activity_gbq: float | None = None) -> dict:
    """Therapeutic activity that keeps every organ at risk within its limits.

    Parameters
    ----------
    limits : list of OrganLimit
        One entry per organ at risk; an organ may carry a dose limit, a BED
        limit, or both (the stricter counts).
    max_activity_gbq : float, optional
        An administrative cap (GBq), reported as its own limit.

    Returns
    -------
    dict
        ``activity_gbq``, ``limiting_organ``, ``limiting_quantity``, per-organ
        allowed activities, and the resulting absorbed dose and BED of every
        organ at the prescribed activity.
    """
    if not limits:
        raise ValueError("no organ limits given")
    candidates = []
    for lim in limits:
        if lim.dose_limit_gy is not None:
            candidates.append((activity_for_dose_limit_gbq(lim.dose_per_activity_gy_per_gbq, lim.dose_limit_gy),
                               lim.organ, "absorbed_dose", lim.dose_limit_gy))
        if lim.bed_limit_gy is not None:
            candidates.append((activity_for_bed_limit_gbq(lim.dose_per_activity_gy_per_gbq, lim.bed_limit_gy,
                                                          lim.g_factor, lim.lq), lim.organ, "bed", lim.bed_limit_gy))
    if max_activity_gbq is not None:
        candidates.append((float(max_activity_gbq), "administrative_cap", "activity", float(max_activity_gbq)))
    if not candidates:
        raise ValueError("no organ carries a dose or BED limit")
    activity, organ, quantity, value = min(candidates, key=lambda c: c[0])
    organs = {}
    for lim in limits:
        dose = lim.dose_per_activity_gy_per_gbq * activity
        organs[lim.organ] = {
            "dose_per_activity_gy_per_gbq": lim.dose_per_activity_gy_per_gbq,
            "absorbed_dose_gy": dose,
            "bed_gy": float(bed_gy(dose, lim.g_factor, lim.lq)),
            "dose_limit_gy": lim.dose_limit_gy,
            "bed_limit_gy": lim.bed_limit_gy,
        }
    return {
        "activity_gbq": activity,
        "limiting_organ": organ,
        "limiting_quantity": quantity,
        "limit_value": value,
        "allowed_activity_gbq": [
            {"organ": o, "quantity": q, "limit": v, "activity_gbq": a} for a, o, q, v in candidates
        ],
        "organs": organs,
    }


def _kidneys_mean_gy(organs) -> tuple[float, float] | None:
    rows = [o for o in organs if o.label in KIDNEY_LABELS]
    if not rows:
        return None
    mass = sum(o.mass_g for o in rows)
    return sum(o.mean_gy * o.mass_g for o in rows) / mass, mass


def plan_from_doses(organs, marrow: dict, bed_rows: list[dict], injected_gbq: float | None, settings) -> dict:
    """Activity that reaches the kidney (dose, BED) and marrow limits, from the study's doses.

    Parameters
    ----------
    organs : list of pipeline.dose.organs.OrganDose
    marrow : dict
        EANM marrow result (``absorbed_dose_gy``), or empty.
    bed_rows : list of dict
        :func:`pipeline.dose.radiobiology.organ_bed_rows`.
    injected_gbq : float or None
    settings : pipeline.dose.stage.DoseSettings
        Limits and LQ parameters.
    """
    if not injected_gbq:
        return {"status": "not available: no injected activity"}
    limits = []
    kid = _kidneys_mean_gy(organs)
    if kid is not None:
        g_rows = [r for r in bed_rows if r["label"] in KIDNEY_LABELS]
        g = float(np.mean([r["g_factor"] for r in g_rows])) if g_rows else 0.0
        bed_limit = settings.kidney_bed_limit_gy if g_rows else None
        limits.append(OrganLimit("kidneys", kid[0] / injected_gbq, settings.kidney_dose_limit_gy, bed_limit, g,
                                 settings.lq_for("kidneys")))
    if marrow and settings.marrow_dose_limit_gy is not None:
        limits.append(OrganLimit("red_marrow", marrow["absorbed_dose_gy"] / injected_gbq,
                                 settings.marrow_dose_limit_gy))
    if not limits:
        return {"status": "not available: no kidneys or marrow VOI in the label map"}
    plan = plan_activity(limits)
    plan["other_organs_at_planned_activity_gy"] = {
        o.name: o.mean_gy / injected_gbq * plan["activity_gbq"] for o in organs}
    plan["basis"] = ("absorbed dose scales linearly with administered activity at unchanged kinetics; "
                     "Gy/GBq from this study")
    kidneys = [o.name for o in organs if o.label in KIDNEY_LABELS]
    if len(kidneys) == 1:  # the other declared absent at segmentation (nephrectomy)
        plan["basis"] += (f"; solitary kidney: the kidney limit is applied to {kidneys[0]} alone (a lower "
                          "limit may be chosen for a solitary kidney: dose.kidney_dose_limit_gy, kidney_bed_limit_gy)")
    return plan
