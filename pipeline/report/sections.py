"""The detail sections after page one: scans, dose statistics, marrow, BED, planning, kinetics, QC.

Each function takes ``results/<patient>`` and returns the HTML body of one section; a missing
file makes its part say "Not available: <why>". Values are printed with three significant digits
(values without an uncertainty) or matched to their uncertainty; units are in every header.
"""

from __future__ import annotations

from pathlib import Path

from .bed import eligible_bed
from .html import Raw, esc, image, kv_table, not_available, note, table
from .inputs import as_float, organ_label, read_csv, read_json, time_points
from .numbers import PLUS_MINUS, fmt_sig, fmt_with_uncertainty, key_label, plain_text
from .qc import collect_qc

__all__ = ["scans", "dose_statistics", "marrow", "bed", "planning", "kinetics", "registration",
           "segmentation", "quality_control"]


def _num(value) -> str | None:
    value = as_float(value)
    return None if value is None else fmt_sig(value)


def scans(pdir: Path) -> str:
    """One row per time point: time, acquisition, activity in the field of view, decay correction."""
    rows = []
    for tp, hours in time_points(pdir):
        rec, _ = read_json(pdir / "ingest" / tp / "timepoint.json")
        if not isinstance(rec, dict):
            continue
        fov, injected = as_float(rec.get("total_activity_in_fov_mbq")), as_float(rec.get("injected_activity_mbq"))
        decay = rec.get("decay_correction")
        decay_text = decay.get("note") or decay.get("found") if isinstance(decay, dict) else decay
        rows.append({
            "Time point": tp,
            "Time after injection (h)": _num(hours),
            "Acquisition (local time)": str(rec.get("acquisition_datetime") or "-").replace("T", " "),
            "Activity in field of view (MBq)": _num(fov),
            "Share of injected (%)": fmt_sig(100 * fov / injected, 3) if fov and injected else None,
            "Decay correction": decay_text,
            "Warnings": "; ".join(map(str, rec.get("warnings") or [])) or "none",
        })
    if not rows:
        return not_available("no ingest/<time point>/timepoint.json was written")
    return table(rows, caption="Scans (ingest/<time point>/timepoint.json)", css="wide",
                 numeric=("Time after injection (h)", "Activity in field of view (MBq)", "Share of injected (%)"))


_DOSE_COLUMNS = (("mean_gy", "Mean (Gy)"), ("median_gy", "Median (Gy)"), ("min_gy", "Min (Gy)"),
                 ("max_gy", "Max (Gy)"), ("d2_gy", "D2 (Gy)"), ("d98_gy", "D98 (Gy)"))


def dose_statistics(pdir: Path, figures: list) -> str:
    """Voxel statistics per structure (organ_doses.csv), the fused dose figures and the DVH figure."""
    rows, why = read_csv(pdir / "dose" / "organ_doses.csv")
    parts = []
    if rows is None:
        parts.append(not_available(why))
    else:
        out = []
        for rec in rows:
            mean, rel = as_float(rec.get("mean_gy")), as_float(rec.get("mean_gy_relative_sd_kinetics"))
            row = {"Structure": organ_label(rec.get("name", "?")), "Volume (mL)": _num(rec.get("volume_ml")),
                   "Mass (g)": _num(rec.get("mass_g"))}
            for key, header in _DOSE_COLUMNS:
                row[header] = _num(rec.get(key))
            if mean is not None:
                text, unc = fmt_with_uncertainty(mean, mean * rel if rel else None)
                row["Mean (Gy)"] = text if unc is None else f"{text} {PLUS_MINUS} {unc}"
            out.append(row)
        numeric = tuple(k for k in out[0] if k != "Structure")
        parts.append(table(out, caption="Voxel dose statistics per structure (dose/organ_doses.csv)",
                           css="wide", numeric=numeric))
        parts.append(note("D2 / D98: minimum dose to the hottest 2 % / 98 % of the structure. Mean: with one "
                          "standard deviation from the kinetic fit."))
    for path, caption in figures:
        parts.append(image(path, caption, css="full"))
    parts.append(image(pdir / "dose" / "dvh.png", "Cumulative dose-volume histograms (dose/dvh.png)"))
    return "".join(parts)


def marrow(pdir: Path) -> str:
    """The EANM image-based red-marrow dose and its assumptions."""
    data, why = read_json(pdir / "dose" / "marrow.json")
    if not isinstance(data, dict):
        return not_available(why or "dose/marrow.json holds no record")
    a = data.get("assumptions") if isinstance(data.get("assumptions"), dict) else {}
    pairs = [
        ("Method", data.get("method")),
        ("L2-L4 VOI TIA concentration (MBq h/mL)", _num(data.get("voi_tia_concentration_mbq_h_per_ml"))),
        ("Red-marrow TIA, whole body (MBq h)", _num(data.get("red_marrow_tia_mbq_h"))),
        ("Red-marrow mass (g)", _num(data.get("red_marrow_mass_g"))),
        ("Red-marrow absorbed dose (Gy)", _num(data.get("absorbed_dose_gy"))),
        ("Dose per activity (Gy/GBq)", _num(data.get("absorbed_dose_gy_per_gbq"))),
        ("Voxel mean dose in the VOI, for comparison (Gy)", _num(data.get("voxel_mean_dose_in_voi_gy"))),
        ("Share of the red marrow in L2-L4", _num(a.get("l2l4_share"))),
        ("Red-marrow density (g/mL)", _num(a.get("red_marrow_density_g_per_ml"))),
        ("Electron absorbed fraction", _num(a.get("electron_absorbed_fraction"))),
        ("Neglected", a.get("neglected")),
        ("Reference", a.get("reference")),
    ]
    return kv_table(pairs, caption="Red marrow (dose/marrow.json)")


