"""Page one: the facts of the treatment, one organ table, the planning sentence and the QC verdicts.

The organ table shows, per structure of ``dose/organ_doses.csv`` and the EANM red marrow of
``dose/marrow.json``: mass (g), organ-level TIA (MBq h, ``kinetics/fits.json``), mean absorbed
dose (Gy) with its standard uncertainty from the kinetic fit, Gy/GBq, BED (Gy) where the
linear-quadratic parameters are known for that organ (:mod:`pipeline.report.bed`) and the
status against the limits of ``dose/planning.json``.
"""

from __future__ import annotations

from pathlib import Path

from .bed import eligible_bed
from .html import Raw, esc, kv_table, not_available, note, table
from .inputs import as_float, organ_label, read_csv, read_json, time_points
from .numbers import PLUS_MINUS, fmt_sig, fmt_with_uncertainty
from .qc import collect_qc

__all__ = ["summary_html", "organ_rows", "planning_sentence", "qc_verdict_html", "ORGAN_COLUMNS"]

ORGAN_COLUMNS = ("Organ", "Mass (g)", "TIA (MBq h)", f"Mean dose (Gy) {PLUS_MINUS} SD", "Dose per activity (Gy/GBq)",
                 "BED (Gy)", "Status against limit")
_NUMERIC = ORGAN_COLUMNS[1:6]


def _pm(value, sd) -> str:
    text, unc = fmt_with_uncertainty(value, sd)
    return text if unc is None else f"{text} {PLUS_MINUS} {unc}"


def _limits(planning) -> dict:
    """Structure name -> (dose limit Gy, BED limit Gy) from planning.json."""
    out = {}
    organs = planning.get("organs") if isinstance(planning, dict) else None
    for name, rec in (organs or {}).items():
        if isinstance(rec, dict):
            out[name] = (as_float(rec.get("dose_limit_gy")), as_float(rec.get("bed_limit_gy")))
    for kidney in ("kidney_left", "kidney_right"):
        if "kidneys" in out:
            out.setdefault(kidney, out["kidneys"])
    return out


def _gy(value) -> str:
    """A limit as configured (23, 2, 40.5): no padding zeros."""
    return f"{value:g}"


def _status(dose, bed, limits) -> str:
    if limits is None or (limits[0] is None and limits[1] is None):
        return "no limit set"
    parts, over = [], False
    for value, limit, what in ((dose, limits[0], "dose"), (bed, limits[1], "BED")):
        if value is None or limit is None:
            continue
        share = 100.0 * value / limit
        over |= share > 100.0
        parts.append(f"{fmt_sig(share, 2)} % of {_gy(limit)} Gy ({what})")
    if not parts:
        return "no limit set"
    text = esc(("ABOVE LIMIT: " if over else "below: ") + "; ".join(parts))
    return Raw(f'<span class="over">{text}</span>' if over else text)


