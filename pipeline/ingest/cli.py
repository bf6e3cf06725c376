"""``spectdose ingest INPUT --patient-id P --out DIR``: calibrated, timed SPECT/CT volumes.

INPUT is a manifest YAML file or a DICOM folder. Writes ``DIR/<tp>/ct.nii.gz``
(HU), ``DIR/<tp>/spect.nii.gz`` (Bq/mL, activity at acquisition), their JSON
sidecars and ``DIR/<tp>/timepoint.json``; without ``--time-point`` all time
points and ``DIR/manifest.json``. Nothing is written when the input is bad.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import run_stage

PROG = "spectdose ingest"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="manifest YAML file or DICOM folder of one patient")
    parser.add_argument("--patient-id", required=True, help="pseudonymous patient id written to the outputs")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/P/ingest")
    parser.add_argument("--time-point", help="ingest only this time point (writes OUT/<tp>/ only)")
    parser.add_argument("--nuclide", help="radionuclide override, e.g. Lu-177")
    parser.add_argument("--injected-mbq", type=_positive, help="injected activity override, MBq")
    parser.add_argument("--injection-datetime", help="injection date-time override, ISO 8601 local time, "
                        "optionally with its UTC offset (e.g. 2026-03-28T22:00:00+01:00)")
    parser.add_argument("--force-nuclide", action="store_true",
                        help="use the radionuclide of --nuclide (or the manifest) even where the DICOM names "
                             "another nuclide or half-life (otherwise an error)")
    parser.add_argument("--calibration-cps-per-mbq", type=_positive,
                        help="SPECT sensitivity, counts per second per MBq (for SPECT stored as counts)")
    return parser


def _run(args) -> int:
    from pipeline.cli_checks import check_patient_id, require_output_dir

    from .run import Overrides, plan_ingest, run_ingest
    from .timing import parse_iso_datetime

    check_patient_id(args.patient_id)
    require_output_dir(args.out)

    overrides = Overrides(
        radionuclide=args.nuclide,
        injected_activity_mbq=args.injected_mbq,
        injection_datetime=(None if args.injection_datetime is None
                            else parse_iso_datetime(args.injection_datetime, "--injection-datetime")),
        calibration_cps_per_mbq=args.calibration_cps_per_mbq,
        force_nuclide=args.force_nuclide,
    )
    plan = plan_ingest(args.input, args.patient_id, overrides, args.time_point)
    for line in plan.notes:
        print(f"{PROG}: note: {plan.relative(line)}", file=sys.stderr)
    for line in plan.warnings + [w for tp in plan.time_points for w in tp.warnings]:
        print(f"{PROG}: warning: {plan.relative(line)}", file=sys.stderr)
    for check in plan.qc:
        if check.status == "warn":
            print(f"{PROG}: warning: {plan.relative(check.describe())}", file=sys.stderr)
    print(f"{args.patient_id}: {plan.radionuclide}, {plan.injected_activity_mbq:g} MBq injected at "
          f"{plan.injection_datetime.isoformat()}")
    run_ingest(plan, args.out, log=lambda line: print(f"{args.patient_id}: {line}"),
               warn=lambda line: print(f"{PROG}: warning: {line}", file=sys.stderr))
    print(f"{args.patient_id}: wrote {args.out}")
    return 0


def main(argv=None) -> int:
    """Run ``spectdose ingest`` with ``argv``; return the exit code."""
    return run_stage(PROG, build_parser(), _run, argv)
