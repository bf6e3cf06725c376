"""On-disk cache of voxel S-values integrated from point kernels.

One file per (nuclide, medium, voxel size rounded to 1e-4 mm, photons, extent),
keyed also by the SHA-256 of the point-kernel data files and the integration
algorithm's version, so that new kernel data or a new algorithm never return a
stale cube. Files live under ``$SPECTDOSE_CACHE_DIR`` or, when that is unset,
``~/.cache/spectdose`` (subfolder ``vsv``), and are written atomically
(temporary name, then rename): concurrent processes at worst compute the same
cube twice. A cache file that cannot be read is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path

__all__ = [
    "cache_dir",
    "round_voxel_size_mm",
    "file_sha256",
    "point_kernel_hash",
    "cache_key",
    "cached_svalues_for_kernel",
    "get_voxel_svalues",
]

_ENV = "SPECTDOSE_CACHE_DIR"


def cache_dir() -> Path:
    """Folder of the voxel S-value cache: ``$SPECTDOSE_CACHE_DIR/vsv`` or ``~/.cache/spectdose/vsv``."""
    base = os.environ.get(_ENV)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "spectdose"
    return root / "vsv"


def round_voxel_size_mm(voxel_size_mm) -> tuple[float, float, float]:
    """Voxel sides rounded to 1e-4 mm (three floats; a scalar means a cube)."""
    a = np.asarray(voxel_size_mm, dtype=float).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 3)
    if a.size != 3 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"voxel size must be one or three positive numbers in mm, got {voxel_size_mm!r}")
    out = tuple(float(round(float(x), 4)) for x in a)
    if min(out) <= 0:
        raise ValueError(f"voxel size {voxel_size_mm!r} rounds to zero at 1e-4 mm")
    return out


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def point_kernel_hash(nuclide: str, medium: str) -> str:
    """SHA-256 over the committed point-kernel ``.npz`` and its JSON provenance."""
    from .kernel_data import dpk_path

    npz = dpk_path(nuclide, medium)
    h = hashlib.sha256()
    for p in (npz, npz.with_suffix(".json")):
        h.update(p.name.encode())
        h.update(file_sha256(p).encode() if p.exists() else b"absent")
    return h.hexdigest()


def cache_key(nuclide: str, medium: str, voxel_size_mm, *, photons: bool, extent_mm, kernel_hash: str) -> dict:
    """Everything a cached cube depends on, as a JSON-able dictionary."""
    from .vsv import ALGORITHM_VERSION

    return {
        "nuclide": str(nuclide),
        "medium": str(medium),
        "voxel_size_mm": list(round_voxel_size_mm(voxel_size_mm)),
        "photons": bool(photons),
        "extent_mm": None if extent_mm is None else float(round(float(extent_mm), 4)),
        "kernel_sha256": str(kernel_hash),
        "algorithm_version": ALGORITHM_VERSION,
    }


def _fmt(x: float) -> str:
    text = f"{x:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _cache_file(key: dict, folder: Path) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    size = "x".join(_fmt(x) for x in key["voxel_size_mm"])
    return folder / f"{key['nuclide']}_{key['medium']}_{size}mm_{digest}.npz"


_ARRAYS = ("voxel_size_mm", "electron_mgy_per_mbq_s", "photon_mgy_per_mbq_s", "electron_rel_unc", "photon_rel_unc")


def _read(path: Path, key: dict):
    from .kernel_data import VoxelSValues

    try:
        with np.load(path, allow_pickle=False) as z:
            stored_key = json.loads(str(z["key_json"]))
            if stored_key != key:
                return None
            arrays = {k: np.array(z[k]) for k in _ARRAYS}
            provenance = json.loads(str(z["provenance_json"]))
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError):
        return None
    for arr in arrays.values():
        arr.setflags(write=False)
    return VoxelSValues(nuclide=key["nuclide"], medium=key["medium"], provenance=provenance, **arrays)


def _write(path: Path, key: dict, svalues) -> None:
    provenance = dict(svalues.provenance)
    provenance["cache_key"] = key
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, key_json=np.array(json.dumps(key, sort_keys=True)),
                     provenance_json=np.array(json.dumps(provenance, sort_keys=True, default=str)),
                     **{k: np.asarray(getattr(svalues, k)) for k in _ARRAYS})


def cached_svalues_for_kernel(kernel, voxel_size_mm, *, kernel_hash: str, photons: bool = True,
                              extent_mm: float | None = None, folder=None, use_cache: bool = True):
    """Voxel S-values of ``kernel`` at ``voxel_size_mm`` (rounded to 1e-4 mm), from the cache or computed.

    Parameters
    ----------
    kernel : kernels.kernel_data.PointKernel
    voxel_size_mm : float or sequence of 3 floats
    kernel_hash : str
        Identifies the kernel data (e.g. :func:`point_kernel_hash`); part of the key.
    photons : bool
    extent_mm : float, optional
        See :func:`kernels.vsv.svalues_from_point_kernel`.
    folder : path, optional
        Cache folder (default :func:`cache_dir`).
    use_cache : bool
        ``False`` computes without reading or writing the cache.

    Returns
    -------
    kernels.kernel_data.VoxelSValues
        mGy/(MBq*s), in the kernel's medium.
    """
    from .vsv import svalues_from_point_kernel

    size = round_voxel_size_mm(voxel_size_mm)
    key = cache_key(kernel.nuclide, kernel.medium, size, photons=photons, extent_mm=extent_mm,
                    kernel_hash=kernel_hash)
    path = _cache_file(key, Path(folder) if folder is not None else cache_dir())
    if use_cache and path.exists():
        hit = _read(path, key)
        if hit is not None:
            return hit
    svalues = svalues_from_point_kernel(kernel, size, extent_mm=extent_mm, photons=photons)
    if use_cache:
        try:
            _write(path, key, svalues)
        except OSError:
            pass  # a read-only or full cache folder must not stop a dose calculation
    return svalues


def get_voxel_svalues(nuclide: str, voxel_size_mm, medium: str = "tissue", *, photons: bool = True,
                      extent_mm: float | None = None, use_cache: bool = True):
    """Voxel S-values of ``nuclide`` in ``medium`` for any voxel size, from the committed point kernel.

    Parameters
    ----------
    nuclide : str
    voxel_size_mm : float or sequence of 3 floats
        Voxel sides along i, j, k in mm (rounded to 1e-4 mm).
    medium : {"tissue", "water"}
    photons : bool
        Include the photon part.
    extent_mm : float, optional
        Reach of the cube from the source voxel (default: see
        :func:`kernels.vsv.svalues_from_point_kernel`).
    use_cache : bool

    Returns
    -------
    kernels.kernel_data.VoxelSValues
        Electron and photon cubes in mGy/(MBq*s) in the kernel's medium.

    Raises
    ------
    kernels.kernel_data.KernelDataError
        When no point kernel is committed for ``nuclide`` in ``medium``.
    """
    from .kernel_data import load_point_kernel

    kernel = load_point_kernel(nuclide, medium)
    return cached_svalues_for_kernel(kernel, voxel_size_mm, kernel_hash=point_kernel_hash(nuclide, medium),
                                     photons=photons, extent_mm=extent_mm, use_cache=use_cache)
