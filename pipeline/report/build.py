"""Assemble the per-patient HTML report from whatever the stages wrote in ``results/<patient>/``.

Each section reads its files on its own; a missing or unreadable file makes that section say
"Not available: <why>" instead of failing, so the report can be built at any point of a run.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from pathlib import Path

from .html import esc, image, mapping_table, not_available, page, table

__all__ = ["build_report", "report_sections"]


def _read_json(path: Path):
    """(data, None) or (None, reason)."""
    if not path.is_file():
        return None, f"{path.parent.name}/{path.name} was not written"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.parent.name}/{path.name} is unreadable ({exc})"


def _read_csv(path: Path):
    if not path.is_file():
        return None, f"{path.parent.name}/{path.name} was not written"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle)), None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, f"{path.parent.name}/{path.name} is unreadable ({exc})"


def _csv_section(path: Path, caption: str | None = None) -> str:
    rows, why = _read_csv(path)
    return not_available(why) if rows is None else table(rows, caption=caption)


def _json_section(path: Path) -> str:
    data, why = _read_json(path)
    if data is None:
        return not_available(why)
    return mapping_table(data) if isinstance(data, dict) else esc(json.dumps(data))


def _time_points(pdir: Path) -> list[str]:
    """Time point ids, from the kinetics fits, else the folders the registration wrote."""
    fits, _ = _read_json(pdir / "kinetics" / "fits.json")
    if isinstance(fits, dict) and isinstance(fits.get("time_points"), list):
        return [str(tp.get("id")) for tp in fits["time_points"] if isinstance(tp, dict)]
    register = pdir / "register"
    found = sorted(p.name for p in register.iterdir() if (p / "qc.json").is_file()) if register.is_dir() else []
    return found


#: Columns of the scans table, from each time point's timepoint.json, when present.
SCAN_COLUMNS = ("time_point", "time_h", "acquisition_datetime", "injection_datetime", "radionuclide",
                "injected_activity_mbq", "total_activity_in_fov_mbq", "decay_correction", "warnings")


def _scans(pdir: Path) -> str:
    rows = []
    ingest = pdir / "ingest"
    if ingest.is_dir():
        for folder in sorted(p for p in ingest.iterdir() if p.is_dir()):
            record, _ = _read_json(folder / "timepoint.json")
            if isinstance(record, dict):
                rows.append({**record, "time_point": folder.name})
    if not rows:
        return not_available("no ingest/<time point>/timepoint.json was written")
    rows.sort(key=lambda r: float(r.get("time_h", 0) or 0))
    columns = [c for c in SCAN_COLUMNS if any(c in row for row in rows)]
    return table(rows, columns, caption="Scans (ingest/<time point>/timepoint.json)")


def _fits(pdir: Path) -> str:
    kin = pdir / "kinetics"
    fits, why = _read_json(kin / "fits.json")
    parts = []
    if fits is None:
        parts.append(not_available(why))
    else:
        organs = fits.get("organs", {}) if isinstance(fits, dict) else {}
        rows = []
        for name, fit in organs.items():
            if not isinstance(fit, dict):
                continue
            rows.append({
                "organ": name,
                "method": fit.get("method"),
                "chosen model": fit.get("chosen_model"),
                "TIA (MBq*h)": fit.get("tia_mbq_h"),
                "relative SD": fit.get("tia_relative_sd"),
                "warnings": "; ".join(map(str, fit.get("warnings") or [])),
            })
        parts.append(table(rows, caption="Fits per organ (kinetics/fits.json)") if rows
                     else not_available("fits.json lists no organs"))
        warnings = fits.get("warnings") if isinstance(fits, dict) else None
        if warnings:
            parts.append("<ul class=\"warn\">" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    figures = sorted(kin.glob("tac_*.png")) if kin.is_dir() else []
    parts.append("".join(image(f, f"time-activity curve: {f.stem[4:]}") for f in figures)
                 or not_available("no kinetics/tac_*.png was written"))
    return "".join(parts)


def _registration(pdir: Path) -> str:
    tps = _time_points(pdir)
    if not tps:
        return not_available("no register/<time point>/ output was written")
    parts = []
    for tp in tps:
        folder = pdir / "register" / tp
        parts.append(f"<h3>{esc(tp)}</h3>")
        parts.append(_json_section(folder / "qc.json"))
        parts.append(image(folder / "qc.png", f"registration of {tp} onto the reference"))
    return "".join(parts)


def _segment_gate(path: Path) -> str:
    """The segmentation QC gate: verdict, then every warn/fail check in red, then the passes."""
    qc, why = _read_json(path)
    if not isinstance(qc, dict) or "checks" not in qc:
        return not_available(why or f"{path.name} holds no checks")
    checks = qc["checks"]
    bad = [c for c in checks if c.get("status") in ("warn", "fail")]
    verdict = qc.get("status", "?")
    head = f"<p class=\"qc{esc(verdict)}\">Segmentation QC gate: {esc(verdict).upper()}"
    if qc.get("overridden"):
        head += " (failing checks overridden with segment.qc: warn)"
    head += f" - {len(checks)} checks, {len(bad)} not passed.</p>"
    parts = [head]

    def shown(v):  # three significant digits: the checks' ranges are not finer than that
        return f"{v:.3g}" if isinstance(v, float) else v

    if bad:
        parts.append("<ul>" + "".join(
            f"<li class=\"qc{esc(c['status'])}\">{esc(c['status']).upper()}: {esc(c['structure'])}: "
            f"{esc(c['check'])} = {esc(shown(c['value']))} {esc(c['unit'])} (expected {esc(c['expected'])})"
            f"{(' - ' + esc(c['note'])) if c.get('note') else ''}</li>" for c in bad) + "</ul>")
    rows = [{k: shown(c.get(k)) for k in ("structure", "check", "value", "unit", "status", "expected", "source")}
            for c in checks]
    parts.append(table(rows, caption="All checks (segment/qc.json)"))
    return "".join(parts)


def _segmentation(pdir: Path) -> str:
    seg = pdir / "segment"
    return (_segment_gate(seg / "qc.json")
            + image(seg / "qc.png", "segmentation on the reference CT")
            + _csv_section(seg / "organs.csv", "Organs (segment/organs.csv)"))


def _assumptions(pdir: Path) -> str:
    parts = []
    # the dose stage writes its assumptions and settings to dose_provenance.json
    dose, why = _read_json(pdir / "dose" / "dose_provenance.json")
    if dose is None:
        parts.append(not_available(why))
    else:
        if dose.get("assumptions"):
            assumptions = dose["assumptions"]
            parts.append(mapping_table(assumptions, "Dose calculation") if isinstance(assumptions, dict)
                         else "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in assumptions) + "</ul>")
        if dose.get("settings"):
            parts.append(mapping_table(dose["settings"], "Dose settings"))
        if isinstance(dose.get("kinetics"), dict):
            parts.append(mapping_table({k: v for k, v in dose["kinetics"].items() if k != "options"},
                                       "Kinetics as used by the dose stage"))
    marrow, _ = _read_json(pdir / "dose" / "marrow.json")
    if isinstance(marrow, dict) and marrow.get("assumptions"):
        parts.append(mapping_table({"marrow": marrow["assumptions"]}, "Marrow dose"))
    fits, _ = _read_json(pdir / "kinetics" / "fits.json")
    if isinstance(fits, dict) and isinstance(fits.get("options"), dict):
        parts.append(mapping_table(fits["options"], "Kinetics"))
    return "".join(parts) or not_available("no stage recorded its assumptions")


def _provenance(pdir: Path) -> str:
    from .. import __version__
    from ..info import engine_versions

    parts = [mapping_table({"spectdose": __version__, **engine_versions()},
                           "Software at the time of this report")]
    dose, why = _read_json(pdir / "dose" / "dose.json")
    if dose is None:
        parts.append(not_available(f"kernel provenance: {why}"))
    elif dose.get("kernel"):
        parts.append(mapping_table(dose["kernel"], "Dose kernel"))
    else:
        parts.append(not_available(f"no kernel in dose/dose.json (method: {dose.get('method', '?')})"))
    rows = []
    for stage in ("ingest", "register", "segment", "kinetics", "dose"):
        folder = pdir / stage
        for sidecar in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            data, _ = _read_json(sidecar)
            if isinstance(data, dict) and ("software" in data or "software_version" in data):
                software = " ".join(str(data[k]) for k in ("software", "software_version") if k in data)
                rows.append({"file": str(sidecar.relative_to(pdir)), "software": software,
                             "quantity": data.get("quantity"), "unit": data.get("unit"),
                             "created (UTC)": data.get("created_utc")})
    parts.append(table(rows, caption="Software recorded in the sidecars") if rows
                 else not_available("no sidecar records its software"))
    return "".join(parts)


def report_sections(patient_dir) -> list[tuple[str, str, str]]:
    """The report's sections as ``(anchor, title, html body)``, built from ``patient_dir``."""
    pdir = Path(patient_dir)
    dose = pdir / "dose"
    return [
        ("scans", "Scans", _scans(pdir)),
        ("organ-doses", "Organ doses", _csv_section(dose / "organ_doses.csv")),
        ("marrow", "Red marrow (EANM image-based)", _json_section(dose / "marrow.json")),
        ("bed", "Biologically effective dose", _csv_section(dose / "bed.csv")),
        ("planning", "Activity planning", _json_section(dose / "planning.json")),
        ("dvh", "Dose-volume histograms", image(dose / "dvh.png", "cumulative DVH per organ")),
        ("kinetics", "Time-activity curves and fits", _fits(pdir)),
        ("registration", "Registration QC", _registration(pdir)),
        ("segmentation", "Segmentation QC", _segmentation(pdir)),
        ("assumptions", "Assumptions", _assumptions(pdir)),
        ("provenance", "Software and kernel provenance", _provenance(pdir)),
    ]


def build_report(patient_dir, now: _dt.datetime | None = None) -> str:
    """The whole self-contained HTML page for the patient whose results are in ``patient_dir``."""
    pdir = Path(patient_dir)
    when = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = (f"Patient {pdir.name} - built {when} from {pdir.name}/. "
                "Research software: not cleared for clinical use.")
    return page(f"spectdose dosimetry report: {pdir.name}", subtitle, report_sections(pdir))
