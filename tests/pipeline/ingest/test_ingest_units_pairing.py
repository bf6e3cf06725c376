"""Value scales, counts conversion, decay-correction factors and CT pairing, against hand calculations."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pipeline.errors import InputError
from pipeline.ingest.dicom_scan import DicomSeries
from pipeline.ingest.pairing import pair_spect_with_ct
from pipeline.ingest.units import (
    acquisition_duration_s,
    counts_to_bq_per_ml,
    decay_correction_factor,
    value_scale,
)

ACQ = dt.datetime(2026, 1, 6, 9, 0, 0)
INJ = dt.datetime(2026, 1, 5, 9, 0, 0)
LU177_H = 159.528  # ICRP-107 6.647 d


def _rwvm(code, slope):
    item = Dataset()
    item.RealWorldValueSlope, item.RealWorldValueIntercept = slope, 0.0
    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator = code, "UCUM"
    item.MeasurementUnitsCodeSequence = Sequence([unit])
    return Sequence([item])


def test_value_scale_precedence_and_units():
    ds = Dataset()
    ds.Units, ds.RescaleSlope, ds.RescaleIntercept = "BQML", "2.5", "0"
    assert (value_scale(ds, "x").slope, value_scale(ds, "x").unit) == (2.5, "Bq/mL")
    ds.RealWorldValueMappingSequence = _rwvm("kBq/ml", 0.5)
    scale = value_scale(ds, "x")
    assert scale.unit == "Bq/mL" and scale.slope == pytest.approx(500.0)  # 0.5 kBq/mL per stored unit
    counts = Dataset()
    counts.RescaleSlope = "1"
    assert value_scale(counts, "x").unit == "counts"  # NM without Units holds counts
    suv = Dataset()
    suv.Units = "GML"
    with pytest.raises(InputError, match="GML"):
        value_scale(suv, "x")


def test_counts_conversion_is_counts_over_sensitivity_time_and_volume():
    # 1200 counts in 0.110592 mL (4.8 mm voxel) at 12 cps/MBq over 1200 s:
    # 1200 / (12 * 1200) MBq = 0.08333 MBq = 83333 Bq -> / 0.110592 mL = 753,520 Bq/mL
    got = counts_to_bq_per_ml(np.array([1200.0]), 12.0, 1200.0, 0.110592)
    assert got[0] == pytest.approx(1200 / (12 * 1200) * 1e6 / 0.110592, rel=1e-12)
    assert got[0] == pytest.approx(753520.0, rel=1e-5)


def test_acquisition_duration_from_rotation_or_frame_duration():
    ds = Dataset()
    rot = Dataset()
    rot.ActualFrameDuration, rot.NumberOfFramesInRotation = 20000, 60
    ds.RotationInformationSequence = Sequence([rot])
    assert acquisition_duration_s(ds, "x") == 1200.0
    ds.AcquisitionDuration = 900.0
    assert acquisition_duration_s(ds, "x") == 900.0
    with pytest.raises(InputError, match="duration"):
        acquisition_duration_s(Dataset(), "x")


@pytest.mark.parametrize("mode, expected", [
    ("NONE", 1.0),
    ("ADMIN", math.exp(-math.log(2) / LU177_H * 24.0)),  # corrected to injection, 24 h earlier
    ("START", math.exp(-math.log(2) / LU177_H * 0.5)),  # corrected to 08:30, 30 min earlier
])
def test_decay_correction_factors(mode, expected):
    ds = Dataset()
    ds.DecayCorrection = mode
    ds.SeriesDate, ds.SeriesTime = "20260106", "083000"
    factor, found, note = decay_correction_factor(ds, "x", ACQ, INJ, LU177_H)
    assert found == mode and factor == pytest.approx(expected, rel=1e-12)


def _series(uid, for_uid, study="1.2.3"):
    ds = Dataset()
    ds.FrameOfReferenceUID, ds.StudyInstanceUID, ds.Modality = for_uid, study, "CT"
    return DicomSeries(uid, (Path(f"/data/{uid}.dcm"),), (ds,), "ct")


def test_pairing_prefers_the_shared_frame_of_reference_then_the_closest_time():
    spect = _series("s", "1.2.826.1")
    cts = [_series("c1", "1.2.826.2"), _series("c2", "1.2.826.1"), _series("c3", "1.2.826.1")]
    times = [ACQ, ACQ - dt.timedelta(minutes=50), ACQ - dt.timedelta(minutes=4)]
    pairing = pair_spect_with_ct(spect, ACQ, cts, times)
    assert (pairing.ct_index, pairing.method, pairing.gap_min) == (2, "frame_of_reference", -4.0)


def test_pairing_falls_back_to_same_study_close_in_time_with_a_warning():
    spect = _series("s", "1.2.826.1")
    pairing = pair_spect_with_ct(spect, ACQ, [_series("c1", "1.2.826.2")], [ACQ - dt.timedelta(minutes=6)])
    assert pairing.method == "study_and_time" and "Frame of Reference" in pairing.warning


def test_spect_without_any_ct_is_an_error():
    spect = _series("s", "1.2.826.1")
    with pytest.raises(InputError, match="SPECT without a CT"):
        pair_spect_with_ct(spect, ACQ, [_series("c1", "1.2.826.2", study="9.9.9")], [ACQ])
