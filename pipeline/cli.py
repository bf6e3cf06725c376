"""The ``spectdose`` command: one subcommand per stage.

Every subcommand lives in its own module with ``build_parser()`` and
``main(argv) -> int``; this module only dispatches, importing the stage
module on demand so that ``spectdose --help`` stays fast. Errors the user can
act on (:class:`pipeline.errors.SpectdoseError`) become one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: name -> (module, one-line help). A subcommand is offered only when its module exists.
_ALL_SUBCOMMANDS = {
    "info": ("pipeline.info", "versions of the engines and the supported radionuclides"),
    "phantom": ("sample_data.cli", "generate the digital SPECT/CT sample patient with its ground truth"),
    "kernel": ("kernels.cli", "decay data, Monte Carlo kernels and voxel S-values"),
    "ingest": ("pipeline.ingest.cli", "DICOM/NIfTI time points to calibrated, timed volumes"),
    "register": ("pipeline.register.cli", "align all time points to the reference"),
    "segment": ("pipeline.segment.cli", "label map of kidneys, liver, spleen, L2-L4 marrow on CT"),
    "kinetics": ("pipeline.kinetics.cli", "time-activity curves, fits and time-integrated activity"),
    "dose": ("pipeline.dose.cli", "absorbed-dose maps, organ doses, DVHs, marrow, BED, planning"),
    "report": ("pipeline.report.cli", "self-contained HTML report for one patient"),
    "uncertainty": ("pipeline.uncertainty.cli", "uncertainty of every dose and of the planned activity (EANM)"),
    "course": ("pipeline.course.cli", "therapy course: cycles summed, allowances, next activity, predicted vs delivered"),
    "demo": ("pipeline.demo", "run the whole workflow on the sample patient"),
    "export-dicom": ("pipeline.export.cli", "RT Dose, Segmentation and report PDF as DICOM for PACS"),
    "node": ("pipeline.node.cli", "DICOM node: receive scans, run the workflow, send results to PACS"),
}


def _module_exists(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def available_subcommands() -> dict:
    """The subcommands whose modules are installed, name -> (module, help)."""
    return {k: v for k, v in _ALL_SUBCOMMANDS.items() if _module_exists(v[0])}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectdose",
        description="Patient-specific dosimetry from serial quantitative SPECT/CT.",
    )
    parser.add_argument("--version", action="version", version=f"spectdose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in available_subcommands().items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    """Run ``spectdose`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = available_subcommands()
    if not argv or argv[0] not in commands:
        args = parser.parse_args(argv)  # handles --help, --version and unknown commands
        parser.print_help()
        return 0 if args.command is None and not argv else 2
    module = importlib.import_module(commands[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


def run_stage(prog: str, parser: argparse.ArgumentParser, func, argv) -> int:
    """Parse ``argv`` with ``parser`` and call ``func(args)``, turning user errors into one line.

    Every stage's ``main(argv)`` goes through here so that bad input gives
    ``spectdose <stage>: error: <file>: <problem>`` on stderr and exit code 2.
    """
    from .errors import SpectdoseError

    args = parser.parse_args(argv)
    try:
        return int(func(args) or 0)
    except SpectdoseError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (IsADirectoryError, NotADirectoryError, FileNotFoundError, PermissionError) as exc:
        # a path of the wrong kind that no explicit check caught: still one line naming the file
        print(f"{prog}: error: {exc.filename}: {exc.strerror.lower()}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"{prog}: error: an input text file is not UTF-8 text (a binary or DICOM file where a "
              f"YAML/JSON/CSV file is expected?): {exc.reason} at byte {exc.start}", file=sys.stderr)
        return 2


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