def organ_rows(patient_dir) -> tuple[list, list]:
    """The rows of the page-one organ table and the notes that go under it.

    Parameters
    ----------
    patient_dir : path
        ``results/<patient>``.

    Returns
    -------
    rows : list of dict
        Keys :data:`ORGAN_COLUMNS` plus ``"name"`` (the structure name of the CSV).
    notes : list of str
        What is not shown and why (BED withheld, missing TIA or uncertainty).
    """
    pdir = Path(patient_dir)
    doses, why = read_csv(pdir / "dose" / "organ_doses.csv")
    if doses is None:
        return [], [f"organ doses: {why}"]
    fits, _ = read_json(pdir / "kinetics" / "fits.json")
    fit_organs = fits.get("organs", {}) if isinstance(fits, dict) else {}
    planning, _ = read_json(pdir / "dose" / "planning.json")
    limits = _limits(planning)
    bed, notes = eligible_bed(pdir)
    rows = []
    for rec in doses:
        name = rec.get("name", "?")
        mean = as_float(rec.get("mean_gy"))
        rel = as_float(rec.get("mean_gy_relative_sd_kinetics"))
        per_gbq = as_float(rec.get("mean_gy_per_gbq"))
        fit = fit_organs.get(name) if isinstance(fit_organs.get(name), dict) else {}
        tia, tia_sd = as_float(fit.get("tia_mbq_h")), as_float(fit.get("tia_sd_mbq_h"))
        b = bed.get(name)
        rows.append({
            "name": name,
            "Organ": organ_label(name),
            "Mass (g)": fmt_sig(as_float(rec.get("mass_g"))) if as_float(rec.get("mass_g")) is not None else None,
            "TIA (MBq h)": _pm(tia, tia_sd) if tia is not None else None,
            ORGAN_COLUMNS[3]: _pm(mean, mean * rel if rel is not None and mean is not None else None),
            "Dose per activity (Gy/GBq)": (_pm(per_gbq, per_gbq * rel if rel is not None else None)
                                           if per_gbq is not None else None),
            "BED (Gy)": _pm(b.bed_gy, b.bed_gy * rel if rel is not None else None) if b else "not applicable",
            "Status against limit": _status(mean, b.bed_gy if b else None, limits.get(name)),
        })
    marrow, _ = read_json(pdir / "dose" / "marrow.json")
    if isinstance(marrow, dict) and as_float(marrow.get("absorbed_dose_gy")) is not None:
        voi = fit_organs.get("marrow_L2L4") if isinstance(fit_organs.get("marrow_L2L4"), dict) else {}
        rel = as_float(voi.get("tia_relative_sd"))
        dose = as_float(marrow["absorbed_dose_gy"])
        tia = as_float(marrow.get("red_marrow_tia_mbq_h"))
        per = as_float(marrow.get("absorbed_dose_gy_per_gbq"))
        b = bed.get("red_marrow")
        rows.append({
            "name": "red_marrow",
            "Organ": "Red marrow (EANM, whole body)",
            "Mass (g)": fmt_sig(as_float(marrow.get("red_marrow_mass_g"))),
            "TIA (MBq h)": _pm(tia, tia * rel if rel is not None and tia is not None else None) if tia else None,
            ORGAN_COLUMNS[3]: _pm(dose, dose * rel if rel is not None else None),
            "Dose per activity (Gy/GBq)": _pm(per, per * rel if rel is not None else None) if per else None,
            "BED (Gy)": _pm(b.bed_gy, None) if b else "not applicable",
            "Status against limit": _status(dose, b.bed_gy if b else None, limits.get("red_marrow")),
        })
    return rows, notes


def planning_sentence(patient_dir) -> str | None:
    """One sentence: the organ that limits the activity, the activity, the other organ's dose.

    ``None`` when ``dose/planning.json`` was not written or names no limiting organ.
    """
    planning, _ = read_json(Path(patient_dir) / "dose" / "planning.json")
    if not isinstance(planning, dict) or not planning.get("limiting_organ"):
        return None
    organ = str(planning["limiting_organ"])
    activity = as_float(planning.get("activity_gbq"))
    limit = as_float(planning.get("limit_value"))
    quantity = "BED" if planning.get("limiting_quantity") == "bed" else "absorbed dose"
    subject = {"kidneys": "The kidneys limit", "red_marrow": "The red marrow limits"}.get(
        organ, f"The {organ_label(organ).lower()} limits")
    if activity is None:
        return None
    text = f"{subject} the activity to {fmt_sig(activity)} GBq ({_gy(limit) if limit else '?'} Gy {quantity})"
    others = []
    for name, rec in (planning.get("organs") or {}).items():
        if name == organ or not isinstance(rec, dict) or as_float(rec.get("absorbed_dose_gy")) is None:
            continue
        what = f"the {organ_label(name).lower()} would receive {fmt_sig(as_float(rec['absorbed_dose_gy']))} Gy"
        if as_float(rec.get("bed_gy")) is not None and name == "kidneys":
            what += f" (BED {fmt_sig(as_float(rec['bed_gy']))} Gy)"
        others.append(what)
    if others:
        text += "; at that activity " + " and ".join(others)
    return text + "."


