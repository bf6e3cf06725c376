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

#: name -> (module, one-line help). Add a stage here when it lands.
SUBCOMMANDS = {
    "info": ("pipeline.info", "versions of the engines and the supported radionuclides"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectdose",
        description="Patient-specific dosimetry from serial quantitative SPECT/CT.",
    )
    parser.add_argument("--version", action="version", version=f"spectdose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    """Run ``spectdose`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv)  # handles --help, --version and unknown commands
        parser.print_help()
        return 0 if args.command is None and not argv else 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
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


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
