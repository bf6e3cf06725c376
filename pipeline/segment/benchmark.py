"""On-demand benchmark of ``spectdose segment`` on one CT (and optionally its SPECT).

``python -m pipeline.segment.benchmark --ct CT [--spect SPECT] [--baseline-src DIR] [--repeat N]``

Each run is ``python -m pipeline.cli segment --ct CT [--spect SPECT] --out TMP --atlas auto`` in a
child process (built-in backend, the atlas found as ``spectdose segment`` finds it, for example
through ``SPECTDOSE_ATLAS``), so that its peak memory is its own. Printed per run: wall time (s),
CPU time (user + system, s) and peak resident memory (GB); then the median wall time's ratio to
the named baselines: the budget of issue 14 (60 s on 2 cores) and, with ``--baseline-src``, the
same command run from another checkout of spectdose (for example ``git worktree add /tmp/base
REV``), the two alternating so that a change of machine load falls on both. Not part of the
test suite (no timed assertions there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["BUDGET_S", "run_once", "main"]

#: Issue 14's budget for ``spectdose segment`` on the real GE CT at full resolution, 2 cores, s.
BUDGET_S = 60.0


def run_once(src: Path, ct: Path, atlas: Path, spect: Path | None = None) -> dict:
    """One ``spectdose segment`` run with the package found in ``src``.

    Parameters
    ----------
    src : Path
        A spectdose checkout (its ``pipeline`` package is imported first).
    ct, atlas : Path
        The CT and the atlas source (``spectdose segment --atlas``), absolute paths (the child
        runs in ``src``).
    spect : Path, optional
        The reference SPECT.

    Returns
    -------
    dict
        ``wall_s``, ``cpu_s`` (user + system of the child, s), ``peak_gb`` (its largest resident
        set; Linux reports kB), ``returncode``, ``last_line`` (of its standard error).
    """
    out = Path(tempfile.mkdtemp(prefix="sd_segbench_"))
    cmd = [sys.executable, "-m", "pipeline.cli", "segment", "--ct", str(ct), "--out", str(out / "seg"),
           "--atlas", str(atlas)]
    if spect is not None:
        cmd += ["--spect", str(spect)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)}
    try:
        with open(out / "stderr.txt", "w+b") as err_file:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.DEVNULL, stderr=err_file)
            try:
                _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
            except BaseException:  # interrupted: do not leave the child running
                proc.kill()
                proc.wait()
                raise
            wall = time.perf_counter() - t0
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            err_file.seek(0)
            err = err_file.read().decode(errors="replace").strip()
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_gb": usage.ru_maxrss / 1024.0**2,
                "returncode": code, "last_line": err.splitlines()[-1] if err else ""}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m pipeline.segment.benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--ct", type=Path, required=True, help="the CT (NIfTI or DICOM folder)")
    p.add_argument("--spect", type=Path, help="its reference SPECT (optional)")
    p.add_argument("--atlas", default="auto", help="atlas source as for spectdose segment (default: auto, found "
                                                   "once here and given to every run)")
    p.add_argument("--baseline-src", type=Path, help="another spectdose checkout to compare with")
    p.add_argument("--repeat", type=int, default=2, help="runs per variant, at least 1 (default 2; even counts "
                                                         "balance the order A B B A)")
    return p


def main(argv=None) -> int:
    """Run the benchmark; 0, or 1 when a run fails or no atlas is found."""
    from .atlas_store import resolve_atlas_source

    args = build_parser().parse_args(argv)
    if args.repeat < 1:
        build_parser().error("--repeat must be at least 1")
    atlas = resolve_atlas_source(args.atlas)
    if atlas is None:  # the built-in rules alone would be timed, not the atlas registration
        print(f"no atlas found for --atlas {args.atlas}: set SPECTDOSE_ATLAS or give --atlas PATH")
        return 1
    atlas = Path(atlas).resolve()
    ct = args.ct.resolve()
    spect = args.spect.resolve() if args.spect else None
    print(f"atlas: {atlas}")
    here = Path(__file__).resolve().parents[2]
    variants = [("this", here)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
    walls: dict[str, list] = {name: [] for name, _ in variants}
    for i in range(args.repeat):
        for name, src in (variants if i % 2 == 0 else variants[::-1]):
            r = run_once(src, ct, atlas, spect)
            if r["returncode"] != 0:
                print(f"{name}: spectdose segment failed (exit {r['returncode']}): {r['last_line']}")
                return 1
            walls[name].append(r["wall_s"])
            print(f"{name:8s} run {i + 1}: wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  "
                  f"peak {r['peak_gb']:.2f} GB", flush=True)
    med = {name: statistics.median(w) for name, w in walls.items()}
    print(f"median wall: this {med['this']:.1f} s = {med['this'] / BUDGET_S:.2f} x the {BUDGET_S:.0f} s budget")
    if "baseline" in med:
        print(f"this / baseline ({args.baseline_src}): {med['this'] / med['baseline']:.2f} "
              f"(baseline median {med['baseline']:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
