"""Report section of the uncertainty stage (``uncertainty/uncertainty.json``), shown when it exists.

One table of the doses with their standard uncertainty and 95 % interval (Monte Carlo, and the
analytic SD beside it), the uncertainty budget of every structure (SD in Gy of each source and
its share of the variance; a reduced-protocol cycle's two sources of its own, the earlier cycle's
kinetics and the single-time-point method, only where present), the kidney BED, and the planned
activity at the stated confidence beside the central estimate.
"""

from __future__ import annotations

from pathlib import Path

from .html import note, table
from .inputs import organ_label, read_json
from .numbers import PLUS_MINUS, fmt_sig, fmt_with_uncertainty

__all__ = ["uncertainty_section", "TITLE"]

TITLE = "Uncertainty (EANM)"
SOURCE_LABELS = {"calibration": "calibration", "activity_noise": "time-point activities (fit)",
                 "model_selection": "model selection",
                 "registration": "registration", "recovery": "recovery (PVC)", "segmentation": "segmentation",
                 "s_value": "S-values", "density": "density",
                 # a reduced-protocol cycle of a course only (pipeline.uncertainty.reduced)
                 "prior_kinetics": "earlier cycle's kinetics", "reduced_method": "single-time-point method"}
#: Sources shown only when a structure has them in its budget.
OPTIONAL_SOURCES = ("prior_kinetics", "reduced_method")


def _dose_row(name: str, s: dict) -> dict:
    value, sd = fmt_with_uncertainty(s["central_gy"], s["mc_sd_robust_gy"])
    lo, hi = s["mc_interval95_gy"]
    return {"Structure": name, f"Dose {PLUS_MINUS} SD (Gy)": f"{value} {PLUS_MINUS} {sd}" if sd else value,
            "Relative SD (%)": fmt_sig(100 * s["mc_sd_robust_gy"] / s["central_gy"], 2) if s["central_gy"] else None,
            "95 % interval (Gy)": f"{fmt_sig(lo)} - {fmt_sig(hi)}",
            "Analytic SD (Gy)": fmt_sig(s["analytic_sd_gy"], 2),
            "Largest source": SOURCE_LABELS.get(s.get("largest_source"), s.get("largest_source"))}


def _structures(data: dict) -> list:
    out = [(organ_label(n), "dose", s) for n, s in (data.get("organs") or {}).items()]
    if data.get("red_marrow_eanm"):
        out.append(("Red marrow (EANM)", "dose", data["red_marrow_eanm"]))
    if data.get("kidneys_mass_weighted"):
        out.append(("Kidneys (mass-weighted)", "dose", data["kidneys_mass_weighted"]))
    out += [(f"{organ_label(n)} BED" if n != "kidneys" else "Kidneys BED", "bed", s)
            for n, s in (data.get("bed") or {}).items()]
    return out


def uncertainty_section(pdir: Path) -> str | None:
    """HTML of the section, or ``None`` when the uncertainty stage has not run."""
    path = Path(pdir) / "uncertainty" / "uncertainty.json"
    if not path.is_file():
        return None
    data, why = read_json(path)
    if not isinstance(data, dict):
        return note(f"Uncertainty not available: {why}")
    structures = _structures(data)
    parts = [table([_dose_row(n, s) for n, _, s in structures],
                   caption="Absorbed dose and BED with their standard uncertainty (uncertainty/uncertainty.json)",
                   numeric=(f"Dose {PLUS_MINUS} SD (Gy)", "Relative SD (%)", "95 % interval (Gy)", "Analytic SD (Gy)"))]
    present = {src for _, _, st in structures for src in (st.get("budget") or {})}
    sources = [src for src in SOURCE_LABELS if src not in OPTIONAL_SOURCES or src in present]
    budget_rows = []
    for name, _, s in structures:
        row = {"Structure": name}
        for src in sources:
            b = (s.get("budget") or {}).get(src) or {}
            share = b.get("variance_share")
            row[f"{SOURCE_LABELS[src]} (Gy)"] = (f"{fmt_sig(b.get('sd_gy', 0.0), 2)} ({fmt_sig(100 * share, 2)} %)"
                                                if share else "0")
        budget_rows.append(row)
    parts.append(table(budget_rows, caption="Uncertainty budget: SD of each source in Gy (share of the variance)",
                       numeric=tuple(f"{SOURCE_LABELS[s]} (Gy)" for s in sources)))
    plan = data.get("planning") or {}
    if "central_activity_gbq" in plan:
        conf = 100 * plan["confidence"]
        parts.append(table([
            {"Planned activity": "central estimate (dose stage)",
             "Activity (GBq)": fmt_sig(plan["central_activity_gbq"]),
             "Limiting": f"{organ_label(plan['central_limiting_organ'])} ({plan['central_limiting_quantity']})"},
            {"Planned activity": f"{conf:g} % confidence, every limit at once (Monte Carlo)",
             "Activity (GBq)": fmt_sig(plan["mc_joint_activity_gbq"]), "Limiting": ""},
            {"Planned activity": f"{conf:g} % confidence per limit (analytic)",
             "Activity (GBq)": fmt_sig(plan["analytic_activity_gbq"]), "Limiting": plan["analytic_limiting"]},
        ], caption="Activity planning with its uncertainty", numeric=("Activity (GBq)",)))
    red = data.get("reduced_protocol")
    if isinstance(red, dict):
        methods = ", ".join(f"{organ_label(n)}: {m}" for n, m in (red.get("methods") or {}).items())
        parts.append(note(f"Reduced-protocol cycle (one or two scans): the TIA formula of each structure ({methods}) "
                          f"is propagated with the earlier cycle's fit ({red.get('prior_fits') or 'none'}). "
                          f"Not included: {red.get('not_included', 'see uncertainty.json')}."))
    mc = data.get("monte_carlo") or {}
    parts.append(note(f"First-order propagation (EANM, Gear et al. 2018) with the fit covariance and the calibration "
                      f"factor common to all time points; Monte Carlo resampling of the organ-level chain "
                      f"({mc.get('draws')} draws, seed {mc.get('seed')}). SD: Monte Carlo (half the central 68 % "
                      f"width); 95 % interval: Monte Carlo percentiles. Source values and their origin: "
                      f"uncertainty.json, settings."))
    return "".join(parts)
