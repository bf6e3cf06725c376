"""Writing the sample patient as DICOM (pydicom): a CT series and an NM multi-frame SPECT.

Geometry: axial HFS. An :class:`pipeline.image.Image` of the generator has direction
diag(-1, -1, 1) in RAS+, i.e. ImageOrientationPatient 1\\0\\0\\0\\1\\0 in LPS with array
index i along the row (columns) and j along the column (rows): DICOM pixel (row r, col c) of
slice k is ``array[c, r, k]``.

UIDs are ``2.25.<n>`` derived from a hash of (seed, patient id, time point, series, instance)
so that the same call writes identical files.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path

import numpy as np

__all__ = ["det_uid", "write_ct_series", "write_nm_spect", "RADIONUCLIDE_CODES"]

#: SNOMED CT codes of the radionuclides (HL7 FHIR CodeX radiotherapy isotope value set:
#: Lutetium-177 447553000, Yttrium-90 14691008). No SNOMED CT code for Cu-67 was available
#: offline: a local coding scheme is used for it.
RADIONUCLIDE_CODES = {
    "Lu-177": ("447553000", "SCT", "Lutetium-177"),
    "Y-90": ("14691008", "SCT", "Yttrium-90"),
    "Cu-67": ("Cu-67", "99SPECTDOSE", "Copper-67"),
}

_SOFTWARE = "spectdose sample_data"


def det_uid(*parts) -> str:
    """A deterministic DICOM UID (``2.25.`` + decimal of a 120-bit hash of ``parts``)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return "2.25." + str(int.from_bytes(h[:15], "big"))


def _da_tm(dt: _dt.datetime):
    return dt.strftime("%Y%m%d"), dt.strftime("%H%M%S.%f")[:13]


def _base_dataset(sop_class_uid, sop_instance_uid, session: dict):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    pid = session["patient_id"]
    ds.PatientName = pid
    ds.PatientID = pid
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic data: spectdose digital patient, no real person"
    ds.StudyInstanceUID = session["study_uid"]
    ds.StudyID = session["time_point"]
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"spectdose sample SPECT/CT {session['time_point']}"
    study_da, study_tm = _da_tm(session["study_datetime"])
    ds.StudyDate, ds.StudyTime = study_da, study_tm
    ds.FrameOfReferenceUID = session["frame_of_reference_uid"]
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "spectdose"
    ds.ManufacturerModelName = "digital phantom"
    ds.SoftwareVersions = session.get("software_version", "0")
    ds.PatientPosition = "HFS"
    return ds


def _set_acquisition(ds, acq_dt: _dt.datetime):
    da, tm = _da_tm(acq_dt)
    ds.SeriesDate, ds.SeriesTime = da, tm
    ds.AcquisitionDate, ds.AcquisitionTime = da, tm
    ds.ContentDate, ds.ContentTime = da, tm
    ds.AcquisitionDateTime = acq_dt.strftime("%Y%m%d%H%M%S.%f")


def _radiopharmaceutical(session: dict):
    from pydicom.dataset import Dataset

    code_value, scheme, meaning = RADIONUCLIDE_CODES[session["nuclide"]]
    code = Dataset()
    code.CodeValue = code_value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    item = Dataset()
    item.Radiopharmaceutical = f"{session['nuclide']} sample radioligand"
    item.RadionuclideCodeSequence = [code]
    item.RadionuclideTotalDose = f"{session['injected_bq']:.6g}"
    item.RadionuclideHalfLife = f"{session['half_life_s']:.8g}"
    item.RadiopharmaceuticalStartDateTime = session["injection_datetime"].strftime("%Y%m%d%H%M%S.%f")
    inj_da, inj_tm = _da_tm(session["injection_datetime"])
    item.RadiopharmaceuticalStartTime = inj_tm
    return item


def _ds(value: float) -> str:
    """A DICOM DS string (at most 16 characters)."""
    for digits in range(12, 3, -1):
        s = f"{value:.{digits}g}"
        if len(s) <= 16:
            return s
    return f"{value:.4g}"


