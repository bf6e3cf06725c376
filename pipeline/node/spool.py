"""The spool: received instances written atomically, one folder per patient, study and series.

Layout (under ``<spool>``)::

    dicom/<patient key>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
    sessions/<patient key>/<session id>/{ct,spect}/   hard links to one session's files (ingest input)
    outbox/<pseudonym>/run-<id>/                     exported DICOM results (identifiers inside)
    overrides/<pseudonym>.yaml                       injection record / sex given by a physicist
    node.sqlite, logs/node.log

The patient key is the SHA-256 of PatientID and IssuerOfPatientID: folder names and log lines
carry no identifier. An instance is written to a hidden temporary name (ignored by every reader)
and renamed; only then is it recorded and acknowledged, so a sender that got "success" knows
the instance is on disk, and a dropped association leaves no half file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .db import NodeDB

__all__ = ["StoreOutcome", "Spool", "patient_key", "STATUS_SUCCESS", "STATUS_OUT_OF_RESOURCES",
           "STATUS_CANNOT_UNDERSTAND", "STATUS_NOT_AUTHORISED"]

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_NOT_AUTHORISED = 0x0124
_UID_OK = set("0123456789.")


def patient_key(patient_id: str, issuer: str = "") -> str:
    """Spool folder name of a patient: SHA-256 of PatientID and issuer (24 hex digits)."""
    return hashlib.sha256(f"{patient_id}\0{issuer}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class StoreOutcome:
    """Result of one C-STORE: DIMSE status and what happened (for the log; no PHI)."""

    status: int
    what: str  # "stored", "duplicate", "refused: <reason>"
    series_uid: str = ""
    patient_key: str = ""


class Spool:
    """Write received instances into ``root`` and record them in ``db``.

    Parameters
    ----------
    root : pathlib.Path
        The spool folder.
    db : NodeDB
    min_free_mb : float
        Instances are refused (A700, out of resources) when less than this is free after writing.
    """

    def __init__(self, root, db: NodeDB, min_free_mb: float = 2048.0):
        self.root = Path(root)
        self.db = db
        self.min_free_bytes = float(min_free_mb) * 1024 * 1024
        (self.root / "dicom").mkdir(parents=True, exist_ok=True)

    def patient_dir(self, key: str) -> Path:
        return self.root / "dicom" / key

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def store(self, header, encoded: bytes, calling_ae: str = "", now: float | None = None) -> StoreOutcome:
        """Store one instance.

        Parameters
        ----------
        header : pydicom.Dataset
            The instance's data set (only identifying UIDs, PatientID and Modality are read).
        encoded : bytes
            The complete DICOM file (preamble, file meta and data set) to write.
        """
        try:
            sop_uid = str(header.SOPInstanceUID)
            series_uid = str(header.SeriesInstanceUID)
            study_uid = str(header.StudyInstanceUID)
            patient_id = str(header.get("PatientID", "") or "")
            issuer = str(header.get("IssuerOfPatientID", "") or "")
            sop_class = str(header.SOPClassUID)
            modality = str(header.get("Modality", "") or "")
        except (AttributeError, KeyError, ValueError):
            return StoreOutcome(STATUS_CANNOT_UNDERSTAND, "refused: SOP/series/study UID missing")
        for uid in (sop_uid, series_uid, study_uid):
            if not uid or not set(uid) <= _UID_OK or len(uid) > 64:
                return StoreOutcome(STATUS_CANNOT_UNDERSTAND, "refused: malformed UID", series_uid)
        if not patient_id.strip():
            return StoreOutcome(STATUS_CANNOT_UNDERSTAND, "refused: no PatientID", series_uid)
        key = patient_key(patient_id, issuer)
        folder = self.patient_dir(key) / study_uid / series_uid
        target = folder / f"{sop_uid}.dcm"
        if self.db.has_instance(sop_uid) and target.is_file():
            return StoreOutcome(STATUS_SUCCESS, "duplicate", series_uid, key)
        if self.free_bytes() - len(encoded) < self.min_free_bytes:
            return StoreOutcome(STATUS_OUT_OF_RESOURCES, "refused: disk full (below min_free_mb)", series_uid, key)
        tmp = folder / f".{sop_uid}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(encoded)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return StoreOutcome(STATUS_OUT_OF_RESOURCES, "refused: disk full (write failed)", series_uid, key)
            return StoreOutcome(STATUS_OUT_OF_RESOURCES, f"refused: cannot write ({exc.strerror})", series_uid, key)
        self.db.pseudonym_for(key, patient_id, issuer)
        received = time.time() if now is None else now
        added = self.db.add_instance(sop_uid=sop_uid, patient_key=key, study_uid=study_uid, series_uid=series_uid,
                                     sop_class=sop_class, modality=modality, path=target, received=received,
                                     calling_ae=calling_ae)
        return StoreOutcome(STATUS_SUCCESS, "stored" if added else "duplicate", series_uid, key)

    def reconcile(self) -> int:
        """Record files on disk that the database misses (a crash between rename and insert).

        Temporary files of interrupted writes are removed. Returns the number of files recorded.
        """
        import pydicom

        found = 0
        for path in sorted((self.root / "dicom").rglob("*")):
            if not path.is_file():
                continue
            if path.name.startswith("."):
                path.unlink(missing_ok=True)
                continue
            if self.db.has_instance(path.stem):
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - a file we cannot read is left alone and not recorded
                continue
            patient_id = str(ds.get("PatientID", "") or "")
            issuer = str(ds.get("IssuerOfPatientID", "") or "")
            key = patient_key(patient_id, issuer)
            self.db.pseudonym_for(key, patient_id, issuer)
            found += self.db.add_instance(
                sop_uid=str(ds.SOPInstanceUID), patient_key=key, study_uid=str(ds.StudyInstanceUID),
                series_uid=str(ds.SeriesInstanceUID), sop_class=str(ds.SOPClassUID),
                modality=str(ds.get("Modality", "")), path=path, received=path.stat().st_mtime)
        return found
