"""Stands in for snakemake in the fast node tests: records its run, writes a finished patient's results.

Usage: ``python fake_workflow.py <workdir> <sheet> <patient>``. Behaviour from files in
``<workdir>``: ``sleep_s`` (seconds to run, default 0), ``fail_<patient>`` (exit 1 with a stage
error line in the patient's log). Every start and every successful end is appended to
``<workdir>/runs.jsonl`` with the manifest's time points, so a test can count runs per session.
The results are what the export needs, on the grid of the first (reference) session's CT.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np


def _record(workdir: Path, **entry) -> None:
    with open(workdir / "runs.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def _ct_grid(ct_folder: Path):
    """Series UID, RAS+ affine and shape of the CT slices in ``ct_folder`` (from the DICOM definition)."""
    import pydicom

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(ct_folder.glob("*.dcm"))]
    r = np.array(headers[0].ImageOrientationPatient[:3], float)
    c = np.array(headers[0].ImageOrientationPatient[3:], float)
    n = np.cross(r, c)
    headers.sort(key=lambda ds: float(np.dot(n, np.array(ds.ImagePositionPatient, float))))
    dr, dc = (float(v) for v in headers[0].PixelSpacing)
    p0 = np.array(headers[0].ImagePositionPatient, float)
    dk = float(np.dot(n, np.array(headers[1].ImagePositionPatient, float) - p0)) if len(headers) > 1 else 1.0
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = r * dc, c * dr, n * dk, p0
    shape = (int(headers[0].Columns), int(headers[0].Rows), len(headers))
    return str(headers[0].SeriesInstanceUID), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, shape


def _write_results(patient_dir: Path, ref_tp: str, ct_folder: Path) -> None:
    import nibabel as nib

    series_uid, affine, shape = _ct_grid(ct_folder)
    for sub in (f"ingest/{ref_tp}", f"register/{ref_tp}", "dose", "segment", "report"):
        (patient_dir / sub).mkdir(parents=True, exist_ok=True)
    sid = hashlib.sha256(series_uid.encode()).hexdigest()[:12]
    (patient_dir / "ingest" / ref_tp / "ct.json").write_text(json.dumps(
        {"source": {"format": "dicom", "kind": "ct", "series": sid}}))
    (patient_dir / "register" / ref_tp / "spect.json").write_text(json.dumps(
        {"registration": {"reference_time_point": ref_tp}}))
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    dose = (1.0 + i + 10 * j + 100 * k).astype(np.float32) / 100.0
    labels = np.zeros(shape, np.int16)
    labels[1:4, 1:4, 1:3] = 1
    labels[4:7, 4:7, 2:5] = 3
    for name, array in (("dose/dose_ct.nii.gz", dose), ("segment/labels.nii.gz", labels)):
        nib.save(nib.Nifti1Image(array, affine), patient_dir / name)
    (patient_dir / "dose" / "dose_ct.json").write_text(json.dumps({"radionuclide": "Lu-177"}))
    (patient_dir / "segment" / "labels.json").write_text(json.dumps({"labels": {"1": "kidney_left", "3": "liver"}}))
    (patient_dir / "report" / "report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (patient_dir / "report" / "report.html").write_text("<html></html>")


def main(argv) -> int:
    import yaml

    workdir, sheet, patient = Path(argv[0]), Path(argv[1]), argv[2]
    with open(sheet, newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    manifest = yaml.safe_load(Path(row["input"]).read_text())
    tps = [tp["id"] for tp in manifest["time_points"]]
    _record(workdir, event="start", patient=patient, time_points=tps, t=time.time(), sheet=row)
    sleep = workdir / "sleep_s"
    if sleep.is_file():
        time.sleep(float(sleep.read_text()))
    if (workdir / f"fail_{patient}").is_file():
        logs = workdir / "results" / patient / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / "segment.log").write_text(f"spectdose segment: error: results/{patient}/segment: kidney on bowel\n")
        return 1
    first = manifest["time_points"][0]
    _write_results(workdir / "results" / patient, first["id"], Path(first["dicom"]) / "ct")
    _record(workdir, event="end", patient=patient, time_points=tps, t=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
