"""The course page: one self-contained HTML page from ``course/course.json``.

Written by ``spectdose course`` beside course.json (``course.html``): answer first (the sums
against the limits and the next cycle's activity), then the per-cycle table, the prediction
against delivery, the cumulative dose map's DVH statistics, and every QC check.
"""

from __future__ import annotations

from .html import Raw, kv_table, not_available, note, page, table
from .numbers import fmt_sig, fmt_with_uncertainty

__all__ = ["course_html"]

#: Structures shown first (organs at risk), then the others in course.json order.
_FIRST = ("kidneys", "kidney_left", "kidney_right", "red_marrow")


def _pm(value, sd) -> str:
    if value is None:
        return "-"
    v, s = fmt_with_uncertainty(value, sd)
    return v if s is None else f"{v} \u00b1 {s}"


def _order(names):
    return [n for n in _FIRST if n in names] + [n for n in names if n not in _FIRST]


def _answer(c: dict) -> str:
    rows = []
    for r in c["limits"]:
        if "total_gy" not in r:
            rows.append({"structure": r["structure"], "quantity": r["quantity"], "limit (Gy)": fmt_sig(r["limit_gy"]),
                         "status": r["status"]})
            continue
        nxt = r.get("next_cycle") or {}
        rows.append({"structure": r["structure"], "quantity": "BED" if r["quantity"] == "bed" else "absorbed dose",
                     "course total (Gy)": _pm(r["total_gy"], r.get("total_sd_gy")),
                     "limit (Gy)": fmt_sig(r["limit_gy"]), "remaining (Gy)": fmt_sig(r["remaining_gy"]),
                     "used (%)": fmt_sig(100 * r["fraction_used"]),
                     "next cycle to use it up (GBq)": _pm(nxt.get("activity_gbq"), nxt.get("activity_sd_gbq")),
                     "status": r["status"]})
    nxt = c.get("next_cycle") or {}
    sentence = (f"The {nxt['limiting_structure']} ({'BED' if nxt['limiting_quantity'] == 'bed' else 'absorbed dose'}) "
                f"limits the next cycle to {_pm(nxt['activity_gbq'], nxt.get('activity_sd_gbq'))} GBq "
                f"(dose per activity and kinetics of cycle {nxt['basis_cycle']})."
                if "activity_gbq" in nxt else f"Next cycle: {nxt.get('status', 'not available')}.")
    return (f"<p><strong>{sentence}</strong></p>"
            + table(rows, numeric=("course total (Gy)", "limit (Gy)", "remaining (Gy)", "used (%)",
                                   "next cycle to use it up (GBq)"))
            + note(c.get("bed_summation", "")) + note(c.get("uncertainty_note", "")))


def _per_cycle(c: dict) -> str:
    rows = []
    st = c["structures"]
    for name in _order(list(st)):
        s = st[name]
        for p in s["cycles"]:
            rows.append({"structure": name, "cycle": p["cycle"], "activity (GBq)": fmt_sig(p["administered_gbq"]),
                         "dose (Gy)": _pm(p["dose_gy"], p["dose_sd_gy"]),
                         "Gy/GBq": fmt_sig(p["gy_per_gbq"]) if p["gy_per_gbq"] is not None else "-",
                         "BED (Gy)": _pm(p["bed_gy"], p["bed_sd_gy"]), "kinetics": p["kinetics_method"]})
        rows.append({"structure": Raw(f"<strong>{name}</strong>"), "cycle": Raw("<strong>course</strong>"),
                     "dose (Gy)": _pm(s["total_dose_gy"], s["total_dose_sd_gy"]),
                     "BED (Gy)": _pm(s["total_bed_gy"], s["total_bed_sd_gy"])})
    return table(rows, numeric=("activity (GBq)", "dose (Gy)", "Gy/GBq", "BED (Gy)"))


def _prediction(c: dict) -> str:
    rows = [{"cycle": p["cycle"], "structure": p["structure"], "from cycle": p["basis_cycle"],
             "activity (GBq)": fmt_sig(p["administered_gbq"]), "predicted (Gy)": fmt_sig(p["predicted_dose_gy"]),
             "delivered (Gy)": fmt_sig(p["delivered_dose_gy"]),
             "delivered / predicted": fmt_sig(p["delivered_over_predicted"]) if p["delivered_over_predicted"] else "-",
             "delivered from": p["delivered_kinetics"]}
            for p in c["prediction"] if p["structure"] in _FIRST or p["structure"] in ("liver", "spleen")]
    if not rows:
        return not_available("a single cycle has nothing to predict")
    return (note("Predicted: the earlier cycle's dose per activity times this cycle's activity (same kinetics "
                 "assumed). Delivered: from this cycle's own scans. Their ratio is the change of the kinetics.")
            + table(rows, numeric=("activity (GBq)", "predicted (Gy)", "delivered (Gy)", "delivered / predicted")))


def _cumulative(c: dict) -> str:
    m = c.get("cumulative_dose_map")
    if not isinstance(m, dict):
        return not_available(str(m))
    rows = [{"structure": n, "mean (Gy)": fmt_sig(s["mean_gy"]), "D2 (Gy)": fmt_sig(s["d2_gy"]),
             "D50 (Gy)": fmt_sig(s["d50_gy"]), "D98 (Gy)": fmt_sig(s["d98_gy"])}
            for n, s in m["structures"].items()]
    reg = [{"cycle": r["cycle"], "registered": "yes" if r.get("registered") else "reference",
            "translation (mm)": fmt_sig(r["translation_mm"]) if "translation_mm" in r else "-",
            "rotation (deg)": fmt_sig(r["rotation_deg"]) if "rotation_deg" in r else "-"} for r in m["cycles"]]
    return (note(m["method"]) + table(rows, numeric=("mean (Gy)", "D2 (Gy)", "D50 (Gy)", "D98 (Gy)"))
            + table(reg, caption="Cycles onto the course reference CT"))


def _qc(c: dict) -> str:
    rows = [{"status": Raw(f'<span class="{q["status"]}">{q["status"]}</span>'), "subject": q["subject"],
             "check": q["name"], "value": q["value"], "expected": q["expected"], "why": q["source"]}
            for q in c.get("qc", [])]
    return table(rows) if rows else not_available("no QC records")


def course_html(course: dict) -> str:
    """The course page (HTML text) from the parsed course.json."""
    cycles = [{"cycle": x["id"], "kind": x["kind"], "compound": x.get("compound") or "-",
               "activity (MBq)": fmt_sig(x["administered_activity_mbq"]), "administered": x["injection_datetime"],
               "scans": x["n_scans"],
               "kinetics": (x["reduced_protocol"] or {}).get("statement", "fitted (full protocol)")}
              for x in course["cycles"]]
    header = kv_table([("patient", course.get("patient_id")), ("radionuclide", course.get("radionuclide")),
                       ("cycles", len(course["cycles"])), ("planning basis", course.get("planning_basis"))])
    sections = [
        ("answer", "Course against the limits", _answer(course), ""),
        ("cycles", "Cycles", table(cycles, numeric=("activity (MBq)", "scans")), ""),
        ("doses", "Dose and BED per cycle and over the course", _per_cycle(course), ""),
        ("prediction", "Prediction against delivery", _prediction(course), ""),
        ("cumulative", "Cumulative dose map", _cumulative(course), ""),
        ("qc", "Quality checks", _qc(course), ""),
    ]
    return page(f"Therapy course {course.get('patient_id') or ''}".strip(), header, sections,
                print_label=f"spectdose course {course.get('patient_id') or ''}")
