"""Decay data from ICRP Publication 107 (package ``icrp107-database``).

Source: ICRP Publication 107, "Nuclear Decay Data for Dosimetric Calculations"
(Ann. ICRP 38(3), 2008), as shipped offline by the PyPI package
``icrp107-database``. Its JSON files are encoded twice
(``json.loads(json.load(f))``). ``beta-`` holds [mean energy MeV, yield] per
branch; ``b-spectra`` the tabulated beta spectrum [E MeV, betas per MeV per
decay]; ``IE`` conversion electrons, ``auger`` Auger electrons, ``gamma`` and
``X`` photon lines, each [energy MeV, yield per decay].
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from pipeline.errors import SpectdoseError

__all__ = ["DecayData", "load_decay", "normalise_nuclide", "UnknownNuclideError", "decay_data_version"]

_TIME_UNIT_TO_H = {
    "us": 1e-6 / 3600.0, "ms": 1e-3 / 3600.0, "s": 1.0 / 3600.0, "m": 1.0 / 60.0, "min": 1.0 / 60.0,
    "h": 1.0, "d": 24.0, "y": 365.25 * 24.0,
}


class UnknownNuclideError(SpectdoseError):
    """The nuclide is not in ICRP-107 (or its name cannot be parsed)."""


def normalise_nuclide(name: str) -> str:
    """Canonical ICRP-107 spelling of a nuclide name.

    Accepts ``"Lu-177"``, ``"lu177"``, ``"177Lu"``, ``"Lu177"``, ``"LU-177"``,
    ``"Tc-99m"`` and returns ``"Lu-177"`` / ``"Tc-99m"``.
    """
    text = str(name).strip().replace("_", "-").replace(" ", "")
    m = re.fullmatch(r"([A-Za-z]{1,2})-?(\d{1,3})([mM]\d?)?", text)
    if not m:
        m2 = re.fullmatch(r"(\d{1,3})([mM]\d?)?-?([A-Za-z]{1,2})", text)
        if not m2:
            raise UnknownNuclideError(f"cannot parse radionuclide name {name!r}")
        symbol, mass, meta = m2.group(3), m2.group(1), m2.group(2)
    else:
        symbol, mass, meta = m.group(1), m.group(2), m.group(3)
    return f"{symbol.capitalize()}-{int(mass)}{(meta or '').lower()}"


def _database_dir() -> Path:
    import icrp107_database

    return Path(icrp107_database.__file__).resolve().parent / "icrp107"


def decay_data_version() -> str:
    """Version string of the decay-data source, for provenance."""
    try:
        return f"ICRP-107 via icrp107-database {metadata.version('icrp107-database')}"
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "ICRP-107"


def _lines(rows) -> np.ndarray:
    arr = np.asarray(rows if rows else np.zeros((0, 2)), dtype=float).reshape(-1, 2)
    return arr


@dataclass(frozen=True, eq=False)
class DecayData:
    """Emissions of one radionuclide per decay (ICRP-107).

    Energies in MeV, yields per decay. ``beta_spectrum`` has shape (N, 2):
    energy (MeV) and betas per MeV per decay.
    """

    nuclide: str
    half_life_h: float
    beta_branches: np.ndarray
    beta_spectrum: np.ndarray
    conversion_electrons: np.ndarray
    auger_electrons: np.ndarray
    gamma_lines: np.ndarray
    xray_lines: np.ndarray
    alpha_lines: np.ndarray

    @property
    def decay_constant_per_h(self) -> float:
        """Physical decay constant ln2 / T1/2 in 1/h."""
        return float(np.log(2.0) / self.half_life_h)

    @property
    def half_life_s(self) -> float:
        """Half-life in seconds."""
        return self.half_life_h * 3600.0

    @property
    def beta_energy_mev(self) -> float:
        """Mean beta energy emitted per decay (sum of branch mean x yield), MeV."""
        b = self.beta_branches
        return float(np.sum(b[:, 0] * b[:, 1])) if len(b) else 0.0

    @property
    def beta_endpoint_mev(self) -> float:
        """Highest energy of the tabulated beta spectrum, MeV."""
        s = self.beta_spectrum
        return float(s[:, 0].max()) if len(s) else 0.0

    @property
    def conversion_energy_mev(self) -> float:
        """Conversion-electron energy per decay, MeV."""
        return float(np.sum(np.prod(self.conversion_electrons, axis=1)))

    @property
    def auger_energy_mev(self) -> float:
        """Auger-electron energy per decay, MeV."""
        return float(np.sum(np.prod(self.auger_electrons, axis=1)))

    @property
    def electron_energy_mev(self) -> float:
        """All electron energy per decay (beta + conversion + Auger), MeV."""
        return self.beta_energy_mev + self.conversion_energy_mev + self.auger_energy_mev

    @property
    def photon_energy_mev(self) -> float:
        """All photon energy per decay (gamma + X), MeV."""
        return float(np.sum(np.prod(self.gamma_lines, axis=1)) + np.sum(np.prod(self.xray_lines, axis=1)))

    @property
    def is_beta_emitter(self) -> bool:
        return len(self.beta_branches) > 0 and self.beta_energy_mev > 0

    def beta_pdf(self) -> tuple[np.ndarray, np.ndarray]:
        """Beta spectrum normalised to one beta: energies (MeV) and probability density (1/MeV)."""
        e, w = self.beta_spectrum[:, 0], self.beta_spectrum[:, 1]
        area = np.trapezoid(w, e)
        return e.copy(), w / area

    def betas_per_decay(self) -> float:
        """Number of beta particles per decay (sum of branch yields)."""
        return float(self.beta_branches[:, 1].sum()) if len(self.beta_branches) else 0.0


@functools.lru_cache(maxsize=64)
def load_decay(nuclide: str) -> DecayData:
    """Decay data of ``nuclide`` from ICRP-107.

    Parameters
    ----------
    nuclide : str
        Any common spelling (``"Lu-177"``, ``"177Lu"``, ``"lu177"``).

    Raises
    ------
    UnknownNuclideError
        When ICRP-107 has no such nuclide.
    """
    name = normalise_nuclide(nuclide)
    path = _database_dir() / f"{name}.json"
    if not path.exists():
        raise UnknownNuclideError(f"radionuclide {nuclide!r} is not in ICRP-107")
    with path.open() as fh:
        raw = json.load(fh)
    data = json.loads(raw) if isinstance(raw, str) else raw
    unit = data["time_unit"]
    if unit not in _TIME_UNIT_TO_H:
        raise UnknownNuclideError(f"{path}: unknown half-life unit {unit!r}")
    em = data["emissions"]
    return DecayData(
        nuclide=name,
        half_life_h=float(data["half_life"]) * _TIME_UNIT_TO_H[unit],
        beta_branches=_lines(em.get("beta-")),
        beta_spectrum=_lines(em.get("b-spectra")),
        conversion_electrons=_lines(em.get("IE")),
        auger_electrons=_lines(em.get("auger")),
        gamma_lines=_lines(em.get("gamma")),
        xray_lines=_lines(em.get("X")),
        alpha_lines=_lines(em.get("alpha")),
    )
