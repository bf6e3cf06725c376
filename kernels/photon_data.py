"""Photon interaction coefficients of the media of the photon transport (NIST XCOM), and their table.

The photon transport (:mod:`pipeline.dose.photon_transport`) needs, for every medium and photon
energy, the mass coefficients (cm^2/g) of the photoelectric effect, of incoherent (Compton)
scattering and of coherent (Rayleigh) scattering. They are mixtures of elemental cross sections
by mass fraction, ``mu/rho = N_A sum_i w_i sigma_i / A_i``.

Sources
-------
- Elemental cross sections: NIST XCOM (Berger, Hubbell, Seltzer et al., XCOM: Photon Cross
  Sections Database, NIST Standard Reference Database 8), as shipped in the data of the
  ``ompmc`` wheel (``ompmc/data/xcom_{photo,compton,rayleigh}.data``: per element Z = 1..100,
  pairs of ln E [MeV] and ln sigma [barn/atom], photoelectric edges as repeated energies).
  Incoherent includes the binding correction (incoherent scattering function) of XCOM.
- Compositions (mass fractions): ICRU Report 44 (1989): water; four-component ICRU soft tissue
  (H 10.1, C 11.1, N 2.6, O 76.2 %, the medium of the committed "tissue" kernels); cortical
  bone (H 3.4, C 15.5, N 4.2, O 43.5, Na 0.1, Mg 0.2, P 10.3, S 0.3, Ca 22.5 %, 1.92 g/mL).
- Standard atomic weights: IUPAC 2013 (conventional values).

The committed table ``kernels/data/photon/xcom_media.npz`` (with ``.json`` provenance) is made by
``python -m kernels.photon_data --xcom-dir <ompmc>/data`` (needs the optional ``ompmc`` extra only
to regenerate); users only load it (:func:`load_media_table`). Media in the table, by index:
0 water, 1 ICRU soft tissue, 2.. 11 soft tissue + cortical bone mixtures with bone mass
fractions 0.1 .. 1.0 (:func:`material_index_from_density` maps a CT density to one of 1..11).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PhotonMediaTable", "COMPOSITIONS", "ATOMIC_WEIGHT", "AVOGADRO", "media_compositions",
           "klein_nishina_cm2_per_electron", "electrons_per_g",
           "read_xcom_elements", "build_media_table", "table_path", "load_media_table",
           "material_index_from_density", "BONE_DENSITY_G_PER_ML", "SOFT_TISSUE_DENSITY_G_PER_ML"]

AVOGADRO = 6.02214076e23
#: Classical electron radius, cm (CODATA 2018).
ELECTRON_RADIUS_CM = 2.8179403262e-13
ELECTRON_REST_MEV = 0.51099895
#: IUPAC 2013 conventional standard atomic weights, g/mol.
ATOMIC_WEIGHT = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 11: 22.990, 12: 24.305, 15: 30.974,
                 16: 32.06, 20: 40.078}
#: ICRU Report 44 mass fractions, by atomic number.
COMPOSITIONS = {
    "water": {1: 0.111894, 8: 0.888106},
    "soft_tissue_icru4": {1: 0.101, 6: 0.111, 7: 0.026, 8: 0.762},
    "cortical_bone_icru44": {1: 0.034, 6: 0.155, 7: 0.042, 8: 0.435, 11: 0.001, 12: 0.002, 15: 0.103,
                             16: 0.003, 20: 0.225},
}
#: Densities of the mixing end points, g/mL (ICRU 44: soft tissue 1.06, cortical bone 1.92).
SOFT_TISSUE_DENSITY_G_PER_ML = 1.06
BONE_DENSITY_G_PER_ML = 1.92
BONE_FRACTIONS = tuple(np.round(np.arange(1, 11) / 10.0, 2))
ENERGY_MIN_MEV = 1e-3
ENERGY_MAX_MEV = 3.0
N_ENERGIES = 400


def media_compositions() -> list[tuple[str, dict]]:
    """Names and mass fractions of the table's media, in index order."""
    t, b = COMPOSITIONS["soft_tissue_icru4"], COMPOSITIONS["cortical_bone_icru44"]
    media = [("water", COMPOSITIONS["water"]), ("soft_tissue_icru4", t)]
    for w in BONE_FRACTIONS:
        mix = {z: (1 - w) * t.get(z, 0.0) + w * b.get(z, 0.0) for z in sorted(set(t) | set(b))}
        media.append((f"tissue_bone_{w:.1f}", mix))
    return media


