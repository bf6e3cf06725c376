"""IAEA phase-space files (header + 25-byte records) for sources inside a phantom.

Record layout (little endian, IAEA(NDS)-0484): particle type (int8; 1 photon,
2 electron, 3 positron; its sign is the sign of the direction cosine w),
kinetic energy (float32 MeV; negative marks the first particle of a new
history), x, y, z (float32 cm), u, v (float32 direction cosines). The
statistical weight is constant (1) and stored in the header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PHOTON", "ELECTRON", "RECORD_DTYPE", "write_phase_space", "read_phase_space"]

PHOTON = 1
ELECTRON = 2

RECORD_DTYPE = np.dtype([("type", "i1"), ("energy", "<f4"), ("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                         ("u", "<f4"), ("v", "<f4")])


def _header(n_particles: int, n_histories: int, n_photons: int, n_electrons: int, title: str) -> str:
    # $RECORD_CONTENTS: x, y, z, u, v, w stored flags, weight stored flag, extra floats, extra longs.
    return "\n".join([
        "$IAEA_INDEX:", "0",
        "$TITLE:", title,
        "$FILE_TYPE:", "0",
        "$CHECKSUM:", str(n_particles * RECORD_DTYPE.itemsize),
        "$RECORD_CONTENTS:", "1", "1", "1", "1", "1", "1", "0", "0", "0",
        "$RECORD_CONSTANT:", "1.0000",
        "$RECORD_LENGTH:", str(RECORD_DTYPE.itemsize),
        "$BYTE_ORDER:", "1234",
        "$ORIG_HISTORIES:", str(n_histories),
        "$PARTICLES:", str(n_particles),
        "$PHOTONS:", str(n_photons),
        "$ELECTRONS:", str(n_electrons),
        "",
    ])


def write_phase_space(base, particle_type, energy_mev, position_cm, direction, new_history=None,
                      title: str = "spectdose internal source") -> Path:
    """Write ``base.IAEAheader`` and ``base.IAEAphsp``.

    Parameters
    ----------
    base : path-like
        File name without extension.
    particle_type : int or ndarray of int, shape (n,)
        1 photon, 2 electron.
    energy_mev : ndarray, shape (n,)
        Kinetic energies, MeV (positive).
    position_cm : ndarray, shape (n, 3)
    direction : ndarray, shape (n, 3)
        Unit vectors.
    new_history : ndarray of bool, shape (n,), optional
        True where a particle starts a new history (default: every particle).

    Returns
    -------
    Path
        ``base`` as a Path (what :class:`ompmc.PhaseSpaceSource` takes).
    """
    base = Path(base)
    energy = np.asarray(energy_mev, dtype=float)
    n = energy.size
    ptype = np.broadcast_to(np.asarray(particle_type, dtype=np.int8), (n,))
    pos = np.asarray(position_cm, dtype=float).reshape(n, 3)
    d = np.asarray(direction, dtype=float).reshape(n, 3)
    new = np.ones(n, bool) if new_history is None else np.asarray(new_history, bool)
    rec = np.empty(n, dtype=RECORD_DTYPE)
    rec["type"] = np.where(d[:, 2] < 0, -ptype, ptype)
    rec["energy"] = np.where(new, -energy, energy)
    rec["x"], rec["y"], rec["z"] = pos[:, 0], pos[:, 1], pos[:, 2]
    rec["u"], rec["v"] = d[:, 0], d[:, 1]
    base.parent.mkdir(parents=True, exist_ok=True)
    rec.tofile(base.with_name(base.name + ".IAEAphsp"))
    text = _header(n, int(new.sum()), int(np.sum(ptype == PHOTON)), int(np.sum(ptype == ELECTRON)), title)
    base.with_name(base.name + ".IAEAheader").write_text(text)
    return base


def read_phase_space(base) -> dict:
    """Read back a file written by :func:`write_phase_space` (for checks).

    Returns
    -------
    dict
        ``type`` (n,), ``energy_mev`` (n,), ``position_cm`` (n, 3),
        ``direction`` (n, 3), ``new_history`` (n,) bool.
    """
    base = Path(base)
    rec = np.fromfile(base.with_name(base.name + ".IAEAphsp"), dtype=RECORD_DTYPE)
    u, v = rec["u"].astype(float), rec["v"].astype(float)
    w = np.sqrt(np.maximum(0.0, 1.0 - u * u - v * v)) * np.sign(rec["type"])
    return {
        "type": np.abs(rec["type"]).astype(int),
        "energy_mev": np.abs(rec["energy"]).astype(float),
        "position_cm": np.column_stack([rec["x"], rec["y"], rec["z"]]).astype(float),
        "direction": np.column_stack([u, v, w]),
        "new_history": rec["energy"] < 0,
    }
