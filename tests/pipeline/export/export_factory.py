"""A synthetic finished patient for the export tests, built from known truth.

The CT series is written with pydicom straight from DICOM geometry (LPS position of the first
voxel, row/column cosines, spacings); the dose is an analytic function of the LPS world point,
so a test can check the exported RT Dose at any world point without the pipeline's geometry.
The results folder holds only the pseudonym ``P-EXPORT``; the DICOM holds the identifiers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
PHI = {"PatientName": "Doe^Janet", "PatientID": "MRN-99887766", "PatientBirthDate": "19510317",
       "PatientSex": "F", "AccessionNumber": "ACC-4711", "ReferringPhysicianName": "Who^Doctor"}
PSEUDONYM = "P-EXPORT"
LABELS = {1: "kidney_left", 2: "kidney_right", 3: "liver", 5: "marrow_L2L4", 7: "body", 100: "lesion_1"}
#: Dose blobs: (centre LPS mm, peak Gy, sigma mm).
BLOBS = (((-20.0, 5.0, 10.0), 12.0, 14.0), ((25.0, -10.0, 0.0), 3.0, 20.0))


def dose_at(points_lps) -> np.ndarray:
    """Analytic dose (Gy) at LPS world points, shape (N, 3) -> (N,)."""
    points = np.atleast_2d(np.asarray(points_lps, float))
    total = np.full(len(points), 0.05)
    for centre, peak, sigma in BLOBS:
        r2 = ((points - np.asarray(centre)) ** 2).sum(axis=1)
        total += peak * np.exp(-r2 / (2 * sigma**2))
    return total


@dataclass(frozen=True)
class Geometry:
    origin_lps: tuple = (-60.0, -50.0, -30.0)
    row_cos: tuple = (1.0, 0.0, 0.0)
    col_cos: tuple = (0.0, 1.0, 0.0)
    spacing_ijk: tuple = (4.0, 3.0, 5.0)  # along i (columns), j (rows), k (slices), mm
    shape_ijk: tuple = (30, 34, 13)

    def lps_affine(self) -> np.ndarray:
        r, c = np.asarray(self.row_cos, float), np.asarray(self.col_cos, float)
        n = np.cross(r, c)
        out = np.eye(4)
        out[:3, 0], out[:3, 1], out[:3, 2] = r * self.spacing_ijk[0], c * self.spacing_ijk[1], n * self.spacing_ijk[2]
        out[:3, 3] = self.origin_lps
        return out

    def ras_affine(self) -> np.ndarray:
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.lps_affine()

    def world_lps(self, ijk) -> np.ndarray:
        ijk = np.atleast_2d(np.asarray(ijk, float))
        return (self.lps_affine() @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]


OBLIQUE = Geometry(origin_lps=(-40.0, -70.0, 20.0),
                   row_cos=(np.cos(0.3), np.sin(0.3), 0.0),
                   col_cos=(-np.sin(0.3) * np.cos(0.2), np.cos(0.3) * np.cos(0.2), -np.sin(0.2)))


def write_ct(folder: Path, geometry: Geometry, *, study_uid: str, for_uid: str, series_uid: str | None = None):
    """One file per slice, stored in a shuffled InstanceNumber order; returns the headers written."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    n = np.cross(geometry.row_cos, geometry.col_cos)
    headers = []
    ni, nj, nk = geometry.shape_ijk
    for k in range(nk):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        for key, value in PHI.items():
            setattr(ds, key, value)
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20260106"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = "090000"
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 2, nk - k
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = "SyntheticTest"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in np.asarray(geometry.origin_lps) + k * geometry.spacing_ijk[2] * n]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*geometry.row_cos, *geometry.col_cos)]
        ds.PixelSpacing = [f"{geometry.spacing_ijk[1]:.4f}", f"{geometry.spacing_ijk[0]:.4f}"]
        ds.SliceThickness = f"{geometry.spacing_ijk[2]:.4f}"
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "-1024", "HU"
        ds.Rows, ds.Columns = nj, ni
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.full((nj, ni), 1024, np.uint16).tobytes()
        ds.save_as(folder / f"CT_{(k * 7) % nk:04d}_{k}.dcm", enforce_file_format=True)
        headers.append(ds)
    return headers


