"""On-demand benchmark of the voxel-wise TIA fit: ``python -m pipeline.kinetics.benchmark``.

Measures the rate (voxels per second) of :func:`pipeline.kinetics.voxel.voxel_tia_fit`
on synthetic 5-time-point curves (1, 4, 24, 48, 168 h; Lu-177; uptake-washout
shapes with Poisson-like noise), after a warm-up call that compiles the numba
kernel, and, in the same run, the rate of ``scipy.optimize.curve_fit``
looped over a sample of the same voxels doing the equivalent work (the
mono-exponential tail fit with bounds, plus the trapezoid). Prints both rates
and their ratio, and the numba thread count (target: >= 1e6 voxels/s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from .voxel import voxel_tia_fit

TIMES_H = np.array([1.0, 4.0, 24.0, 48.0, 168.0])
LP_LU177 = math.log(2.0) / (6.647 * 24.0)


def synthetic_curves(n_voxels: int, seed: int = 0, noise: float = 0.1):
    """Noisy uptake-washout curves, shape (5, n_voxels), arbitrary concentration unit."""
    rng = np.random.default_rng(seed)
    amp = rng.uniform(0.5, 2.0, n_voxels)
    lw = rng.uniform(0.0, 0.05, n_voxels)
    lu = rng.uniform(0.3, 2.0, n_voxels)
    t = TIMES_H[:, None]
    c = amp * (np.exp(-(lw + LP_LU177) * t) - np.exp(-(lu + LP_LU177) * t))
    c += noise * np.sqrt(np.abs(c) * c.max(axis=0)) * rng.standard_normal(c.shape)
    return c


def _curve_fit_tia(c, t, lp):
    """The same estimate with scipy.optimize.curve_fit (baseline)."""
    from scipy.optimize import curve_fit

    m0 = t.size - 3
    tm = t[m0]
    total = 0.5 * t[0] * c[0] + float(np.sum(np.diff(t[: m0 + 1]) * (c[:m0] + c[1 : m0 + 1]) / 2))

    def f(tt, b, k):
        return b * np.exp(-k * (tt - tm))

    try:
        (b, k), _ = curve_fit(f, t[m0:], c[m0:], p0=(max(c[m0], 1e-9), 2 * lp),
                              bounds=([0.0, lp], [np.inf, 20.0]))
    except (RuntimeError, ValueError):
        b, k = max(c[m0], 0.0), lp
    return total + b / k


def run(n_voxels: int = 2_000_000, n_baseline: int = 1000, repeats: int = 3) -> dict:
    """Run the benchmark and return the measured numbers."""
    import numba

    c = synthetic_curves(n_voxels)
    rows = list(c)
    voxel_tia_fit([r[:10] for r in rows], TIMES_H, LP_LU177)  # compile / load the cached kernel
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        voxel_tia_fit(rows, TIMES_H, LP_LU177)
        best = min(best, time.perf_counter() - t0)
    rate = n_voxels / best
    sample = c[:, :n_baseline]
    t0 = time.perf_counter()
    for v in range(n_baseline):
        _curve_fit_tia(sample[:, v], TIMES_H, LP_LU177)
    base_rate = n_baseline / (time.perf_counter() - t0)
    return {
        "n_voxels": n_voxels,
        "time_points": TIMES_H.tolist(),
        "numba_threads": numba.get_num_threads(),
        "voxel_tia_fit_voxels_per_s": rate,
        "curve_fit_loop_voxels_per_s": base_rate,
        "curve_fit_sample": n_baseline,
        "ratio": rate / base_rate,
        "target_voxels_per_s": 1e6,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.kinetics.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--voxels", type=int, default=2_000_000)
    p.add_argument("--baseline-voxels", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    res = run(args.voxels, args.baseline_voxels)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"voxel_tia_fit: {res['voxel_tia_fit_voxels_per_s']:.3g} voxels/s "
              f"({res['n_voxels']} voxels, 5 time points, {res['numba_threads']} numba threads)")
        print(f"scipy.optimize.curve_fit loop: {res['curve_fit_loop_voxels_per_s']:.3g} voxels/s "
              f"({res['curve_fit_sample']} voxels)")
        print(f"ratio: {res['ratio']:.3g}x; target 1e6 voxels/s "
              f"{'met' if res['voxel_tia_fit_voxels_per_s'] >= 1e6 else 'NOT met'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
