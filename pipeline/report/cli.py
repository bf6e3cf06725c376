"""``spectdose report``: the dosimetry report of one patient, as HTML and PDF, and a viewer bundle.

Reads what the stages wrote in ``--patient-dir`` (``results/<patient>``) and writes beside
``--out`` (``results/<patient>/report/report.html``):

- ``report.html``: one self-contained page (figures embedded, opens offline). Page one: patient,
  radionuclide, activity, scans, method, the organ table (mass, TIA, mean dose with uncertainty,
  Gy/GBq, BED where the organ's own LQ parameters are known, status against the limits), the
  planning sentence and the QC verdict of every stage; then the details.
- ``report.pdf``: the same page printed by headless Chromium (A4, page numbers, software version,
  signature block). Without Chromium only the HTML is written, and the output says so.
- ``figures/dose_*.png``: fused CT and dose (colour wash, isodose lines) through the kidneys,
  through L3, and a dose MIP.
- ``viewer/``: an ITK-SNAP workspace and a 3D Slicer segmentation with colour table that open
  CT, dose and labels aligned (see the README).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..atomic import write_text
from ..cli import run_stage
from ..cli_checks import require_output_dir
from ..errors import InputError

PROG = "spectdose report"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patient-dir", required=True, type=Path,
                        help="the patient's results folder, results/<patient>")
    parser.add_argument("--out", required=True, type=Path,
                        help="HTML file to write (e.g. results/<patient>/report/report.html); "
                             "report.pdf, figures/ and viewer/ go beside it")
    parser.add_argument("--no-pdf", action="store_true", help="write the HTML only")
    parser.add_argument("--no-figures", action="store_true",
                        help="skip the fused CT/dose figures (they read the CT-grid volumes)")
    parser.add_argument("--no-viewer", action="store_true", help="skip the viewer bundle")
    return parser


def _run(args) -> int:
    from .build import build_report
    from .pdf import find_chromium, html_to_pdf

    if args.patient_dir.exists() and not args.patient_dir.is_dir():
        raise InputError(args.patient_dir, "is a file; expected the folder of patient results")
    if not args.patient_dir.is_dir():
        raise InputError(args.patient_dir, "is not a folder of patient results")
    if args.out.is_dir():
        raise InputError(args.out, "is a folder; expected the HTML file to write")
    if args.out.suffix.lower() not in (".html", ".htm"):
        # Chromium does not render a page without the extension: it waited out its 180 s timeout
        raise InputError(args.out, "expected the HTML file to write, ending in .html")
    require_output_dir(args.out.parent)
    out_dir = args.out.parent
    start = time.perf_counter()
    figures, notes = [], []
    if not args.no_figures:
        from .dosefig import make_dose_figures

        figures, notes = make_dose_figures(args.patient_dir, out_dir / "figures")
        for path, _ in figures:
            print(f"report: figure {path}")
    write_text(args.out, build_report(args.patient_dir, figures=figures, extra_notes=notes))
    print(f"report: {args.out} ({time.perf_counter() - start:.1f} s)")
    if not args.no_viewer:
        from .viewer import write_viewer_bundle

        bundle, why = write_viewer_bundle(args.patient_dir, out_dir / "viewer")
        print(f"report: viewer bundle {bundle}" if bundle else f"report: no viewer bundle: {why}")
    pdf = args.out.with_suffix(".pdf")
    if args.no_pdf:
        print("report: PDF not requested (--no-pdf): HTML only")
    elif find_chromium() is None:
        pdf.unlink(missing_ok=True)  # never leave a PDF of an older report beside the new HTML
        print("report: PDF not written: Chromium not found (Debian package chromium, or set "
              "SPECTDOSE_CHROMIUM): HTML only")
    else:
        t0 = time.perf_counter()
        try:
            html_to_pdf(args.out, pdf)
        except RuntimeError as exc:
            pdf.unlink(missing_ok=True)
            print(f"report: PDF not written: {exc}: HTML only")
        else:
            print(f"report: {pdf} ({time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
