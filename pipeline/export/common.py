"""Attributes every exported object shares: patient, study, equipment, SOP common, file meta.

The patient and study attributes are copied from the reference CT's header
(:data:`pipeline.export.sources.PATIENT_KEYWORDS`, :data:`~pipeline.export.sources.STUDY_KEYWORDS`);
type 2 attributes the CT lacks are written empty, as the standard asks. UIDs are derived
(:func:`pydicom.uid.generate_uid` with entropy sources) from the dose file's digest, the CT
series and the object kind, so exporting the same result twice gives the same instances and a
PACS that receives them again keeps one copy.
"""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pipeline import __version__

from .sources import PATIENT_KEYWORDS, STUDY_KEYWORDS

__all__ = ["derived_uid", "new_dataset", "copy_patient_and_study", "TYPE2_PATIENT_STUDY", "MANUFACTURER"]

MANUFACTURER = "spectdose"
#: Type 2 patient/study attributes: present, empty when the CT has no value.
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "ReferringPhysicianName", "StudyID", "AccessionNumber")


def derived_uid(*parts: str) -> str:
    """A UID under pydicom's root, repeatable for the same ``parts`` (strings)."""
    return generate_uid(entropy_srcs=["spectdose-export", *[str(p) for p in parts]])


def copy_patient_and_study(ds: Dataset, ct) -> None:
    """Copy the patient and general-study attributes of ``ct`` (a pydicom header) into ``ds``."""
    for keyword in (*PATIENT_KEYWORDS, *STUDY_KEYWORDS):
        if keyword in ct:
            ds[keyword] = ct[keyword]
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")


def new_dataset(sop_class_uid: str, sop_instance_uid: str, ct, *, modality: str, series_uid: str,
                series_number: int, series_description: str, when: dt.datetime) -> Dataset:
    """A dataset with file meta, SOP common, patient, study, series and equipment attributes.

    Parameters
    ----------
    ct : pydicom.Dataset
        Header of a reference CT slice (patient, study, character set).
    when : datetime.datetime
        Content and series date/time (local wall clock of the server).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if "SpecificCharacterSet" in ct:
        ds.SpecificCharacterSet = ct.SpecificCharacterSet
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    copy_patient_and_study(ds, ct)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "spectdose"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    return ds
