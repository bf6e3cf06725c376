"""On-demand benchmark of the generator: ``python -m sample_data.benchmark [--standard]``.

Prints wall time, CPU time, peak memory and size on disk for each preset, and the ratio of the
wall time to the budget of issue 3 (the named baseline: small 15 s, standard 120 s on 2 cores).
Not part of the test suite (no timed assertions there).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

BUDGET_S = {"small": 15.0, "standard": 120.0}


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run(preset: str) -> dict:
    from sample_data.generator import generate

    tmp = Path(tempfile.mkdtemp(prefix="sd_bench_"))
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        out = generate(tmp / "patient", preset=preset, seed=0)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        return {"preset": preset, "wall_s": wall, "cpu_s": cpu, "size_mb": _size_mb(out),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "ratio_to_budget": wall / BUDGET_S[preset]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_data.benchmark", description=__doc__)
    parser.add_argument("--standard", action="store_true", help="also the standard preset (about 1-2 min)")
    args = parser.parse_args(argv)
    presets = ["small"] + (["standard"] if args.standard else [])
    for preset in presets:
        r = run(preset)
        print(f"{r['preset']:9s} wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  peak RSS {r['peak_rss_mb']:6.0f} MB  "
              f"size {r['size_mb']:6.1f} MB  wall/budget {r['ratio_to_budget']:.2f} (budget {BUDGET_S[preset]:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
