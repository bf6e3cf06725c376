"""Plan and run an ingest: scans in, calibrated and timed volumes out.

:func:`plan_ingest` reads headers only (DICOM headers, manifest, NIfTI
sidecars) and settles everything that can fail cheaply: series, pairing,
radionuclide, injection, times and time point ids. :func:`run_ingest` then
reads the pixels and writes every output inside one temporary folder that is
renamed at the end, so a failure leaves nothing behind.

Injection and acquisition times are kept as read (timezone-aware when a UTC
offset is known, see :mod:`.timing`); times after injection are taken in UTC
when both ends have an offset, else on the wall clock. Sidecars record the
wall-clock times (``acquisition_datetime``, ``injection_datetime``) and their
offsets (``acquisition_utc_offset``, ``injection_utc_offset``, ``None`` when
unknown).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_dir, write_json
from pipeline.errors import InputError
from pipeline.image import Image
from pipeline.qc import Gate
from pipeline.imageio import make_sidecar, read_image, read_sidecar, write_image

from .ct_series import read_ct_series
from .dicom_scan import DicomSeries, scan_folder
from .manifest import read_manifest
from .nm_series import read_emission_slices, read_nm_multiframe
from .pairing import pair_spect_with_ct
from .plausibility import ct_coverage_check, spacing_check, spect_checks, timing_checks
from .resolve import (  # noqa: F401 (the agreement tolerances are re-exported)
    ACTIVITY_AGREEMENT_RTOL,
    INJECTION_AGREEMENT_S,
    check_one_patient,
    resolve_injection,
    resolve_nuclide_of,
)
from .timing import (
    InjectionRecord,
    acquisition_datetime,
    format_utc_offset,
    injection_record,
    on_clock_of,
    parse_iso_datetime,
    resolve_nuclide,
    seconds_between,
    utc_offset_remark,
    wall_clock,
)
from .units import acquisition_duration_s, counts_to_bq_per_ml, decay_correction_factor

__all__ = ["Overrides", "PlannedTimePoint", "Plan", "plan_ingest", "run_ingest", "ingest",
           "time_point_id_from_hours"]



@dataclass(frozen=True)
class Overrides:
    """User overrides (command line over manifest over DICOM); ``None`` = not given.

    ``injection_datetime`` is timezone-aware when its UTC offset is known.
    ``force_nuclide``: use ``radionuclide`` even where the DICOM names another
    nuclide or half-life (otherwise an error).
    """

    radionuclide: str | None = None
    injected_activity_mbq: float | None = None
    injection_datetime: dt.datetime | None = None
    calibration_cps_per_mbq: float | None = None
    force_nuclide: bool = False


@dataclass
class PlannedTimePoint:
    """One time point: its sources and times, before any pixel is read.

    ``acquisition_datetime`` is timezone-aware when its UTC offset is known;
    ``notes`` are informational (e.g. UTC offsets that differ from the injection's).
    """

    id: str
    acquisition_datetime: dt.datetime
    spect: object  # DicomSeries or Path (NIfTI)
    ct: object  # DicomSeries or Path (NIfTI)
    pairing: dict
    injection: InjectionRecord | None = None
    time_s: int | None = None
    warnings: list = field(default_factory=list)
    sidecar_nuclide: str | None = None
    notes: list = field(default_factory=list)

    @property
    def time_h(self) -> float:
        """Hours after injection, to the second."""
        return self.time_s / 3600.0

    @property
    def spect_path(self) -> Path:
        return self.spect.files[0] if isinstance(self.spect, DicomSeries) else self.spect


@dataclass
class Plan:
    """Everything decided before pixels are read.

    ``injection_datetime`` is timezone-aware when its UTC offset is known.
    """

    input_path: Path
    patient_id: str
    radionuclide: str
    half_life_h: float
    injected_activity_mbq: float
    injection_datetime: dt.datetime
    calibration_cps_per_mbq: float | None
    reference_time_point: str | None
    time_points: list
    provenance: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    selected_time_point: str | None = None
    qc: list = field(default_factory=list)

    def relative(self, text: str) -> str:
        """``text`` with the input folder prefix removed from paths (keeps logs short)."""
        root = self.input_path if self.input_path.is_dir() else self.input_path.parent
        return str(text).replace(str(root) + "/", "")


# --------------------------------------------------------------------------- planning
def time_point_id_from_hours(hours: float) -> str:
    """``t{round(h)}h`` (half up), e.g. 23.6 h -> ``t24h``."""
    return f"t{int(math.floor(hours + 0.5))}h"


def _series_id(series: DicomSeries) -> str:
    """Pseudonymous, stable id of a series (SHA-256 of its UID, 12 hex digits)."""
    return hashlib.sha256(series.series_uid.encode()).hexdigest()[:12]


def _ct_time(series: DicomSeries):
    try:
        return acquisition_datetime(series.headers, series.files[0])[0]
    except InputError:
        return None


def _on_clock(value, reference):
    """``value`` on the wall clock of ``reference`` (``None`` stays ``None``)."""
    return None if value is None else on_clock_of(value, reference)


def _sessions_in_folder(folder: Path, plan_notes: list, acquisition_override=None) -> list:
    """SPECT series of ``folder`` with their CT, times and injection records."""
    scan = scan_folder(folder)
    plan_notes.extend(scan.notes)
    spects = scan.of_kind("spect_multiframe", "spect_slices")
    if not spects:
        found = ", ".join(sorted({s.describe() for s in scan.series})) or "nothing"
        raise InputError(folder, f"no reconstructed SPECT series (found: {found})")
    cts = scan.of_kind("ct")
    ct_times = [_ct_time(ct) for ct in cts]
    sessions = []
    for spect in spects:
        if acquisition_override is not None:
            acq, warnings = acquisition_override, []
        else:
            acq, warnings = acquisition_datetime(spect.headers, spect.files[0])
        record = injection_record(spect.first, spect.files[0])
        pairing = pair_spect_with_ct(spect, wall_clock(acq), cts, [_on_clock(t, acq) for t in ct_times])
        warnings = warnings + list(record.warnings) + ([pairing.warning] if pairing.warning else [])
        pair_info = {"method": pairing.method, "ct_minus_spect_min": pairing.gap_min,
                     "spect_series": _series_id(spect), "ct_series": _series_id(cts[pairing.ct_index])}
        sessions.append(PlannedTimePoint("", acq, spect, cts[pairing.ct_index], pair_info, record,
                                         warnings=warnings))
    return sessions


def _nifti_session(spec) -> PlannedTimePoint:
    for p in (spec.ct, spec.spect):
        if p.is_dir():
            raise InputError(p, f"time point {spec.id}: is a folder; expected a NIfTI file (.nii.gz)")
        if not p.exists():
            raise InputError(p, f"time point {spec.id}: file not found")
    side = read_sidecar(spec.spect)
    acq = spec.acquisition_datetime
    if acq is None and side.get("acquisition_datetime"):
        acq = parse_iso_datetime(side["acquisition_datetime"], spec.spect)
    if acq is None:
        raise InputError(spec.spect, f"time point {spec.id}: no acquisition_datetime in the manifest or "
                         "the sidecar")
    pairing = {"method": "manifest"}
    return PlannedTimePoint(spec.id, acq, spec.spect, spec.ct, pairing,
                            sidecar_nuclide=side.get("radionuclide") or None)


def plan_ingest(input_path, patient_id: str, overrides: Overrides | None = None,
                time_point: str | None = None) -> Plan:
    """Decide what to ingest from headers alone.

    Parameters
    ----------
    input_path : path
        A manifest YAML file or a DICOM folder.
    patient_id : str
        Pseudonymous patient id written to every output.
    overrides : Overrides, optional
        Command-line overrides; they win over the manifest's.
    time_point : str, optional
        Only this time point.

    Raises
    ------
    InputError
        Anything that makes the input unusable, naming the file.
    """
    input_path = Path(input_path).resolve()
    overrides = overrides or Overrides()
    notes, warnings = [], []
    if not input_path.exists():
        raise InputError(input_path, "input not found (expected a manifest YAML file or a DICOM folder)")
    reference = None
    sources = {"injection_datetime": "command line", "injected_activity_mbq": "command line",
               "radionuclide": "command line"}
    if input_path.is_dir():
        sessions = _sessions_in_folder(input_path, notes)
        from_folder = True
        calibration = overrides.calibration_cps_per_mbq
    else:
        manifest = read_manifest(input_path)
        notes.extend(manifest.notes)
        if manifest.patient_id and manifest.patient_id != patient_id:
            warnings.append(f"manifest patient_id differs from --patient-id; {patient_id!r} is used")
        if overrides.injection_datetime is None:
            sources["injection_datetime"] = "manifest"
        if overrides.injected_activity_mbq is None:
            sources["injected_activity_mbq"] = "manifest"
        if not overrides.radionuclide:
            sources["radionuclide"] = f"manifest {input_path.name}"
        overrides = Overrides(
            force_nuclide=overrides.force_nuclide,
            radionuclide=overrides.radionuclide or manifest.radionuclide,
            injected_activity_mbq=(overrides.injected_activity_mbq if overrides.injected_activity_mbq
                                   is not None else manifest.injected_activity_mbq),
            injection_datetime=overrides.injection_datetime or manifest.injection_datetime,
            calibration_cps_per_mbq=(overrides.calibration_cps_per_mbq if overrides.calibration_cps_per_mbq
                                     is not None else manifest.calibration_cps_per_mbq),
        )
        calibration = overrides.calibration_cps_per_mbq
        reference = manifest.reference_time_point
        sessions = []
        for spec in manifest.time_points:
            if spec.dicom is not None:
                found = _sessions_in_folder(spec.dicom, notes, spec.acquisition_datetime)
                if len(found) > 1:
                    raise InputError(found[1].spect_path, f"two series claim time point {spec.id}: this one and "
                                     f"{found[0].spect_path}; keep one SPECT per time point folder")
                found[0].id = spec.id
                sessions.append(found[0])
            else:
                sessions.append(_nifti_session(spec))
        from_folder = False
    check_one_patient(sessions)
    seen_series = {}
    for tp in sessions:
        if isinstance(tp.spect, DicomSeries):
            uid = tp.spect.series_uid
            if uid in seen_series:
                raise InputError(tp.spect_path, f"the same SPECT series is listed for time points "
                                 f"{seen_series[uid]} and {tp.id}")
            seen_series[uid] = tp.id
    nuclide, half_life_h = resolve_nuclide_of(sessions, overrides, input_path, warnings, sources)
    for tp in sessions:  # NIfTI sidecars naming another nuclide
        if tp.sidecar_nuclide and resolve_nuclide(tp.sidecar_nuclide, tp.spect_path) != nuclide:
            tp.warnings.append(f"{tp.spect_path}: sidecar says {tp.sidecar_nuclide}; {nuclide} is used")
    when, when_source, activity, activity_source = resolve_injection(sessions, overrides, input_path, warnings,
                                                                      sources)
    for tp in sessions:
        tp.time_s = seconds_between(when, tp.acquisition_datetime)  # UTC when both have an offset
        if tp.time_s < 0:
            raise InputError(tp.spect_path, f"injection ({when.isoformat()}) after acquisition "
                             f"({tp.acquisition_datetime.isoformat()})")
        if from_folder:
            tp.id = time_point_id_from_hours(tp.time_h)
        warning, note = utc_offset_remark(when, tp.acquisition_datetime, tp.id)
        if warning:
            tp.warnings.append(warning)
        if note:
            tp.notes.append(note)
    by_id = {}
    for tp in sorted(sessions, key=lambda t: t.time_s):
        if tp.id in by_id:
            other = by_id[tp.id]
            raise InputError(tp.spect_path, f"two series claim time point {tp.id}: this one "
                             f"({tp.time_h:.2f} h) and {other.spect_path} ({other.time_h:.2f} h)")
        by_id[tp.id] = tp
    ordered = sorted(sessions, key=lambda t: t.time_s)
    checks = timing_checks(ordered, half_life_h)
    if time_point is not None:
        if time_point not in by_id:
            raise InputError(input_path, f"no time point {time_point!r}; found {[t.id for t in ordered]}")
        ordered = [by_id[time_point]]
        checks = [c for c in checks if c.subject == time_point]  # another scan's date never blocks this one
    gate = Gate(input_path)
    gate.extend(checks)
    gate.raise_on_fail()
    notes.extend(n for tp in ordered for n in tp.notes)
    return Plan(input_path, patient_id, nuclide, half_life_h, activity, when, calibration, reference,
                ordered, {"injection_datetime": when_source, "injected_activity_mbq": activity_source},
                warnings, notes, time_point, qc=gate.checks)


# --------------------------------------------------------------------------- running
def _source_info(series: DicomSeries) -> dict:
    return {"format": "dicom", "kind": series.kind, "modality": str(series.first.get("Modality", "")),
            "manufacturer": str(series.first.get("Manufacturer", "")), "series": _series_id(series),
            "n_files": len(series.files)}


def _common_fields(plan: Plan, tp: PlannedTimePoint) -> dict:
    return {
        "patient_id": plan.patient_id,
        "time_point": tp.id,
        "time_h": tp.time_h,
        "time_after_injection_s": tp.time_s,
        "acquisition_datetime": wall_clock(tp.acquisition_datetime).isoformat(),
        "injection_datetime": wall_clock(plan.injection_datetime).isoformat(),
        "acquisition_utc_offset": format_utc_offset(tp.acquisition_datetime),
        "injection_utc_offset": format_utc_offset(plan.injection_datetime),
        "radionuclide": plan.radionuclide,
        "half_life_h": plan.half_life_h,
        "injected_activity_mbq": plan.injected_activity_mbq,
    }


def _load_spect(plan: Plan, tp: PlannedTimePoint) -> tuple[Image, dict]:
    if not isinstance(tp.spect, DicomSeries):
        image, side = read_image(tp.spect)
        if image.unit != "Bq/mL":
            raise InputError(tp.spect, f"SPECT NIfTI in {image.unit!r}; ingest needs Bq/mL in the sidecar")
        info = {"source": {"format": "nifti"},
                "value_conversion": "NIfTI in Bq/mL; values kept",
                "decay_correction": {"found": side.get("decay_correction", "as stated by the sidecar"),
                                     "factor": 1.0, "note": "NIfTI input taken as activity at acquisition"}}
        return image.with_array(np.asarray(image.array, np.float32)), info
    series = tp.spect
    if series.kind == "spect_multiframe":
        if len(series.files) != 1:
            raise InputError(series.files[1], f"NM tomogram series has {len(series.files)} files; expected one "
                             "multi-frame file")
        vol = read_nm_multiframe(series.files[0], series.first)
    else:
        vol = read_emission_slices(series.files, series.headers)
    voxel_ml = abs(np.linalg.det(vol.affine[:3, :3])) / 1000.0
    if vol.unit == "counts":
        if plan.calibration_cps_per_mbq is None:
            raise InputError(vol.path, "SPECT stored as counts; give --calibration-cps-per-mbq "
                             "(or calibration_cps_per_mbq in the manifest)")
        duration_s = acquisition_duration_s(vol.header, vol.path)
        values = counts_to_bq_per_ml(vol.values, plan.calibration_cps_per_mbq, duration_s, voxel_ml)
        conversion = (f"{vol.scale_source}; counts / ({plan.calibration_cps_per_mbq:g} cps/MBq x "
                      f"{duration_s:g} s) x 1e6 / {voxel_ml:.6g} mL")
    else:
        values = vol.values
        conversion = vol.scale_source
    # both on the scan's wall clock, so that ADMIN correction spans the elapsed time in UTC when known
    factor, found, note = decay_correction_factor(vol.header, vol.path, wall_clock(tp.acquisition_datetime),
                                                  on_clock_of(plan.injection_datetime, tp.acquisition_datetime),
                                                  plan.half_life_h)
    image = Image((values * factor).astype(np.float32), vol.affine, "Bq/mL")
    info = {"source": _source_info(series), "value_conversion": conversion,
            "decay_correction": {"found": found, "factor": factor, "note": note}}
    return image, info


def _load_ct(tp: PlannedTimePoint) -> tuple[Image, dict]:
    if not isinstance(tp.ct, DicomSeries):
        image, _ = read_image(tp.ct, unit="HU")
        if image.unit != "HU":
            raise InputError(tp.ct, f"CT NIfTI in {image.unit!r}; expected HU")
        return image, {"source": {"format": "nifti"}}
    return read_ct_series(tp.ct.files, tp.ct.headers), {"source": _source_info(tp.ct)}


def _manifest_json(plan: Plan, written: list) -> dict:
    return {
        **make_sidecar("ingest_manifest", "n/a"),
        "patient_id": plan.patient_id,
        "radionuclide": plan.radionuclide,
        "half_life_h": plan.half_life_h,
        "injected_activity_mbq": plan.injected_activity_mbq,
        "injection_datetime": wall_clock(plan.injection_datetime).isoformat(),
        "injection_utc_offset": format_utc_offset(plan.injection_datetime),
        "provenance": plan.provenance,
        "reference_time_point": plan.reference_time_point,
        "time_points": written,
        "warnings": [plan.relative(w) for w in plan.warnings]
        + [plan.relative(w) for tp in plan.time_points for w in tp.warnings],
        "notes": [plan.relative(n) for n in plan.notes],
    }


def _spect_gate(plan: Plan, tp: PlannedTimePoint, spect: Image, ct: Image) -> list:
    """Pixel-level checks of one time point (:mod:`.plausibility`); raises on a failed check."""
    gate = Gate(tp.spect_path)
    spacing = None
    if isinstance(tp.spect, DicomSeries):
        spacing = gate.add(spacing_check(tp.spect, float(spect.voxel_size_mm[2]), tp.id))
    gate.extend(spect_checks(spect, tp.time_h, plan.injected_activity_mbq, plan.half_life_h, tp.id, tp.spect_path))
    gate.add(ct_coverage_check(spect, ct, spacing, tp.id, tp.spect_path))
    gate.raise_on_fail()
    return gate.checks


def _qc_entry(plan: Plan, checks) -> list:
    return [{**c.to_dict(), "path": None if c.path is None else plan.relative(c.path)} for c in checks]


def run_ingest(plan: Plan, out_dir, log=None, warn=None) -> list:
    """Read pixels and write every time point of ``plan`` into ``out_dir``.

    With one time point selected in the plan, only ``out_dir/<tp>/`` is
    (re)written; otherwise the whole ``out_dir`` including ``manifest.json``.

    Parameters
    ----------
    plan : Plan
    out_dir : path
    log : callable, optional
        Called with one line of text per time point written.
    warn : callable, optional
        Called with one line per warning of the plausibility gate (pixel level).

    Raises
    ------
    InputError
        A failed plausibility check (:mod:`.plausibility`); nothing is written.

    Returns
    -------
    list of dict
        One entry per time point (as in ``manifest.json``).
    """
    out_dir = Path(out_dir)
    whole = plan.selected_time_point is None
    target = out_dir if whole else out_dir / plan.time_points[0].id
    written = []
    all_checks = list(plan.qc)
    with atomic_dir(target) as tmp:
        for tp in plan.time_points:
            tp_dir = tmp / tp.id if whole else tmp
            ct, ct_info = _load_ct(tp)
            spect, spect_info = _load_spect(plan, tp)
            checks = _spect_gate(plan, tp, spect, ct)
            all_checks += checks
            tp_checks = [c for c in plan.qc if c.subject == tp.id] + checks
            for c in checks:  # recorded under "qc" (status warn), printed, not repeated under "warnings"
                if c.status == "warn" and warn is not None:
                    warn(plan.relative(c.describe()))
            common = _common_fields(plan, tp)
            warnings = [plan.relative(w) for w in tp.warnings]
            write_image(tp_dir / "ct.nii.gz", ct, {**make_sidecar("ct_hounsfield", "HU"), **common, **ct_info})
            total_mbq = float(spect.array.sum(dtype=np.float64)) * spect.voxel_volume_ml / 1e6
            write_image(tp_dir / "spect.nii.gz", spect, {
                **make_sidecar("activity_concentration", "Bq/mL"), **common, **spect_info,
                "activity_reference": "activity present at the acquisition start (acquisition_datetime)",
                "total_activity_in_fov_mbq": total_mbq, "pairing": tp.pairing, "warnings": warnings,
                "notes": list(tp.notes)})
            entry = {**common, "ct": f"{tp.id}/ct.nii.gz", "spect": f"{tp.id}/spect.nii.gz",
                     "pairing": tp.pairing, "total_activity_in_fov_mbq": total_mbq,
                     "decay_correction": spect_info["decay_correction"], "warnings": warnings,
                     "notes": list(tp.notes)}
            write_json(tp_dir / "timepoint.json", {**make_sidecar("time_point", "n/a"), **entry,
                                                   "ct": "ct.nii.gz", "spect": "spect.nii.gz",
                                                   "qc": _qc_entry(plan, tp_checks)})
            written.append(entry)
            if log is not None:
                log(f"{tp.id}: {tp.time_h:.4f} h after injection, {total_mbq:.2f} MBq in the SPECT field of "
                    f"view, CT {ct.shape}, SPECT {spect.shape}")
        if whole:
            gate = Gate()
            gate.extend(all_checks)
            write_json(tmp / "manifest.json", {**_manifest_json(plan, written), "qc": _qc_entry(plan, all_checks),
                                               "qc_summary": gate.summary()})
    return written


def ingest(input_path, patient_id: str, out_dir, overrides: Overrides | None = None,
           time_point: str | None = None, log=None) -> Plan:
    """Plan and run an ingest (see :func:`plan_ingest` and :func:`run_ingest`)."""
    plan = plan_ingest(input_path, patient_id, overrides, time_point)
    run_ingest(plan, out_dir, log)
    return plan
