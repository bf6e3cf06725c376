"""Coverage of the 95 % intervals over noisy realisations of the sample patient's organ chain.

Each realisation draws every source from its assumed distribution around the sample patient's
true kinetics (``sample_data.kinetics``: the generating models of the kidneys and the liver),
runs the kinetics stage's own fit (:func:`pipeline.kinetics.fitting.fit_tac`, with its model
selection and fallbacks) on the resulting time-point activities, and propagates the uncertainty
of that estimate with this package (analytic and Monte Carlo). The interval covers when it
contains the true dose ``k * TIA_true``.

Truth, and why: **without partial-volume correction, against the truth as imaged** (scenario
``as_imaged``). The organ-level chain multiplies the activity by the organ's recovery
``RC`` in both the truth and the estimate, so the value of ``RC`` cancels; the uncorrected
partial-volume loss (-14 % kidney dose on the sample patient, README) is a bias, not a random
error, and no interval around an uncorrected dose should claim to cover the unblurred truth.
Scenario ``pvc`` adds an organ-level correction with an uncertain PSF (measured activity
``RC A_true``, corrected by ``RC_est = 1 - (1 - RC)(1 + u_F z)``) and takes the unblurred truth.

What this tests: the first-order analytic propagation and the Monte Carlo of this package
against the exact behaviour of the pipeline's non-linear fit with model selection (under-coverage
from a biased or mis-selected model shows here), with the source magnitudes as assumed. It
does not test whether those magnitudes are right for a real camera; the full image chain is
not rerun (documented choice of issue #18).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..kinetics.fitting import fit_tac
from .curvefit import noise_sigma_mbq
from .inputs import FITTED_MODELS, OrganChain, model_selection_relative_sd
from .propagate import analytic_relative_variances, monte_carlo
from .sources import UncertaintySettings

__all__ = ["OrganTemplate", "sample_patient_templates", "run_coverage", "main"]

#: Lu-177 decay constant, 1/h (half-life 159.53 h, the kinetics stage's value).
LU177_LAMBDA_PER_H = math.log(2.0) / 159.528


@dataclass(frozen=True)
class OrganTemplate:
    """One organ of the simulated patient.

    Attributes
    ----------
    name : str
    true_activity_mbq : tuple of float
        True organ activity at each time point, MBq.
    true_tia_mbq_h : float
    k_gy_per_mbq_h : float
        Absorbed dose per TIA (the S-value of the organ), Gy/(MBq*h).
    segmentation_relative_sd : float
    registration_relative_sd : tuple of float
        Per time point.
    recovery_coefficient : float
        As-imaged recovery ``RC`` (used by scenario ``pvc`` only).
    """

    name: str
    true_activity_mbq: tuple
    true_tia_mbq_h: float
    k_gy_per_mbq_h: float
    segmentation_relative_sd: float
    registration_relative_sd: tuple
    recovery_coefficient: float = 1.0


def sample_patient_templates(time_h=(1.0, 4.0, 24.0, 48.0, 168.0), injected_mbq: float = 7400.0) -> dict:
    """Kidneys and liver of the sample patient (Lu-177, standard preset).

    True kinetics: ``sample_data.kinetics.COMPARTMENTS``. ``k`` (Gy per MBq*h), the
    segmentation and per-time-point registration SDs and the recovery coefficients are those
    measured by this stage and the kinetics stage on the standard sample patient (its dose run
    and README: kidney RC 0.76, liver 0.99); the reference time point (24 h) has no registration
    error.
    """
    from sample_data.kinetics import compartments_for
    from sample_data.kinetics import evaluate as true_eval
    from sample_data.kinetics import integrate as true_int

    comps = compartments_for("Lu-177")
    t = np.asarray(time_h, float)
    measured = {  # name: (k Gy/(MBq h), segmentation SD, registration SD per non-reference tp, RC)
        "kidney_left": (3.57263 / 5025.4, 0.0203, 0.0687, 0.76),
        "kidney_right": (3.09448 / 4316.4, 0.0184, 0.0615, 0.77),
        "liver": (1.55309 / 28291.0, 0.0176, 0.0178, 0.99),
    }
    out = {}
    for name, (k, seg, reg, rc) in measured.items():
        c = comps[name]
        act = injected_mbq * true_eval(c.model, c.parameters, t, LU177_LAMBDA_PER_H)
        tia = injected_mbq * true_int(c.model, c.parameters, LU177_LAMBDA_PER_H)
        regs = tuple(0.0 if abs(ti - 24.0) < 1e-9 else reg for ti in t)
        out[name] = OrganTemplate(name, tuple(float(v) for v in act), float(tia), k, seg, regs, rc)
    return out


def _realisation(r: int, templates: dict, time_h, settings: UncertaintySettings, scenario: str, seed: int,
                 mc_draws: int) -> dict:
    rng = np.random.default_rng([seed, r])
    t = np.asarray(time_h, float)
    z_cal, z_psf, z_s, z_rho = rng.standard_normal(4)
    cal = 1.0 / (1.0 + settings.calibration_relative_sd * z_cal)
    s_err = (1.0 + settings.s_value_relative_sd * z_s) / (1.0 + settings.density_relative_sd * z_rho)
    chains, truth = [], {}
    for name, tpl in templates.items():
        true_a = np.asarray(tpl.true_activity_mbq, float)
        rc = tpl.recovery_coefficient if scenario == "pvc" else 1.0
        imaged = rc * true_a
        sigma = noise_sigma_mbq(imaged, "relative", settings.activity_relative_sd)
        y = (imaged * (1.0 + np.asarray(tpl.registration_relative_sd) * rng.standard_normal(t.size))
             + sigma * rng.standard_normal(t.size)) * cal
        if scenario == "pvc":
            rc_est = 1.0 - (1.0 - rc) * (1.0 + settings.psf_fwhm_relative_sd * z_psf)
            y = y / rc_est
        seg = 1.0 + tpl.segmentation_relative_sd * rng.standard_normal()
        fit = fit_tac(t, y, LU177_LAMBDA_PER_H)
        params = ()
        if fit.method in FITTED_MODELS and fit.chosen is not None:
            params = tuple(float(v) for v in fit.chosen.params)
        dose_hat = tpl.k_gy_per_mbq_h * fit.tia_mbq_h * s_err * seg
        sig_fit = noise_sigma_mbq(y, "relative", settings.activity_relative_sd)
        chains.append(OrganChain(
            name=name, label=len(chains) + 1, dose_gy=dose_hat, mass_g=1.0, tia_mbq_h=fit.tia_mbq_h,
            tia_fit_relative_sd=(fit.tia_sd_mbq_h / fit.tia_mbq_h) if fit.tia_mbq_h > 0 else 0.0,
            method=fit.method, params=params, time_h=tuple(t), activity_mbq=tuple(y), sigma_mbq=tuple(sig_fit),
            lambda_phys_per_h=LU177_LAMBDA_PER_H,
            recovery_relative_sensitivity=(1.0 - rc) / rc if scenario == "pvc" else 0.0,
            segmentation_relative_sd=tpl.segmentation_relative_sd,
            registration_relative_sd=tpl.registration_relative_sd,
            noise_model=("fit_error_model", settings.activity_relative_sd, 0.02, None),
            model_selection_relative_sd=(model_selection_relative_sd(fit.candidates, fit.tia_mbq_h)
                                         if settings.model_selection else 0.0)))
        truth[name] = tpl.k_gy_per_mbq_h * tpl.true_tia_mbq_h
    mc = monte_carlo(chains, settings, n_draws=mc_draws, seed=seed + 7919 * (r + 1))
    out = {}
    for c in chains:
        sd = c.dose_gy * math.sqrt(sum(analytic_relative_variances(c, settings).values()))
        q_lo, q_hi = np.percentile(mc["doses"][c.name], [2.5, 97.5])
        lo_mc, hi_mc = 2.0 * c.dose_gy - q_hi, 2.0 * c.dose_gy - q_lo  # the stage's (pivotal) interval
        d = truth[c.name]
        out[c.name] = {"truth_gy": d, "estimate_gy": c.dose_gy, "method": c.method,
                       "analytic": bool(abs(d - c.dose_gy) <= 1.959964 * sd),
                       "mc": bool(lo_mc <= d <= hi_mc), "z": (c.dose_gy - d) / sd if sd > 0 else float("nan")}
    return out


def run_coverage(n_realisations: int = 200, *, settings: UncertaintySettings = UncertaintySettings(),
                 scenario: str = "as_imaged", seed: int = 18, mc_draws: int = 1000,
                 time_h=(1.0, 4.0, 24.0, 48.0, 168.0)) -> dict:
    """Fraction of realisations whose 95 % interval (analytic, Monte Carlo) holds the truth, per organ."""
    if scenario not in ("as_imaged", "pvc"):
        raise ValueError("scenario must be as_imaged or pvc")
    templates = sample_patient_templates(time_h)
    rows = [_realisation(r, templates, time_h, settings, scenario, seed, mc_draws) for r in range(n_realisations)]
    out = {"scenario": scenario, "realisations": n_realisations, "seed": seed, "mc_draws": mc_draws, "organs": {}}
    for name in templates:
        z = np.array([row[name]["z"] for row in rows])
        methods = [row[name]["method"] for row in rows]
        out["organs"][name] = {
            "analytic_coverage": float(np.mean([row[name]["analytic"] for row in rows])),
            "mc_coverage": float(np.mean([row[name]["mc"] for row in rows])),
            "mean_z": float(np.nanmean(z)), "sd_z": float(np.nanstd(z, ddof=1)),
            "chosen_models": {m: methods.count(m) for m in sorted(set(methods))},
        }
    return out


def main(argv=None) -> int:
    """``python -m pipeline.uncertainty.coverage [N] [as_imaged|pvc]``: print the coverage table."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    n = int(args[0]) if args else 200
    scenario = args[1] if len(args) > 1 else "as_imaged"
    res = run_coverage(n, scenario=scenario)
    print(f"scenario {res['scenario']}, {res['realisations']} realisations, MC {res['mc_draws']} draws each")
    for name, o in res["organs"].items():
        print(f"{name:13s} analytic {100 * o['analytic_coverage']:5.1f} %  MC {100 * o['mc_coverage']:5.1f} %  "
              f"z mean {o['mean_z']:+.2f} sd {o['sd_z']:.2f}  models {o['chosen_models']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