@dataclass(frozen=True, eq=False)
class PhotonMediaTable:
    """Mass interaction coefficients of the transport's media on a log-uniform energy grid.

    Attributes
    ----------
    names : tuple of str, length M
    energy_mev : numpy.ndarray, shape (E,)
        Log-uniform grid, MeV.
    photoelectric_cm2_per_g, incoherent_cm2_per_g, coherent_cm2_per_g : numpy.ndarray, shape (M, E)
    bone_mass_fraction : numpy.ndarray, shape (M,)
        Cortical-bone mass fraction of each medium (water: 0).
    provenance : dict
    electrons_per_g : numpy.ndarray, shape (M,)
        Electrons per gram, ``N_A sum_i w_i Z_i / A_i`` (the free-electron Compton cross section
        per gram is this times :func:`klein_nishina_cm2_per_electron`).
    """

    names: tuple
    energy_mev: np.ndarray
    photoelectric_cm2_per_g: np.ndarray
    incoherent_cm2_per_g: np.ndarray
    coherent_cm2_per_g: np.ndarray
    bone_mass_fraction: np.ndarray
    provenance: dict
    electrons_per_g: np.ndarray | None = None

    def index(self, name: str) -> int:
        return self.names.index(name)

    def klein_nishina_cm2_per_g(self) -> np.ndarray:
        """Free-electron (Klein-Nishina) Compton coefficient of every medium on the grid, shape (M, E)."""
        return np.outer(self.electrons_per_g, klein_nishina_cm2_per_electron(self.energy_mev))

    def coefficients_cm2_per_g(self, medium: str, energy_mev) -> dict:
        """Log-log interpolated coefficients of ``medium`` at ``energy_mev`` (cm^2/g), by process."""
        m = self.index(medium)
        le = np.log(np.asarray(energy_mev, float))
        grid = np.log(self.energy_mev)
        out = {}
        for key, arr in (("photoelectric", self.photoelectric_cm2_per_g), ("incoherent", self.incoherent_cm2_per_g),
                         ("coherent", self.coherent_cm2_per_g)):
            out[key] = np.exp(np.interp(le, grid, np.log(np.maximum(arr[m], 1e-300))))
        return out


def klein_nishina_cm2_per_electron(energy_mev) -> np.ndarray:
    """Total Klein-Nishina cross section of a free electron, cm^2 (Klein & Nishina 1929; e.g. Attix,
    Introduction to Radiological Physics and Radiation Dosimetry, 1986, eq. 7.16)."""
    k = np.asarray(energy_mev, float) / ELECTRON_REST_MEV
    a = (1 + k) / k**2 * (2 * (1 + k) / (1 + 2 * k) - np.log1p(2 * k) / k)
    b = np.log1p(2 * k) / (2 * k) - (1 + 3 * k) / (1 + 2 * k) ** 2
    return 2 * np.pi * ELECTRON_RADIUS_CM**2 * (a + b)


def electrons_per_g(composition: dict) -> float:
    """Electrons per gram of a mixture given by mass fractions (atomic number -> fraction)."""
    return float(AVOGADRO * sum(w * z / ATOMIC_WEIGHT[z] for z, w in composition.items()))


def read_xcom_elements(xcom_dir: Path, process: str) -> list[np.ndarray]:
    """Per element (index Z - 1): array (N, 2) of ln E [MeV] and ln sigma [barn/atom] from ``xcom_<process>.data``."""
    tokens = (Path(xcom_dir) / f"xcom_{process}.data").read_text().split()
    out, i = [], 0
    while i < len(tokens):
        n = int(tokens[i])
        out.append(np.asarray(tokens[i + 1:i + 1 + 2 * n], float).reshape(n, 2))
        i += 1 + 2 * n
    return out


def _element_on_grid(table: np.ndarray, log_e: np.ndarray) -> np.ndarray:
    """sigma (barn) of one element at ``exp(log_e)``, log-log interpolation; edges taken from above."""
    le, ls = table[:, 0], table[:, 1]
    # at a repeated energy (an edge) np.interp takes the right-hand (higher) value
    return np.exp(np.interp(log_e, le, ls))


