"""Time-activity models of the digital patient (sums of exponentials with physical decay).

Every kinetic compartment has a model f(t) (t in h after injection) that includes the
physical decay constant lambda_p of the nuclide:

- ``mono_exponential``: f = a exp(-(lambda_bio + lambda_p) t)
- ``uptake_washout``: f = a [exp(-(lambda_washout + lambda_p) t) - exp(-(lambda_uptake + lambda_p) t)]
- ``bi_exponential``: f = a1 exp(-(lambda1 + lambda_p) t) + a2 exp(-(lambda2 + lambda_p) t)

``quantity`` says what f is: ``fraction_of_injected`` (an organ total: MBq = injected MBq * f)
or ``fraction_of_injected_per_ml`` (a concentration: Bq/mL = injected Bq * f).

The biological parameters are plausible for a small-molecule or peptide radioligand
(renal and hepatic uptake, renal excretion): kidney and liver Gy/GBq for Lu-177 fall within
the ranges of the seed study (kidney 0.73-2.97, liver 0.16-0.92 Gy/GBq; Theranostics
2025;15:19) and the marrow near 0.1 Gy/GBq. The same biology is used for Cu-67 and Y-90
(only the physical decay changes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Compartment", "COMPARTMENTS", "evaluate", "integrate", "compartments_for"]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class Compartment:
    """One kinetic compartment.

    Parameters
    ----------
    name : str
    model : {"mono_exponential", "uptake_washout", "bi_exponential"}
    quantity : {"fraction_of_injected", "fraction_of_injected_per_ml"}
    parameters : dict
        Amplitudes (dimensionless or 1/mL) and biological rate constants (1/h).
    """

    name: str
    model: str
    quantity: str
    parameters: dict


def evaluate(model: str, parameters: dict, t_h, lambda_p_per_h: float):
    """f(t) of ``model`` with physical decay, t in h (array_like); same shape as ``t_h``."""
    t = np.asarray(t_h, dtype=float)
    p = parameters
    lp = lambda_p_per_h
    if model == "mono_exponential":
        return p["a"] * np.exp(-(p["lambda_bio_per_h"] + lp) * t)
    if model == "uptake_washout":
        return p["a"] * (np.exp(-(p["lambda_washout_per_h"] + lp) * t)
                         - np.exp(-(p["lambda_uptake_per_h"] + lp) * t))
    if model == "bi_exponential":
        return (p["a1"] * np.exp(-(p["lambda1_per_h"] + lp) * t)
                + p["a2"] * np.exp(-(p["lambda2_per_h"] + lp) * t))
    raise ValueError(f"unknown kinetic model {model!r}")


def integrate(model: str, parameters: dict, lambda_p_per_h: float) -> float:
    """Integral of f from 0 to infinity, in h (times the unit of the amplitudes)."""
    p = parameters
    lp = lambda_p_per_h
    if model == "mono_exponential":
        return p["a"] / (p["lambda_bio_per_h"] + lp)
    if model == "uptake_washout":
        return p["a"] * (1.0 / (p["lambda_washout_per_h"] + lp) - 1.0 / (p["lambda_uptake_per_h"] + lp))
    if model == "bi_exponential":
        return p["a1"] / (p["lambda1_per_h"] + lp) + p["a2"] / (p["lambda2_per_h"] + lp)
    raise ValueError(f"unknown kinetic model {model!r}")


_TOT = "fraction_of_injected"
_CONC = "fraction_of_injected_per_ml"


def _half(t_h):
    return _LN2 / t_h


#: The compartments (biology only; physical decay is added by :func:`evaluate`).
COMPARTMENTS = {
    c.name: c
    for c in (
        # kidneys: fast uptake (half-time 35 min), washout half-life 50 h (left) / 45 h (right)
        Compartment("kidney_left", "uptake_washout", _TOT,
                    {"a": 0.018, "lambda_uptake_per_h": 1.2, "lambda_washout_per_h": _half(50.0)}),
        Compartment("kidney_right", "uptake_washout", _TOT,
                    {"a": 0.017, "lambda_uptake_per_h": 1.2, "lambda_washout_per_h": _half(45.0)}),
        # liver: immediate uptake of 5.5 % IA, biological half-life 60 h
        Compartment("liver", "mono_exponential", _TOT, {"a": 0.055, "lambda_bio_per_h": _half(60.0)}),
        # spleen: blood-pool part cleared in 2 h plus a retained part (half-life 80 h)
        Compartment("spleen", "bi_exponential", _TOT,
                    {"a1": 0.004, "lambda1_per_h": 0.35, "a2": 0.008, "lambda2_per_h": _half(80.0)}),
        # bladder content: filled by urinary excretion and emptied by voiding
        Compartment("bladder", "uptake_washout", _TOT,
                    {"a": 0.12, "lambda_uptake_per_h": 0.5, "lambda_washout_per_h": 0.15}),
        # lesions
        Compartment("liver_metastasis_rim", "uptake_washout", _TOT,
                    {"a": 0.008, "lambda_uptake_per_h": 0.4, "lambda_washout_per_h": _half(150.0)}),
        Compartment("lymph_node", "mono_exponential", _TOT, {"a": 0.0015, "lambda_bio_per_h": _half(120.0)}),
        Compartment("bone_lesion", "uptake_washout", _TOT,
                    {"a": 0.002, "lambda_uptake_per_h": 0.25, "lambda_washout_per_h": _half(200.0)}),
        # concentrations (fraction of injected activity per mL)
        Compartment("liver_metastasis_core", "mono_exponential", _CONC,
                    {"a": 3.0e-6, "lambda_bio_per_h": _half(100.0)}),
        Compartment("blood", "bi_exponential", _CONC,
                    {"a1": 1.2e-4, "lambda1_per_h": 0.6, "a2": 8.0e-6, "lambda2_per_h": 0.035}),
        Compartment("marrow", "bi_exponential", _CONC,
                    {"a1": 4.0e-5, "lambda1_per_h": 0.5, "a2": 8.0e-6, "lambda2_per_h": _half(100.0)}),
        Compartment("lung", "bi_exponential", _CONC,
                    {"a1": 3.0e-5, "lambda1_per_h": 0.6, "a2": 2.0e-6, "lambda2_per_h": 0.035}),
        Compartment("muscle", "bi_exponential", _CONC,
                    {"a1": 1.5e-5, "lambda1_per_h": 0.4, "a2": 1.5e-6, "lambda2_per_h": 0.02}),
        Compartment("fat", "bi_exponential", _CONC,
                    {"a1": 6.0e-6, "lambda1_per_h": 0.4, "a2": 6.0e-7, "lambda2_per_h": 0.02}),
        Compartment("bowel", "mono_exponential", _CONC, {"a": 1.2e-5, "lambda_bio_per_h": 0.03}),
        Compartment("bone", "mono_exponential", _CONC, {"a": 2.0e-6, "lambda_bio_per_h": 0.01}),
        Compartment("soft_low", "mono_exponential", _CONC, {"a": 2.0e-6, "lambda_bio_per_h": 0.05}),
    )
}


def compartments_for(nuclide: str) -> dict:
    """The compartments for ``nuclide`` (the same biology for every nuclide)."""
    return dict(COMPARTMENTS)
