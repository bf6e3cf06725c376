"""Stored SPECT voxel values to activity concentration (Bq/mL) at acquisition.

Order of precedence for the value scale of a series:

1. Real World Value Mapping (0040,9096) with units Bq/mL (UCUM ``Bq/ml``,
   also ``kBq/ml``, ``MBq/ml``) or counts (``{counts}``, ``cnts``);
2. otherwise Rescale Slope / Intercept with the Units attribute (0054,1001):
   ``BQML`` = Bq/mL, ``CNTS`` = counts; an NM image without Units holds counts.

Counts are converted with a sensitivity (calibration factor) ``C`` in cps/MBq,
the acquisition duration ``T`` in s and the voxel volume ``V`` in mL:

    activity concentration [Bq/mL] = counts / (C * T) * 1e6 / V

where ``counts / (C * T)`` is the activity in MBq in the voxel. ``T`` is the
wall-clock acquisition time: AcquisitionDuration (0018,9073) when present,
otherwise, for NM, the sum over RotationInformationSequence items of
ActualFrameDuration x NumberOfFramesInRotation (heads acquire in parallel),
otherwise ActualFrameDuration (0018,1242) of a per-slice series.

Decay correction (0054,1102): ``NONE`` images hold the activity at
acquisition; ``START`` images are corrected to a reference time (Decay
Correction DateTime (0018,9701), else the series date-time); ``ADMIN`` images
to the injection time. Both are undone to the acquisition start ``t_acq``:

    A(t_acq) = A(t_ref) * exp(-lambda * (t_acq - t_ref)),  lambda = ln 2 / T1/2

Decay during the acquisition itself is not modelled (under 0.3 % for a 30 min
acquisition of Lu-177, Cu-67 or Y-90).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import InputError

__all__ = ["ValueScale", "value_scale", "rescale_number", "counts_to_bq_per_ml", "acquisition_duration_s",
           "decay_correction_factor"]

_RWV_UNITS = {"bq/ml": ("Bq/mL", 1.0), "kbq/ml": ("Bq/mL", 1e3), "mbq/ml": ("Bq/mL", 1e6),
              "{counts}": ("counts", 1.0), "counts": ("counts", 1.0), "cnts": ("counts", 1.0),
              "{cnts}": ("counts", 1.0)}
_UNITS_ATTR = {"BQML": "Bq/mL", "CNTS": "counts"}


@dataclass(frozen=True)
class ValueScale:
    """Linear map from stored pixel values to a physical quantity.

    Attributes
    ----------
    slope, intercept : float
        ``value = slope * stored + intercept``.
    unit : str
        ``"Bq/mL"`` or ``"counts"``.
    source : str
        Where the scale came from (for the sidecar).
    """

    slope: float
    intercept: float
    unit: str
    source: str


def rescale_number(ds, key: str, default: float, path, nonzero: bool = False) -> float:
    """A rescale attribute (slope or intercept) of ``ds``; ``default`` when absent or empty.

    A slope of zero maps every stored value to the intercept: the image content
    is lost, and no default may silently replace it. Non-finite values are
    never a scale.

    Raises
    ------
    InputError
        Not a number, not finite, or zero when ``nonzero``.
    """
    raw = ds.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return float(default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InputError(path, f"{key} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise InputError(path, f"{key} is {value}: stored values cannot be scaled")
    if nonzero and value == 0.0:
        raise InputError(path, f"{key} is 0: every voxel would take the intercept value (the image "
                         "content is lost); fix the export")
    return value


def _rwvm(ds):
    """RealWorldValueMappingSequence at top level or in the shared functional groups."""
    seq = ds.get("RealWorldValueMappingSequence")
    if not seq:
        shared = ds.get("SharedFunctionalGroupsSequence") or []
        if shared:
            seq = shared[0].get("RealWorldValueMappingSequence")
    return seq


def value_scale(ds, path) -> ValueScale:
    """The value scale of an emission series from one header.

    Parameters
    ----------
    ds : pydicom.Dataset
    path : path
        For messages.

    Returns
    -------
    ValueScale

    Raises
    ------
    InputError
        Units that are not activity or counts (e.g. SUV).
    """
    seq = _rwvm(ds)
    if seq:
        for item in seq:
            code = (item.get("MeasurementUnitsCodeSequence") or [None])[0]
            value = str(code.get("CodeValue", "")).strip().lower() if code is not None else ""
            if value in _RWV_UNITS:
                unit, factor = _RWV_UNITS[value]
                slope = rescale_number(item, "RealWorldValueSlope", 1.0, path, nonzero=True) * factor
                intercept = rescale_number(item, "RealWorldValueIntercept", 0.0, path) * factor
                return ValueScale(slope, intercept, unit, f"Real World Value Mapping ({code.get('CodeValue')})")
        units = [str((it.get("MeasurementUnitsCodeSequence") or [{}])[0].get("CodeValue", "?")) for it in seq]
        if not ds.get("Units"):
            raise InputError(path, f"Real World Value Mapping in units {units} is neither activity "
                             "concentration nor counts")
    slope = rescale_number(ds, "RescaleSlope", 1.0, path, nonzero=True)
    intercept = rescale_number(ds, "RescaleIntercept", 0.0, path)
    units_attr = str(ds.get("Units", "") or "").strip().upper()
    if units_attr:
        if units_attr not in _UNITS_ATTR:
            raise InputError(path, f"SPECT values in units {units_attr!r}; only BQML (Bq/mL) or CNTS "
                             "(counts, with a calibration factor) can be converted to activity")
        unit = _UNITS_ATTR[units_attr]
        source = f"Units {units_attr} with rescale slope {slope:g}, intercept {intercept:g}"
    else:
        unit = "counts"
        source = f"no Units attribute: counts (rescale slope {slope:g}, intercept {intercept:g})"
    return ValueScale(slope, intercept, unit, source)


def acquisition_duration_s(ds, path) -> float:
    """Wall-clock acquisition duration of a series in seconds (see module docstring)."""
    if ds.get("AcquisitionDuration") not in (None, ""):
        return float(ds.get("AcquisitionDuration"))
    rotations = ds.get("RotationInformationSequence")
    if rotations:
        total_ms = 0.0
        for item in rotations:
            frame_ms = item.get("ActualFrameDuration")
            n = item.get("NumberOfFramesInRotation")
            if frame_ms in (None, "") or n in (None, ""):
                break
            total_ms += float(frame_ms) * int(n)
        else:
            if total_ms > 0:
                return total_ms / 1000.0
    if ds.get("ActualFrameDuration") not in (None, ""):
        return float(ds.get("ActualFrameDuration")) / 1000.0
    raise InputError(path, "SPECT stored as counts but no acquisition duration (AcquisitionDuration, "
                     "RotationInformationSequence ActualFrameDuration x NumberOfFramesInRotation, or "
                     "ActualFrameDuration)")


def counts_to_bq_per_ml(counts, calibration_cps_per_mbq: float, duration_s: float,
                        voxel_volume_ml: float) -> np.ndarray:
    """Convert counts per voxel to activity concentration.

    Parameters
    ----------
    counts : numpy.ndarray
        Counts per voxel (any shape).
    calibration_cps_per_mbq : float
        System sensitivity, counts per second per MBq.
    duration_s : float
        Acquisition duration, s.
    voxel_volume_ml : float
        Volume of one voxel, mL.

    Returns
    -------
    numpy.ndarray, float64, same shape
        Bq/mL.
    """
    if not (calibration_cps_per_mbq > 0 and duration_s > 0 and voxel_volume_ml > 0):
        raise ValueError("calibration, duration and voxel volume must be positive")
    return np.asarray(counts, float) * (1e6 / (calibration_cps_per_mbq * duration_s * voxel_volume_ml))


def decay_correction_factor(ds, path, acquisition: dt.datetime, injection: dt.datetime | None,
                            half_life_h: float) -> tuple[float, str, str]:
    """Factor that turns stored (possibly decay-corrected) activity into activity at ``acquisition``.

    Returns
    -------
    factor : float
        Multiply the image by this.
    correction : str
        DecayCorrection as found (``NONE``, ``START``, ``ADMIN``).
    note : str
        What was done, for the sidecar.
    """
    from .timing import parse_dicom_datetime

    correction = str(ds.get("DecayCorrection", "NONE") or "NONE").strip().upper()
    if correction == "NONE":
        return 1.0, correction, "not decay corrected: values are the activity at acquisition"
    if correction == "ADMIN":
        if injection is None:
            raise InputError(path, "image is decay corrected to the administration (ADMIN) but the "
                             "injection time is unknown")
        reference, what = injection, "injection"
    elif correction == "START":
        try:
            reference = (parse_dicom_datetime(ds.get("DecayCorrectionDateTime"))
                         or parse_dicom_datetime(None, ds.get("SeriesDate"), ds.get("SeriesTime")))
        except ValueError as exc:
            raise InputError(path, f"decay correction reference time: {exc}") from None
        if reference is None:
            raise InputError(path, "image is decay corrected (START) but has no DecayCorrectionDateTime "
                             "or SeriesDate/SeriesTime")
        what = "DecayCorrectionDateTime" if ds.get("DecayCorrectionDateTime") else "series start"
    else:
        raise InputError(path, f"unknown DecayCorrection {correction!r} (expected NONE, START or ADMIN)")
    delta_h = (acquisition - reference).total_seconds() / 3600.0
    factor = math.exp(-math.log(2.0) / half_life_h * delta_h)
    note = (f"DecayCorrection {correction} undone: values were decay corrected to the {what} "
            f"({delta_h:+.4f} h before acquisition); multiplied by {factor:.6f}")
    return factor, correction, note
