"""Synthetic DICOM for the ingest tests, written with pydicom from known truth.

A session is a CT series (one file per slice) and an NM multi-frame RECON TOMO
SPECT in Bq/mL, sharing a Frame of Reference. Geometry is given in DICOM LPS
terms (position of the first voxel, row/column cosines, spacings); the truth
RAS+ affine is built independently here, straight from the DICOM definition:
x_LPS(i, j, k) = P0 + i*dc*r + j*dr*c + k*dk*n.

The ``to_*`` functions rewrite an existing NM multi-frame file (ours or the
sample patient's) into the variants the issue lists, keeping the same world
activity distribution.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE = "1.2.840.10008.5.1.4.1.1.20"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"

#: Identifying data put into every fixture file; no output may contain them.
PHI = {"PatientName": "Doe^Janet", "PatientBirthDate": "19510317", "PatientID": "MRN-99887766"}

LU177_HALF_LIFE_S = 6.647 * 86400.0  # ICRP-107


def truth_affine(origin_lps, row_cos, col_cos, spacing_ijk, normal_sign=1.0):
    """RAS+ affine from DICOM LPS geometry (independent of pipeline.ingest)."""
    r = np.asarray(row_cos, float)
    c = np.asarray(col_cos, float)
    n = normal_sign * np.cross(r, c)
    lps = np.eye(4)
    lps[:3, 0] = r * spacing_ijk[0]
    lps[:3, 1] = c * spacing_ijk[1]
    lps[:3, 2] = n * spacing_ijk[2]
    lps[:3, 3] = origin_lps
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _dt(value: dt.datetime) -> tuple[str, str, str]:
    return value.strftime("%Y%m%d"), value.strftime("%H%M%S"), value.strftime("%Y%m%d%H%M%S")


def _base(sop_class, modality, study_uid, series_uid, for_uid, when: dt.datetime, phi=True):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    if phi:
        for key, value in PHI.items():
            setattr(ds, key, value)
    date, time, _ = _dt(when)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = time
    ds.Manufacturer = "SyntheticTest"
    return ds


def _pixels(ds, stored: np.ndarray):
    ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def write_ct_series(folder, hu_ijk, origin_lps, row_cos, col_cos, spacing_ijk, *, study_uid, for_uid,
                    when, series_uid=None, phi=True, name="CT"):
    """Write a CT (one file per slice, stored = HU + 1024, intercept -1024). Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    r, c = np.asarray(row_cos, float), np.asarray(col_cos, float)
    n = np.cross(r, c)
    paths = []
    for k in range(hu_ijk.shape[2]):
        ds = _base(CT_IMAGE, "CT", study_uid, series_uid, for_uid, when, phi)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = hu_ijk.shape[2] - k  # deliberately not in position order
        ds.ImagePositionPatient = [f"{v:.4f}" for v in np.asarray(origin_lps) + k * spacing_ijk[2] * n]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*r, *c)]
        ds.PixelSpacing = [f"{spacing_ijk[1]:.4f}", f"{spacing_ijk[0]:.4f}"]
        ds.SliceThickness = f"{spacing_ijk[2]:.4f}"
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "-1024", "HU"
        _pixels(ds, (hu_ijk[:, :, k].T + 1024).astype(np.uint16))
        path = folder / f"{name}_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _quantise(values: np.ndarray) -> tuple[np.ndarray, float]:
    vmax = float(np.max(values)) if np.max(values) > 0 else 1.0
    slope = vmax / 65000.0
    return np.clip(np.round(values / slope), 0, 65535).astype(np.uint16), slope


def _radiopharmaceutical(injection: dt.datetime, activity_bq: float, nuclide_meaning: str,
                         half_life_s: float, start_datetime=True) -> Dataset:
    item = Dataset()
    date, time, full = _dt(injection)
    if start_datetime:
        item.RadiopharmaceuticalStartDateTime = full
    item.RadiopharmaceuticalStartTime = time
    item.RadionuclideTotalDose = f"{activity_bq:.6g}"
    item.RadionuclideHalfLife = f"{half_life_s:.1f}"
    code = Dataset()
    code.CodeValue = "C-145A8"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = nuclide_meaning
    item.RadionuclideCodeSequence = Sequence([code])
    return item


