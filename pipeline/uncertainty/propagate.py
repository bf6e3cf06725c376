"""Analytic (EANM) and Monte Carlo propagation of the sources through each organ's dose chain.

Chain of one organ (all factors multiplicative, so relative variances add in the analytic
first-order propagation, Gear et al. 2018 eq. 3)::

    D = D_hat * [TIA(A_1..A_N) / TIA_hat] / CF_rel * R_rel * B_rel * S_rel / rho_rel

- ``TIA``: the chosen model refitted to the time-point activities; analytic
  ``var = g^T C g`` (fit covariance ``C``, activity-noise source) plus
  ``sum_i (dTIA/dA_i sigma_reg,i A_i)^2`` (registration source, independent per time point);
- ``CF_rel``: calibration factor, shared by every time point and every organ;
- ``R_rel``: recovery correction, ``1 + s_R * delta_FWHM`` with ``s_R = (1 - RC) / RC``, one PSF
  for all organs;
- model selection: ``1 + u_M z`` with ``u_M`` the Akaike-weighted spread of the candidates' TIA
  (independent per organ; the Monte Carlo refits the chosen model only, so it is drawn, not refitted);
- ``B_rel``: boundary shift (segmentation), independent per organ;
- ``S_rel``, ``rho_rel``: S-values and density, shared by all organs (not in the EANM marrow dose).

A reduced-protocol cycle (one or two scans, :mod:`.reduced`) has no fit to refit: its TIA is a
formula of its scans and the earlier cycle's curve; its ``activity_noise`` and ``registration``
come from the formula's derivatives, and two sources of its own are added to its budget,
``prior_kinetics`` (the earlier fit's covariance) and ``reduced_method`` (Hänscheid's
approximation); the Monte Carlo evaluates the formula on resampled scans and earlier parameters.

Monte Carlo: every draw samples the shared factors once and, per organ, resampled time-point
activities around the fitted curve (parametric bootstrap; SD ``sqrt(s) sigma_i`` of the error
model with the fit's chi-square inflation ``s``, plus the registration SD), refits the chosen
model (:func:`.curvefit.refit_tia`) and multiplies the factors. Budgets come from the analytic
propagation (shares of the variance); the Monte Carlo SD checks it.
"""

from __future__ import annotations

import numpy as np

from .curvefit import (fit_covariance, integrate_many, model_and_jacobian, noise_sigma_mbq, refit_tia, tia_gradient,
                       tia_point_sensitivity)
from .inputs import OrganChain
from .reduced import REDUCED_SOURCES, reduced_ratio_draws, reduced_relative_variances
from .sources import SOURCE_NAMES, UncertaintySettings

__all__ = ["analytic_relative_variances", "monte_carlo", "summarise", "combine_analytic",
           "SHARED_SOURCES", "g_factor_many"]

#: Sources common to every organ (fully correlated between organs).
SHARED_SOURCES = ("calibration", "recovery", "s_value", "density")


def analytic_relative_variances(chain: OrganChain, settings: UncertaintySettings) -> dict:
    """Relative variance of the dose from each source (first order), source -> float.

    Signed relative sensitivities of the shared sources are in ``_signed`` (needed to combine
    organs: the kidneys' mass-weighted mean). A reduced-protocol chain also has the keys
    :data:`.reduced.REDUCED_SOURCES`.
    """
    var = dict.fromkeys(SOURCE_NAMES, 0.0)
    var["calibration"] = settings.calibration_relative_sd ** 2
    if chain.reduced is not None:
        var.update(dict.fromkeys(REDUCED_SOURCES, 0.0))
    if chain.reduced is not None and chain.tia_mbq_h > 0:
        var.update(reduced_relative_variances(chain.reduced, chain.time_h, chain.activity_mbq, chain.sigma_mbq,
                                              chain.registration_relative_sd, chain.lambda_phys_per_h,
                                              chain.tia_mbq_h))
    elif chain.fitted and chain.tia_mbq_h > 0:
        t, y, sig = (np.asarray(v, float) for v in (chain.time_h, chain.activity_mbq, chain.sigma_mbq))
        cov, _ = fit_covariance(chain.method, chain.params, t, y, sig, chain.lambda_phys_per_h)
        g = tia_gradient(chain.method, chain.params, chain.lambda_phys_per_h)
        var["activity_noise"] = float(g @ cov @ g) / chain.tia_mbq_h ** 2
        h = tia_point_sensitivity(chain.method, chain.params, t, sig, chain.lambda_phys_per_h)
        reg = np.asarray(chain.registration_relative_sd, float) * y
        var["registration"] = float(np.sum((h * reg) ** 2)) / chain.tia_mbq_h ** 2
    else:
        var["activity_noise"] = chain.tia_fit_relative_sd ** 2
        reg = np.asarray(chain.registration_relative_sd, float)
        var["registration"] = float(np.sum(reg ** 2)) / max(reg.size, 1) ** 2
    var["model_selection"] = chain.model_selection_relative_sd ** 2
    var["recovery"] = (chain.recovery_relative_sensitivity * settings.psf_fwhm_relative_sd) ** 2
    var["segmentation"] = chain.segmentation_relative_sd ** 2
    if chain.uses_s_value:
        var["s_value"] = settings.s_value_relative_sd ** 2
        var["density"] = settings.density_relative_sd ** 2
    return var


