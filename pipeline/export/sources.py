"""What an export needs: a finished patient's results and the original DICOM of its reference CT.

The results (``results/<pseudonym>/``) hold only pseudonymous data. The patient's identifiers
and study go back to the hospital with the exported objects, so they are read from the DICOM
headers of the reference CT as it arrived (the node's spool or the patient's DICOM folder),
never from the results. The reference CT series is found by the pseudonymous series id that
the ingest stage recorded (SHA-256 of the SeriesInstanceUID, 12 hex digits) and checked
voxel for voxel against the grid of ``dose/dose_ct.nii.gz``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import read_json
from pipeline.errors import InputError
from pipeline.image import Image
from pipeline.imageio import read_image

__all__ = ["ReferenceCT", "FinishedPatient", "series_id", "reference_time_point", "load_finished_patient",
           "find_reference_ct", "PATIENT_KEYWORDS", "STUDY_KEYWORDS"]

#: Patient-module attributes copied from the reference CT (identifiers go back to the hospital).
PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
                    "OtherPatientIDsSequence", "PatientAge", "PatientWeight", "PatientSize")
#: General-study attributes copied from the reference CT: the results join the CT's study.
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                  "AccessionNumber", "StudyDescription", "IssuerOfAccessionNumberSequence")

#: Largest difference (mm) between the DICOM CT grid and the dose grid accepted as "the same grid".
GRID_TOL_MM = 0.01


def series_id(series_uid: str) -> str:
    """The ingest stage's pseudonymous series id: SHA-256 of the UID, first 12 hex digits."""
    return hashlib.sha256(str(series_uid).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ReferenceCT:
    """The reference CT series as it arrived: files and headers, sorted along the slice normal.

    Attributes
    ----------
    files : tuple of pathlib.Path
        One file per slice, in the order of increasing slice index ``k`` of the CT grid.
    headers : tuple of pydicom.Dataset
        Their headers (no pixel data), same order.
    affine : numpy.ndarray, shape (4, 4)
        RAS+ affine (mm) of the series as the ingest stage reads it.
    shape : tuple of int
        ``(I, J, K)`` = (columns, rows, slices).
    """

    files: tuple
    headers: tuple
    affine: np.ndarray
    shape: tuple

    @property
    def first(self):
        return self.headers[0]

    @property
    def series_uid(self) -> str:
        return str(self.first.SeriesInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.first.FrameOfReferenceUID)


@dataclass(frozen=True)
class FinishedPatient:
    """The results of one patient that an export reads (pseudonymous only).

    Attributes
    ----------
    patient_dir : pathlib.Path
        ``results/<pseudonym>``.
    reference_time_point : str
    ct_series_id : str
        Pseudonymous id of the reference CT series (from the ingest sidecar).
    dose : Image
        ``dose/dose_ct.nii.gz``, Gy, on the reference CT grid.
    dose_sha256 : str
        Digest of the dose file (makes the exported UIDs repeatable for the same result).
    labels : Image
        ``segment/labels.nii.gz`` on the same grid.
    vocabulary : dict
        Label id -> name (``segment/labels.json``).
    report_pdf : pathlib.Path or None
        ``report/report.pdf`` when it exists (it needs Chromium).
    """

    patient_dir: Path
    reference_time_point: str
    ct_series_id: str
    dose: Image
    dose_sha256: str
    labels: Image
    vocabulary: dict
    report_pdf: Path | None


def reference_time_point(patient_dir: Path) -> str:
    """The reference time point recorded by the register stage (``register/<tp>/spect.json``)."""
    found = set()
    for sidecar in sorted((patient_dir / "register").glob("*/spect.json")):
        ref = read_json(sidecar, "registration sidecar").get("registration", {}).get("reference_time_point")
        if ref:
            found.add(str(ref))
    if not found:
        raise InputError(patient_dir / "register", "no registration sidecar names the reference time point; "
                         "is the patient finished?")
    if len(found) > 1:
        raise InputError(patient_dir / "register", f"registration sidecars name several reference time "
                         f"points ({', '.join(sorted(found))}); rerun the workflow")
    return found.pop()


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(path, f"{what} is missing; is the patient finished?")
    return path


def load_finished_patient(patient_dir) -> FinishedPatient:
    """Read what the export needs from ``results/<pseudonym>``; errors name the missing file."""
    from pipeline.segment.labels import read_vocabulary

    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise InputError(patient_dir, "patient results folder not found")
    ref = reference_time_point(patient_dir)
    ct_sidecar = _require(patient_dir / "ingest" / ref / "ct.json", "the reference CT's ingest sidecar")
    source = read_json(ct_sidecar, "ingest sidecar").get("source", {})
    if source.get("format") != "dicom" or not source.get("series"):
        raise InputError(ct_sidecar, "the reference CT was not ingested from DICOM; DICOM export needs the "
                         "original CT series (its frame of reference and patient identifiers)")
    dose_path = _require(patient_dir / "dose" / "dose_ct.nii.gz", "the dose on the CT grid")
    dose, _ = read_image(dose_path, unit="Gy")
    labels, _ = read_image(_require(patient_dir / "segment" / "labels.nii.gz", "the label map"), unit="label")
    vocabulary = read_vocabulary(_require(patient_dir / "segment" / "labels.json", "the label vocabulary"))
    if labels.shape != dose.shape or not np.allclose(labels.affine, dose.affine, atol=1e-4):
        raise InputError(patient_dir / "segment" / "labels.nii.gz", "label map is not on the grid of "
                         "dose/dose_ct.nii.gz")
    digest = hashlib.sha256(dose_path.read_bytes()).hexdigest()
    pdf = patient_dir / "report" / "report.pdf"
    return FinishedPatient(patient_dir, ref, str(source["series"]), dose, digest, labels, vocabulary,
                           pdf if pdf.is_file() else None)


def find_reference_ct(dicom_dir, ct_series_id: str, dose: Image) -> ReferenceCT:
    """Find the reference CT series in ``dicom_dir`` and check it has the dose grid.

    Parameters
    ----------
    dicom_dir : path
        The patient's DICOM as received (spool folder or DICOM input folder), any layout.
    ct_series_id : str
        Pseudonymous series id recorded by the ingest stage.
    dose : Image
        The dose on the CT grid; the series must have exactly this grid.
    """
    from pipeline.ingest.ct_series import stacked_slices
    from pipeline.ingest.dicom_scan import scan_folder

    dicom_dir = Path(dicom_dir)
    if not dicom_dir.is_dir():
        raise InputError(dicom_dir, "DICOM folder not found")
    scan = scan_folder(dicom_dir)
    matches = [s for s in scan.series if s.kind == "ct" and series_id(s.series_uid) == ct_series_id]
    if not matches:
        raise InputError(dicom_dir, f"the reference CT series (pseudonymous id {ct_series_id}) is not in this "
                         "folder; give the folder the patient's DICOM was ingested from")
    series = matches[0]
    order, affine, shape = stacked_slices(series.files, series.headers)
    files = tuple(series.files[n] for n in order)
    headers = tuple(series.headers[n] for n in order)
    ref = ReferenceCT(files, headers, affine, tuple(int(v) for v in shape))
    corners = np.array([[0, 0, 0, 1], [shape[0] - 1, shape[1] - 1, shape[2] - 1, 1]], float).T
    if tuple(dose.shape) != ref.shape or np.abs(affine @ corners - dose.affine @ corners).max() > GRID_TOL_MM:
        raise InputError(series.files[0], "the reference CT series in the DICOM folder does not have the grid of "
                         "dose/dose_ct.nii.gz (a different reconstruction of the same series?)")
    return ref
