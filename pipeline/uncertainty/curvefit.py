"""Fit covariance, TIA sensitivities and a vectorised refit of many resampled curves.

Analytic part (Gear et al. 2018, "Time-integrated activity"): weighted least squares with
``W = diag(1 / sigma_i^2)``; parameter covariance ``C = s (J^T W J)^-1`` (``s`` the reduced
chi-square when it exceeds one, as in the kinetics stage); ``var(TIA) = g^T C g`` with
``g = d TIA / d p``; the TIA's sensitivity to each data point ``h = g^T (J^T W J)^-1 J^T W``
(d TIA / d A_i, dimensionless), used for errors that are not in the error model (registration).

Monte Carlo part: :func:`refit_tia` fits one model to many curves at once (draws x time points)
by a projected Levenberg-Marquardt iteration started from the central estimate, in the
kinetics stage's internal parameters (rates non-negative, rate orderings kept as bounds).
"""

from __future__ import annotations

import numpy as np

from ..kinetics.models import get_model, integrate

__all__ = ["noise_sigma_mbq", "model_and_jacobian", "fit_covariance", "tia_gradient", "tia_point_sensitivity",
           "refit_tia", "integrate_many"]

#: Upper bound of the biological rates, 1/h (the kinetics stage's bound).
MAX_RATE_PER_H = 20.0


def noise_sigma_mbq(activity_mbq, kind: str = "fit_error_model", relative_sd: float = 0.10,
                    floor_fraction: float = 0.02, counts_per_mbq: float | None = None) -> np.ndarray:
    """SD (MBq) of each time point's activity; works on (..., N) arrays (one curve per row).

    ``fit_error_model`` / ``relative``: ``relative_sd * max(|A_i|, floor_fraction * max|A|)``;
    ``counts``: Poisson, ``sqrt(max(A_i, floor) / counts_per_mbq)``.
    """
    a = np.abs(np.asarray(activity_mbq, float))
    floor = floor_fraction * a.max(axis=-1, keepdims=True)
    base = np.maximum(a, floor)
    if kind == "counts":
        sig = np.sqrt(base / float(counts_per_mbq))
    else:
        sig = relative_sd * base
    return np.where(sig > 0, sig, 1.0)


def _transform(model_name: str) -> np.ndarray:
    """p = T x: internal parameters x >= 0 keep the rate orderings (same as the kinetics stage)."""
    k = get_model(model_name).n_params
    T = np.eye(k)
    if model_name == "uptake_washout":
        T[2, 1] = 1.0
    elif model_name == "bi":
        T[3, 1] = 1.0
    elif model_name == "tri_uptake":
        T[3, 1] = 1.0
        T[4, 1] = T[4, 3] = 1.0
    return T


def model_and_jacobian(model_name: str, params, t_h, lp: float):
    """Model values and d f / d p for many parameter vectors.

    Parameters
    ----------
    params : array_like, shape (..., K)
        Public parameters (order of ``MODELS[model_name].param_names``).
    t_h : array_like, shape (N,)
    lp : float
        Physical decay constant, 1/h.

    Returns
    -------
    f : ndarray, shape (..., N), MBq
    J : ndarray, shape (..., N, K)
    """
    p = np.asarray(params, float)[..., None, :]
    t = np.asarray(t_h, float)

    def e(j):
        return np.exp(-(p[..., j] + lp) * t)

    if model_name == "mono":
        e1 = e(1)
        f = p[..., 0] * e1
        J = np.stack([e1, -p[..., 0] * t * e1], axis=-1)
    elif model_name == "uptake_washout":
        e1, e2 = e(1), e(2)
        f = p[..., 0] * (e1 - e2)
        J = np.stack([e1 - e2, -p[..., 0] * t * e1, p[..., 0] * t * e2], axis=-1)
    elif model_name == "bi":
        e1, e2 = e(1), e(3)
        f = p[..., 0] * e1 + p[..., 2] * e2
        J = np.stack([e1, -p[..., 0] * t * e1, e2, -p[..., 2] * t * e2], axis=-1)
    elif model_name == "tri_uptake":
        e1, e2, e3 = e(1), e(3), e(4)
        s = p[..., 0] + p[..., 2]
        f = p[..., 0] * e1 + p[..., 2] * e2 - s * e3
        J = np.stack([e1 - e3, -p[..., 0] * t * e1, e2 - e3, -p[..., 2] * t * e2, s * t * e3], axis=-1)
    else:
        raise ValueError(f"no Jacobian for model {model_name!r}")
    return f, J


def integrate_many(model_name: str, params, lp: float) -> np.ndarray:
    """TIA (MBq*h) from 0 to infinity of many parameter vectors, shape (...,)."""
    p = np.asarray(params, float)
    if model_name == "mono":
        return p[..., 0] / (p[..., 1] + lp)
    if model_name == "uptake_washout":
        return p[..., 0] * (1.0 / (p[..., 1] + lp) - 1.0 / (p[..., 2] + lp))
    if model_name == "bi":
        return p[..., 0] / (p[..., 1] + lp) + p[..., 2] / (p[..., 3] + lp)
    if model_name == "tri_uptake":
        return (p[..., 0] / (p[..., 1] + lp) + p[..., 2] / (p[..., 3] + lp)
                - (p[..., 0] + p[..., 2]) / (p[..., 4] + lp))
    raise ValueError(f"unknown model {model_name!r}")