def label_map(geometry: Geometry) -> np.ndarray:
    ni, nj, nk = geometry.shape_ijk
    labels = np.zeros((ni, nj, nk), np.int16)
    labels[2:-2, 2:-2, 1:-1] = 7
    labels[4:9, 5:12, 3:8] = 1
    labels[18:24, 5:12, 3:8] = 2
    labels[8:20, 16:28, 2:10] = 3
    labels[13:16, 22:26, 9:12] = 5
    labels[10:12, 8:10, 5:7] = 100
    return labels


MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\n"
               b"trailer<</Root 1 0 R>>\n%%EOF\n")


def write_results(patient_dir: Path, geometry: Geometry, ct_series_uid: str, *, reference="t24h", pdf=True):
    """The pseudonymous results of a finished patient on the CT grid of ``geometry``."""
    import nibabel as nib

    ni, nj, nk = geometry.shape_ijk
    ijk = np.stack(np.meshgrid(np.arange(ni), np.arange(nj), np.arange(nk), indexing="ij"), -1).reshape(-1, 3)
    dose = dose_at(geometry.world_lps(ijk)).reshape(ni, nj, nk).astype(np.float32)
    for sub in ("ingest/t1h", f"ingest/{reference}", "register/t1h", f"register/{reference}", "dose", "segment",
                "report"):
        (patient_dir / sub).mkdir(parents=True, exist_ok=True)
    sid = hashlib.sha256(ct_series_uid.encode()).hexdigest()[:12]
    (patient_dir / "ingest" / reference / "ct.json").write_text(json.dumps(
        {"quantity": "ct_hounsfield", "unit": "HU", "patient_id": PSEUDONYM,
         "source": {"format": "dicom", "kind": "ct", "modality": "CT", "series": sid}}))
    (patient_dir / "ingest" / "t1h" / "ct.json").write_text(json.dumps(
        {"patient_id": PSEUDONYM, "source": {"format": "dicom", "kind": "ct", "series": "000000000000"}}))
    for tp in ("t1h", reference):
        (patient_dir / "register" / tp / "spect.json").write_text(json.dumps(
            {"patient_id": PSEUDONYM, "registration": {"reference_time_point": reference}}))
    affine = geometry.ras_affine()
    for name, array in (("dose/dose_ct.nii.gz", dose), ("segment/labels.nii.gz", label_map(geometry))):
        img = nib.Nifti1Image(array, affine)
        img.set_sform(affine, 1)
        img.set_qform(affine, 1)
        nib.save(img, patient_dir / name)
    (patient_dir / "dose" / "dose_ct.json").write_text(json.dumps(
        {"quantity": "absorbed_dose", "unit": "Gy", "radionuclide": "Lu-177", "sources": [PSEUDONYM]}))
    (patient_dir / "segment" / "labels.json").write_text(json.dumps(
        {"labels": {str(k): v for k, v in LABELS.items()}, "patient_id": PSEUDONYM}))
    if pdf:
        (patient_dir / "report" / "report.pdf").write_bytes(MINIMAL_PDF)
    return dose


@dataclass(frozen=True)
class FinishedPatient:
    patient_dir: Path
    dicom_dir: Path
    geometry: Geometry
    ct_headers: list
    dose: np.ndarray


def make_finished_patient(root: Path, geometry: Geometry = Geometry(), *, pdf=True) -> FinishedPatient:
    dicom_dir = root / "dicom"
    study, for_uid = generate_uid(), generate_uid()
    ct_uid = generate_uid()
    headers = write_ct(dicom_dir / "ct_ref", geometry, study_uid=study, for_uid=for_uid, series_uid=ct_uid)
    write_ct(dicom_dir / "ct_other", geometry, study_uid=study, for_uid=generate_uid())  # another session's CT
    patient_dir = root / "results" / PSEUDONYM
    dose = write_results(patient_dir, geometry, ct_uid, pdf=pdf)
    return FinishedPatient(patient_dir, dicom_dir, geometry, headers, dose)


def read(path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
