"""``spectdose uncertainty``: the uncertainty of every dose and of the planned activity.

Reads ``PATIENT_DIR/kinetics/fits.json``, ``segment/labels.nii.gz``, ``dose/organ_doses.csv``,
``dose/dose_ct.nii.gz``, ``dose/marrow.json``, ``dose/bed.csv``, ``dose/planning.json`` and, when
present, ``register/<tp>/qc.json`` (a reduced-protocol cycle of a course, one or two scans: also
the earlier cycle's ``fits.json`` its kinetics used, ``--prior-fits``, default the path its
``fits.json`` names); writes ``uncertainty/uncertainty.json`` (per organ: central
dose, analytic and Monte Carlo SD, 95 % intervals, budget; the same for the EANM marrow dose and
the kidney BED; the planned activity at the stated confidence) and ``uncertainty/budget.csv``,
atomically (temporary folder, then renamed). Settings: the ``uncertainty:`` section of the
workflow config (``--config``), then the options below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import run_stage
from ..cli_checks import config_section, require_dir
from ..errors import InputError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spectdose uncertainty", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--patient-dir", required=True, type=Path, help="results/<patient>")
    p.add_argument("--out", type=Path, help="output folder (default PATIENT_DIR/uncertainty)")
    p.add_argument("--config", type=Path, help="YAML with an 'uncertainty:' section (config/config.yaml)")
    p.add_argument("--calibration-relative-sd", type=float)
    p.add_argument("--activity-noise", choices=("fit_error_model", "relative", "counts"))
    p.add_argument("--activity-relative-sd", type=float)
    p.add_argument("--counts-per-mbq", type=float, help="counts per MBq over one acquisition (activity-noise counts)")
    p.add_argument("--psf-fwhm-relative-sd", type=float)
    p.add_argument("--segmentation-boundary-shift-voxels", type=float)
    p.add_argument("--registration-tre-mm", type=float, help="TRE where the registration QC reports none, mm")
    p.add_argument("--s-value-relative-sd", type=float)
    p.add_argument("--density-relative-sd", type=float)
    p.add_argument("--confidence", type=float, help="confidence of the planned activity (e.g. 0.95)")
    p.add_argument("--mc-draws", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--prior-fits", type=Path,
                   help="a reduced-protocol cycle's earlier fits.json (default: the one its fits.json names)")
    return p



def _run(args) -> int:
    from .sources import settings_from_config
    from .stage import compute_uncertainty, write_outputs

    require_dir(args.patient_dir, "patient results folder")
    overrides = {k: getattr(args, k) for k in (
        "calibration_relative_sd", "activity_noise", "activity_relative_sd", "counts_per_mbq", "psf_fwhm_relative_sd",
        "segmentation_boundary_shift_voxels", "registration_tre_mm", "s_value_relative_sd", "density_relative_sd",
        "confidence", "mc_draws", "seed")}
    try:
        settings = settings_from_config(config_section(args.config, "uncertainty"), **overrides)
    except (ValueError, TypeError) as exc:
        raise InputError(args.config, str(exc)) from None
    result, budget = compute_uncertainty(args.patient_dir, settings, args.prior_fits)
    out = write_outputs(args.out or args.patient_dir / "uncertainty", result, budget)
    for line in _summary_lines(result):
        print(line)
    for check in result["qc"]:
        if check["status"] != "pass":
            print(f"qc {check['status']}: {check['subject']}: {check['name']} = {check['value']:.3g} "
                  f"(expected {check['expected']})")
    print(f"spectdose uncertainty: wrote {out}")
    return 0


def _summary_lines(result: dict) -> list[str]:
    lines = [f"{'structure':16s} {'dose Gy':>8s} {'SD an.':>7s} {'SD MC':>7s} "
             f"{'95 % interval (MC) Gy':>22s}  largest source"]
    rows = list(result["organs"].items())
    if result.get("red_marrow_eanm"):
        rows.append(("red_marrow_eanm", result["red_marrow_eanm"]))
    for name, s in rows:
        lo, hi = s["mc_interval95_gy"]
        lines.append(f"{name:16s} {s['central_gy']:8.3g} {s['analytic_sd_gy']:7.2g} {s['mc_sd_robust_gy']:7.2g} "
                     f"{lo:10.3g} - {hi:<9.3g}  {s['largest_source']}")
    plan = result.get("planning", {})
    if "central_activity_gbq" in plan:
        lines.append(f"planned activity: {plan['central_activity_gbq']:.3g} GBq at the central estimate; "
                     f"{plan['mc_joint_activity_gbq']:.3g} GBq (Monte Carlo, every limit) and "
                     f"{plan['analytic_activity_gbq']:.3g} GBq (analytic, {plan['analytic_limiting']}) "
                     f"at {100 * plan['confidence']:g} % confidence")
    return lines


def main(argv=None) -> int:
    """Entry point of ``spectdose uncertainty``."""
    return run_stage("spectdose uncertainty", build_parser(), _run, argv)
