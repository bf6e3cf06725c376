"""The quality-control verdict of every stage, from the checks each stage recorded.

Each stage writes its checks with value, unit, expected range, source and pass/warn/fail
(ingest: ``ingest/<tp>/timepoint.json``; registration: ``register/<tp>/qc.json``; segmentation:
``segment/qc.json``; kinetics: ``kinetics/fits.json``; dose: ``dose/dose_provenance.json``). This
module gathers them into one normalised list per stage and one verdict per stage (the worst status
of its checks; "not available" when the stage wrote no checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .inputs import read_json, time_points

__all__ = ["Check", "StageQC", "collect_qc", "STATUS_ORDER"]

#: Worst last. "skip" (a check that did not apply) counts as a pass for the verdict.
STATUS_ORDER = ("pass", "skip", "warn", "fail")


@dataclass
class Check:
    """One recorded check, normalised across stages."""

    stage: str
    subject: str
    name: str
    status: str
    value: object = None
    unit: str = ""
    expected: str = ""
    source: str = ""
    note: str = ""


@dataclass
class StageQC:
    """The checks of one stage and its verdict (``pass``, ``warn``, ``fail`` or ``n/a``)."""

    stage: str
    title: str
    anchor: str
    checks: list = field(default_factory=list)
    missing: str | None = None

    @property
    def verdict(self) -> str:
        if self.missing and not self.checks:
            return "n/a"
        worst = "pass"
        for check in self.checks:
            status = check.status if check.status in STATUS_ORDER else "warn"
            if STATUS_ORDER.index(status) > STATUS_ORDER.index(worst):
                worst = status
        return "pass" if worst == "skip" else worst

    @property
    def not_passed(self) -> list:
        return [c for c in self.checks if c.status not in ("pass", "skip")]

    def counts(self) -> dict:
        out = {"pass": 0, "warn": 0, "fail": 0}
        for check in self.checks:
            key = "pass" if check.status == "skip" else check.status
            out[key if key in out else "warn"] += 1
        return out


def _from_records(stage: str, records, default_subject: str = "") -> list:
    checks = []
    for rec in records if isinstance(records, list) else []:
        if not isinstance(rec, dict):
            continue
        checks.append(Check(
            stage=stage,
            subject=str(rec.get("subject") or rec.get("structure") or default_subject),
            name=str(rec.get("name") or rec.get("check") or "?"),
            status=str(rec.get("status") or "?").lower(),
            value=rec.get("value"),
            unit="" if rec.get("unit") in (None, "1", "n/a") else str(rec.get("unit")),
            expected=str(rec.get("expected") or ""),
            source=str(rec.get("source") or ""),
            note=str(rec.get("note") or ""),
        ))
    return checks


def _ingest(pdir: Path) -> StageQC:
    out = StageQC("ingest", "Ingest", "qc-ingest")
    folder = pdir / "ingest"
    found = False
    ordered = [tp for tp, _ in time_points(pdir)]  # in time order; folders no fit lists at the end
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in ordered) if folder.is_dir() else []
    for tp in ordered + extra:
        record, _ = read_json(folder / tp / "timepoint.json")
        if isinstance(record, dict):
            found = True
            out.checks += _from_records("ingest", record.get("qc"), tp)
    if not found:
        out.missing = "no ingest/<time point>/timepoint.json was written"
    elif not out.checks:
        out.missing = "ingest recorded no checks (older version)"
    return out


def _register(pdir: Path) -> StageQC:
    out = StageQC("register", "Registration", "qc-register")
    for tp, _ in time_points(pdir):
        qc, _ = read_json(pdir / "register" / tp / "qc.json")
        if not isinstance(qc, dict):
            continue
        status = str(qc.get("status", "?"))
        problems = [str(p) for p in qc.get("problems") or []]
        verdict = "fail" if status == "failed" else ("warn" if problems or status not in
                                                      ("reference", "registered") else "pass")
        corr = (qc.get("rigid") or {}).get("ct_correlation") if isinstance(qc.get("rigid"), dict) else None
        value = corr.get("after") if isinstance(corr, dict) else None
        out.checks.append(Check("register", tp, "registration", verdict, value=value,
                                unit="CT correlation" if value is not None else "",
                                expected="registered or reference, no problems",
                                source="register/" + tp + "/qc.json: " + status,
                                note="; ".join(problems)))
        out.checks += _from_records("register", qc.get("qc"), tp)
    if not out.checks:
        out.missing = "no register/<time point>/qc.json was written"
    return out


def _segment(pdir: Path) -> StageQC:
    out = StageQC("segment", "Segmentation", "qc-segment")
    qc, why = read_json(pdir / "segment" / "qc.json")
    if not isinstance(qc, dict) or not isinstance(qc.get("checks"), list):
        out.missing = why or "segment/qc.json holds no checks"
        return out
    out.checks = _from_records("segment", qc["checks"])
    return out


def _stage_record(pdir: Path, stage: str, title: str, relpath: str) -> StageQC:
    """The checks a stage records under ``qc`` in its JSON output (``relpath`` in the patient folder)."""
    out = StageQC(stage, title, f"qc-{stage}")
    record, why = read_json(pdir / relpath)
    if not isinstance(record, dict):
        out.missing = why
        return out
    out.checks = _from_records(stage, record.get("qc"))
    if not out.checks:
        out.missing = f"{relpath} records no checks"
    return out


def collect_qc(patient_dir) -> list:
    """The :class:`StageQC` of ingest, registration, segmentation, kinetics and dose, in that order."""
    pdir = Path(patient_dir)
    return [_ingest(pdir), _register(pdir), _segment(pdir),
            _stage_record(pdir, "kinetics", "Kinetics", "kinetics/fits.json"),
            _stage_record(pdir, "dose", "Dose", "dose/dose_provenance.json")]
