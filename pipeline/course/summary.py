"""The course summary on in-memory records: sums over cycles, allowances, next activity, prediction.

Pure functions; :mod:`.inputs` reads the cycles' files and :mod:`.cli` writes the results.

- Absorbed dose adds over cycles. BED adds over cycles given complete repair of sublethal damage
  between them (weeks apart against a repair half-time of hours): ``BED_course = sum_i BED_i``
  with each cycle's own LQ protraction factor ``g_i`` (``BED_i = D_i + g_i D_i^2 / (alpha/beta)``).
- Remaining allowance ``L - sum``; the next cycle's activity that uses it up from the basis
  cycle's dose per activity ``d`` (Gy/GBq, linear in activity at unchanged kinetics), for a BED
  allowance ``R`` the positive root of ``d A + g (d A)^2 / (alpha/beta) = R``
  (:func:`pipeline.dose.planning.activity_for_bed_limit_gbq`).
- Uncertainty: the SD of a sum adds the cycles' independent parts in quadrature and the parts
  that the cycles share (from each cycle's uncertainty budget: camera calibration, voxel
  S-values, HU-to-density curve; :data:`SHARED_SOURCES`) linearly, i.e. fully correlated between
  cycles; a cycle without a budget counts as independent. The next activity's SD by first-order
  propagation of the remaining allowance's and the basis dose's SDs.
- Prediction against delivery: cycle i's predicted dose ``d_basis A_i`` against the dose from its
  own scans; their ratio is the change of the dose per activity (kinetics) between the cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..dose.planning import activity_for_bed_limit_gbq, activity_for_dose_limit_gbq
from ..dose.radiobiology import LQParameters

__all__ = ["StructureCycle", "CycleRecord", "Limit", "summarise_course", "sum_sd", "BED_STATEMENT",
           "SHARED_SOURCES"]

#: Uncertainty sources shared by every cycle of a patient (same camera, kernels, density curve).
SHARED_SOURCES = ("calibration", "s_value", "density")

BED_STATEMENT = ("BED adds over cycles assuming complete repair of sublethal damage between cycles "
                 "(each cycle's BED from its own dose and kinetics, then summed)")


@dataclass(frozen=True)
class StructureCycle:
    """One structure's result in one cycle.

    Attributes
    ----------
    name : str
    dose_gy : float
        Mean absorbed dose, Gy.
    dose_sd_gy : float or None
        Its standard deviation, Gy (uncertainty stage, else the kinetic fit; None unknown).
    g_factor : float or None
        LQ protraction factor of the structure's kinetics in this cycle (dimensionless); None when
        the structure has no LQ parameters of its own (no BED).
    alpha_beta_gy : float or None
    kinetics_method : str
        How the cycle's TIA of this structure was obtained (fit model or reduced-protocol method).
    shared_sd_gy : tuple of (str, float)
        The parts of ``dose_sd_gy`` from sources shared by the cycles (:data:`SHARED_SOURCES`), Gy.
    """

    name: str
    dose_gy: float
    dose_sd_gy: float | None = None
    g_factor: float | None = None
    alpha_beta_gy: float | None = None
    kinetics_method: str = ""
    shared_sd_gy: tuple = ()

    @property
    def bed_gy(self) -> float | None:
        if self.g_factor is None or not self.alpha_beta_gy:
            return None
        return self.dose_gy + self.g_factor * self.dose_gy ** 2 / self.alpha_beta_gy

    @property
    def bed_sd_gy(self) -> float | None:
        """First order, g fixed: (1 + 2 g D / (alpha/beta)) SD_D."""
        if self.bed_gy is None or self.dose_sd_gy is None:
            return None
        return (1.0 + 2.0 * self.g_factor * self.dose_gy / self.alpha_beta_gy) * self.dose_sd_gy


@dataclass(frozen=True)
class CycleRecord:
    """One cycle of the course.

    Attributes
    ----------
    cycle_id : str
    kind : {"tracer", "therapy"}
    administered_mbq : float
        Administered activity, MBq.
    injection_datetime : str
    compound : str
    structures : dict
        Name -> :class:`StructureCycle`.
    reduced_protocol : dict or None
        The kinetics stage's statement when the cycle was a reduced protocol.
    n_scans : int
    """

    cycle_id: str
    kind: str
    administered_mbq: float
    injection_datetime: str
    compound: str = ""
    structures: dict = field(default_factory=dict)
    reduced_protocol: dict | None = None
    n_scans: int = 0

    @property
    def administered_gbq(self) -> float:
        return self.administered_mbq / 1000.0

    def gy_per_gbq(self, name: str) -> float | None:
        s = self.structures.get(name)
        return None if s is None or self.administered_gbq <= 0 else s.dose_gy / self.administered_gbq


@dataclass(frozen=True)
class Limit:
    """A course limit: structure, quantity ("absorbed_dose" or "bed"), value in Gy."""

    structure: str
    quantity: str
    limit_gy: float


def _basis(cycles, index: int, basis: str) -> CycleRecord | None:
    """The cycle whose Gy/GBq predicts cycle ``index`` (``len(cycles)``: the next cycle)."""
    earlier = cycles[:index]
    if not earlier:
        return None
    if basis == "tracer":
        tracers = [c for c in earlier if c.kind == "tracer"]
        return tracers[-1] if tracers else earlier[0]
    return earlier[-1]


def sum_sd(sds, shared, scale=None):
    """SD of a sum over cycles: independent parts in quadrature, shared sources linearly.

    Parameters
    ----------
    sds : sequence of float or None
        Each cycle's total SD (None: unknown, then the result is None).
    shared : sequence of tuple
        Each cycle's ``((source, sd), ...)`` parts of its SD shared by the cycles.
    scale : sequence of float, optional
        Factor on each cycle's SD (BED: ``1 + 2 g D / (alpha/beta)``).
    """
    if any(v is None for v in sds):
        return None
    scale = list(scale) if scale is not None else [1.0] * len(sds)
    independent, by_source = 0.0, {}
    for sd, parts, f in zip(sds, shared, scale):
        own = sd * sd - sum(p * p for _, p in parts)
        independent += max(own, 0.0) * f * f
        for source, p in parts:
            by_source[source] = by_source.get(source, 0.0) + p * f
    return math.sqrt(independent + sum(v * v for v in by_source.values()))


def _next_activity(limit: Limit, remaining: float, remaining_sd, basis: CycleRecord):
    """Activity (GBq) of the next cycle that uses up ``remaining``, its SD, and the basis values."""
    s = basis.structures.get(limit.structure)
    if s is None:
        return None
    d = basis.gy_per_gbq(limit.structure)
    if remaining <= 0:
        return {"activity_gbq": 0.0, "activity_sd_gbq": None, "gy_per_gbq": d,
                "note": "limit reached or exceeded: no further activity"}
    if limit.quantity == "bed":
        if s.g_factor is None or not s.alpha_beta_gy:
            return None
        lq = LQParameters(alpha_beta_gy=s.alpha_beta_gy)

        def act(r, dd):
            return activity_for_bed_limit_gbq(dd, r, s.g_factor, lq)
    else:
        def act(r, dd):
            return activity_for_dose_limit_gbq(dd, r)
    a = act(remaining, d)
    if not math.isfinite(a):
        return {"activity_gbq": None, "activity_sd_gbq": None, "gy_per_gbq": d,
                "note": "no dose per activity in the basis cycle: no activity limit from this structure"}
    sd = None
    rel_d = (s.dose_sd_gy / s.dose_gy) if s.dose_sd_gy is not None and s.dose_gy > 0 else None
    if remaining_sd is not None and rel_d is not None and math.isfinite(a):
        h_r, h_d = 1e-6 * remaining, 1e-6 * d
        da_dr = (act(remaining + h_r, d) - act(remaining - h_r, d)) / (2 * h_r)
        da_dd = (act(remaining, d + h_d) - act(remaining, d - h_d)) / (2 * h_d)
        sd = math.sqrt((da_dr * remaining_sd) ** 2 + (da_dd * rel_d * d) ** 2)
    return {"activity_gbq": a, "activity_sd_gbq": sd, "gy_per_gbq": d,
            "g_factor": s.g_factor if limit.quantity == "bed" else None}


def summarise_course(cycles, limits, *, basis: str = "last") -> dict:
    """Per structure and cycle, the sums, the allowances, the next activity and the predictions.

    Parameters
    ----------
    cycles : sequence of CycleRecord
        In order of administration.
    limits : sequence of Limit
    basis : {"last", "tracer"}
        Which earlier cycle's Gy/GBq predicts a cycle and plans the next one.

    Returns
    -------
    dict
        ``structures`` (per cycle and summed: dose, SD, BED), ``limits`` (total, remaining,
        next activity per limit), ``next_cycle`` (the smallest activity and its limit),
        ``prediction`` (per later cycle and structure: predicted, delivered, ratio).
    """
    cycles = list(cycles)
    if not cycles:
        raise ValueError("a course needs at least one cycle")
    if basis not in ("last", "tracer"):
        raise ValueError(f"planning basis must be 'last' or 'tracer', got {basis!r}")
    names = []
    for c in cycles:
        names += [n for n in c.structures if n not in names]
    structures = {}
    for name in names:
        per = []
        for c in cycles:
            s = c.structures.get(name)
            if s is None:
                continue
            per.append({"cycle": c.cycle_id, "kind": c.kind, "administered_gbq": c.administered_gbq,
                        "dose_gy": s.dose_gy, "dose_sd_gy": s.dose_sd_gy, "gy_per_gbq": c.gy_per_gbq(name),
                        "bed_gy": s.bed_gy, "bed_sd_gy": s.bed_sd_gy, "g_factor": s.g_factor,
                        "kinetics_method": s.kinetics_method})
        complete = len(per) == len(cycles)
        beds = [p["bed_gy"] for p in per]
        objs = [c.structures[name] for c in cycles if name in c.structures]
        shared = [o.shared_sd_gy for o in objs]
        with_bed = bool(beds) and all(b is not None for b in beds)
        structures[name] = {
            "cycles": per,
            "in_every_cycle": complete,
            "total_dose_gy": sum(p["dose_gy"] for p in per),
            "total_dose_sd_gy": sum_sd([p["dose_sd_gy"] for p in per], shared),
            "total_bed_gy": sum(beds) if with_bed else None,
            "total_bed_sd_gy": sum_sd([p["dose_sd_gy"] for p in per], shared, [
                1.0 + 2.0 * o.g_factor * o.dose_gy / o.alpha_beta_gy for o in objs]) if with_bed else None,
        }
    nxt = _basis(cycles, len(cycles), basis)
    limit_rows = []
    for lim in limits:
        st = structures.get(lim.structure)
        if st is None:
            limit_rows.append({"structure": lim.structure, "quantity": lim.quantity, "limit_gy": lim.limit_gy,
                               "status": "not available: structure not in the cycles' results"})
            continue
        key = "total_bed_gy" if lim.quantity == "bed" else "total_dose_gy"
        total, total_sd = st[key], st[key.replace("_gy", "_sd_gy")]
        if total is None:
            limit_rows.append({"structure": lim.structure, "quantity": lim.quantity, "limit_gy": lim.limit_gy,
                               "status": "not available: no BED (no LQ parameters or kinetics)"})
            continue
        remaining = lim.limit_gy - total
        row = {"structure": lim.structure, "quantity": lim.quantity, "limit_gy": lim.limit_gy,
               "total_gy": total, "total_sd_gy": total_sd, "remaining_gy": remaining,
               "fraction_used": total / lim.limit_gy,
               "status": "exceeded" if remaining < 0 else "within"}
        if nxt is not None:
            plan = _next_activity(lim, remaining, total_sd, nxt)
            if plan is not None:
                row["next_cycle"] = {"basis_cycle": nxt.cycle_id, **plan}
        limit_rows.append(row)
    candidates = [r for r in limit_rows if "next_cycle" in r and r["next_cycle"]["activity_gbq"] is not None]
    next_cycle = {"status": "not available: no limit with a dose per activity"}
    if candidates:
        lim_row = min(candidates, key=lambda r: r["next_cycle"]["activity_gbq"])
        a = lim_row["next_cycle"]["activity_gbq"]
        next_cycle = {"activity_gbq": a, "activity_sd_gbq": lim_row["next_cycle"]["activity_sd_gbq"],
                      "limiting_structure": lim_row["structure"], "limiting_quantity": lim_row["quantity"],
                      "basis_cycle": lim_row["next_cycle"]["basis_cycle"],
                      "basis": "absorbed dose linear in activity at the basis cycle's kinetics (Gy/GBq and LQ "
                               "protraction factor of the basis cycle)"}
    prediction = []
    for i, c in enumerate(cycles):
        b = _basis(cycles, i, basis)
        if b is None:
            continue
        for name, s in c.structures.items():
            d_b = b.gy_per_gbq(name)
            if d_b is None:
                continue
            predicted = d_b * c.administered_gbq
            prediction.append({
                "cycle": c.cycle_id, "basis_cycle": b.cycle_id, "structure": name,
                "administered_gbq": c.administered_gbq, "basis_gy_per_gbq": d_b,
                "delivered_gy_per_gbq": c.gy_per_gbq(name), "predicted_dose_gy": predicted,
                "delivered_dose_gy": s.dose_gy,
                "delivered_over_predicted": s.dose_gy / predicted if predicted > 0 else None,
                "delivered_kinetics": s.kinetics_method})
    return {"structures": structures, "limits": limit_rows, "next_cycle": next_cycle, "prediction": prediction,
            "planning_basis": basis, "bed_summation": BED_STATEMENT}