def qc_verdict_html(patient_dir) -> str:
    """The overall QC verdict and one row per stage, checks not passed named in red and linked."""
    stages = collect_qc(patient_dir)
    verdicts = [s.verdict for s in stages]
    worst = "fail" if "fail" in verdicts else "warn" if "warn" in verdicts else (
        "n/a" if "n/a" in verdicts else "pass")
    total = sum(len(s.checks) for s in stages)
    bad = sum(len(s.not_passed) for s in stages)
    word = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "n/a": "INCOMPLETE"}[worst]
    css = "qcna" if worst == "n/a" else f"qc{worst}"
    head = (f'<p class="verdict">QC verdict: <span class="{css}">{word}</span> '
            f"{esc(f'({total} checks recorded by {len(stages)} stages, {bad} not passed)')}</p>")
    rows = []
    for stage in stages:
        counts = stage.counts()
        named = "; ".join(
            f'<a class="qc{esc(c.status)}" href="#{esc(stage.anchor)}">{esc(c.status.upper())}: '
            f"{esc(c.subject)} {esc(c.name)}</a>" for c in stage.not_passed)
        v = stage.verdict
        rows.append({
            "Stage": stage.title,
            "Verdict": Raw(f'<span class="{"qcna" if v == "n/a" else "qc" + v}">{esc(v.upper())}</span>'),
            "Checks (pass / warn / fail)": (f"{counts['pass']} / {counts['warn']} / {counts['fail']}"
                                            if stage.checks else stage.missing),
            "Checks not passed": Raw(named) if named else "none",
        })
    return head + table(rows, caption="Quality control of every stage", css="wide")


def _facts(pdir: Path) -> list:
    """(label, value) rows: patient, radionuclide, activity, date, scans, method."""
    fits, _ = read_json(pdir / "kinetics" / "fits.json")
    prov, _ = read_json(pdir / "dose" / "dose_provenance.json")
    dose_side, _ = read_json(pdir / "dose" / "dose.json")
    record = None
    for tp, _ in time_points(pdir):
        record, _ = read_json(pdir / "ingest" / tp / "timepoint.json")
        if isinstance(record, dict):
            break
    record = record if isinstance(record, dict) else {}
    fits = fits if isinstance(fits, dict) else {}
    prov = prov if isinstance(prov, dict) else {}
    nuclide = fits.get("radionuclide") or record.get("radionuclide") or prov.get("radionuclide")
    activity = as_float(prov.get("injected_activity_mbq") or fits.get("injected_activity_mbq")
                        or record.get("injected_activity_mbq"))
    scans = ", ".join(f"{tp} ({fmt_sig(h)} h)" if h is not None else tp for tp, h in time_points(pdir))
    return [
        ("Patient (pseudonym)", record.get("patient_id") or fits.get("patient_id") or pdir.name),
        ("Radionuclide", nuclide or "not recorded"),
        ("Injected activity", f"{fmt_sig(activity / 1000.0)} GBq ({fmt_sig(activity)} MBq)"
         if activity else "not recorded"),
        ("Injection date and time", str(record.get("injection_datetime") or "not recorded").replace("T", " ")),
        ("Scans (time after injection)", scans or "not recorded"),
        ("Method", _method(prov, dose_side if isinstance(dose_side, dict) else {}, fits)),
    ]


def _method(prov: dict, dose_side: dict, fits: dict) -> str:
    settings = prov.get("settings") if isinstance(prov.get("settings"), dict) else {}
    assumptions = prov.get("assumptions") if isinstance(prov.get("assumptions"), dict) else {}
    kernel = dose_side.get("kernel") if isinstance(dose_side.get("kernel"), dict) else {}
    kprov = kernel.get("provenance") if isinstance(kernel.get("provenance"), dict) else {}
    parts = []
    method = settings.get("method") or dose_side.get("method")
    if method:
        parts.append(f"dose by {'voxel S-value convolution' if method == 'convolution' else method}")
    if kprov:
        size = kernel.get("voxel_size_mm") or kprov.get("voxel_size_mm")
        size = " x ".join(fmt_sig(float(v)) for v in size) + " mm" if isinstance(size, list) else ""
        engine = (kprov.get("physics") or {}).get("engine") if isinstance(kprov.get("physics"), dict) else None
        parts.append(f"kernel: {kprov.get('kind', 'voxel S-values')} in {kernel.get('medium', 'water')}"
                     + (f", {size}" if size else "") + (f" ({engine})" if engine else ""))
    if "include_photons" in settings:
        how = {"transport": " (photons by Monte Carlo transport in the CT densities)",
               "kernel": " (photons by the water kernel, density-scaled)"}.get(settings.get("photon_method"), "")
        parts.append(("electrons and photons" + how) if settings["include_photons"] else "electrons only")
    if assumptions.get("density_correction"):
        curve = str(assumptions.get("hu_to_density") or "").split(" (")[0]
        parts.append("density-corrected from CT" + (f" ({curve})" if curve else ""))
    options = fits.get("options") if isinstance(fits.get("options"), dict) else {}
    kinetics = prov.get("kinetics") if isinstance(prov.get("kinetics"), dict) else {}
    pvc = options.get("pvc") or kinetics.get("partial_volume_correction")
    if pvc:
        level = "voxel level: corrects the dose maps" if pvc in ("rbv", "iy") else "organ level: organ curves only"
        parts.append("partial-volume correction: " + ("off" if pvc == "none" else f"on ({pvc}, {level})"))
    if settings.get("organ_grid"):
        parts.append(f"organ doses on the {'CT' if settings['organ_grid'] == 'ct' else 'SPECT'} grid")
    if options.get("selection"):
        parts.append("time-activity model chosen by AICc")
    return "; ".join(parts) if parts else "not recorded (dose/dose_provenance.json missing)"


