"""``spectdose demo``: the whole workflow on the standard sample patient.

Generates the digital sample patient (``spectdose phantom``) into ``sample_data/generated/``
(or ``--out``), writes a one-row patient sheet beside it, runs the Snakemake workflow of the
repository through snakemake's command line on ``--cores`` cores, then prints the organ dose
table (read from ``results/<patient>/dose/organ_doses.csv``) and the paths of the dose map, the
figures and the report. A sample patient already generated with the same settings is reused,
so a second demo only reruns what is out of date.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

from .cli import run_stage
from .errors import InputError, SpectdoseError

PROG = "spectdose demo"
#: The repository: the Snakefile, config/ and profiles/ live beside the package.
REPO = Path(__file__).resolve().parents[1]

SHEET_HEADER = ("patient_id", "input", "radionuclide", "sex")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cores", type=int, default=2, help="cores for the workflow (default 2)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the sample data, the sheet and results/ "
                        "(default: sample_data/generated/ for the data and results/ of the repository)")
    p.add_argument("--preset", choices=["standard", "small"], default="standard",
                   help="sample patient preset (default standard)")
    p.add_argument("--nuclide", choices=["Lu-177", "Cu-67", "Y-90"], default="Lu-177")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--patient-id", default="SAMPLE01")
    p.add_argument("--regenerate", action="store_true",
                   help="generate the sample patient again even when it exists")
    p.add_argument("--timeout-min", type=float, default=60.0,
                   help="stop the workflow after this many minutes (default 60)")
    return p


def snakefile() -> Path:
    path = REPO / "Snakefile"
    if not path.is_file():
        raise InputError(path, "not found: run the demo from a clone of the repository "
                               "(pip install -e .), where the workflow lives")
    return path


def generate_patient(data_dir: Path, args) -> Path:
    """The sample patient's manifest, generated unless it exists (or ``--regenerate``)."""
    manifest = data_dir / "manifest.yaml"
    if manifest.is_file() and not args.regenerate:
        print(f"Using the sample patient in {data_dir} (--regenerate to make it again).")
        return manifest
    from sample_data.cli import main as phantom

    print(f"Generating the {args.preset} sample patient {args.patient_id} in {data_dir} ...", flush=True)
    code = phantom(["--preset", args.preset, "--nuclide", args.nuclide, "--seed", str(args.seed),
                    "--patient-id", args.patient_id, "--out", str(data_dir)])
    if code != 0 or not manifest.is_file():
        raise SpectdoseError(f"the sample-data generator failed (exit code {code})")
    return manifest


def write_sheet(path: Path, patient_id: str, manifest: Path, nuclide: str) -> Path:
    """A one-row patient sheet for the demo patient (sex male: its reference marrow mass)."""
    from .atomic import write_text

    rows = ["\t".join(SHEET_HEADER), "\t".join((patient_id, str(manifest.resolve()), nuclide, "male"))]
    return write_text(path, "\n".join(rows) + "\n")


def snakemake_command(workdir: Path, sheet: Path, target: str, cores: int) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile()),
            "--directory", str(workdir), "--profile", str(REPO / "profiles" / "local"),
            "--configfile", str(REPO / "config" / "config.yaml"), str(REPO / "config" / "demo.yaml"),
            "--config", f"patients={sheet.resolve()}", "--cores", str(cores), target]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_table(csv_path: Path) -> str:
    """The CSV as an aligned text table, every cell exactly as written in the file.

    Numeric columns are right-aligned, text columns left-aligned.
    """
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return "(empty table)"
    n = len(rows[0])
    cell = [[row[i] if i < len(row) else "" for i in range(n)] for row in rows]
    widths = [max(len(r[i]) for r in cell) for i in range(n)]
    numeric = [all(_is_number(r[i]) for r in cell[1:] if r[i]) for i in range(n)]
    lines = []
    for k, row in enumerate(cell):
        parts = [c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def outputs(patient_dir: Path, data_dir: Path) -> dict:
    """Paths of the dose maps, the figures and the report, as they exist."""
    figures = [patient_dir / "dose" / "dvh.png", *sorted((patient_dir / "kinetics").glob("tac_*.png")),
               patient_dir / "segment" / "qc.png", *sorted((patient_dir / "register").glob("*/qc.png")),
               data_dir / "montage.png"]
    return {
        "dose map": [patient_dir / "dose" / "dose.nii.gz", patient_dir / "dose" / "dose_ct.nii.gz"],
        "figures": [f for f in figures if f.is_file()],
        "report": [patient_dir / "report" / "report.html"],
    }


def segmentation_qc_summary(qc_path: Path) -> str:
    """One line with the segmentation QC verdict, then one line per warning or overridden failure."""
    from .atomic import read_json

    if not qc_path.is_file():
        return f"Segmentation QC: {qc_path} is missing"
    qc = read_json(qc_path, "segmentation QC record")
    bad = [c for c in qc.get("checks", []) if c.get("status") in ("warn", "fail")]
    lines = [f"Segmentation QC: {str(qc.get('status', '?')).upper()} ({len(qc.get('checks', []))} checks, "
             f"{len(bad)} not passed; {qc_path})"]
    lines += [f"  {c['status'].upper()}: {c['structure']}: {c['check']} = {c['value']} {c['unit']} "
              f"(expected {c['expected']})" for c in bad]
    return "\n".join(lines)


def _stage_error(patient_dir: Path) -> str:
    """The first stage's one-line error from its log (``: <line>``), or an empty string."""
    for stage in ("ingest", "register", "segment", "kinetics", "dose", "report"):
        for log in sorted((patient_dir / "logs").glob(f"{stage}*.log")):
            errors = [ln for ln in log.read_text(errors="replace").splitlines() if ": error: " in ln]
            if errors:
                return f": {errors[-1]}"
    return ""


def _run(args) -> int:
    from .cli_checks import check_patient_id

    check_patient_id(args.patient_id)
    if args.cores < 1:
        raise InputError(None, "--cores must be at least 1")
    snakefile()  # fail before generating anything when the workflow is not there
    if args.out is None:
        data_root, workdir = REPO / "sample_data" / "generated", REPO
    else:
        data_root = workdir = args.out.resolve()
    data_dir = data_root / args.patient_id
    manifest = generate_patient(data_dir, args)
    sheet = write_sheet(data_root / "demo_patients.tsv", args.patient_id, manifest, args.nuclide)
    patient_dir = workdir / "results" / args.patient_id
    target = f"results/{args.patient_id}/report/report.html"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    cmd = snakemake_command(workdir, sheet, target, args.cores)
    print(f"Running the workflow on {args.cores} cores:\n  {' '.join(cmd)}", flush=True)
    try:
        code = subprocess.run(cmd, cwd=workdir, env=env, timeout=args.timeout_min * 60).returncode
    except subprocess.TimeoutExpired:
        raise SpectdoseError(f"the workflow did not finish within {args.timeout_min:g} minutes") from None
    if code != 0:
        raise SpectdoseError(f"the workflow failed (exit code {code}){_stage_error(patient_dir)}; see the "
                             f"logs in {patient_dir / 'logs'}")
    table = patient_dir / "dose" / "organ_doses.csv"
    if not table.is_file():
        raise InputError(table, "the workflow finished but the organ dose table is missing")
    print(f"\nOrgan doses of {args.patient_id} ({table}):\n")
    print(format_table(table))
    print()
    print(segmentation_qc_summary(patient_dir / "segment" / "qc.json"))
    print()
    for what, paths in outputs(patient_dir, data_dir).items():
        print(f"{what}:")
        for path in paths:
            print(f"  {path}")
    return 0


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