def write_nm_tomo(path, bqml_ijk, origin_lps, row_cos, col_cos, spacing_ijk, *, study_uid, for_uid,
                  acquisition: dt.datetime, injection: dt.datetime | None, activity_bq=7.4e9,
                  nuclide_meaning="^177^Lutetium", half_life_s=LU177_HALF_LIFE_S, start_datetime=True,
                  series_uid=None, phi=True, image_type="RECON TOMO"):
    """Write an NM multi-frame RECON TOMO file in BQML (rescale slope). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _base(NM_IMAGE, "NM", study_uid, series_uid or generate_uid(), for_uid, acquisition, phi)
    ds.AcquisitionDateTime = _dt(acquisition)[2]
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, "EMISSION"]
    ds.NumberOfFrames = bqml_ijk.shape[2]
    ds.NumberOfSlices = bqml_ijk.shape[2]
    ds.FrameIncrementPointer = [0x00540080]  # SliceVector
    ds.SliceVector = list(range(1, bqml_ijk.shape[2] + 1))
    det = Dataset()
    det.ImagePositionPatient = [f"{v:.4f}" for v in origin_lps]
    det.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_cos, *col_cos)]
    ds.DetectorInformationSequence = Sequence([det])
    ds.PixelSpacing = [f"{spacing_ijk[1]:.4f}", f"{spacing_ijk[0]:.4f}"]
    ds.SpacingBetweenSlices = f"{spacing_ijk[2]:.4f}"
    ds.SliceThickness = f"{2 * spacing_ijk[2]:.4f}"  # deliberately not the spacing
    ds.Units = "BQML"
    ds.DecayCorrection = "NONE"
    rot = Dataset()
    rot.ActualFrameDuration = 20000  # ms per view
    rot.NumberOfFramesInRotation = 60
    ds.RotationInformationSequence = Sequence([rot])
    if injection is not None:
        ds.RadiopharmaceuticalInformationSequence = Sequence(
            [_radiopharmaceutical(injection, activity_bq, nuclide_meaning, half_life_s, start_datetime)])
    stored, slope = _quantise(np.asarray(bqml_ijk, float))
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", "0"
    _pixels(ds, np.transpose(stored, (2, 1, 0)))
    ds.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------- variants
def nm_values(ds) -> np.ndarray:
    """Bq/mL of an NM BQML file as [frame, row, col] (rescale, or RWVM when present)."""
    stored = ds.pixel_array.astype(float)
    if stored.ndim == 2:
        stored = stored[None]
    rwvm = ds.get("RealWorldValueMappingSequence")
    if rwvm:
        return stored * float(rwvm[0].RealWorldValueSlope) + float(rwvm[0].get("RealWorldValueIntercept", 0))
    return stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def _set_values(ds, values_frc: np.ndarray):
    stored, slope = _quantise(values_frc)
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", "0"
    if "RealWorldValueMappingSequence" in ds:
        del ds.RealWorldValueMappingSequence
    ds.PixelData = stored.tobytes()


def _geometry(ds):
    det = ds.DetectorInformationSequence[0]
    iop = np.array([float(v) for v in det.ImageOrientationPatient])
    ipp = np.array([float(v) for v in det.ImagePositionPatient])
    n = np.cross(iop[:3], iop[3:])
    return ipp, iop, n, float(ds.SpacingBetweenSlices)


def to_negative_spacing(src, dst):
    """Same volume, frames reversed and stacked with a negative SpacingBetweenSlices."""
    ds = pydicom.dcmread(src)
    values = nm_values(ds)
    ipp, _, n, sbs = _geometry(ds)
    last = ipp + (values.shape[0] - 1) * sbs * n
    ds.DetectorInformationSequence[0].ImagePositionPatient = [f"{v:.4f}" for v in last]
    ds.SpacingBetweenSlices = f"{-sbs:.4f}"
    _set_values(ds, values[::-1])
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


def to_per_slice(src, folder, sop_class=PET_IMAGE, modality="PT"):
    """Same volume as one file per slice (PET-like layout), shuffled instance numbers, own slope each."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(src)
    values = nm_values(ds)
    ipp, iop, n, sbs = _geometry(ds)
    del ds.PixelData  # the template of every slice: copying the whole volume per slice is slow
    rng = np.random.default_rng(3)
    numbers = rng.permutation(values.shape[0]) + 1
    paths = []
    for k in range(values.shape[0]):
        sl = copy.deepcopy(ds)
        for key in ("DetectorInformationSequence", "NumberOfFrames", "NumberOfSlices", "FrameIncrementPointer",
                    "SliceVector", "RotationInformationSequence", "RealWorldValueMappingSequence",
                    "EnergyWindowVector", "DetectorVector", "RotationVector"):
            if key in sl:
                delattr(sl, key)
        sl.SOPClassUID = sop_class
        sl.file_meta.MediaStorageSOPClassUID = sop_class
        sl.SOPInstanceUID = sl.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        sl.Modality = modality
        sl.ImageType = ["ORIGINAL", "PRIMARY"]
        sl.InstanceNumber = int(numbers[k])
        sl.ImagePositionPatient = [f"{v:.4f}" for v in ipp + k * sbs * n]
        sl.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        sl.ActualFrameDuration = 1200000
        stored, slope = _quantise(values[k])
        sl.RescaleSlope, sl.RescaleIntercept = f"{slope:.10g}", "0"
        sl.PixelData = stored.tobytes()
        sl["PixelData"].VR = "OW"
        path = folder / f"slice_{numbers[k]:03d}.dcm"
        sl.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def voxel_volume_ml(ds) -> float:
    ps = [float(v) for v in ds.PixelSpacing]
    return ps[0] * ps[1] * abs(float(ds.SpacingBetweenSlices)) / 1000.0