def build_media_table(xcom_dir: Path) -> PhotonMediaTable:
    """The table from the XCOM element files in ``xcom_dir`` (module docstring)."""
    energy = np.geomspace(ENERGY_MIN_MEV, ENERGY_MAX_MEV, N_ENERGIES)
    log_e = np.log(energy)
    media = media_compositions()
    arrays = {}
    for process in ("photo", "compton", "rayleigh"):
        elements = read_xcom_elements(xcom_dir, process)
        arr = np.zeros((len(media), energy.size))
        for m, (_, comp) in enumerate(media):
            for z, w in comp.items():
                arr[m] += w * AVOGADRO * 1e-24 / ATOMIC_WEIGHT[z] * _element_on_grid(elements[z - 1], log_e)
        arrays[process] = arr
    bone = np.array([0.0, 0.0, *BONE_FRACTIONS])
    prov = {"source": "NIST XCOM element cross sections (Berger, Hubbell, Seltzer et al., NIST SRD 8) "
                      "from the ompmc 0.4.0 wheel data (xcom_photo/compton/rayleigh.data)",
            "compositions": "ICRU Report 44 (water, 4-component soft tissue, cortical bone); "
                            "bone mixtures by mass fraction",
            "atomic_weights": "IUPAC 2013",
            "media": [{"name": n, "mass_fractions": {str(z): w for z, w in c.items()}} for n, c in media],
            "energy_grid": f"{N_ENERGIES} log-uniform points {ENERGY_MIN_MEV}-{ENERGY_MAX_MEV} MeV",
            "generator": "python -m kernels.photon_data"}
    return PhotonMediaTable(tuple(n for n, _ in media), energy, arrays["photo"], arrays["compton"],
                            arrays["rayleigh"], bone, prov, np.array([electrons_per_g(c) for _, c in media]))


def table_path() -> Path:
    """Path of the committed table (``kernels/data/photon/xcom_media.npz``)."""
    return Path(__file__).resolve().parent / "data" / "photon" / "xcom_media.npz"


def load_media_table(path: Path | None = None) -> PhotonMediaTable:
    """The committed photon media table (module docstring)."""
    path = table_path() if path is None else Path(path)
    with np.load(path) as d:
        arrays = {k: np.array(d[k]) for k in d.files}
    prov = json.loads(path.with_suffix(".json").read_text())
    return PhotonMediaTable(tuple(prov["names"]), arrays["energy_mev"], arrays["photoelectric_cm2_per_g"],
                            arrays["incoherent_cm2_per_g"], arrays["coherent_cm2_per_g"],
                            arrays["bone_mass_fraction"], prov["provenance"], arrays["electrons_per_g"])


def material_index_from_density(density_g_per_ml: np.ndarray) -> np.ndarray:
    """Medium index (1 soft tissue, 2..11 tissue-bone mixtures) of each voxel from its mass density.

    Densities up to 1.06 g/mL (lung, fat, soft tissue, gas) are ICRU soft tissue (the same
    elements as ICRP lung and adipose to a few per cent of the Compton cross section per gram).
    Above, the voxel is a volume mixture of soft tissue (1.06 g/mL) and cortical bone (1.92 g/mL):
    bone volume fraction ``f = (rho - 1.06) / 0.86``, bone mass fraction ``w = 1.92 f / rho``,
    rounded to the nearest tabulated 0.1 (an error of at most 0.05 in ``w``: under 1 % of the
    attenuation coefficient at 50-400 keV). Denser voxels (metal, contrast) are cortical bone.

    Parameters
    ----------
    density_g_per_ml : numpy.ndarray, any shape

    Returns
    -------
    numpy.ndarray of uint8, same shape
    """
    rho = np.asarray(density_g_per_ml, np.float64)
    f = np.clip((rho - SOFT_TISSUE_DENSITY_G_PER_ML) / (BONE_DENSITY_G_PER_ML - SOFT_TISSUE_DENSITY_G_PER_ML), 0, 1)
    w = np.where(rho > 0, BONE_DENSITY_G_PER_ML * f / np.maximum(rho, 1e-9), 0.0)
    w = np.where(rho >= BONE_DENSITY_G_PER_ML, 1.0, w)  # denser than cortical bone: bone
    return (1 + np.rint(np.clip(w, 0, 1) * 10)).astype(np.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m kernels.photon_data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--xcom-dir", type=Path, required=True, help="folder with xcom_photo.data etc. (ompmc/data)")
    p.add_argument("--out", type=Path, default=table_path())
    args = p.parse_args(argv)
    t = build_media_table(args.xcom_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, energy_mev=t.energy_mev, photoelectric_cm2_per_g=t.photoelectric_cm2_per_g,
                        incoherent_cm2_per_g=t.incoherent_cm2_per_g, coherent_cm2_per_g=t.coherent_cm2_per_g,
                        bone_mass_fraction=t.bone_mass_fraction, electrons_per_g=t.electrons_per_g)
    args.out.with_suffix(".json").write_text(json.dumps({"names": list(t.names), "provenance": t.provenance},
                                                        indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
