"""The dose stage as one function on in-memory data: TIA, CT, labels -> dose maps and tables.

Grids: the TIA map (and so the dose map) lives on the dose grid (the
reference SPECT grid); CT and labels on the CT grid. Organ statistics and DVHs
are evaluated on the CT grid, with the dose resampled (trilinear) onto it,
so that organ boundaries are those of the segmentation and masses those of
the CT. The marrow VOI concentration is the mean of the TIA map resampled the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..grid import resample_to
from ..image import Image
from .dosemap import (
    convolution_dose_gy,
    density_corrected_dose_gy,
    local_deposition_dose_gy,
    tia_mbq_s_per_voxel,
)
from .marrow import MarrowSettings, eanm_marrow_dose
from .organs import OrganDose, cumulative_dvh, organ_dose_table
from .planning import OrganLimit, plan_activity
from .radiobiology import LQParameters, bed_gy, eqd2_gy, lq_g_factor_per_gy

__all__ = ["DoseSettings", "DoseResult", "compute_dose", "KIDNEY_LABELS", "MARROW_LABEL"]

KIDNEY_LABELS = (1, 2)
MARROW_LABEL = 5


@dataclass(frozen=True)
class DoseSettings:
    """Choices and assumptions of the dose stage (all reported in the outputs).

    Attributes
    ----------
    method : {"convolution", "local"}
        Voxel S-value convolution, or local deposition of the electron energy.
    include_photons : bool
        Add the photon part (convolution: photon S-values; local: photon
        energy deposited locally, an upper bound).
    min_density_g_per_ml : float
        Density floor of the density correction (gas pockets).
    marrow : MarrowSettings
    sex : str
        ``"male"`` or ``"female"``: reference red-marrow mass.
    lq_default : LQParameters
        LQ parameters for organs without their own (kidney values by default).
    lq_by_organ : dict
        Organ name -> LQParameters.
    kidney_dose_limit_gy, kidney_bed_limit_gy, marrow_dose_limit_gy : float or None
        Limits for activity planning (physics notes section 4: 23 Gy, 40 Gy, 2 Gy).
    """

    method: str = "convolution"
    include_photons: bool = True
    min_density_g_per_ml: float = 0.1
    marrow: MarrowSettings = field(default_factory=MarrowSettings)
    sex: str = "male"
    lq_default: LQParameters = field(default_factory=LQParameters)
    lq_by_organ: dict = field(default_factory=dict)
    kidney_dose_limit_gy: float | None = 23.0
    kidney_bed_limit_gy: float | None = None
    marrow_dose_limit_gy: float | None = 2.0
    dvh_bins: int = 400

    def lq_for(self, organ: str) -> LQParameters:
        return self.lq_by_organ.get(organ, self.lq_default)


@dataclass(frozen=True, eq=False)
class DoseResult:
    """Everything the dose stage produces, in memory."""

    dose: Image
    dose_on_ct: Image
    organs: list[OrganDose]
    dvh_dose_gy: np.ndarray
    dvh_volume_fraction: dict
    marrow: dict
    bed: list[dict]
    planning: dict
    assumptions: dict


def _kidneys_mean_gy(organs: list[OrganDose]) -> tuple[float, float] | None:
    rows = [o for o in organs if o.label in KIDNEY_LABELS]
    if not rows:
        return None
    mass = sum(o.mass_g for o in rows)
    return sum(o.mean_gy * o.mass_g for o in rows) / mass, mass


def compute_dose(tia: Image, ct: Image, labels: Image, names: dict[int, str], *, electron_energy_mev: float,
                 photon_energy_mev: float, injected_activity_mbq: float | None,
                 svalues_mgy_per_mbq_s: np.ndarray | None = None, kernel_density_g_per_ml: float = 1.0,
                 fits: dict | None = None, decay_constant_per_h: float | None = None,
                 density_ct: np.ndarray | None = None, settings: DoseSettings = DoseSettings(),
                 workers: int | None = None) -> DoseResult:
    """Absorbed-dose maps, organ doses, DVHs, marrow dose, BED and activity planning.

    Parameters
    ----------
    tia : Image
        Time-integrated activity concentration, MBq*h/mL, on the dose grid.
    ct : Image
        CT in HU on the CT grid.
    labels : Image
        Label map on the CT grid (DESIGN.md ids).
    names : dict
        Label id -> structure name (the labels to report).
    electron_energy_mev, photon_energy_mev : float
        Energy emitted per decay (ICRP-107), for local deposition and marrow.
    injected_activity_mbq : float or None
        For Gy/GBq and planning.
    svalues_mgy_per_mbq_s : numpy.ndarray, optional
        Voxel S-value cube for the dose grid's voxel size (needed for "convolution").
    kernel_density_g_per_ml : float
        Density of the kernel's medium.
    fits : dict, optional
        Organ name -> ``{"model": str, "params": [...]}`` (kinetics stage); for BED.
    decay_constant_per_h : float, optional
        Physical decay constant, with ``fits``.
    density_ct : numpy.ndarray, optional
        Mass density (g/mL) on the CT grid; default from the HU with the
        Schneider 2000 calibration (:func:`pipeline.segment.density.hu_to_density_g_per_ml`).
    """
    from ..segment.density import hu_to_density_g_per_ml

    if tia.unit != "MBq*h/mL":
        raise ValueError(f"TIA map must be in MBq*h/mL, got {tia.unit!r}")
    if not labels.same_grid(ct):
        raise ValueError("the label map must be on the CT grid")
    rho_ct = hu_to_density_g_per_ml(ct.array) if density_ct is None else np.asarray(density_ct, float)
    rho_dose = resample_to(ct.with_array(rho_ct, unit="g/mL"), tia, "linear", default_value=0.0, antialias=True).array
    body_frac = resample_to(labels.with_array((labels.array > 0).astype(np.float64), unit="1"), tia, "linear",
                            antialias=True).array
    body = body_frac >= 0.5
    tia_s = tia_mbq_s_per_voxel(tia.array, tia.voxel_volume_ml)

    if settings.method == "convolution":
        if svalues_mgy_per_mbq_s is None:
            raise ValueError("convolution needs a voxel S-value cube")
        dose_medium = convolution_dose_gy(tia_s, svalues_mgy_per_mbq_s, workers=workers)
        dose = density_corrected_dose_gy(dose_medium, rho_dose, body, kernel_density_g_per_ml,
                                         settings.min_density_g_per_ml)
    elif settings.method == "local":
        energy = electron_energy_mev + (photon_energy_mev if settings.include_photons else 0.0)
        rho = np.maximum(rho_dose, settings.min_density_g_per_ml)
        dose = np.where(body, local_deposition_dose_gy(tia_s, energy, tia.voxel_volume_ml, rho), 0.0)
    else:
        raise ValueError(f"unknown dose method {settings.method!r}")
    dose_img = tia.with_array(dose.astype(np.float32), unit="Gy")
    dose_ct = resample_to(dose_img, ct, "linear", default_value=0.0)
    dose_ct_arr = np.where(labels.array > 0, dose_ct.array, 0.0).astype(np.float32)
    dose_ct = dose_ct.with_array(dose_ct_arr, unit="Gy")

    injected_gbq = injected_activity_mbq / 1000.0 if injected_activity_mbq else None
    present = {k: v for k, v in names.items() if np.any(labels.array == k)}
    organs = organ_dose_table(dose_ct_arr, labels.array, present, ct.voxel_volume_ml, rho_ct, injected_gbq)

    top = max([o.max_gy for o in organs] + [1e-9]) * 1.02
    edges = np.linspace(0.0, top, settings.dvh_bins + 1)
    dvh = {o.name: cumulative_dvh(dose_ct_arr, labels.array == o.label, edges) for o in organs}

    marrow = {}
    if np.any(labels.array == MARROW_LABEL):
        tia_ct = resample_to(tia, ct, "linear").array
        c_voi = float(tia_ct[labels.array == MARROW_LABEL].mean())
        marrow = eanm_marrow_dose(c_voi, electron_energy_mev, settings.sex, settings.marrow)
        voi = labels.array == MARROW_LABEL
        marrow["voxel_mean_dose_in_voi_gy"] = float(np.sum(dose_ct_arr[voi] * rho_ct[voi]) / np.sum(rho_ct[voi]))
        if injected_gbq:
            marrow["absorbed_dose_gy_per_gbq"] = marrow["absorbed_dose_gy"] / injected_gbq

    bed_rows = _bed_rows(organs, fits or {}, decay_constant_per_h, settings)
    planning = _planning(organs, marrow, bed_rows, injected_gbq, settings)
    assumptions = {
        "method": settings.method,
        "include_photons": settings.include_photons,
        "kernel_medium_density_g_per_ml": kernel_density_g_per_ml,
        "density_correction": "dose x rho_medium / rho_local; rho floor "
                              f"{settings.min_density_g_per_ml} g/mL; zero outside the body",
        "hu_to_density": "Schneider et al. 2000 (pipeline.segment.density)" if density_ct is None else "given",
        "organ_statistics_grid": "CT grid, dose resampled trilinearly",
        "sex": settings.sex,
    }
    return DoseResult(dose_img, dose_ct, organs, edges, dvh, marrow, bed_rows, planning, assumptions)


def _g_factor(fit: dict, decay_constant_per_h: float, mu: float) -> float:
    from ..kinetics.models import exponential_terms

    coeffs, rates = exponential_terms(fit["model"], fit["params"], decay_constant_per_h)
    return lq_g_factor_per_gy(np.real(coeffs), np.real(rates), mu)


def _bed_rows(organs, fits, decay_constant_per_h, settings) -> list[dict]:
    rows = []
    for o in organs:
        fit = fits.get(o.name)
        lq = settings.lq_for(o.name)
        if fit is None or decay_constant_per_h is None:
            continue
        g = _g_factor(fit, decay_constant_per_h, lq.repair_constant_per_h)
        bed = float(bed_gy(o.mean_gy, g, lq))
        rows.append({"label": o.label, "name": o.name, "mean_dose_gy": o.mean_gy, "model": fit["model"],
                     "g_factor": g, "alpha_beta_gy": lq.alpha_beta_gy,
                     "repair_half_time_h": lq.repair_half_time_h, "bed_gy": bed,
                     "eqd2_gy": float(eqd2_gy(bed, lq))})
    return rows


def _planning(organs, marrow, bed_rows, injected_gbq, settings) -> dict:
    if not injected_gbq:
        return {"status": "not available: no injected activity"}
    limits = []
    kid = _kidneys_mean_gy(organs)
    if kid is not None:
        g_rows = [r for r in bed_rows if r["label"] in KIDNEY_LABELS]
        g = float(np.mean([r["g_factor"] for r in g_rows])) if g_rows else 0.0
        bed_limit = settings.kidney_bed_limit_gy if g_rows else None
        limits.append(OrganLimit("kidneys", kid[0] / injected_gbq, settings.kidney_dose_limit_gy, bed_limit, g,
                                 settings.lq_for("kidneys")))
    if marrow and settings.marrow_dose_limit_gy is not None:
        limits.append(OrganLimit("red_marrow", marrow["absorbed_dose_gy"] / injected_gbq,
                                 settings.marrow_dose_limit_gy))
    if not limits:
        return {"status": "not available: no kidneys or marrow VOI in the label map"}
    plan = plan_activity(limits)
    plan["other_organs_at_planned_activity_gy"] = {
        o.name: o.mean_gy / injected_gbq * plan["activity_gbq"] for o in organs}
    plan["basis"] = ("absorbed dose scales linearly with administered activity at unchanged kinetics; "
                     "Gy/GBq from this study")
    return plan
