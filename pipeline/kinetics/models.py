"""Time-activity models: sums of exponentials with the physical decay built in.

Every model is a sum of exponential terms ``c_j * exp(-k_j t)`` whose rate
constants are ``k_j = lambda_bio_j + lambda_phys`` with biological rates
``lambda_bio_j >= 0`` (physics notes, section 5). Because of that form each
model has a closed-form integral, and the whole library works from one
function, :func:`exponential_terms`, that turns a model's parameters into its
coefficients and rates.

Models (``t`` in h after injection, ``lp`` the physical decay constant in 1/h):

``mono``
    ``A0 exp(-(l + lp) t)``; parameters ``A0, lambda_bio_per_h``.
``uptake_washout``
    ``A (exp(-(lw + lp) t) - exp(-(lu + lp) t))`` with ``lu > lw``; parameters
    ``A, lambda_washout_per_h, lambda_uptake_per_h``. Zero at ``t = 0``.
``bi``
    ``A1 exp(-(l1 + lp) t) + A2 exp(-(l2 + lp) t)``; parameters
    ``A1, lambda1_per_h, A2, lambda2_per_h`` (``l2 >= l1``, ``A1, A2 >= 0``).
``tri_uptake``
    ``A1 exp(-(l1 + lp) t) + A2 exp(-(l2 + lp) t) - (A1 + A2) exp(-(lu + lp) t)``
    with ``lu >= l2 >= l1``: two washout phases and one uptake; zero at ``t = 0``.
    Parameters ``A1, lambda1_per_h, A2, lambda2_per_h, lambda_uptake_per_h``.

Activity parameters carry the activity unit of the data (MBq for organ
curves, MBq/mL for voxels); rates are in 1/h. Integrals are in that unit
times h (MBq*h for organ curves).

Public entry points for other stages (the dose stage uses them for BED and
dose-rate time courses): :func:`evaluate`, :func:`integrate`,
:func:`exponential_terms`, :data:`MODELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ModelSpec",
    "MODELS",
    "MODEL_NAMES",
    "get_model",
    "exponential_terms",
    "evaluate",
    "integrate",
    "effective_half_lives_h",
]


@dataclass(frozen=True)
class ModelSpec:
    """Description of one time-activity model.

    Attributes
    ----------
    name : str
        Model identifier used in files and on the command line.
    param_names : tuple of str
        Names of the public parameters, in order.
    activity_params : tuple of int
        Indices of the parameters that are activities (unit of the data).
    formula : str
        Human-readable formula (``lp`` is the physical decay constant).
    """

    name: str
    param_names: tuple
    activity_params: tuple
    formula: str

    @property
    def n_params(self) -> int:
        """Number of fitted parameters K (the physical decay constant is fixed)."""
        return len(self.param_names)


MODELS = {
    "mono": ModelSpec(
        "mono", ("A0", "lambda_bio_per_h"), (0,),
        "A0*exp(-(lambda_bio+lp)*t)"),
    "uptake_washout": ModelSpec(
        "uptake_washout", ("A", "lambda_washout_per_h", "lambda_uptake_per_h"), (0,),
        "A*(exp(-(lambda_washout+lp)*t) - exp(-(lambda_uptake+lp)*t))"),
    "bi": ModelSpec(
        "bi", ("A1", "lambda1_per_h", "A2", "lambda2_per_h"), (0, 2),
        "A1*exp(-(lambda1+lp)*t) + A2*exp(-(lambda2+lp)*t)"),
    "tri_uptake": ModelSpec(
        "tri_uptake", ("A1", "lambda1_per_h", "A2", "lambda2_per_h", "lambda_uptake_per_h"), (0, 2),
        "A1*exp(-(lambda1+lp)*t) + A2*exp(-(lambda2+lp)*t) - (A1+A2)*exp(-(lambda_uptake+lp)*t)"),
}

#: Model names from the simplest to the most complex.
MODEL_NAMES = tuple(MODELS)


def get_model(model_name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``model_name``; ``ValueError`` listing the choices otherwise."""
    try:
        return MODELS[model_name]
    except KeyError:
        raise ValueError(f"unknown kinetic model {model_name!r}; choose from {', '.join(MODEL_NAMES)}") from None


def _param_vector(model: ModelSpec, params, decay_constant_per_h):
    """Parameters as an array in model order, and the physical decay constant."""
    if isinstance(params, Mapping):
        missing = [n for n in model.param_names if n not in params]
        if missing:
            raise ValueError(f"model {model.name!r} needs parameters {missing}")
        vec = np.array([params[n] for n in model.param_names])
        if decay_constant_per_h is None:
            decay_constant_per_h = params.get("lambda_phys_per_h")
    else:
        vec = np.asarray(params)
        if vec.shape != (model.n_params,):
            raise ValueError(f"model {model.name!r} takes {model.n_params} parameters "
                             f"{model.param_names}, got shape {vec.shape}")
    if decay_constant_per_h is None:
        raise ValueError("the physical decay constant is needed: pass decay_constant_per_h "
                         "or include 'lambda_phys_per_h' in params")
    return vec, decay_constant_per_h