def _signed_shared(chain: OrganChain, settings: UncertaintySettings) -> dict:
    """Signed relative dose change per 1 SD of each shared source."""
    return {"calibration": -settings.calibration_relative_sd,
            "recovery": chain.recovery_relative_sensitivity * settings.psf_fwhm_relative_sd,
            "s_value": settings.s_value_relative_sd if chain.uses_s_value else 0.0,
            "density": -settings.density_relative_sd if chain.uses_s_value else 0.0}


def combine_analytic(chains, weights, settings: UncertaintySettings) -> dict:
    """Variance (Gy^2) per source of ``sum_o w_o D_o`` (shared sources add linearly, others in quadrature)."""
    names = SOURCE_NAMES + (REDUCED_SOURCES if any(c.reduced is not None for c in chains) else ())
    out = dict.fromkeys(names, 0.0)
    for src in names:
        if src in SHARED_SOURCES:
            out[src] = sum(w * c.dose_gy * _signed_shared(c, settings)[src] for c, w in zip(chains, weights)) ** 2
        else:
            out[src] = sum((w * c.dose_gy) ** 2 * analytic_relative_variances(c, settings).get(src, 0.0)
                           for c, w in zip(chains, weights))
    return out


def _tia_ratio_draws(chain: OrganChain, settings: UncertaintySettings, rng, n: int):
    """TIA*/TIA_hat per draw and the refitted parameters (None without a fitted model)."""
    reg = np.asarray(chain.registration_relative_sd, float)
    if chain.reduced is not None and chain.tia_mbq_h > 0:
        return reduced_ratio_draws(chain.reduced, chain.time_h, chain.activity_mbq, chain.sigma_mbq, reg,
                                   chain.lambda_phys_per_h, chain.tia_mbq_h, rng, n), None
    if not (chain.fitted and chain.tia_mbq_h > 0):
        z = rng.standard_normal((n, 2))
        reg_rel = float(np.sqrt(np.sum(reg ** 2))) / max(reg.size, 1)
        return 1.0 + chain.tia_fit_relative_sd * z[:, 0] + reg_rel * z[:, 1], None
    t, y, sig = (np.asarray(v, float) for v in (chain.time_h, chain.activity_mbq, chain.sigma_mbq))
    lp = chain.lambda_phys_per_h
    y_hat, _ = model_and_jacobian(chain.method, chain.params, t, lp)
    _, scale = fit_covariance(chain.method, chain.params, t, y, sig, lp)
    noise = np.sqrt(scale) * sig * rng.standard_normal((n, t.size))
    misreg = reg * y_hat * rng.standard_normal((n, t.size))
    y_star = y_hat + noise + misreg
    kind, rel, floor, counts = chain.noise_model

    def sigma_fn(a):  # the weights of the refit: the same error model, on the resampled data
        return noise_sigma_mbq(a, kind, rel, floor, counts)

    tia, params, _ = refit_tia(chain.method, chain.params, t, y_star, lp, sigma_fn)
    tia_hat = float(integrate_many(chain.method, np.asarray(chain.params)[None, :], lp)[0])
    return tia / tia_hat, params


def monte_carlo(chains, settings: UncertaintySettings, *, n_draws: int | None = None, seed: int | None = None) -> dict:
    """Dose draws (Gy) of every chain with the shared factors drawn once per draw.

    Returns
    -------
    dict
        ``doses``: name -> ndarray (n,); ``params``: name -> refitted parameters (n, K) or None;
        ``n_draws``, ``seed``.
    """
    n = int(n_draws or settings.mc_draws)
    seed = settings.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, 4))
    cal = 1.0 / (1.0 + settings.calibration_relative_sd * shared[:, 0])
    s_val = 1.0 + settings.s_value_relative_sd * shared[:, 2]
    rho = 1.0 / (1.0 + settings.density_relative_sd * shared[:, 3])
    ratio_cache, doses, params = {}, {}, {}
    for c in chains:
        if c.label not in ratio_cache:  # the marrow dose and its VOI share one fit and one boundary
            ratio, p = _tia_ratio_draws(c, settings, np.random.default_rng([seed, c.label]), n)
            z = np.random.default_rng([seed, c.label, 1]).standard_normal((2, n))
            seg = 1.0 + c.segmentation_relative_sd * z[0]
            ratio = ratio * (1.0 + c.model_selection_relative_sd * z[1])
            ratio_cache[c.label] = (ratio, p, seg)
        ratio, p, seg = ratio_cache[c.label]
        rec = 1.0 + c.recovery_relative_sensitivity * settings.psf_fwhm_relative_sd * shared[:, 1]
        d = c.dose_gy * ratio * cal * rec * seg
        if c.uses_s_value:
            d = d * s_val * rho
        doses[c.name], params[c.name] = d, p
    return {"doses": doses, "params": params, "n_draws": n, "seed": int(seed)}


