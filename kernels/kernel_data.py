"""Loaders for the committed Monte Carlo kernel data under ``kernels/data/``.

Two kinds of file, each an ``.npz`` with a JSON provenance file of the same stem:

``dpk/{nuclide}_{medium}.npz`` -- radial dose-point kernel
    ``r_edges_mm`` (N+1,), ``electron_fraction`` (N,), ``photon_fraction`` (N,),
    ``electron_rel_unc`` (N,), ``photon_rel_unc`` (N,). ``electron_fraction[i]``
    is the fraction of the emitted *electron* energy that is deposited in the
    spherical shell ``r_edges_mm[i] <= r < r_edges_mm[i+1]`` around a point
    source; ``photon_fraction`` likewise for the emitted *photon* energy.

``vsv/{nuclide}_{medium}_{size}mm.npz`` -- voxel S-value cube
    ``voxel_size_mm`` (3,), ``electron_mgy_per_mbq_s`` and ``photon_mgy_per_mbq_s``
    (odd cubes, source voxel at the centre, float32), ``electron_rel_unc``,
    ``photon_rel_unc`` (same shapes). Units mGy/(MBq*s).

Media: ``"water"`` (1.00 g/mL) and ``"tissue"`` (ICRU soft tissue, 1.04 g/mL).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.decay import normalise_nuclide
from pipeline.errors import SpectdoseError

__all__ = [
    "MEDIA",
    "PointKernel",
    "VoxelSValues",
    "KernelDataError",
    "data_dir",
    "dpk_path",
    "vsv_path",
    "format_size_mm",
    "load_point_kernel",
    "load_voxel_svalues",
    "available_point_kernels",
    "available_voxel_svalues",
    "crop_cube",
]

#: Media with committed data and their mass density in g/mL.
MEDIA = {"water": 1.00, "tissue": 1.04}


class KernelDataError(SpectdoseError):
    """Requested kernel data are not committed (or a data file is malformed)."""


def data_dir() -> Path:
    """Folder that holds the committed kernel data (``kernels/data``)."""
    return Path(__file__).resolve().parent / "data"


def _check_medium(medium: str) -> str:
    m = str(medium).strip().lower()
    if m not in MEDIA:
        raise KernelDataError(f"unknown medium {medium!r}; choose one of {sorted(MEDIA)}")
    return m


def format_size_mm(size_mm: float) -> str:
    """File-name spelling of a voxel size: shortest decimal, e.g. 3.0 -> ``"3.0"``, 4.7952 -> ``"4.7952"``."""
    text = f"{float(size_mm):.4f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return text


def dpk_path(nuclide: str, medium: str) -> Path:
    """Path of the radial point-kernel file of ``nuclide`` in ``medium``."""
    return data_dir() / "dpk" / f"{normalise_nuclide(nuclide)}_{_check_medium(medium)}.npz"


def vsv_path(nuclide: str, medium: str, voxel_size_mm: float) -> Path:
    """Path of the direct Monte Carlo voxel S-value file (cubic voxel of side ``voxel_size_mm``)."""
    name = f"{normalise_nuclide(nuclide)}_{_check_medium(medium)}_{format_size_mm(voxel_size_mm)}mm.npz"
    return data_dir() / "vsv" / name


def _read_provenance(npz_path: Path) -> dict:
    path = npz_path.with_suffix(".json")
    if not path.exists():
        raise KernelDataError(f"{npz_path}: provenance file {path.name} is missing")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _frozen(a) -> np.ndarray:
    arr = np.array(a)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class PointKernel:
    """Radial dose-point kernel of one nuclide in one medium (electrons and photons apart).

    Attributes
    ----------
    nuclide : str
    medium : str
    density_g_per_ml : float
    r_edges_mm : ndarray, shape (N+1,)
        Shell edges in mm, starting at 0.
    electron_fraction, photon_fraction : ndarray, shape (N,)
        Fraction of the emitted electron (photon) energy deposited in each shell.
    electron_rel_unc, photon_rel_unc : ndarray, shape (N,)
        Relative 1-sigma statistical uncertainty per shell.
    electron_energy_mev, photon_energy_mev : float
        Energy emitted per decay as electrons (photons), MeV.
    provenance : dict
    """

    nuclide: str
    medium: str
    density_g_per_ml: float
    r_edges_mm: np.ndarray
    electron_fraction: np.ndarray
    photon_fraction: np.ndarray
    electron_rel_unc: np.ndarray
    photon_rel_unc: np.ndarray
    electron_energy_mev: float
    photon_energy_mev: float
    provenance: dict

    @property
    def r_mid_mm(self) -> np.ndarray:
        """Shell mid-radii in mm, shape (N,)."""
        return 0.5 * (self.r_edges_mm[1:] + self.r_edges_mm[:-1])

    def energy_per_shell_mev(self) -> np.ndarray:
        """Energy deposited per decay in each shell (electrons + photons), MeV, shape (N,)."""
        return self.electron_fraction * self.electron_energy_mev + self.photon_fraction * self.photon_energy_mev


@dataclass(frozen=True, eq=False)
class VoxelSValues:
    """Voxel S-value cube from direct Monte Carlo: source voxel at the centre.

    Attributes
    ----------
    nuclide, medium : str
    voxel_size_mm : ndarray, shape (3,)
    electron_mgy_per_mbq_s, photon_mgy_per_mbq_s : ndarray, odd cubes (may differ in extent)
        Absorbed dose per unit cumulated activity in the central source voxel, mGy/(MBq*s).
    electron_rel_unc, photon_rel_unc : ndarray
        Relative 1-sigma statistical uncertainty, same shapes as the S-value cubes.
    provenance : dict
    """

    nuclide: str
    medium: str
    voxel_size_mm: np.ndarray
    electron_mgy_per_mbq_s: np.ndarray
    photon_mgy_per_mbq_s: np.ndarray
    electron_rel_unc: np.ndarray
    photon_rel_unc: np.ndarray
    provenance: dict

    @property
    def total_mgy_per_mbq_s(self) -> np.ndarray:
        """Electron + photon S-values on the larger of the two cubes (float64), mGy/(MBq*s)."""
        e = np.asarray(self.electron_mgy_per_mbq_s, dtype=float)
        p = np.asarray(self.photon_mgy_per_mbq_s, dtype=float)
        shape = tuple(max(a, b) for a, b in zip(e.shape, p.shape))
        out = np.zeros(shape)
        for cube in (e, p):
            sl = tuple(slice((n - c) // 2, (n - c) // 2 + c) for n, c in zip(shape, cube.shape))
            out[sl] += cube
        return out

    @property
    def density_g_per_ml(self) -> float:
        return MEDIA[self.medium]

    @property
    def voxel_mass_g(self) -> float:
        """Mass of one voxel in g."""
        return float(np.prod(self.voxel_size_mm) * 1e-3 * self.density_g_per_ml)


def crop_cube(cube: np.ndarray, half_width: int) -> np.ndarray:
    """Central ``(2*half_width+1)^3`` part of an odd cube (the whole cube if it is smaller)."""
    sl = []
    for n in cube.shape:
        c = n // 2
        h = min(half_width, c)
        sl.append(slice(c - h, c + h + 1))
    return cube[tuple(sl)]


def load_point_kernel(nuclide: str, medium: str = "tissue") -> PointKernel:
    """Load the committed radial point kernel of ``nuclide`` in ``medium``.

    Raises
    ------
    KernelDataError
        When no kernel is committed for this nuclide and medium.
    """
    path = dpk_path(nuclide, medium)
    if not path.exists():
        have = ", ".join(f"{n} ({m})" for n, m in available_point_kernels()) or "none"
        raise KernelDataError(f"no point kernel for {normalise_nuclide(nuclide)} in {medium}; available: {have}")
    prov = _read_provenance(path)
    with np.load(path) as z:
        arrays = {k: _frozen(z[k].astype(float)) for k in
                  ("r_edges_mm", "electron_fraction", "photon_fraction", "electron_rel_unc", "photon_rel_unc")}
    return PointKernel(
        nuclide=normalise_nuclide(nuclide),
        medium=_check_medium(medium),
        density_g_per_ml=float(prov.get("density_g_per_ml", MEDIA[_check_medium(medium)])),
        electron_energy_mev=float(prov["electron_energy_mev_per_decay"]),
        photon_energy_mev=float(prov["photon_energy_mev_per_decay"]),
        provenance=prov,
        **arrays,
    )


_VSV_RE = re.compile(r"^(?P<nuc>[A-Za-z]{1,2}-\d{1,3}m?)_(?P<med>[a-z]+)_(?P<size>[0-9.]+)mm\.npz$")
_DPK_RE = re.compile(r"^(?P<nuc>[A-Za-z]{1,2}-\d{1,3}m?)_(?P<med>[a-z]+)\.npz$")


def available_point_kernels() -> list[tuple[str, str]]:
    """(nuclide, medium) pairs with a committed point kernel, sorted."""
    folder = data_dir() / "dpk"
    out = []
    if folder.is_dir():
        for p in folder.glob("*.npz"):
            m = _DPK_RE.match(p.name)
            if m and m.group("med") in MEDIA:
                out.append((m.group("nuc"), m.group("med")))
    return sorted(out)


def available_voxel_svalues() -> list[tuple[str, str, float]]:
    """(nuclide, medium, voxel_size_mm) triples with a committed direct MC cube, sorted."""
    folder = data_dir() / "vsv"
    out = []
    if folder.is_dir():
        for p in folder.glob("*.npz"):
            m = _VSV_RE.match(p.name)
            if m and m.group("med") in MEDIA:
                out.append((m.group("nuc"), m.group("med"), float(m.group("size"))))
    return sorted(out)


def load_voxel_svalues(nuclide: str, medium: str, voxel_size_mm) -> VoxelSValues:
    """Load a committed direct Monte Carlo voxel S-value cube.

    Parameters
    ----------
    nuclide : str
    medium : {"water", "tissue"}
    voxel_size_mm : float or sequence of 3 floats
        Cubic voxel side in mm (a 3-sequence must have three equal entries).

    Raises
    ------
    KernelDataError
        When no cube is committed for this voxel size, listing the available sizes.
    """
    name = normalise_nuclide(nuclide)
    med = _check_medium(medium)
    size = np.atleast_1d(np.asarray(voxel_size_mm, dtype=float))
    if size.size not in (1, 3) or not np.allclose(size, size[0], rtol=0, atol=1e-6):
        raise KernelDataError(
            f"direct Monte Carlo S-values exist only for cubic voxels, got {size.tolist()} mm; "
            "integrate the point kernel for anisotropic voxels")
    path = vsv_path(name, med, float(size[0]))
    if not path.exists():
        sizes = sorted(s for n, m, s in available_voxel_svalues() if n == name and m == med)
        listed = ", ".join(format_size_mm(s) for s in sizes) or "none"
        raise KernelDataError(
            f"no direct Monte Carlo S-values for {name} in {med} at {format_size_mm(size[0])} mm; "
            f"available sizes (mm): {listed}")
    prov = _read_provenance(path)
    with np.load(path) as z:
        arrays = {k: _frozen(z[k]) for k in ("electron_mgy_per_mbq_s", "photon_mgy_per_mbq_s",
                                              "electron_rel_unc", "photon_rel_unc")}
        vox = _frozen(z["voxel_size_mm"].astype(float))
    return VoxelSValues(nuclide=name, medium=med, voxel_size_mm=vox, provenance=prov, **arrays)
