"""Assemble the per-patient report from whatever the stages wrote in ``results/<patient>/``.

Page one (:mod:`pipeline.report.summary`) answers the physicist's first questions; the detail
sections (:mod:`pipeline.report.sections`) follow, then the assumptions, the software and kernel
provenance and a blank signature block. A missing or unreadable file makes its part say
"Not available: <why>" instead of failing, so the report can be built at any point of a run.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from . import sections as sec
from .html import Raw, esc, kv_table, not_available, note, page, table
from .inputs import read_json
from .numbers import key_label, plain_text
from .summary import summary_html
from .uncertainty import TITLE as UNCERTAINTY_TITLE
from .uncertainty import uncertainty_section

__all__ = ["build_report", "report_sections", "SECTION_TITLES"]

SECTION_TITLES = {
    "summary": "Summary",
    "scans": "Scans",
    "dose": "Dose distribution and statistics",
    "marrow": "Red marrow (EANM image-based)",
    "bed": "Biologically effective dose",
    "planning": "Activity planning",
    "kinetics": "Time-activity curves and fits",
    "registration": "Registration",
    "segmentation": "Segmentation",
    "qc": "Quality-control checks",
    "assumptions": "Assumptions",
    "provenance": "Software and kernel provenance",
}


def _pairs(mapping) -> list:
    return [(key_label(k), plain_text(v)) for k, v in mapping.items()] if isinstance(mapping, dict) else []


def _assumptions(pdir: Path) -> str:
    dose, why = read_json(pdir / "dose" / "dose_provenance.json")
    if not isinstance(dose, dict):
        return not_available(why or "dose/dose_provenance.json holds no record")
    parts = []
    if isinstance(dose.get("assumptions"), dict):
        parts.append(kv_table(_pairs(dose["assumptions"]), "Dose calculation"))
    elif isinstance(dose.get("assumptions"), list):
        parts.append("<ul>" + "".join(f"<li>{esc(a)}</li>" for a in dose["assumptions"]) + "</ul>")
    if isinstance(dose.get("settings"), dict):
        parts.append(kv_table(_pairs(dose["settings"]), "Dose settings"))
    kinetics = dose.get("kinetics")
    if isinstance(kinetics, dict):
        parts.append(kv_table(_pairs({k: v for k, v in kinetics.items() if k != "options"}),
                              "Kinetics as used by the dose stage"))
    balance = dose.get("energy_balance")
    if isinstance(balance, dict):
        parts.append(kv_table(_pairs(balance), "Energy balance"))
    return "".join(parts) or not_available("no stage recorded its assumptions")


_KERNEL_FIELDS = ("kind", "nuclide", "medium", "density_g_per_ml", "voxel_size_mm", "unit", "decay_data_version",
                  "electron_emissions", "photon_emissions", "electron_energy_mev_per_decay",
                  "photon_energy_mev_per_decay", "normalisation", "uncertainty", "generator", "date", "seed")


def _provenance(pdir: Path) -> str:
    from .. import __version__
    from ..info import engine_versions

    parts = [kv_table([("spectdose", __version__)] + [(k, v or "not installed") for k, v in engine_versions().items()],
                      "Software at the time of this report")]
    dose, why = read_json(pdir / "dose" / "dose.json")
    kernel = dose.get("kernel") if isinstance(dose, dict) else None
    if not isinstance(kernel, dict):
        parts.append(not_available(f"kernel provenance: {why or 'no kernel recorded in dose/dose.json'}"))
    else:
        prov = kernel.get("provenance") if isinstance(kernel.get("provenance"), dict) else {}
        pairs = [(key_label(k), plain_text(prov[k])) for k in _KERNEL_FIELDS if k in prov]
        for run in ("electron_run", "photon_run", "physics"):
            if isinstance(prov.get(run), dict):
                pairs.append((key_label(run), plain_text(prov[run])))
        parts.append(kv_table(pairs or _pairs(kernel), f"Dose kernel ({plain_text(kernel.get('nuclide'))}, "
                                                       f"dose/dose.json)"))
    rows = []
    for stage in ("ingest", "register", "segment", "kinetics", "dose"):
        folder = pdir / stage
        for sidecar in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            data, _ = read_json(sidecar)
            if isinstance(data, dict) and ("software" in data or "software_version" in data):
                rows.append({"File": str(sidecar.relative_to(pdir)),
                             "Software": " ".join(str(data[k]) for k in ("software", "software_version") if k in data),
                             "Quantity": data.get("quantity"), "Unit": data.get("unit"),
                             "Created (UTC)": str(data.get("created_utc") or "-").replace("T", " ")})
    parts.append(table(rows, caption="Software recorded in the sidecars", css="wide paths compact") if rows
                 else not_available("no sidecar records its software"))
    return "".join(parts)


def _signature() -> str:
    rows = "".join(f"<tr><td>{esc(role)}</td><td></td><td></td><td></td></tr>"
                   for role in ("Calculated by", "Checked by (medical physicist)", "Approved by"))
    return ('<section id="signature" class="signature"><h2>Approval</h2>'
            "<table><thead><tr><th>Role</th><th>Name</th><th>Signature</th><th>Date</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            + note("Research software: not cleared for clinical use. Values are for review by a medical physicist.")
            + "</section>")


def report_sections(patient_dir, figures: list | None = None) -> list:
    """The report's sections as ``(anchor, title, html body, css class)``.

    Parameters
    ----------
    patient_dir : path
        ``results/<patient>``.
    figures : list of (Path, str), optional
        Fused dose figures (:func:`pipeline.report.dosefig.make_dose_figures`) and their captions.
    """
    pdir = Path(patient_dir)
    bodies = {
        "summary": summary_html(pdir),
        "scans": sec.scans(pdir),
        "dose": sec.dose_statistics(pdir, figures or []),
        "marrow": sec.marrow(pdir),
        "bed": sec.bed(pdir),
        "planning": sec.planning(pdir),
        "kinetics": sec.kinetics(pdir),
        "registration": sec.registration(pdir),
        "segmentation": sec.segmentation(pdir),
        "qc": sec.quality_control(pdir),
        "assumptions": _assumptions(pdir),
        "provenance": _provenance(pdir),
    }
    out = [(anchor, SECTION_TITLES[anchor], bodies[anchor], "") for anchor in SECTION_TITLES]
    unc = uncertainty_section(pdir)  # only when the uncertainty stage has run
    if unc is not None:
        out.insert([a for a, *_ in out].index("planning") + 1, ("uncertainty", UNCERTAINTY_TITLE, unc, ""))
    return out


def build_report(patient_dir, now: _dt.datetime | None = None, figures: list | None = None,
                 extra_notes: list | None = None) -> str:
    """The whole self-contained HTML page for the patient whose results are in ``patient_dir``.

    Parameters
    ----------
    patient_dir : path
        ``results/<patient>``.
    now : datetime, optional
        Build time shown in the header (default: now, UTC).
    figures : list of (Path, str), optional
        Fused dose figures to embed.
    extra_notes : list of str, optional
        Notes for the header (e.g. why the fused figures are missing).
    """
    from .. import __version__

    pdir = Path(patient_dir)
    when = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    header = (f'<p class="meta">{esc(f"Patient {pdir.name}. Built {when} by spectdose {__version__} from {pdir.name}/.")}'
              " Research software: not cleared for clinical use.</p>"
              + "".join(note(n) for n in extra_notes or []))
    return page(f"Dosimetry report: {pdir.name}", Raw(header), report_sections(pdir, figures), _signature(),
                print_label=f"Dosimetry report {pdir.name} - spectdose {__version__} - built {when}")
