"""The uncertainty stage: organ doses, EANM marrow dose, kidney BED and planning with their uncertainty.

:func:`compute_uncertainty` works on a patient's results folder and returns the content of
``uncertainty/uncertainty.json`` and the rows of ``uncertainty/budget.csv``; :func:`write_outputs`
publishes both atomically.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import atomic_dir, write_json, write_text
from ..qc import Check, Gate
from .inputs import read_patient
from .planning import plan_with_confidence
from .propagate import analytic_relative_variances, combine_analytic, g_factor_many, monte_carlo, summarise
from .reduced import HAENSCHEID_RANGE, REDUCED_SOURCE_REFERENCES, haenscheid_method_relative_sd
from .sources import SOURCE_NAMES, UncertaintySettings

__all__ = ["compute_uncertainty", "write_outputs", "BUDGET_COLUMNS"]

BUDGET_COLUMNS = ("structure", "quantity", "source", "sd", "unit", "relative_sd", "variance_share")
KIDNEYS = ("kidney_left", "kidney_right")


def _bed_summary(dose_c, var_d, dose_draws, g_c, g_draws, ab):
    """BED = D + g D^2 / (alpha/beta): analytic SD = (1 + 2 g D / ab) SD_D (g fixed), MC with g per draw."""
    slope = 1.0 + 2.0 * g_c * dose_c / ab
    bed_c = dose_c + g_c * dose_c ** 2 / ab
    bed_draws = dose_draws + g_draws * dose_draws ** 2 / ab
    out = summarise(bed_c, {k: v * slope ** 2 for k, v in var_d.items()}, bed_draws)
    out.update({"g_factor": float(g_c), "alpha_beta_gy": ab})
    return out, bed_draws


def _agreement(gate: Gate, name: str, summary: dict, tol: float):
    ratio = summary["mc_to_analytic_sd"]
    if ratio is None:
        return
    status = "pass" if abs(ratio - 1.0) <= tol else "warn"
    gate.add(Check(f"analytic_vs_mc_sd_{name}", float(ratio), "ratio", f"{1 - tol:g}-{1 + tol:g}",
                   "EANM uncertainty guidance: the first-order propagation must match the Monte Carlo "
                   "resampling of the chain (robust SD)", status, subject=name))


def _haenscheid_range(gate: Gate, name: str, red):
    """QC of Hanscheid's formula: t/T_eff inside the range where its 10 % accuracy is stated."""
    if red is None or red.method != "haenscheid" or red.t_over_teff is None:
        return
    _, inside = haenscheid_method_relative_sd(red.t_over_teff)
    lo, hi = HAENSCHEID_RANGE
    gate.add(Check("haenscheid_t_over_teff", float(red.t_over_teff), "1", f"{lo:g}-{hi:g}",
                   f"Hanscheid et al. J Nucl Med 2018;59:75: the single-time-point formula is within 10 % only "
                   f"there (T_eff from {red.teff_source}); outside it the method SD is the mono-exponential error "
                   f"1 - x 2^(1-x) over sqrt(3)", "pass" if inside else "warn", subject=name))