def fit_covariance(model_name: str, params, t_h, activity_mbq, sigma_mbq, lp: float) -> tuple[np.ndarray, float]:
    """Parameter covariance ``s (J^T W J)^-1`` and the inflation ``s = max(1, WRSS / (N - K))``."""
    f, J = model_and_jacobian(model_name, params, t_h, lp)
    w = 1.0 / np.asarray(sigma_mbq, float) ** 2
    info = J.T @ (w[:, None] * J)
    n, k = J.shape
    wrss = float(np.sum(w * (f - np.asarray(activity_mbq, float)) ** 2))
    scale = max(1.0, wrss / (n - k)) if n > k else 1.0
    return scale * np.linalg.pinv(info), scale


def tia_gradient(model_name: str, params, lp: float) -> np.ndarray:
    """d TIA / d p (complex step, exact to rounding), shape (K,)."""
    p = np.asarray(params, float)
    g = np.empty(p.size)
    for j in range(p.size):
        q = p.astype(complex)
        q[j] += 1e-30j
        g[j] = np.imag(integrate(model_name, q, 0.0, np.inf, lp)) / 1e-30
    return g


def tia_point_sensitivity(model_name: str, params, t_h, sigma_mbq, lp: float) -> np.ndarray:
    """d TIA / d A_i of the weighted least-squares fit (dimensionless, h), shape (N,)."""
    _, J = model_and_jacobian(model_name, params, t_h, lp)
    w = 1.0 / np.asarray(sigma_mbq, float) ** 2
    info_inv = np.linalg.pinv(J.T @ (w[:, None] * J))
    return tia_gradient(model_name, params, lp) @ info_inv @ (J.T * w)


def refit_tia(model_name: str, params, t_h, activity_mbq, lp: float, sigma_fn, *, iterations: int = 60):
    """Refit ``model_name`` to many curves at once; TIA of each.

    Parameters
    ----------
    params : array_like, shape (K,)
        Start (the central fit), public parameters.
    activity_mbq : ndarray, shape (M, N)
        One resampled curve per row.
    sigma_fn : callable
        ``activity (M, N) -> sigma (M, N)``: the weights' error model (evaluated on the data, as
        the kinetics stage does).

    Returns
    -------
    tia_mbq_h : ndarray, shape (M,)
    params : ndarray, shape (M, K)
    converged : ndarray of bool, shape (M,)
        Relative cost change below 1e-10 at the last iteration.
    """
    y = np.asarray(activity_mbq, float)
    m = y.shape[0]
    T = _transform(model_name)
    spec = get_model(model_name)
    rate = np.ones(spec.n_params, bool)
    rate[list(spec.activity_params)] = False
    upper = np.where(rate, MAX_RATE_PER_H, np.inf)
    x = np.tile(np.linalg.solve(T, np.asarray(params, float)), (m, 1))
    x = np.clip(x, 0.0, upper)
    sig = sigma_fn(y)

    def cost_of(xx):
        f, J = model_and_jacobian(model_name, xx @ T.T, t_h, lp)
        r = (f - y) / sig
        return r, J @ T / sig[..., None], np.sum(r * r, axis=-1)

    r, Jx, cost = cost_of(x)
    mu = np.full(m, 1e-3)
    rel_change = np.ones(m)
    for _ in range(iterations):
        A = np.einsum("mnk,mnl->mkl", Jx, Jx)
        b = -np.einsum("mnk,mn->mk", Jx, r)
        diag = np.einsum("mkk->mk", A)
        A_damped = A + (mu[:, None] * np.maximum(diag, 1e-12))[:, :, None] * np.eye(spec.n_params)
        try:
            step = np.linalg.solve(A_damped, b[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a draw with a degenerate model (e.g. an amplitude at 0): least squares
            step = (np.linalg.pinv(A_damped) @ b[..., None])[..., 0]
        x_new = np.clip(x + step, 0.0, upper)
        r_new, J_new, cost_new = cost_of(x_new)
        better = np.isfinite(cost_new) & (cost_new <= cost)
        rel_change = np.where(better, (cost - cost_new) / np.maximum(cost, 1e-300), rel_change)
        x = np.where(better[:, None], x_new, x)
        r = np.where(better[:, None], r_new, r)
        Jx = np.where(better[:, None, None], J_new, Jx)
        cost = np.where(better, cost_new, cost)
        mu = np.where(better, mu / 3.0, mu * 4.0)
    p = x @ T.T
    return integrate_many(model_name, p, lp), p, (rel_change < 1e-10) | (mu > 1e6)
