"""Time and peak memory of ``spectdose dose`` on one patient: two settings against each other.

``--compare photons`` (default): the photon voxel S-values (``--photon-method kernel``, the old
path) against the photon Monte Carlo (``transport``), both on the organ grid. ``--compare grid``:
the dose-grid path (``--organ-grid dose``) against the organ grid (``ct``), photons by transport.

Each run is a fresh process (``python -m pipeline.dose.benchmark --child ...``) that runs the
dose command once and reports its wall time and its own peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``): start-up, reading, kernels (from the cache after
the first run), dose, tables, figures and writing, as the workflow runs it. The two settings
alternate, so that load from other processes on the machine falls on both alike, and the medians
are compared in the same run.

Usage (the standard sample patient through kinetics, e.g. after ``make demo``)::

    python -m pipeline.dose.benchmark --patient-dir results/SAMPLE01 \\
        --labels results/SAMPLE01/segment/labels.nii.gz --repeats 3

``--generate DIR`` first makes the standard sample patient (Lu-177, noise) in DIR and runs
ingest, registration and kinetics on it (about 2 minutes on 2 cores), with the truth labels.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "prepare_sample_patient"]


def prepare_sample_patient(root: Path, nuclide: str = "Lu-177") -> tuple[Path, Path]:
    """Standard sample patient through kinetics in ``root``; returns (patient results folder, labels)."""
    from sample_data.generator import generate

    from ..ingest.cli import main as ingest_main
    from ..kinetics.cli import main as kinetics_main
    from ..register.cli import main as register_main

    sample = generate(root / "sample", preset="standard", nuclide=nuclide, seed=0, noise=True)
    res = root / "results" / "SAMPLE01"
    labels = sample / "truth" / "labels.nii.gz"
    for code in (ingest_main([str(sample / "manifest.yaml"), "--patient-id", "SAMPLE01", "--out", str(res / "ingest")]),
                 register_main(["--ingest-dir", str(res / "ingest"), "--out", str(res / "register")]),
                 kinetics_main(["--register-dir", str(res / "register"), "--labels", str(labels),
                                "--out", str(res / "kinetics")])):
        if code != 0:
            raise SystemExit(f"preparing the sample patient failed (exit {code})")
    return res, labels


#: The two settings of each comparison: (label, extra arguments of ``spectdose dose``), old first.
COMPARISONS = {
    "photons": (("kernel photons (old)", ["--organ-grid", "ct", "--photon-method", "kernel"]),
                ("photon transport", ["--organ-grid", "ct", "--photon-method", "transport"])),
    "grid": (("dose grid (old)", ["--organ-grid", "dose", "--photon-method", "transport"]),
             ("organ grid", ["--organ-grid", "ct", "--photon-method", "transport"])),
}


def _dose_argv(patient_dir: Path, labels: Path, out: Path, extra: list[str], config: Path | None) -> list[str]:
    argv = ["--kinetics-dir", str(patient_dir / "kinetics"), "--labels", str(labels),
            "--ct", str(patient_dir / "register" / "reference_ct.nii.gz"), "--out", str(out), *extra]
    return argv + (["--config", str(config)] if config else [])


def _child(argv: list[str]) -> int:
    import contextlib
    import io

    from .cli import main as dose_main

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = dose_main(argv)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(json.dumps({"exit": code, "dose_stage_s": wall, "peak_rss_mb": peak_mb}))
    return code


def _run_once(patient_dir, labels, which: int, extra: list[str], config, tmp: Path, n: int) -> dict:
    out = tmp / f"dose_{which}_{n}"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.dose.benchmark", "--child",
                           *_dose_argv(patient_dir, labels, out, extra, config)],
                          capture_output=True, text=True, check=False)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"dose stage failed ({' '.join(extra)}):\n{proc.stderr}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["process_s"] = total
    rows = (out / "organ_doses.csv").read_text().splitlines()
    head = rows[0].split(",")
    rec["organs_gy"] = {r.split(",")[head.index("name")]: float(r.split(",")[head.index("mean_gy")]) for r in rows[1:]}
    return rec


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    p = argparse.ArgumentParser(prog="python -m pipeline.dose.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patient-dir", type=Path, help="results/<patient> with kinetics/ and register/")
    p.add_argument("--labels", type=Path, help="label map on the reference CT grid")
    p.add_argument("--generate", type=Path, help="make the standard sample patient here first")
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare", choices=sorted(COMPARISONS), default="photons")
    args = p.parse_args(argv)
    if args.generate:
        args.patient_dir, args.labels = prepare_sample_patient(args.generate)
    if args.patient_dir is None or args.labels is None:
        p.error("give --patient-dir and --labels, or --generate DIR")
    config = args.config if args.config and args.config.exists() else None
    pair = COMPARISONS[args.compare]
    runs = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp:
        for which, (_, extra) in enumerate(pair):  # warm the kernel and numba caches
            _run_once(args.patient_dir, args.labels, which, extra, config, Path(tmp), -1)
        for n in range(args.repeats):
            for which, (_, extra) in enumerate(pair):
                runs[which].append(_run_once(args.patient_dir, args.labels, which, extra, config, Path(tmp), n))
    summary = {w: {k: statistics.median(r[k] for r in recs) for k in ("dose_stage_s", "process_s", "peak_rss_mb")}
               for w, recs in runs.items()}
    a_name, b_name = pair[0][0], pair[1][0]
    print(f"{'':24s} {a_name:>22s} {b_name:>22s} {'ratio':>7s}")
    for k, unit in (("dose_stage_s", "s"), ("process_s", "s"), ("peak_rss_mb", "MB")):
        a, b = summary[0][k], summary[1][k]
        print(f"{k + ' (' + unit + ')':24s} {a:22.2f} {b:22.2f} {b / a:7.2f}")
    print(f"\n{'organ mean dose (Gy)':24s} {a_name:>22s} {b_name:>22s} {'change':>7s}")
    old, new = runs[0][0]["organs_gy"], runs[1][0]["organs_gy"]
    for name in old:
        print(f"{name:24s} {old[name]:22.4g} {new[name]:22.4g} {100 * (new[name] / old[name] - 1):+6.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