def compute_uncertainty(patient_dir, settings: UncertaintySettings = UncertaintySettings(),
                        prior_fits=None) -> tuple[dict, list]:
    """Uncertainty of every organ dose, the EANM marrow dose, the kidney BED and the planned activity.

    Parameters
    ----------
    patient_dir : path
        ``results/<patient>`` (or ``results/<patient>/<cycle>``).
    settings : UncertaintySettings
    prior_fits : path, optional
        A reduced-protocol cycle's earlier ``fits.json`` (default: the one its ``fits.json`` names).

    Returns
    -------
    result : dict
        Content of ``uncertainty.json``.
    budget : list of dict
        Rows of ``budget.csv`` (columns :data:`BUDGET_COLUMNS`).
    """
    t0 = time.perf_counter()
    pc = read_patient(patient_dir, settings, prior_fits)
    t_read = time.perf_counter() - t0
    chains = list(pc.organs) + ([pc.marrow] if pc.marrow is not None else [])
    t1 = time.perf_counter()
    var = {c.name: {k: v * c.dose_gy ** 2 for k, v in analytic_relative_variances(c, settings).items()}
           for c in chains}
    t_analytic = time.perf_counter() - t1
    t2 = time.perf_counter()
    mc = monte_carlo(chains, settings)
    t_mc = time.perf_counter() - t2
    gate = Gate()
    organs = {}
    for c in chains:
        s = summarise(c.dose_gy, var[c.name], mc["doses"][c.name])
        s.update({"label": c.label, "method": c.method, "mass_g": c.mass_g,
                  "recovery_relative_sensitivity": c.recovery_relative_sensitivity,
                  "segmentation_relative_sd": c.segmentation_relative_sd,
                  "registration_relative_sd_per_time_point": list(c.registration_relative_sd)})
        if c.reduced is not None:
            s["reduced_protocol"] = c.reduced.describe()
            _haenscheid_range(gate, c.name, c.reduced)
        organs[c.name] = s
        _agreement(gate, c.name, s, settings.agreement_relative_tolerance)
    result = {"quantity": "dose_uncertainty", "unit": "Gy", "software": "spectdose", "software_version": __version__,
              "method": "EANM uncertainty guidance (Gear et al. EJNMMI 2018;45:2456): first-order propagation "
                        "with the fit covariance and the calibration factor common to all time points; Monte "
                        "Carlo resampling of the organ-level chain (refit of every draw)",
              "settings": settings.describe(), "registration_tre_mm": pc.tre_mm,
              "organs": {k: v for k, v in organs.items() if k != "red_marrow"},
              "red_marrow_eanm": organs.get("red_marrow")}
    if any(c.reduced is not None for c in chains):
        used = sorted({src for c in chains if c.reduced is not None for src in ("activity_noise", "registration")}
                      | {"prior_kinetics" for c in chains if c.reduced is not None and c.reduced.prior_model}
                      | {"reduced_method" for c in chains if c.reduced is not None and c.reduced.method_relative_sd})
        result["reduced_protocol"] = {
            "prior_fits": pc.prior_fits,
            "methods": {c.name: c.reduced.method for c in chains if c.reduced is not None},
            "tia_sources": used,
            "sources": {k: REDUCED_SOURCE_REFERENCES[k] for k in used},
            "propagation": "first order through the derivatives of the reduced TIA formula (pipeline/uncertainty/"
                           "reduced.py); Monte Carlo: the formula evaluated on resampled scans and on the earlier "
                           "curve's parameters drawn from their covariance (no refit)",
            "not_included": "a change of the organ kinetics between the cycles beyond the earlier fit's own "
                            "uncertainty; the earlier cycle's model choice (model_selection is 0 here); the "
                            "earlier curve's uncertainty in the LQ protraction factor g (BED)"}
    # kidneys together (mass-weighted, as the dose stage's planning), BED
    kid = [c for c in pc.organs if c.name in KIDNEYS]
    bed, central, rel, draws, g = {}, {}, {}, {}, {}
    ab, trep = pc.lq.get("kidney_left", (2.6, 2.8))
    mu = np.log(2.0) / trep
    for c in kid:
        g_c = pc.g_factor.get(c.name, 0.0)
        p = mc["params"].get(c.name)
        g_d = g_factor_many(c.method, p, c.lambda_phys_per_h, mu) if p is not None else np.full(mc["n_draws"], g_c)
        bed[c.name], _ = _bed_summary(c.dose_gy, var[c.name], mc["doses"][c.name], g_c, g_d, ab)
        g[c.name] = (g_c, g_d)
    if kid:
        w = np.array([c.mass_g for c in kid]) / sum(c.mass_g for c in kid)
        d_c = float(sum(wi * c.dose_gy for wi, c in zip(w, kid)))
        var_k = combine_analytic(kid, w, settings)
        d_draws = sum(wi * mc["doses"][c.name] for wi, c in zip(w, kid))
        result["kidneys_mass_weighted"] = summarise(d_c, var_k, d_draws)
        g_c = float(np.mean([g[c.name][0] for c in kid]))
        g_d = np.mean([g[c.name][1] for c in kid], axis=0)
        bed["kidneys"], _ = _bed_summary(d_c, var_k, d_draws, g_c, g_d, ab)
        central["kidneys"], rel["kidneys"], draws["kidneys"] = d_c, np.sqrt(sum(var_k.values())) / d_c, d_draws
        g_plan = {"kidneys": {"central": g_c, "draws": g_d}}
        for name, b in bed.items():
            _agreement(gate, f"bed_{name}", b, settings.agreement_relative_tolerance)
    else:
        g_plan = {}
    result["bed"] = bed
    if pc.marrow is not None:
        central["red_marrow"] = pc.marrow.dose_gy
        rel["red_marrow"] = organs["red_marrow"]["analytic_relative_sd"]
        draws["red_marrow"] = mc["doses"]["red_marrow"]
    # Monte Carlo planning on the pivot draws 2 D - D* (see propagate.summarise: the refits repeat the
    # estimator's bias, which would otherwise move the planned activity in the unsafe direction)
    draws = {k: np.maximum(2.0 * central[k] - v, 1e-12 * central[k]) for k, v in draws.items()}
    if pc.injected_gbq and central:
        result["planning"] = plan_with_confidence(pc.planning, central, rel, draws, g_plan, pc.injected_gbq,
                                                  settings.confidence, {"kidneys": (ab, trep)})
        result["planning"]["dose_stage_activity_gbq"] = pc.planning.get("activity_gbq")
    else:
        result["planning"] = {"status": "not available: no injected activity or no kidneys/marrow"}
    result["monte_carlo"] = {"draws": mc["n_draws"], "seed": mc["seed"]}
    result["timings_s"] = {"read_and_sensitivities": t_read, "analytic": t_analytic, "monte_carlo": t_mc}
    result["qc"], result["qc_summary"] = gate.to_list(), gate.summary()
    return result, _budget_rows(result)


