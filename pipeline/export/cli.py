"""``spectdose export-dicom``: the DICOM results of a finished patient, for the hospital's PACS.

Writes into ``--out`` (replaced atomically): ``rtdose.dcm`` (RT Dose, Gy, on the reference CT's
frame of reference, referencing the CT series), ``seg.dcm`` (DICOM Segmentation of the label
map), ``report.dcm`` (the report PDF encapsulated; skipped with a note when
``report/report.pdf`` does not exist because Chromium is not installed) and ``export.json``.

The objects carry the patient's real identifiers and study, read from the DICOM headers of the
reference CT in ``--dicom`` (the folder the patient was ingested from, or the node's spool of
that patient), never from the pseudonymous results. Keep ``--out`` where PHI may live.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import run_stage

PROG = "spectdose export-dicom"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patient-dir", required=True, type=Path,
                        help="the finished patient's results folder, results/<patient>")
    parser.add_argument("--dicom", required=True, type=Path,
                        help="the DICOM folder the patient was ingested from (holds the reference CT)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the DICOM objects into")
    return parser


def _run(args) -> int:
    from .run import export_dicom

    result = export_dicom(args.patient_dir, args.dicom, args.out)
    for path in result.files:
        print(f"wrote {path}")
    for note in result.skipped:
        print(f"skipped {note}")
    return 0


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
