"""Thin interface to the ``ompmc`` Monte Carlo engine (EGSnrc physics).

``ompmc`` is imported inside the functions, never at module level.

Physics settings used for every kernel (see physics notes, section 2): PEGS4
data set ``521icru``, global ECUT 0.521 MeV total energy (10 keV kinetic),
global PCUT 0.010 MeV, no photon splitting, no range rejection, no Russian
roulette. Particles below the cut-offs deposit their energy on the spot.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .phasespace import write_phase_space

__all__ = ["MEDIUM_PEGS", "PHYSICS", "EngineResult", "engine_version", "physics_provenance", "run_voxels",
           "run_cylinder", "require_ompmc"]

#: spectdose medium -> (PEGS4 medium name in 521icru, mass density g/mL).
MEDIUM_PEGS = {"water": ("H2O521ICRU", 1.00), "tissue": ("ICRUTISSUE521ICRU", 1.04)}

#: Transport settings of every run.
PHYSICS = {"pegs_file": "521icru.pegs4dat", "global_ecut_mev": 0.521, "global_pcut_mev": 0.010, "n_split": 1}


def require_ompmc():
    """Import and return ``ompmc`` or raise a clear error telling how to install it."""
    try:
        import ompmc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from pipeline.errors import SpectdoseError

        raise SpectdoseError("kernel generation needs the optional Monte Carlo engine: "
                             "pip install 'spectdose[mc]' (ompmc==0.4.0)") from exc
    return ompmc


def engine_version() -> str:
    """``"ompmc X.Y.Z"`` (or ``"ompmc (not installed)"``)."""
    try:
        return f"ompmc {metadata.version('ompmc')}"
    except metadata.PackageNotFoundError:
        return "ompmc (not installed)"


def physics_provenance() -> dict:
    """Physics settings for a provenance record."""
    return {
        "engine": engine_version(),
        "transport": "EGSnrc condensed history (ompMC implementation)",
        "pegs4_file": PHYSICS["pegs_file"],
        "global_ecut_mev_total_energy": PHYSICS["global_ecut_mev"],
        "electron_cut_kinetic_mev": round(PHYSICS["global_ecut_mev"] - 0.511, 6),
        "global_pcut_mev": PHYSICS["global_pcut_mev"],
        "photon_splitting": PHYSICS["n_split"],
        "variance_reduction": "none (no range rejection, no Russian roulette)",
        "below_cut_particles": "deposit their energy locally (engine behaviour)",
    }


def _physics(seed: int, run_index: int):
    ompmc = require_ompmc()
    root = ompmc.data_path()
    return ompmc.Physics(pegs_file=root / "pegs4" / PHYSICS["pegs_file"],
                         global_ecut=PHYSICS["global_ecut_mev"], global_pcut=PHYSICS["global_pcut_mev"],
                         n_split=PHYSICS["n_split"],
                         seeds=(int(seed) % 2**31, int(run_index) % 2**31))


@contextlib.contextmanager
def _engine_output_to(log_path):
    """Send the engine's C-level stdout/stderr chatter to ``log_path`` (or through if None)."""
    if log_path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as fh:
        try:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@dataclass(frozen=True, eq=False)
class EngineResult:
    """Energy scored per history (MeV) and its relative 1-sigma uncertainty per region."""

    energy_mev_per_history: np.ndarray
    rel_unc: np.ndarray
    n_histories: int
    energy_fraction_kept: float


def _run(kind, geometry, particles, seed, run_index, n_batches, log_path, workdir):
    ompmc = require_ompmc()
    ptype, energy, pos_cm, direction = particles
    n = int(np.asarray(energy).size)
    if n < n_batches:
        raise ValueError(f"{n} particles are fewer than the {n_batches} batches")
    n = (n // n_batches) * n_batches
    with tempfile.TemporaryDirectory(prefix="spectdose_mc_", dir=workdir) as tmp:
        base = write_phase_space(Path(tmp) / "source", np.broadcast_to(ptype, np.shape(energy))[:n],
                                 np.asarray(energy)[:n], np.asarray(pos_cm)[:n], np.asarray(direction)[:n])
        source = ompmc.PhaseSpaceSource(str(base), order="replay")
        physics = _physics(seed, run_index)
        with _engine_output_to(log_path):
            if kind == "voxels":
                e, u, summary = ompmc.calc_forward_phsp(geometry, source, physics, n_histories=n,
                                                        n_batches=n_batches, output_dose=False)
            else:
                e, u, summary = ompmc.calc_radial(geometry, source, None, physics, n_histories=n,
                                                  n_batches=n_batches, output_dose=False)
    if summary.n_started != n:
        raise RuntimeError(f"ompmc started {summary.n_started} of {n} source particles; "
                           "the source must lie inside the phantom")
    u = np.where(e > 0, u, 0.0)
    return EngineResult(np.asarray(e, dtype=float), np.asarray(u, dtype=float), n, float(summary.energy_fraction))


def run_voxels(bounds_cm, medium: str, particles, *, seed: int, run_index: int = 0, n_batches: int = 10,
               log_path=None, workdir=None) -> EngineResult:
    """Transport ``particles`` in a homogeneous voxel phantom and score energy per voxel.

    Parameters
    ----------
    bounds_cm : tuple of 3 ndarrays
        Voxel boundaries along x, y, z in cm (ascending, may be non-uniform).
    medium : {"water", "tissue"}
    particles : tuple (type, energy_mev (n,), position_cm (n, 3), direction (n, 3))
        ``type`` 1 photon or 2 electron (scalar or (n,)); one history per particle.
    seed, run_index : int
        The two Philox seeds of the engine.
    n_batches : int
        Statistical batches for the per-voxel uncertainty.
    log_path : path-like, optional
        File that receives the engine's console output.

    Returns
    -------
    EngineResult
        ``energy_mev_per_history`` has the phantom's shape (nx, ny, nz).
    """
    ompmc = require_ompmc()
    pegs, rho = MEDIUM_PEGS[medium]
    bx, by, bz = (np.asarray(b, dtype=float) for b in bounds_cm)
    shape = (bx.size - 1, by.size - 1, bz.size - 1)
    geometry = ompmc.Geometry(bx, by, bz, [pegs], np.full(shape, rho, order="F"),
                              np.ones(shape, dtype=np.int32, order="F"))
    return _run("voxels", geometry, particles, seed, run_index, n_batches, log_path, workdir)


def run_cylinder(r_bounds_cm, z_bounds_cm, medium: str, particles, *, seed: int, run_index: int = 0,
                 n_batches: int = 10, log_path=None, workdir=None) -> EngineResult:
    """Transport ``particles`` in a homogeneous cylinder (axis z) scored in rings x slabs.

    Returns
    -------
    EngineResult
        ``energy_mev_per_history`` of shape (n_rings, n_slabs).
    """
    ompmc = require_ompmc()
    pegs, rho = MEDIUM_PEGS[medium]
    geometry = ompmc.CylinderGeometry(np.asarray(r_bounds_cm, float), np.asarray(z_bounds_cm, float), pegs, rho)
    return _run("cylinder", geometry, particles, seed, run_index, n_batches, log_path, workdir)
