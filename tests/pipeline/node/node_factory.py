"""Synthetic scanner output for the node tests: sessions of CT slices + one NM tomogram, and a test SCU/SCP.

Each session is a small CT series (one file per slice) and an NM multi-frame RECON TOMO SPECT
sharing its frame of reference, with the identifiers of :data:`PHI` and (optionally) the
injection record in RadiopharmaceuticalInformationSequence.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE = "1.2.840.10008.5.1.4.1.1.20"
PHI = {"PatientName": "Roe^Richard^Q", "PatientID": "MRN-55443322", "PatientBirthDate": "19480229",
       "PatientSex": "M"}
INJECTION = dt.datetime(2026, 3, 2, 9, 0, 0)


def _base(sop_class, modality, study, series, for_uid, when: dt.datetime, phi: dict) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, meta.MediaStorageSOPInstanceUID, modality
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, for_uid
    for key, value in phi.items():
        setattr(ds, key, value)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = when.strftime("%H%M%S")
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.Manufacturer = "SyntheticScanner"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


@dataclass
class Session:
    """One scan: CT slice data sets and the SPECT data set."""

    ct: list
    spect: Dataset
    hours: float

    @property
    def all(self) -> list:
        return [*self.ct, self.spect]


def make_session(hours: float, *, phi: dict | None = None, injection=True, n_slices=6, size=8) -> Session:
    """A session ``hours`` after :data:`INJECTION` (CT 6 x 8 x 8 voxels of 10 mm, SPECT 8^3 of 10 mm)."""
    phi = dict(PHI if phi is None else phi)
    when = INJECTION + dt.timedelta(hours=hours)
    study, for_uid, ct_series, nm_series = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    ct = []
    for k in range(n_slices):
        ds = _base(CT_IMAGE, "CT", study, ct_series, for_uid, when - dt.timedelta(minutes=5), phi)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-35.0, -35.0, -25.0 + 10.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [10.0, 10.0]
        ds.SliceThickness = 10.0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.Rows = ds.Columns = size
        ds.PixelData = np.full((size, size), 1024, np.uint16).tobytes()
        ct.append(ds)
    nm = _base(NM_IMAGE, "NM", study, nm_series, for_uid, when, phi)
    nm.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    nm.SeriesDescription = "SPECT recon"
    nm.Units = "BQML"
    nm.NumberOfFrames = size
    nm.Rows = nm.Columns = size
    nm.PixelSpacing = [10.0, 10.0]
    nm.SpacingBetweenSlices = nm.SliceThickness = 10.0
    nm.ImagePositionPatient = [-35.0, -35.0, -35.0]
    nm.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    nm.RescaleSlope, nm.RescaleIntercept = 1.0, 0.0
    nm.PixelData = np.full((size, size, size), 100, np.uint16).tobytes()
    if injection:
        item = Dataset()
        item.RadiopharmaceuticalStartDateTime = INJECTION.strftime("%Y%m%d%H%M%S")
        item.RadionuclideTotalDose = 7.4e9
        item.RadionuclideHalfLife = 574300.8
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-1018C", "SRT", "^177^Lutetium"
        item.RadionuclideCodeSequence = Sequence([code])
        nm.RadiopharmaceuticalInformationSequence = Sequence([item])
    return Session(ct, nm, hours)


def send(port: int, datasets, *, calling_ae="SCANNER", called_ae="SPECTDOSE", abort_after: int | None = None):
    """C-STORE ``datasets`` to 127.0.0.1:``port``; statuses (ints). ``abort_after``: abort after that many."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    for sop in (CT_IMAGE, NM_IMAGE):
        ae.add_requested_context(sop, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        return None
    statuses = []
    for n, ds in enumerate(datasets):
        if abort_after is not None and n == abort_after:
            assoc.abort()
            return statuses
        status = assoc.send_c_store(ds)
        statuses.append(int(status.Status) if "Status" in status else None)
    assoc.release()
    return statuses


def echo(port: int, calling_ae="SCANNER", called_ae="SPECTDOSE"):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        return None
    status = assoc.send_c_echo()
    assoc.release()
    return int(status.Status) if "Status" in status else None


@dataclass
class Receiver:
    """A Storage SCP standing in for the PACS in the fast tests (the slow test uses Orthanc)."""

    port: int = 0
    received: list = field(default_factory=list)
    server: object = None
    lock: object = field(default_factory=threading.Lock)

    def start(self) -> "Receiver":
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        def on_store(event):
            ds = event.dataset
            ds.file_meta = event.file_meta
            with self.lock:
                self.received.append(ds)
            return 0x0000

        ae = AE(ae_title="TESTPACS")
        ae.supported_contexts = AllStoragePresentationContexts
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, on_store)])
        self.port = self.server.server_address[1]
        return self

    def stop(self):
        self.server.shutdown()