def g_factor_many(model_name: str, params, lp: float, repair_constant_per_h: float) -> np.ndarray:
    """LQ protraction factor g of many parameter vectors (shape (M, K) -> (M,)); see radiobiology."""
    p = np.asarray(params, float)
    if model_name == "mono":
        a, k = [p[:, 0]], [p[:, 1] + lp]
    elif model_name == "uptake_washout":
        a, k = [p[:, 0], -p[:, 0]], [p[:, 1] + lp, p[:, 2] + lp]
    elif model_name == "bi":
        a, k = [p[:, 0], p[:, 2]], [p[:, 1] + lp, p[:, 3] + lp]
    else:
        a, k = [p[:, 0], p[:, 2], -(p[:, 0] + p[:, 2])], [p[:, 1] + lp, p[:, 3] + lp, p[:, 4] + lp]
    a, k = np.stack(a, 1), np.stack(k, 1)
    dose = np.sum(a / k, axis=1)
    ki, kj = k[:, :, None], k[:, None, :]
    double = 2.0 * np.sum(a[:, :, None] * a[:, None, :] / ((ki + kj) * (ki + repair_constant_per_h)), axis=(1, 2))
    return double / dose ** 2


def summarise(central: float, analytic_var_by_source: dict, draws: np.ndarray, unit: str = "gy") -> dict:
    """Central value, analytic SD and 95 % interval, MC mean/SD/percentile interval, budget.

    The analytic propagation is first order: it describes the core of the distribution. The Monte
    Carlo SD is given twice: the sample SD, and the robust SD (half the central 68.3 % width,
    equal to the SD for a normal distribution), which is what is compared with the analytic SD
    (``mc_to_analytic_sd``): a few runaway refits (e.g. a bi-exponential whose fast phase jumps
    to extrapolate a high value before the first scan, 1 in 2000 draws on the sample patient's
    marrow VOI) double the sample SD without changing the core; they are counted in
    ``mc_draws_beyond_5sd`` and are in the percentile interval.

    The Monte Carlo 95 % interval is the basic (pivotal) bootstrap interval
    ``[2 D - q97.5, 2 D - q2.5]``: the draws are refits around the estimate, so they repeat the
    estimator's own bias (e.g. -1.3 % for the kidneys, from weights that depend on the data), and
    the plain percentile interval (also given) would shift the interval by it a second time.
    """
    total = float(sum(analytic_var_by_source.values()))
    sd_a = float(np.sqrt(total))
    draws = np.asarray(draws, float)
    sd_mc = float(np.std(draws, ddof=1))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    p16, p84 = np.percentile(draws, [15.865, 84.135])
    sd_robust = float(p84 - p16) / 2.0  # equals the SD for a normal distribution; blind to rare runaway fits
    budget = {s: {"sd_" + unit: float(np.sqrt(v)), "variance_share": float(v / total) if total > 0 else 0.0}
              for s, v in analytic_var_by_source.items()}
    return {
        f"central_{unit}": float(central),
        f"analytic_sd_{unit}": sd_a,
        "analytic_relative_sd": sd_a / central if central else None,
        f"analytic_interval95_{unit}": [float(central - 1.959964 * sd_a), float(central + 1.959964 * sd_a)],
        f"mc_mean_{unit}": float(draws.mean()),
        f"mc_sd_{unit}": sd_mc,
        "mc_relative_sd": sd_mc / central if central else None,
        f"mc_interval95_{unit}": [float(2.0 * central - hi), float(2.0 * central - lo)],
        f"mc_percentile_interval95_{unit}": [float(lo), float(hi)],
        f"mc_sd_robust_{unit}": sd_robust,
        "mc_draws_beyond_5sd": int(np.sum(np.abs(draws - np.median(draws)) > 5 * sd_robust)) if sd_robust > 0 else 0,
        "mc_to_analytic_sd": sd_robust / sd_a if sd_a > 0 else None,
        "largest_source": max(analytic_var_by_source, key=analytic_var_by_source.get) if total > 0 else None,
        "budget": budget,
    }