def bed(pdir: Path) -> str:
    """BED and EQD2 for the structures with their own LQ parameters; notes on the rest."""
    rows, why = read_csv(pdir / "dose" / "bed.csv")
    if rows is None:
        return not_available(why)
    entries, notes = eligible_bed(pdir)
    parts = []
    if entries:
        rows = [{"Structure": organ_label(name), "BED (Gy)": fmt_sig(e.bed_gy),
                 "EQD2 (Gy)": fmt_sig(e.eqd2_gy) if e.eqd2_gy is not None else None,
                 "alpha/beta (Gy)": fmt_sig(e.alpha_beta_gy), "Repair half-time (h)": fmt_sig(e.repair_half_time_h),
                 "Parameters": e.origin} for name, e in entries.items()]
        parts.append(table(rows, caption="Biologically effective dose (dose/bed.csv)",
                           numeric=("BED (Gy)", "EQD2 (Gy)", "alpha/beta (Gy)", "Repair half-time (h)")))
        parts.append(note("Linear-quadratic model with incomplete repair during the continuous irradiation "
                          "(MIRD Pamphlet 20), using each structure's fitted time-activity model. Kidney "
                          "parameters as recorded by the dose stage (default alpha/beta 2.6 Gy, repair "
                          "half-time 2.8 h)."))
    elif not notes:
        parts.append(not_available("no structure has linear-quadratic parameters of its own"))
    parts += [note(n) for n in notes]
    return "".join(parts)


def planning(pdir: Path) -> str:
    """Activity that reaches each limit, and the doses at the planned activity."""
    data, why = read_json(pdir / "dose" / "planning.json")
    if not isinstance(data, dict):
        return not_available(why or "dose/planning.json holds no record")
    rows = [{"Organ": organ_label(r.get("organ", "?")),
             "Quantity": "BED" if r.get("quantity") == "bed" else "absorbed dose",
             "Limit (Gy)": f"{as_float(r.get('limit')):g}" if as_float(r.get("limit")) is not None else None,
             "Activity reaching the limit (GBq)": _num(r.get("activity_gbq"))}
            for r in data.get("allowed_activity_gbq") or [] if isinstance(r, dict)]
    parts = [table(rows, caption="Activity that reaches each limit (dose/planning.json)",
                   numeric=("Limit (Gy)", "Activity reaching the limit (GBq)"))] if rows else []
    others = data.get("other_organs_at_planned_activity_gy")
    if isinstance(others, dict) and others:
        parts.append(table([{"Structure": organ_label(k), "Mean dose at the planned activity (Gy)": _num(v)}
                            for k, v in others.items()],
                           caption=f"Doses at the planned activity of {_num(data.get('activity_gbq'))} GBq",
                           numeric=("Mean dose at the planned activity (Gy)",)))
    if data.get("basis"):
        parts.append(note("Basis: " + str(data["basis"])))
    return "".join(parts) or not_available("dose/planning.json lists no limits")


def kinetics(pdir: Path) -> str:
    """Chosen model and TIA per structure, warnings, and the time-activity figures."""
    kin = pdir / "kinetics"
    fits, why = read_json(kin / "fits.json")
    parts = []
    if not isinstance(fits, dict):
        parts.append(not_available(why))
    else:
        rows = []
        for name, fit in (fits.get("organs") or {}).items():
            if not isinstance(fit, dict):
                continue
            tia, sd = fmt_with_uncertainty(as_float(fit.get("tia_mbq_h")), as_float(fit.get("tia_sd_mbq_h")))
            rows.append({"Structure": organ_label(name), "Method": fit.get("method"),
                         "Chosen model": fit.get("chosen_model"),
                         "TIA (MBq h)": tia if sd is None else f"{tia} {PLUS_MINUS} {sd}",
                         "Relative SD (%)": _num(100 * as_float(fit["tia_relative_sd"]))
                         if as_float(fit.get("tia_relative_sd")) is not None else None,
                         "Warnings": "; ".join(map(str, fit.get("warnings") or [])) or "none"})
        parts.append(table(rows, caption="Fits per structure (kinetics/fits.json)", css="wide",
                           numeric=("TIA (MBq h)", "Relative SD (%)")) if rows
                     else not_available("fits.json lists no organs"))
        options = fits.get("options")
        if isinstance(options, dict):
            parts.append(kv_table([(key_label(k), plain_text(v)) for k, v in options.items()],
                                  caption="Kinetics options"))
        if fits.get("warnings"):
            parts.append("<ul class=\"warn\">" + "".join(f"<li>{esc(w)}</li>" for w in fits["warnings"]) + "</ul>")
    figures = sorted(kin.glob("tac_*.png")) if kin.is_dir() else []
    parts.append("".join(image(f, f"Time-activity curve: {organ_label(f.stem[4:])}") for f in figures)
                 or not_available("no kinetics/tac_*.png was written"))
    return "".join(parts)


