"""Benchmark of the voxel-level partial-volume correction: ``python -m pipeline.kinetics.benchmark_pvc``.

Generates the standard sample patient (Lu-177, 5 time points, Poisson noise, NIfTI; the sessions'
SPECT volumes are used as they are: registration does not change the cost) into a temporary
folder and runs :func:`pipeline.kinetics.stage.compute_kinetics` in one process without
correction, with ``pvc="rbv"`` and with ``pvc="iy"`` (11 mm FWHM), after one warm-up run (numba
compilation). Reported per run: wall time (s) and the peak of the memory allocated through
Python and numpy during the run (:mod:`tracemalloc`, MB), and both as ratios to the run without
correction.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

__all__ = ["run_benchmark", "main"]


def _inputs(folder: Path, preset: str):
    from sample_data.generator import generate

    from ..imageio import read_image

    sample = generate(folder / "sample", preset=preset, nuclide="Lu-177", seed=0, noise=True, fmt="nifti")
    truth = json.loads((sample / "truth" / "truth.json").read_text())
    spects = [read_image(sample / "nifti" / f"{tp['id']}_spect.nii.gz")[0] for tp in truth["time_points"]]
    times = np.array([tp["time_h"] for tp in truth["time_points"]])
    labels = read_image(sample / "truth" / "labels.nii.gz")[0]
    names = {int(k): v for k, v in truth["labels"].items()}
    return spects, times, labels, names, truth["decay_constant_per_h"], truth["imaging"]["spect"]["psf_fwhm_mm"]


def _measure(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return wall, peak


def run_benchmark(preset: str = "standard", methods=("rbv", "iy"), repeats: int = 1) -> dict:
    """Time (s) and peak traced memory (MB) of the kinetics stage without and with each correction."""
    from .stage import KineticsOptions, compute_kinetics

    with tempfile.TemporaryDirectory() as tmp:
        spects, times, labels, names, lp, fwhm = _inputs(Path(tmp), preset)

    def run(pvc):
        opt = KineticsOptions(pvc=pvc, psf_fwhm_mm=None if pvc == "none" else fwhm)
        return lambda: compute_kinetics(spects, times, labels, lp, label_names=names, options=opt)

    run("none")()  # warm-up: numba compilation, caches
    out = {"preset": preset, "grid": list(spects[0].shape), "time_points": len(spects), "psf_fwhm_mm": fwhm}
    for pvc in ("none", *methods):
        best = None
        for _ in range(repeats):
            w, m = _measure(run(pvc))
            best = (w, m) if best is None or w < best[0] else best
        out[pvc] = {"wall_s": best[0], "peak_traced_mb": best[1]}
    base = out["none"]
    for pvc in methods:
        out[pvc]["time_ratio"] = out[pvc]["wall_s"] / base["wall_s"]
        out[pvc]["time_added_s"] = out[pvc]["wall_s"] - base["wall_s"]
        out[pvc]["memory_ratio"] = out[pvc]["peak_traced_mb"] / base["peak_traced_mb"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.kinetics.benchmark_pvc", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=("small", "standard"), default="standard")
    p.add_argument("--repeats", type=int, default=1, help="runs per method; the fastest is reported")
    args = p.parse_args(argv)
    res = run_benchmark(args.preset, repeats=args.repeats)
    print(f"kinetics stage, sample patient {res['preset']} (SPECT grid {res['grid']}, {res['time_points']} time points, "
          f"PSF {res['psf_fwhm_mm']} mm)")
    for pvc in ("none", "rbv", "iy"):
        r = res[pvc]
        extra = "" if pvc == "none" else (f"  time x{r['time_ratio']:.2f} (+{r['time_added_s']:.1f} s), "
                                          f"memory x{r['memory_ratio']:.2f}")
        print(f"  pvc={pvc:5s} {r['wall_s']:7.2f} s  peak {r['peak_traced_mb']:7.0f} MB{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
