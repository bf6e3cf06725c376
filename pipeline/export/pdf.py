"""The report PDF as a DICOM Encapsulated PDF object in the reference CT's study."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydicom.dataset import Dataset

from pipeline.errors import InputError

from .common import new_dataset

__all__ = ["ENCAPSULATED_PDF_STORAGE", "build_encapsulated_pdf"]

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


def build_encapsulated_pdf(pdf_path, ct, *, sop_instance_uid: str, series_uid: str, when: dt.datetime,
                           series_number: int = 903, title: str = "Radiopharmaceutical therapy dosimetry report"
                           ) -> Dataset:
    """Encapsulated PDF dataset of ``pdf_path`` with the patient and study of the CT header ``ct``.

    Raises
    ------
    InputError
        The file is not a PDF (it must start with ``%PDF-``).
    """
    pdf_path = Path(pdf_path)
    data = pdf_path.read_bytes()
    if not data.startswith(b"%PDF-"):
        raise InputError(pdf_path, "not a PDF file (no %PDF- header)")
    ds = new_dataset(ENCAPSULATED_PDF_STORAGE, sop_instance_uid, ct, modality="DOC", series_uid=series_uid,
                     series_number=series_number, series_description="dosimetry report", when=when)
    ds.ConversionType = "WSD"  # workstation
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the pages name the patient's pseudonym and the dates
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\0" if len(data) % 2 else b"")
    return ds
