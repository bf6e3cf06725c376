"""Which radionuclides have committed kernel data (``kernels/data``)."""

from __future__ import annotations

from .kernel_data import available_point_kernels, available_voxel_svalues

__all__ = ["supported_nuclides", "kernel_inventory"]


def _nuclide_key(name: str):
    symbol, _, mass = name.partition("-")
    digits = "".join(ch for ch in mass if ch.isdigit())
    return (symbol, int(digits) if digits else 0, name)


def supported_nuclides() -> list[str]:
    """Nuclides with a committed point kernel or direct voxel S-values, sorted (e.g. ``["Cu-67", "Lu-177", "Y-90"]``)."""
    names = {n for n, _ in available_point_kernels()} | {n for n, _, _ in available_voxel_svalues()}
    return sorted(names, key=_nuclide_key)


def kernel_inventory() -> dict:
    """``{nuclide: {"point_kernels": [media], "voxel_svalues": {medium: [sizes mm]}}}`` of the committed data."""
    out: dict = {}
    for n, m in available_point_kernels():
        out.setdefault(n, {"point_kernels": [], "voxel_svalues": {}})["point_kernels"].append(m)
    for n, m, s in available_voxel_svalues():
        out.setdefault(n, {"point_kernels": [], "voxel_svalues": {}})["voxel_svalues"].setdefault(m, []).append(s)
    return out