def exponential_terms(model_name: str, params, decay_constant_per_h=None):
    """Coefficients and rate constants of the model as a sum of exponentials.

    ``f(t) = sum_j coefficients[j] * exp(-rates_per_h[j] * t)``.

    Parameters
    ----------
    model_name : str
        One of :data:`MODEL_NAMES`.
    params : sequence of float or mapping
        Parameters in the order of ``MODELS[model_name].param_names``, or a
        mapping by name (which may also hold ``lambda_phys_per_h``).
        Complex values are allowed (used for complex-step derivatives).
    decay_constant_per_h : float, optional
        Physical decay constant ln2/T1/2 in 1/h (taken from ``params`` when
        it is a mapping holding ``lambda_phys_per_h``).

    Returns
    -------
    coefficients : numpy.ndarray, shape (M,)
        Activity unit of the data.
    rates_per_h : numpy.ndarray, shape (M,)
        Effective rate constants (biological + physical), 1/h.
    """
    model = get_model(model_name)
    p, lp = _param_vector(model, params, decay_constant_per_h)
    if model.name == "mono":
        coef = [p[0]]
        rate = [p[1] + lp]
    elif model.name == "uptake_washout":
        coef = [p[0], -p[0]]
        rate = [p[1] + lp, p[2] + lp]
    elif model.name == "bi":
        coef = [p[0], p[2]]
        rate = [p[1] + lp, p[3] + lp]
    else:  # tri_uptake
        coef = [p[0], p[2], -(p[0] + p[2])]
        rate = [p[1] + lp, p[3] + lp, p[4] + lp]
    return np.array(coef), np.array(rate)


def evaluate(model_name: str, params, t_h, decay_constant_per_h=None):
    """Value of the model at times ``t_h``.

    Parameters
    ----------
    model_name : str
        One of :data:`MODEL_NAMES`.
    params : sequence of float or mapping
        See :func:`exponential_terms`.
    t_h : float or array_like
        Time after injection, h.
    decay_constant_per_h : float, optional
        Physical decay constant, 1/h.

    Returns
    -------
    numpy.ndarray
        Activity (unit of the data), same shape as ``t_h``.
    """
    coef, rate = exponential_terms(model_name, params, decay_constant_per_h)
    t = np.asarray(t_h, dtype=float)
    return np.sum(coef * np.exp(-np.multiply.outer(t, rate)), axis=-1)


def integrate(model_name: str, params, t0_h=0.0, t1_h=np.inf, decay_constant_per_h=None):
    """Analytic integral of the model from ``t0_h`` to ``t1_h``.

    ``integral = sum_j c_j / k_j * (exp(-k_j t0) - exp(-k_j t1))``, with the
    last exponential zero for ``t1 = inf``.

    Parameters
    ----------
    model_name : str
        One of :data:`MODEL_NAMES`.
    params : sequence of float or mapping
        See :func:`exponential_terms`.
    t0_h, t1_h : float
        Integration limits, h after injection (``t1_h`` may be ``inf``).
    decay_constant_per_h : float, optional
        Physical decay constant, 1/h (must be > 0 for an integral to infinity
        with zero biological rates).

    Returns
    -------
    float or complex
        Time-integrated activity in (unit of the data) * h, e.g. MBq*h.
    """
    coef, rate = exponential_terms(model_name, params, decay_constant_per_h)
    if np.any(np.real(rate) <= 0):
        if np.isinf(t1_h):
            raise ValueError("integral to infinity needs every rate constant > 0 "
                             "(physical decay constant must be positive)")
    head = np.exp(-rate * t0_h)
    tail = 0.0 if np.isinf(t1_h) else np.exp(-rate * t1_h)
    total = np.sum(coef / rate * (head - tail))
    return total if np.iscomplexobj(total) else float(total)


def effective_half_lives_h(model_name: str, params, decay_constant_per_h=None) -> dict:
    """Effective half-lives ln2 / (lambda_bio + lambda_phys) of every phase, h.

    Returns
    -------
    dict
        Phase name -> effective half-life in h (``washout``, ``uptake``,
        ``phase1``, ``phase2`` as the model has them).
    """
    model = get_model(model_name)
    _, rate = exponential_terms(model_name, params, decay_constant_per_h)
    rate = np.real(rate)
    names = {
        "mono": ("washout",),
        "uptake_washout": ("washout", "uptake"),
        "bi": ("phase1", "phase2"),
        "tri_uptake": ("phase1", "phase2", "uptake"),
    }[model.name]
    return {n: float(np.log(2.0) / r) if r > 0 else float("inf") for n, r in zip(names, rate)}
