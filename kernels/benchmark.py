"""Convolution benchmark, run on demand: ``python -m kernels.benchmark [--sizes 128 256] [--repeats 3]``.

Times :func:`kernels.convolve.fft_convolve_same` (all threads and one thread) on
TIA maps of 128^3 and 256^3 voxels convolved with a realistic S-value cube (the
committed Lu-177 point kernel integrated at 4.8 mm with photons to 100 mm, a
43^3 cube; an analytic stand-in of the same size when no kernel is committed),
as a ratio to ``scipy.signal.fftconvolve(..., mode="same")`` on the same arrays in
the same run (ratio < 1: faster than the baseline). Peak memory is measured with
``tracemalloc`` (Python and numpy allocations) per call. Prints a table; it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc

import numpy as np


def realistic_kernel() -> tuple[np.ndarray, str]:
    """A 4.8 mm S-value cube (mGy/(MBq*s)) and a description of where it came from."""
    try:
        from kernels.cache import get_voxel_svalues

        sv = get_voxel_svalues("Lu-177", 4.8, "tissue")
        return np.asarray(sv.total_mgy_per_mbq_s, float), "Lu-177 point kernel (tissue) integrated at 4.8 mm"
    except Exception:  # no committed kernel yet: analytic stand-in of the same size
        from kernels.vsv import absorbed_fractions, svalue_scale_mgy_per_mbq_s

        edges = np.concatenate([np.linspace(0, 2, 101), np.linspace(2.1, 150, 1480)])
        fe = np.diff(1 - np.exp(-edges / 0.3))
        fp = np.diff(1 - np.exp(-edges / 70.0)) * 0.5
        af = absorbed_fractions(edges, np.stack([fe, fp]), 4.8, 21)
        cube = (af.fraction[0] * svalue_scale_mgy_per_mbq_s(0.148, 1.04, 4.8)
                + af.fraction[1] * svalue_scale_mgy_per_mbq_s(0.035, 1.04, 4.8))
        return cube, "analytic Lu-177-like stand-in at 4.8 mm (no committed kernel)"


def tia_map(n: int, seed: int = 0) -> np.ndarray:
    """A TIA map (MBq*s per voxel) with a few organ-like blobs and noise, shape (n, n, n)."""
    rng = np.random.default_rng(seed)
    g = (np.arange(n) - n / 2) / n
    x, y, z = np.meshgrid(g, g, g, indexing="ij", sparse=True)
    out = np.zeros((n, n, n))
    for _ in range(6):
        c = rng.uniform(-0.3, 0.3, 3)
        s = rng.uniform(0.03, 0.12)
        out += rng.uniform(1, 50) * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    out += rng.gamma(2.0, 0.05, size=out.shape)
    return out


def _measure(func, repeats: int):
    best = np.inf
    peak = 0
    result = None
    for _ in range(repeats):
        result = None
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        result = func()
        dt = time.perf_counter() - t0
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        best = min(best, dt)
    return best, peak, result


def run(sizes=(128, 256), repeats: int = 3) -> list[dict]:
    from scipy.signal import fftconvolve

    from kernels.convolve import fft_convolve_same

    kernel, origin = realistic_kernel()
    ncpu = os.cpu_count() or 1
    print(f"kernel: {origin}, shape {kernel.shape}; CPUs: {ncpu}; best of {repeats}")
    fft_convolve_same(np.ones((8, 8, 8)), kernel[:3, :3, :3])  # warm-up
    rows = []
    for n in sizes:
        tia = tia_map(n)
        t_ref, m_ref, ref = _measure(lambda: fftconvolve(tia, kernel, mode="same"), repeats)
        t_all, m_all, ours = _measure(lambda: fft_convolve_same(tia, kernel, workers=ncpu), repeats)
        t_one, m_one, _ = _measure(lambda: fft_convolve_same(tia, kernel, workers=1), repeats)
        err = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
        rows.append(dict(n=n, t_ref=t_ref, m_ref=m_ref, t_all=t_all, m_all=m_all, t_one=t_one, m_one=m_one, err=err))
        del ref, ours
    mib = 1024.0**2
    head = (f"{'map':>6} | {'fftconvolve s':>13} | {'ours s (' + str(ncpu) + ' thr)':>15} | {'ratio':>6} | "
            f"{'ours s (1 thr)':>14} | {'ratio':>6} | {'peak MiB base':>13} | {'peak MiB ours':>13} | {'max rel diff':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['n']:>4}^3 | {r['t_ref']:13.3f} | {r['t_all']:15.3f} | {r['t_all'] / r['t_ref']:6.2f} | "
              f"{r['t_one']:14.3f} | {r['t_one'] / r['t_ref']:6.2f} | {r['m_ref'] / mib:13.0f} | "
              f"{r['m_all'] / mib:13.0f} | {r['err']:12.1e}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256], help="map sizes n (n^3 voxels)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (best time kept)")
    args = parser.parse_args(argv)
    run(tuple(args.sizes), max(1, args.repeats))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
