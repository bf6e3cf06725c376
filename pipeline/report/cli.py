"""``spectdose report``: one self-contained HTML page for one patient.

Reads what the stages wrote in ``--patient-dir`` (``results/<patient>``): organ doses, marrow,
BED and planning results, DVHs, time-activity fits and curves, the QC images of registration and
segmentation, the assumptions and the software and kernel provenance. Figures are embedded
(base64), so the page opens offline. Sections whose files are missing say "Not available".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..atomic import write_text
from ..cli import run_stage
from ..cli_checks import require_output_dir
from ..errors import InputError
from .build import build_report

PROG = "spectdose report"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patient-dir", required=True, type=Path,
                        help="the patient's results folder, results/<patient>")
    parser.add_argument("--out", required=True, type=Path,
                        help="HTML file to write (e.g. results/<patient>/report/report.html)")
    return parser


def _run(args) -> int:
    if args.patient_dir.exists() and not args.patient_dir.is_dir():
        raise InputError(args.patient_dir, "is a file; expected the folder of patient results")
    if not args.patient_dir.is_dir():
        raise InputError(args.patient_dir, "is not a folder of patient results")
    if args.out.is_dir():
        raise InputError(args.out, "is a folder; expected the HTML file to write")
    require_output_dir(args.out.parent)
    write_text(args.out, build_report(args.patient_dir))
    print(f"report: {args.out}")
    return 0


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
