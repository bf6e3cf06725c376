"""No patient name, birth date or original patient id in any output file or log line."""

from __future__ import annotations

import gzip

import ingest_dicom_factory as fac
from pipeline.ingest.cli import main


def _needles():
    family, given = fac.PHI["PatientName"].split("^")
    return [family, given, fac.PHI["PatientName"], fac.PHI["PatientBirthDate"], fac.PHI["PatientID"],
            "1951-03-17"]


def test_outputs_and_logs_hold_no_identifying_data(patient, tmp_path, capsys):
    (patient.folder / "readme.txt").write_text("not dicom")  # makes a note line too
    out = tmp_path / "out"
    assert main([str(patient.folder), "--patient-id", "PSEUDO7", "--out", str(out)]) == 0
    logs = capsys.readouterr()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"ct.nii.gz", "spect.nii.gz", "ct.json", "spect.json", "timepoint.json",
                                       "manifest.json"}
    texts = {"stdout": logs.out, "stderr": logs.err}
    for p in files:
        data = p.read_bytes()
        texts[str(p)] = (gzip.decompress(data) if p.name.endswith(".gz") else data).decode("latin-1")
    # the fixtures really carry the identifying data, so the scan can find it
    dicom_bytes = patient.nm_files["t4h"].read_bytes().decode("latin-1")
    assert all(n in dicom_bytes for n in _needles()[2:5])
    for where, text in texts.items():
        for needle in _needles():
            assert needle.lower() not in text.lower(), f"{needle!r} found in {where}"
    assert "PSEUDO7" in (out / "t4h" / "spect.json").read_text()