def _budget_rows(result: dict) -> list[dict]:
    rows = []
    blocks = [(n, "absorbed_dose", s) for n, s in result["organs"].items()]
    if result.get("red_marrow_eanm"):
        blocks.append(("red_marrow_eanm", "absorbed_dose", result["red_marrow_eanm"]))
    if result.get("kidneys_mass_weighted"):
        blocks.append(("kidneys", "absorbed_dose", result["kidneys_mass_weighted"]))
    blocks += [(n, "bed", s) for n, s in result.get("bed", {}).items()]
    for name, quantity, s in blocks:
        central = s["central_gy"]
        for src in [n for n in SOURCE_NAMES if n in s["budget"]] + [n for n in s["budget"] if n not in SOURCE_NAMES]:
            b = s["budget"][src]
            rows.append({"structure": name, "quantity": quantity, "source": src, "sd": b["sd_gy"], "unit": "Gy",
                         "relative_sd": b["sd_gy"] / central if central else None,
                         "variance_share": b["variance_share"]})
        for src, sd in (("total_analytic", s["analytic_sd_gy"]), ("total_monte_carlo_robust", s["mc_sd_robust_gy"])):
            rows.append({"structure": name, "quantity": quantity, "source": src, "sd": sd, "unit": "Gy",
                         "relative_sd": sd / central if central else None,
                         "variance_share": 1.0 if src == "total_analytic" else None})
    return rows


def write_outputs(out_dir, result: dict, budget: list) -> Path:
    """Write ``uncertainty.json`` and ``budget.csv`` into ``out_dir`` as one atomic folder."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BUDGET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in budget:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "uncertainty.json", result)
        write_text(tmp / "budget.csv", buf.getvalue())
    return out_dir