def write_ct_series(folder, image, session: dict) -> list:
    """Write the CT ``image`` (HU, HFS axial grid) as one CT Image Storage file per slice.

    Stored values are int16 with RescaleSlope 1 and RescaleIntercept -1024. Files are written
    directly: call it inside a temporary folder (``generate`` renames the whole output folder
    at the end).
    """
    from pydicom.uid import CTImageStorage


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    aff = image.affine
    direction = image.direction_ras
    if not np.allclose(direction, np.diag([-1.0, -1.0, 1.0]), atol=1e-9):
        raise ValueError("write_ct_series expects an axial HFS grid (direction diag(-1,-1,1) in RAS+)")
    spacing = image.voxel_size_mm
    hu = np.clip(np.rint(image.array), -1024, 3071).astype(np.int16)
    series_uid = det_uid(session["uid_root"], "ct-series")
    ds = _base_dataset(CTImageStorage, det_uid(session["uid_root"], "ct", 0), session)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 2
    ds.SeriesDescription = "CTAC low dose (synthetic)"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    _set_acquisition(ds, session["ct_datetime"])
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SliceThickness = _ds(spacing[2])
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing (j), column spacing (i)
    ds.KVP = "120"
    ds.XRayTubeCurrent = 30
    ds.ConvolutionKernel = "STANDARD"
    ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    paths = []
    for k in range(hu.shape[2]):
        # one dataset, per-slice attributes replaced: same content as building each anew
        uid = det_uid(session["uid_root"], "ct", k)
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ras = aff[:3, :3] @ np.array([0.0, 0.0, k]) + aff[:3, 3]
        lps = ras * np.array([-1.0, -1.0, 1.0])
        ds.ImagePositionPatient = [_ds(v) for v in lps]
        ds.SliceLocation = _ds(lps[2])
        stored = (hu[:, :, k].T.astype(np.int32) + 1024).astype(np.int16)
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        path = folder / f"CT_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_nm_spect(path, image, session: dict) -> Path:
    """Write the SPECT ``image`` (Bq/mL, HFS axial grid) as one NM Image Storage multi-frame file.

    Pixels are uint16 with Bq/mL = stored * RescaleSlope + RescaleIntercept (intercept 0).
    Frames run from inferior to superior along the ImageOrientationPatient normal.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import NuclearMedicineImageStorage

    from pipeline.atomic import atomic_path

    path = Path(path)
    aff = image.affine
    if not np.allclose(image.direction_ras, np.diag([-1.0, -1.0, 1.0]), atol=1e-9):
        raise ValueError("write_nm_spect expects an axial HFS grid (direction diag(-1,-1,1) in RAS+)")
    spacing = image.voxel_size_mm
    values = np.clip(np.asarray(image.array, float), 0.0, None)
    vmax = float(values.max())
    slope = vmax / 65000.0 if vmax > 0 else 1.0
    stored = np.clip(np.rint(values / slope), 0, 65535).astype(np.uint16)
    uid = det_uid(session["uid_root"], "nm", 0)
    ds = _base_dataset(NuclearMedicineImageStorage, uid, session)
    ds.Modality = "NM"
    ds.SeriesInstanceUID = det_uid(session["uid_root"], "nm-series")
    ds.SeriesNumber = 3
    ds.SeriesDescription = "SPECT quantitative OSEM (synthetic), Bq/mL"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    _set_acquisition(ds, session["spect_datetime"])
    ds.ActualFrameDuration = int(round(session["acquisition_s"] * 1000))
    nk = stored.shape[2]
    ds.NumberOfFrames = nk
    ds.FrameIncrementPointer = [(0x0054, 0x0080)]  # SliceVector
    ds.SliceVector = list(range(1, nk + 1))
    ds.NumberOfSlices = nk
    ds.NumberOfDetectors = 2
    ds.NumberOfRotations = 1
    ds.NumberOfEnergyWindows = 1
    win = Dataset()
    kev = session.get("photopeak_kev")
    rng = Dataset()
    if kev:
        rng.EnergyWindowLowerLimit = _ds(kev * 0.9)
        rng.EnergyWindowUpperLimit = _ds(kev * 1.1)
        win.EnergyWindowName = f"EM {kev:.0f} keV"
    else:
        rng.EnergyWindowLowerLimit = "50"
        rng.EnergyWindowUpperLimit = "250"
        win.EnergyWindowName = "bremsstrahlung"
    win.EnergyWindowRangeSequence = [rng]
    ds.EnergyWindowInformationSequence = [win]
    det = Dataset()
    first = aff[:3, 3] * np.array([-1.0, -1.0, 1.0])
    det.ImagePositionPatient = [_ds(v) for v in first]
    det.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    det.CollimatorType = "PARA"
    ds.DetectorInformationSequence = [det]
    ds.RadiopharmaceuticalInformationSequence = [_radiopharmaceutical(session)]
    ds.SliceThickness = _ds(spacing[2])
    ds.SpacingBetweenSlices = _ds(spacing[2])
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
    ds.Units = "BQML"
    ds.CorrectedImage = ["ATTN", "SCAT", "NORM"]
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = _ds(slope)
    rw = Dataset()
    rw.RealWorldValueFirstValueMapped = 0
    rw.RealWorldValueLastValueMapped = 65535
    rw.RealWorldValueIntercept = 0.0
    rw.RealWorldValueSlope = float(_ds(slope))
    rw.LUTExplanation = "Bq/mL"
    rw.LUTLabel = "BQML"
    unit = Dataset()
    unit.CodeValue = "Bq/ml"
    unit.CodingSchemeDesignator = "UCUM"
    unit.CodeMeaning = "becquerels/milliliter"
    rw.MeasurementUnitsCodeSequence = [unit]
    ds.RealWorldValueMappingSequence = [rw]
    ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    frames = np.ascontiguousarray(np.transpose(stored, (2, 1, 0)))  # (frame, row, column)
    ds.PixelData = frames.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path