def registration(pdir: Path) -> str:
    """One row per time point (status, motion, CT correlation, activity change) and the QC images."""
    rows, figures = [], []
    for tp, hours in time_points(pdir):
        qc, _ = read_json(pdir / "register" / tp / "qc.json")
        if not isinstance(qc, dict):
            continue
        rigid = qc.get("rigid") if isinstance(qc.get("rigid"), dict) else {}
        par = rigid.get("parameters") if isinstance(rigid.get("parameters"), dict) else {}
        corr = rigid.get("ct_correlation") if isinstance(rigid.get("ct_correlation"), dict) else {}
        act = qc.get("activity") if isinstance(qc.get("activity"), dict) else {}
        change = as_float(act.get("relative_change_in_fov"))
        rows.append({"Time point": tp, "Status": qc.get("status"), "Rotation (deg)": _num(par.get("rotation_deg")),
                     "Translation (mm)": _num(par.get("translation_at_center_mm")),
                     "CT correlation before / after": " / ".join(_num(corr.get(k)) or "-" for k in ("before", "after"))
                     if corr else None,
                     "Activity change in field of view (%)": fmt_sig(100 * change, 2) if change is not None else None,
                     "Problems": "; ".join(map(str, qc.get("problems") or [])) or "none"})
        figures.append(image(pdir / "register" / tp / "qc.png", f"Registration of {tp} onto the reference"))
    if not rows:
        return not_available("no register/<time point>/qc.json was written")
    return table(rows, caption="Registration per time point (register/<time point>/qc.json)", css="wide",
                 numeric=("Rotation (deg)", "Translation (mm)", "Activity change in field of view (%)")) \
        + "".join(figures)


def segmentation(pdir: Path) -> str:
    """Structures with volume, HU, density and mass; the segmenter's notes; the QC figure."""
    rows, why = read_csv(pdir / "segment" / "organs.csv")
    parts = []
    if rows is None:
        parts.append(not_available(why))
    else:
        parts.append(table([{"Structure": organ_label(r.get("name", "?")), "Volume (mL)": _num(r.get("volume_ml")),
                             "Mean CT number (HU)": _num(r.get("mean_hu")),
                             "Density (g/mL)": _num(r.get("density_g_per_ml")), "Mass (g)": _num(r.get("mass_g"))}
                            for r in rows], caption="Structures (segment/organs.csv)",
                           numeric=("Volume (mL)", "Mean CT number (HU)", "Density (g/mL)", "Mass (g)")))
    vocab, _ = read_json(pdir / "segment" / "labels.json")
    notes = [str(n) for n in (vocab or {}).get("notes", []) if str(n).strip()]
    if notes:
        # how the levels were named, the atlas, hot lesions labelled apart from the liver or spleen
        parts.append('<p class="note">Notes of the segmenter (segment/labels.json):</p><ul class="note">'
                     + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append(image(pdir / "segment" / "qc.png", "Segmentation on the reference CT"))
    return "".join(parts)


def quality_control(pdir: Path) -> str:
    """Every recorded check, per stage; the checks not passed first, in red, with their source."""
    parts = []
    for stage in collect_qc(pdir):
        verdict = stage.verdict
        css = "qcna" if verdict == "n/a" else f"qc{verdict}"
        parts.append(f'<h3 id="{esc(stage.anchor)}">{esc(stage.title)}: '
                     f'<span class="{css}">{esc(verdict.upper())}</span></h3>')
        if stage.missing and not stage.checks:
            parts.append(not_available(stage.missing))
            continue
        bad = stage.not_passed
        if bad:
            parts.append("<ul>" + "".join(
                f'<li class="qc{esc(c.status)}">{esc(c.status.upper())}: {esc(c.subject)}: {esc(c.name)} = '
                f"{esc(plain_text(c.value))} {esc(c.unit)} (expected {esc(c.expected)}). {esc(c.source)}"
                f"{(' ' + esc(c.note)) if c.note else ''}</li>" for c in bad) + "</ul>")
        rows = [{"Subject": c.subject, "Check": c.name.replace("_", " "), "Value": plain_text(c.value),
                 "Unit": c.unit or "-", "Expected": c.expected,
                 "Status": Raw(f'<span class="qc{esc(c.status)}">{esc(c.status)}</span>')} for c in stage.checks]
        parts.append(table(rows, css="wide compact", numeric=("Value",)))
    return "".join(parts)
