"""Export a finished patient as DICOM: RT Dose, Segmentation and the report as Encapsulated PDF.

:func:`export_dicom` writes into one temporary folder renamed at the end:

- ``rtdose.dcm``: ``dose/dose_ct.nii.gz`` (Gy) on the reference CT's frame of reference;
- ``seg.dcm``: ``segment/labels.nii.gz`` on the reference CT's slices;
- ``report.dcm``: ``report/report.pdf`` encapsulated (skipped, and said so in ``export.json``,
  when there is no PDF because Chromium is not installed);
- ``export.json``: the objects written (file, SOP class, SOP instance UID) and what was skipped,
  no patient identifiers.

The output folder holds the patient's identifiers (they go back to the hospital's PACS): keep it
with the spool, never in ``results/``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.atomic import atomic_dir, read_json, write_json
from pipeline.errors import InputError

from .common import derived_uid
from .pdf import build_encapsulated_pdf
from .rtdose import build_rt_dose
from .seg import build_segmentation
from .sources import find_reference_ct, load_finished_patient

__all__ = ["ExportResult", "export_dicom"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_dicom` wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
    files : tuple of pathlib.Path
        The DICOM files, RT Dose first.
    skipped : tuple of str
        Objects not written, with the reason.
    """

    out_dir: Path
    files: tuple
    skipped: tuple = field(default=())


def _save(ds, path: Path) -> dict:
    ds.save_as(path, enforce_file_format=True)
    return {"file": path.name, "sop_class_uid": str(ds.SOPClassUID), "sop_instance_uid": str(ds.SOPInstanceUID),
            "series_instance_uid": str(ds.SeriesInstanceUID), "modality": str(ds.Modality)}


def export_dicom(patient_dir, dicom_dir, out_dir, *, when: dt.datetime | None = None) -> ExportResult:
    """Write the DICOM results of a finished patient into ``out_dir`` (replaced atomically).

    Parameters
    ----------
    patient_dir : path
        ``results/<pseudonym>`` of a finished patient.
    dicom_dir : path
        The DICOM the patient was ingested from (the node's spool folder of that patient, or the
        DICOM input folder): the patient's identifiers, study and the reference CT come from here.
    out_dir : path
        Folder for the objects (holds identifiers).
    when : datetime.datetime, optional
        Content date/time (default: now, local wall clock).
    """
    when = when or dt.datetime.now().replace(microsecond=0)
    patient = load_finished_patient(patient_dir)
    ct = find_reference_ct(dicom_dir, patient.ct_series_id, patient.dose)
    sidecar = Path(patient_dir) / "dose" / "dose_ct.json"
    nuclide = read_json(sidecar, "dose sidecar").get("radionuclide", "") if sidecar.is_file() else ""
    key = (patient.dose_sha256, ct.series_uid)
    objects, skipped = [], []
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        rtdose = build_rt_dose(patient.dose, ct.first, ct.headers, sop_instance_uid=derived_uid(*key, "rtdose"),
                               series_uid=derived_uid(*key, "rtdose-series"), when=when,
                               description=f"{nuclide} absorbed dose (spectdose)".strip())
        objects.append(_save(rtdose, tmp / "rtdose.dcm"))
        seg = build_segmentation(patient.labels, patient.vocabulary, ct.headers,
                                 sop_instance_uid=derived_uid(*key, "seg"), series_uid=derived_uid(*key, "seg-series"))
        objects.append(_save(seg, tmp / "seg.dcm"))
        if patient.report_pdf is None:
            skipped.append("report.dcm: report/report.pdf does not exist (the report stage prints the PDF "
                           "only where Chromium is installed)")
        else:
            pdf = build_encapsulated_pdf(patient.report_pdf, ct.first, sop_instance_uid=derived_uid(*key, "pdf"),
                                         series_uid=derived_uid(*key, "pdf-series"), when=when)
            objects.append(_save(pdf, tmp / "report.dcm"))
        write_json(tmp / "export.json", {
            "patient_dir": str(Path(patient_dir).name), "reference_time_point": patient.reference_time_point,
            "reference_ct_series": patient.ct_series_id, "dose_sha256": patient.dose_sha256,
            "created": when.isoformat(), "objects": objects, "skipped": skipped})
    if not objects:
        raise InputError(out_dir, "nothing exported")
    return ExportResult(out_dir, tuple(out_dir / o["file"] for o in objects), tuple(skipped))
