"""The ingest manifest (YAML): time points with DICOM folders or NIfTI files, and overrides.

Format (``common.md``)::

    patient_id: SAMPLE01                 # pseudonymous id
    radionuclide: Lu-177                 # optional override
    injected_activity_mbq: 7400          # optional override
    injection_datetime: "2026-01-05T09:00:00"   # optional override (ISO 8601, local time)
    calibration_cps_per_mbq: 12.0        # optional, for SPECT stored as counts
    reference_time_point: t24h           # optional
    time_points:
      - id: t1h
        dicom: dicom/t1h                 # folder relative to the manifest
      - id: t4h
        ct: nifti/t4h_ct.nii.gz          # NIfTI alternative (sidecar JSON beside each)
        spect: nifti/t4h_spect.nii.gz
        acquisition_datetime: "2026-01-05T13:00:00"

Other top-level keys are ignored (noted); unknown keys inside a time point are errors.
Date-times are ISO 8601 local times; a UTC offset (``"2026-01-05T09:00:00+01:00"``)
is kept (timezone-aware datetime) and then used for the time after injection.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError

from .timing import parse_iso_datetime

__all__ = ["TimePointSpec", "Manifest", "read_manifest", "TIME_POINT_ID"]

#: Allowed time point ids: a short word, e.g. ``t24h``.
TIME_POINT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

_TOP_KEYS = {"patient_id", "radionuclide", "injected_activity_mbq", "injection_datetime",
             "calibration_cps_per_mbq", "reference_time_point", "time_points"}
_TP_KEYS = {"id", "dicom", "ct", "spect", "acquisition_datetime"}


@dataclass(frozen=True)
class TimePointSpec:
    """One time point of a manifest; paths are absolute.

    Either ``dicom`` (a folder) or both ``ct`` and ``spect`` (NIfTI files) are set.
    """

    id: str
    dicom: Path | None = None
    ct: Path | None = None
    spect: Path | None = None
    acquisition_datetime: dt.datetime | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest. Overrides are ``None`` when absent."""

    path: Path
    patient_id: str | None
    radionuclide: str | None
    injected_activity_mbq: float | None
    injection_datetime: dt.datetime | None
    calibration_cps_per_mbq: float | None
    reference_time_point: str | None
    time_points: tuple
    notes: tuple = ()


def _positive(value, key, path) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(path, f"{key} must be a number, got {value!r}") from None
    if not v > 0:
        raise InputError(path, f"{key} must be positive, got {value!r}")
    return v


def read_manifest(path) -> Manifest:
    """Read and check a manifest YAML file.

    Raises
    ------
    InputError
        Unreadable YAML, missing or duplicate time point ids, a time point
        with neither ``dicom`` nor ``ct`` + ``spect``, or a bad value.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "manifest not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder; expected the manifest YAML file") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a manifest: the file is not UTF-8 text (a DICOM file? give the manifest "
                         "YAML or the folder that holds the DICOM files)") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"manifest is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, "manifest must be a YAML mapping")
    notes = tuple(f"{path.name}: key {k!r} not used by ingest" for k in sorted(set(data) - _TOP_KEYS))
    base = path.parent
    raw_tps = data.get("time_points")
    if not isinstance(raw_tps, list) or not raw_tps:
        raise InputError(path, "manifest needs a non-empty list 'time_points'")
    tps, seen = [], set()
    for n, item in enumerate(raw_tps):
        if not isinstance(item, dict) or "id" not in item:
            raise InputError(path, f"time_points[{n}] needs an 'id'")
        tp_id = str(item["id"])
        if not TIME_POINT_ID.fullmatch(tp_id):
            raise InputError(path, f"time point id {tp_id!r} is not a short word like t24h")
        if tp_id in seen:
            raise InputError(path, f"time point {tp_id!r} is listed twice")
        seen.add(tp_id)
        unknown = set(item) - _TP_KEYS
        if unknown:
            raise InputError(path, f"time point {tp_id}: unknown key(s) {sorted(unknown)}")
        has_dicom = item.get("dicom") is not None
        has_nifti = item.get("ct") is not None or item.get("spect") is not None
        if has_dicom == has_nifti or (has_nifti and (item.get("ct") is None or item.get("spect") is None)):
            raise InputError(path, f"time point {tp_id}: give either 'dicom' (a folder) or both 'ct' and "
                             "'spect' (NIfTI files)")
        when = item.get("acquisition_datetime")
        tps.append(TimePointSpec(
            id=tp_id,
            dicom=(base / str(item["dicom"])).resolve() if has_dicom else None,
            ct=(base / str(item["ct"])).resolve() if has_nifti else None,
            spect=(base / str(item["spect"])).resolve() if has_nifti else None,
            acquisition_datetime=None if when is None else parse_iso_datetime(when, path),
        ))
    ref = data.get("reference_time_point")
    if ref is not None and str(ref) not in seen:
        raise InputError(path, f"reference_time_point {ref!r} is not one of the time points {sorted(seen)}")
    injection = data.get("injection_datetime")
    return Manifest(
        path=path.resolve(),
        patient_id=None if data.get("patient_id") is None else str(data["patient_id"]),
        radionuclide=None if data.get("radionuclide") is None else str(data["radionuclide"]),
        injected_activity_mbq=_positive(data.get("injected_activity_mbq"), "injected_activity_mbq", path),
        injection_datetime=None if injection is None else parse_iso_datetime(injection, path),
        calibration_cps_per_mbq=_positive(data.get("calibration_cps_per_mbq"), "calibration_cps_per_mbq", path),
        reference_time_point=None if ref is None else str(ref),
        time_points=tuple(tps),
        notes=notes,
    )
