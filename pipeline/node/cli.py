"""``spectdose node``: a DICOM node that runs the workflow after each scan and sends the results to PACS.

Receives DICOM (Storage SCP, C-ECHO) into the spool, groups each SPECT with its CT into a
session, waits ``quiet_period_s`` after the last instance, adds the session to the patient's
manifest under a pseudonym and runs the workflow (one workflow per patient at a time), then
exports RT Dose, Segmentation and the report PDF and sends them with C-STORE. Runs until
SIGTERM or Ctrl-C. See the README section "The DICOM node" and ``pipeline/node/config.py``.

  spectdose node --config node.yaml              # serve
  spectdose node --config node.yaml --status     # sessions: pseudonym, time point, state, detail
  spectdose node --config node.yaml --purge SDXXXXXXXXXX   # delete a patient's PHI from the spool
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from ..cli import run_stage
from ..errors import InputError, SpectdoseError

PROG = "spectdose node"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="node configuration YAML")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print the sessions and exit")
    what.add_argument("--purge", metavar="PSEUDONYM",
                      help="delete the patient's received DICOM, session links, exports and its pseudonym mapping")
    return parser


def _print_status(node) -> None:
    rows = node.status()
    if not rows:
        print("no sessions")
    for r in rows:
        print(f"{r['pseudonym']}  session {r['session']}  {r['time_point'] or '-':>8}  {r['state']:<9}  "
              f"last instance {r['last_instance_utc']} UTC  {r['detail']}")


def _run(args) -> int:
    from .config import read_config
    from .node import Node, setup_logging
    from .purge import purge_patient

    config = read_config(args.config)
    node = Node(config)
    try:
        if args.status:
            _print_status(node)
            return 0
        if args.purge:
            removed = purge_patient(node, args.purge)
            print(f"purged {args.purge}: {removed}")
            return 0
        setup_logging(config)
        try:
            node.start()
        except SpectdoseError as exc:
            raise InputError(args.config, str(exc)) from None

        def _stop(signum, frame):
            node.stop(stop_workflows=True)

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        node.serve()
        return 0
    finally:
        node.close()


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
