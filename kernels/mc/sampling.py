"""Sampling of decay emissions from ICRP-107 data (pure numpy, no Monte Carlo engine).

Electrons (beta spectrum, conversion and Auger lines) and photons (gamma and
X-ray lines) are sampled as two separate particle populations, because the
kernels keep them apart. Each population is a mixture weighted by the number
of particles per decay; the energy emitted per decay of the population is
``particles_per_decay * mean energy per particle``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.decay import DecayData

__all__ = ["EmissionSpectrum", "electron_emissions", "photon_emissions", "sample_piecewise_linear",
           "isotropic_directions"]

#: Which emissions each electron ``variant`` contains.
ELECTRON_VARIANTS = {
    "full": ("beta", "conversion", "auger"),
    "beta": ("beta",),
}


@dataclass(frozen=True, eq=False)
class EmissionSpectrum:
    """One particle population of a decay: a continuous part plus discrete lines.

    Attributes
    ----------
    particle : {"electron", "photon"}
    continuum_energy_mev, continuum_pdf_per_mev : ndarray, shape (K,)
        Piecewise-linear probability density of the continuous part (beta
        spectrum), normalised to 1; empty when there is none.
    continuum_per_decay : float
        Particles of the continuous part per decay.
    line_energy_mev, line_per_decay : ndarray, shape (L,)
        Discrete lines and their yields per decay.
    components : tuple of str
        Names of the emission groups included (e.g. ``("beta", "conversion", "auger")``).
    """

    particle: str
    continuum_energy_mev: np.ndarray
    continuum_pdf_per_mev: np.ndarray
    continuum_per_decay: float
    line_energy_mev: np.ndarray
    line_per_decay: np.ndarray
    components: tuple

    @property
    def particles_per_decay(self) -> float:
        return float(self.continuum_per_decay + self.line_per_decay.sum())

    @property
    def energy_per_decay_mev(self) -> float:
        """Energy emitted per decay by this population (continuum mean from the tabulated spectrum), MeV."""
        cont = 0.0
        if self.continuum_per_decay > 0:
            e, p = self.continuum_energy_mev, self.continuum_pdf_per_mev
            cont = self.continuum_per_decay * float(np.trapezoid(e * p, e))
        return cont + float(np.dot(self.line_energy_mev, self.line_per_decay))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` particle kinetic energies in MeV, shape (n,)."""
        total = self.particles_per_decay
        if total <= 0:
            raise ValueError(f"no {self.particle} emissions to sample")
        p_cont = self.continuum_per_decay / total
        out = np.empty(n)
        from_cont = rng.random(n) < p_cont
        nc = int(from_cont.sum())
        if nc:
            out[from_cont] = sample_piecewise_linear(self.continuum_energy_mev, self.continuum_pdf_per_mev, nc, rng)
        nl = n - nc
        if nl:
            w = self.line_per_decay / self.line_per_decay.sum()
            idx = rng.choice(len(w), size=nl, p=w)
            out[~from_cont] = self.line_energy_mev[idx]
        return out


def sample_piecewise_linear(x: np.ndarray, pdf: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Exact samples of a piecewise-linear density given at nodes ``x`` (values ``pdf``, not necessarily normalised).

    A bin is chosen by its trapezoid area; within the bin the linear density
    is inverted analytically (root of a quadratic).
    """
    x = np.asarray(x, dtype=float)
    f = np.asarray(pdf, dtype=float)
    dx = np.diff(x)
    area = 0.5 * (f[1:] + f[:-1]) * dx
    cdf = np.cumsum(area)
    cdf /= cdf[-1]
    k = np.searchsorted(cdf, rng.random(n), side="right")
    k = np.minimum(k, len(area) - 1)
    f0, f1, h = f[k], f[k + 1], dx[k]
    u = rng.random(n)
    slope = (f1 - f0) / h
    # Solve f0*t + slope*t^2/2 = u * (f0 + f1)/2 * h for t in [0, h].
    target = u * 0.5 * (f0 + f1) * h
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.sqrt(np.maximum(f0 * f0 + 2.0 * slope * target, 0.0))
        t_quad = 2.0 * target / (f0 + disc)  # numerically stable root
        t_lin = u * h
    t = np.where(np.abs(slope) * h > 1e-12 * np.maximum(f0 + f1, 1e-300), t_quad, t_lin)
    t = np.where(np.isfinite(t), t, t_lin)
    return x[k] + np.clip(t, 0.0, h)


def isotropic_directions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` isotropic unit vectors, shape (n, 3)."""
    cos_t = 2.0 * rng.random(n) - 1.0
    phi = 2.0 * np.pi * rng.random(n)
    sin_t = np.sqrt(np.maximum(0.0, 1.0 - cos_t * cos_t))
    return np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])


def _positive_lines(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=float).reshape(-1, 2)
    keep = (rows[:, 0] > 0) & (rows[:, 1] > 0)
    return rows[keep, 0].copy(), rows[keep, 1].copy()


def electron_emissions(decay: DecayData, variant: str = "full") -> EmissionSpectrum:
    """Electron population of a decay.

    Parameters
    ----------
    decay : DecayData
    variant : {"full", "beta"}
        ``"full"``: beta spectrum + conversion + Auger electrons (the
        committed kernels). ``"beta"``: beta spectrum only (as Lanconelli et
        al. 2012 did for Lu-177).
    """
    if variant not in ELECTRON_VARIANTS:
        raise ValueError(f"unknown electron variant {variant!r}; choose one of {sorted(ELECTRON_VARIANTS)}")
    comps = ELECTRON_VARIANTS[variant]
    e_pdf, pdf = (decay.beta_pdf() if decay.is_beta_emitter and len(decay.beta_spectrum) > 1
                  else (np.zeros(0), np.zeros(0)))
    energies, yields = [np.zeros(0)], [np.zeros(0)]
    if "conversion" in comps:
        e, y = _positive_lines(decay.conversion_electrons)
        energies.append(e)
        yields.append(y)
    if "auger" in comps:
        e, y = _positive_lines(decay.auger_electrons)
        energies.append(e)
        yields.append(y)
    return EmissionSpectrum(
        particle="electron",
        continuum_energy_mev=e_pdf,
        continuum_pdf_per_mev=pdf,
        continuum_per_decay=decay.betas_per_decay() if len(e_pdf) else 0.0,
        line_energy_mev=np.concatenate(energies),
        line_per_decay=np.concatenate(yields),
        components=comps,
    )


def photon_emissions(decay: DecayData) -> EmissionSpectrum:
    """Photon population of a decay: gamma and X-ray lines (ICRP-107)."""
    eg, yg = _positive_lines(decay.gamma_lines)
    ex, yx = _positive_lines(decay.xray_lines)
    return EmissionSpectrum(
        particle="photon",
        continuum_energy_mev=np.zeros(0),
        continuum_pdf_per_mev=np.zeros(0),
        continuum_per_decay=0.0,
        line_energy_mev=np.concatenate([eg, ex]),
        line_per_decay=np.concatenate([yg, yx]),
        components=("gamma", "xray"),
    )
