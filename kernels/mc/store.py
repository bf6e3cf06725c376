"""Writing generated kernel data: ``.npz`` arrays plus a JSON provenance file of the same stem, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path, write_json

from ..kernel_data import format_size_mm

__all__ = ["write_kernel_file", "dpk_file_name", "vsv_file_name"]


def dpk_file_name(nuclide: str, medium: str) -> str:
    return f"{nuclide}_{medium}.npz"


def vsv_file_name(nuclide: str, medium: str, voxel_size_mm: float, tag: str = "") -> str:
    return f"{nuclide}_{medium}_{format_size_mm(voxel_size_mm)}mm{tag}.npz"


def write_kernel_file(path, arrays: dict, provenance: dict) -> Path:
    """Write ``path`` (.npz, compressed) and ``path`` with suffix .json; the JSON last, both atomic."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    write_json(path.with_suffix(".json"), provenance)
    for p in (path, path.with_suffix(".json")):
        os.chmod(p, 0o644)  # temporary files are created private; data files are for everyone to read
    return path