def _organ_lesion_notes(qc) -> list:
    """One line per organ whose hot lesions the segmenter labelled apart (``qc``: segment/qc.json)."""
    found = ((qc if isinstance(qc, dict) else {}).get("organ_method") or {}).get("organ_lesions") or {}
    out = []
    for organ, rec in found.items():
        names = [organ_label(n) for n in (rec or {}).get("labels") or []]
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            out.append(f"{organ_label(organ)}: the dose is its parenchyma's. Hot lesions inside it ({shown}) "
                       f"and {sum((rec.get('spill_zone_ml') or [0.0])):.0f} mL around them raised by their spill "
                       "are left out (segment/qc.json, organ_lesions).")
    return out


def _segmentation_notes(qc) -> list:
    """Page-one lines for organs declared absent and for a vertebra left out of the marrow VOI
    (``qc``: segment/qc.json): what the organ table does not show, and why."""
    if not isinstance(qc, dict):
        return []
    out = []
    absent = [c.get("structure") for c in qc.get("checks") or []
              if isinstance(c, dict) and c.get("check") == "present" and c.get("status") == "pass"
              and c.get("expected") == "absent (declared)"]
    for organ in absent:
        line = f"{organ_label(organ)}: declared absent at segmentation (nephrectomy or splenectomy); no dose for it."
        other = {"kidney_left": "kidney_right", "kidney_right": "kidney_left"}.get(organ)
        if other and other not in absent:
            line += f" The kidney limit is applied to the {organ_label(other).lower()} alone."
        out.append(line)
    mu = qc.get("marrow_uptake") if isinstance(qc.get("marrow_uptake"), dict) else {}
    ratios = mu.get("ratio_to_coldest") or {}
    for n in mu.get("excluded") or []:
        kept = ", ".join(v for v in ("L2", "L3", "L4") if v != n)
        out.append(f"Red marrow: {n} was left out of the L2-L4 marrow VOI; its SPECT concentration was "
                   f"{as_float(ratios.get(n)) or float('nan'):.2f} x the coldest vertebra's (focal uptake: a "
                   f"metastasis?). The marrow dose comes from {kept} (segment/qc.json, marrow_uptake).")
    if mu.get("ambiguous"):
        out.append(f"Red marrow: {' and '.join(mu['ambiguous'])} read more than {mu.get('max_ratio', 1.5):g} x the "
                   "third vertebra's concentration; none was left out (metastases in two vertebrae, or one cold "
                   "vertebra). Look at the SPECT before using the marrow dose.")
    return out


def summary_html(patient_dir) -> str:
    """The whole page-one section body."""
    pdir = Path(patient_dir)
    parts = [kv_table(_facts(pdir), caption=None).replace('class="kv"', 'class="kv facts"')]
    rows, notes = organ_rows(pdir)
    if rows:
        parts.append(table(rows, ORGAN_COLUMNS, caption="Organ doses", css="wide organs", numeric=_NUMERIC))
        parts.append(note(f"{PLUS_MINUS} SD: one standard deviation from the time-activity fit only "
                          "(calibration, segmentation and kernel uncertainties are not included). "
                          "Dose per activity: per GBq injected. TIA: organ-level fit."))
        parts += [note(n) for n in notes]
        seg_qc, _ = read_json(pdir / "segment" / "qc.json")
        parts += [note(n) for n in _organ_lesion_notes(seg_qc) + _segmentation_notes(seg_qc)]
    else:
        parts.append(not_available("; ".join(notes) or "no organ doses"))
    sentence = planning_sentence(pdir)
    parts.append(f'<p class="planning">{esc(sentence)}</p>' if sentence
                 else not_available("activity planning: dose/planning.json was not written"))
    parts.append(qc_verdict_html(pdir))
    return "".join(parts)