def to_counts(src, dst, calibration_cps_per_mbq=12.0, frame_ms=20000, frames=60):
    """Counts per voxel = Bq/mL * mL * 1e-6 * cps/MBq * s; Units CNTS; duration in RotationInformationSequence."""
    ds = pydicom.dcmread(src)
    values = nm_values(ds)
    duration_s = frame_ms * frames / 1000.0
    counts = values * voxel_volume_ml(ds) * 1e-6 * calibration_cps_per_mbq * duration_s
    rot = Dataset()
    rot.ActualFrameDuration = frame_ms
    rot.NumberOfFramesInRotation = frames
    ds.RotationInformationSequence = Sequence([rot])
    if "AcquisitionDuration" in ds:
        del ds.AcquisitionDuration
    ds.Units = "CNTS"
    _set_values(ds, counts)
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


def _times(ds):
    item = ds.RadiopharmaceuticalInformationSequence[0]
    inj = dt.datetime.strptime(str(item.RadiopharmaceuticalStartDateTime)[:14], "%Y%m%d%H%M%S")
    acq = dt.datetime.strptime(str(ds.AcquisitionDateTime)[:14], "%Y%m%d%H%M%S")
    return inj, acq, float(item.RadionuclideHalfLife)


def to_decay_corrected(src, dst, mode="ADMIN", reference: dt.datetime | None = None):
    """Values decay corrected to the injection (ADMIN) or to ``reference`` (START)."""
    ds = pydicom.dcmread(src)
    values = nm_values(ds)
    inj, acq, half_life_s = _times(ds)
    ref = inj if mode == "ADMIN" else reference
    factor = math.exp(math.log(2.0) / half_life_s * (acq - ref).total_seconds())
    ds.DecayCorrection = mode
    if mode == "START":
        ds.DecayCorrectionDateTime = _dt(reference)[2]
    _set_values(ds, values * factor)
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


def with_total_dose(src, dst, value):
    """Same file with RadionuclideTotalDose replaced (e.g. MBq instead of Bq)."""
    ds = pydicom.dcmread(src)
    ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = f"{value:.6g}"
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


def edit_header(src, dst, **changes):
    """Same file with top-level or radiopharmaceutical attributes changed (None deletes)."""
    ds = pydicom.dcmread(src)
    for key, value in changes.items():
        target = ds
        if key.startswith("Radio") or key == "RadionuclideCodeMeaning":
            target = ds.RadiopharmaceuticalInformationSequence[0]
        if key == "RadionuclideCodeMeaning":
            target.RadionuclideCodeSequence[0].CodeMeaning = value
        elif value is None:
            if key in target:
                delattr(target, key)
        else:
            setattr(target, key, value)
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)


def to_jpeg_lossless(src, dst):
    """Same file with its pixel data compressed as JPEG Lossless, Process 14 SV1 (by GDCM).

    The stored values are compressed losslessly by SimpleITK's GDCM writer and the encapsulated
    fragments moved into the original dataset, whose header is otherwise unchanged.
    """
    import tempfile

    import SimpleITK as sitk
    from pydicom.uid import JPEGLosslessSV1

    ds = pydicom.dcmread(src)
    stored = ds.pixel_array
    with tempfile.TemporaryDirectory() as tmp:
        writer = sitk.ImageFileWriter()
        writer.SetImageIO("GDCMImageIO")
        writer.SetUseCompression(True)
        writer.SetCompressor("JPEG")
        writer.SetFileName(str(Path(tmp) / "c.dcm"))
        writer.Execute(sitk.GetImageFromArray(stored if stored.ndim == 3 else stored[None]))
        compressed = pydicom.dcmread(Path(tmp) / "c.dcm")
        assert compressed.file_meta.TransferSyntaxUID == JPEGLosslessSV1
        ds.PixelData = compressed.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.save_as(dst, enforce_file_format=True)
    return Path(dst)
