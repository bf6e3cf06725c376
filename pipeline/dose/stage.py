"""The dose stage as one function on in-memory data: TIA, CT, labels -> dose maps and tables.

Grids: the TIA map (and so the dose map) lives on the dose grid (the
reference SPECT grid); CT and labels on the CT grid. Organ statistics and DVHs
are evaluated on the CT grid, with the dose resampled (trilinear) onto it,
so that organ boundaries are those of the segmentation and masses those of
the CT. The marrow VOI concentration is the mean of the TIA map resampled the
same way.

Work that would not change a result (beyond float rounding) is skipped: only the labelled part of the
CT is resampled (with a margin wide enough for the anti-aliasing), the organ
voxels are found in one sort of the label map, and an integer CT takes its
densities from a table. Dose-rate maps (Gy/h) at the time points reuse the
dose-grid density and the same dose function (:mod:`pipeline.dose.doserate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..grid import bounding_box, resample_to
from ..image import Image
from .dosemap import (
    convolution_dose_gy,
    density_corrected_dose_gy,
    local_deposition_dose_gy,
    tia_mbq_s_per_voxel,
)
from .marrow import MarrowSettings, eanm_marrow_dose
from .organs import OrganDose, cumulative_dvh_of_values, label_voxel_indices, organ_dose_table
from .planning import OrganLimit, plan_activity
from .radiobiology import LQParameters, bed_gy, eqd2_gy, lq_g_factor_per_gy

__all__ = ["DoseSettings", "DoseResult", "DoseGridMedium", "compute_dose", "medium_on_dose_grid",
           "absorbed_dose_map_gy", "density_g_per_ml_from_hu", "KIDNEY_LABELS", "MARROW_LABEL"]

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
    dose_rate: dict = field(default_factory=dict)
    """Time point id -> (Image of the dose rate in Gy/h on the dose grid, time in h after injection)."""
    energy_balance: dict = field(default_factory=dict)
    """Absorbed and emitted energy, J (:func:`pipeline.dose.plausibility.energy_balance`)."""


def _kidneys_mean_gy(organs: list[OrganDose]) -> tuple[float, float] | None:
    rows = [o for o in organs if o.label in KIDNEY_LABELS]
    if not rows:
        return None
    mass = sum(o.mass_g for o in rows)
    return sum(o.mean_gy * o.mass_g for o in rows) / mass, mass


def density_g_per_ml_from_hu(hu: np.ndarray) -> np.ndarray:
    """Schneider 2000 mass density (g/mL) of every CT voxel.

    Same values as :func:`pipeline.segment.density.hu_to_density_g_per_ml`: a CT
    stored as integers of at most 16 bits takes its densities from a table of that
    function over every representable integer HU (exact, and ~20x faster than
    evaluating the curve voxel by voxel on a whole CT).

    Parameters
    ----------
    hu : numpy.ndarray, shape (I, J, K)
        CT numbers, HU.

    Returns
    -------
    numpy.ndarray, shape (I, J, K), float64
    """
    from ..segment.density import hu_to_density_g_per_ml

    hu = np.asarray(hu)
    if hu.dtype.kind in "iu" and hu.dtype.itemsize <= 2:
        info = np.iinfo(hu.dtype)
        table = hu_to_density_g_per_ml(np.arange(info.min, info.max + 1, dtype=np.float64))
        return table[hu.astype(np.int32) - info.min]
    return hu_to_density_g_per_ml(hu)


def _sub_grid(image: Image, box: tuple[slice, slice, slice], values: np.ndarray | None = None,
              unit: str = "1") -> Image:
    """The box ``box`` of ``image``'s grid (same voxel-to-world map, shifted origin) holding
    ``values[box]`` (zeros when ``values`` is None: a target grid for resampling)."""
    affine = np.array(image.affine)
    affine[:3, 3] = image.index_to_world([b.start for b in box])
    array = np.zeros([b.stop - b.start for b in box], np.uint8) if values is None else values[box]
    return Image(array, affine, unit)


@dataclass(frozen=True, eq=False)
class DoseGridMedium:
    """The patient's matter as the dose grid sees it (from the CT and the label map).

    Attributes
    ----------
    density_g_per_ml : numpy.ndarray, shape (I, J, K)
        Mean mass density of each dose voxel (CT density averaged over the voxel:
        Gaussian anti-aliasing matched to the dose voxel, then trilinear sampling).
    body : numpy.ndarray of bool, shape (I, J, K)
        Dose voxels at least half inside the labelled patient.
    """

    density_g_per_ml: np.ndarray
    body: np.ndarray


def medium_on_dose_grid(ct: Image, labels_positive: np.ndarray, grid: Image, rho_ct: np.ndarray) -> DoseGridMedium:
    """Mean density and body mask on the dose grid ``grid`` from CT-grid density and labels.

    Parameters
    ----------
    ct : Image
        Provides the CT grid.
    labels_positive : numpy.ndarray of bool, shape of the CT
        Voxels inside the patient (label > 0).
    grid : Image
        The dose grid (values unused).
    rho_ct : numpy.ndarray, shape of the CT
        Mass density (g/mL) on the CT grid.

    Notes
    -----
    Only the dose voxels inside the body use the density, and the body mask is
    zero far from the labels, so both are resampled from the CT cropped to the
    labelled box plus a margin of three dose voxels and ten anti-aliasing sigmas.
    Inside the body this gives the full-CT values to float rounding: the
    recursive Gaussian's response decays exponentially, and a body voxel is at
    least two dose voxels plus ten sigmas from the edge of the box (checked next
    to a dense couch in the tests). On the standard sample patient the box is
    half of the CT.
    """
    from ..grid import block_average_sigma_mm

    sigma = block_average_sigma_mm(ct.voxel_size_mm, grid.voxel_size_mm)
    margin_mm = 3.0 * float(np.max(grid.voxel_size_mm)) + 10.0 * float(np.max(sigma))
    box = bounding_box(labels_positive, np.ceil(margin_mm / ct.voxel_size_mm).astype(int))
    if box is None:
        zeros = np.zeros(grid.shape)
        return DoseGridMedium(zeros, zeros.astype(bool))
    rho = resample_to(_sub_grid(ct, box, rho_ct, "g/mL"), grid, "linear", default_value=0.0, antialias=True).array
    body_frac = resample_to(_sub_grid(ct, box, labels_positive), grid, "linear", antialias=True).array
    return DoseGridMedium(rho, body_frac >= 0.5)


def absorbed_dose_map_gy(tia_mbq_h_per_ml: np.ndarray, voxel_volume_ml: float, medium: DoseGridMedium, *,
                         settings: DoseSettings, svalues_mgy_per_mbq_s: np.ndarray | None,
                         kernel_density_g_per_ml: float, electron_energy_mev: float, photon_energy_mev: float,
                         workers: int | None = None) -> np.ndarray:
    """Absorbed dose (Gy) on the dose grid from a TIA concentration map, density corrected.

    Linear in the TIA map: the dose-rate maps (:mod:`pipeline.dose.doserate`) use
    the same function.

    Parameters
    ----------
    tia_mbq_h_per_ml : numpy.ndarray, shape (I, J, K)
        Time-integrated activity concentration, MBq*h/mL.
    voxel_volume_ml : float
    medium : DoseGridMedium
        Density and body mask on the same grid.
    settings : DoseSettings
        ``method``, ``include_photons``, ``min_density_g_per_ml``.
    svalues_mgy_per_mbq_s : numpy.ndarray or None
        Voxel S-value cube (method "convolution").
    kernel_density_g_per_ml : float
        Density of the kernel's medium.
    electron_energy_mev, photon_energy_mev : float
        Energy per decay (method "local").
    workers : int, optional
        FFT threads.

    Returns
    -------
    numpy.ndarray, shape (I, J, K), float64
    """
    tia_s = tia_mbq_s_per_voxel(tia_mbq_h_per_ml, voxel_volume_ml)
    if settings.method == "convolution":
        if svalues_mgy_per_mbq_s is None:
            raise ValueError("convolution needs a voxel S-value cube")
        dose_medium = convolution_dose_gy(tia_s, svalues_mgy_per_mbq_s, workers=workers)
        return density_corrected_dose_gy(dose_medium, medium.density_g_per_ml, medium.body,
                                         kernel_density_g_per_ml, settings.min_density_g_per_ml)
    if settings.method == "local":
        energy = electron_energy_mev + (photon_energy_mev if settings.include_photons else 0.0)
        rho = np.maximum(medium.density_g_per_ml, settings.min_density_g_per_ml)
        return np.where(medium.body, local_deposition_dose_gy(tia_s, energy, voxel_volume_ml, rho), 0.0)
    raise ValueError(f"unknown dose method {settings.method!r}")


def compute_dose(tia: Image, ct: Image, labels: Image, names: dict[int, str], *, electron_energy_mev: float,
                 photon_energy_mev: float, injected_activity_mbq: float | None,
                 svalues_mgy_per_mbq_s: np.ndarray | None = None, kernel_density_g_per_ml: float = 1.0,
                 fits: dict | None = None, decay_constant_per_h: float | None = None,
                 density_ct: np.ndarray | None = None, settings: DoseSettings = DoseSettings(),
                 workers: int | None = None, activity_bq_per_ml: dict | None = None,
                 marrow_voi_tia_mbq_h_per_ml: float | None = None) -> DoseResult:
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
    workers : int, optional
        FFT threads.
    activity_bq_per_ml : dict, optional
        Time point id -> (Image of the activity concentration in Bq/mL on the
        dose grid, time in h after injection): dose-rate maps (Gy/h) are made
        for these (:func:`pipeline.dose.doserate.dose_rate_gy_per_h`).
    marrow_voi_tia_mbq_h_per_ml : float, optional
        Time-integrated activity concentration of the L2-L4 marrow VOI from the
        kinetics stage's organ-level fit (its TIA over its volume, MBq*h/mL; with
        the recovery or partial-volume correction applied there). When given, the
        EANM marrow dose uses it; otherwise the mean of the TIA map over the VOI.
        Both are reported.
    """
    from .doserate import dose_rate_gy_per_h
    from .plausibility import energy_balance

    if tia.unit != "MBq*h/mL":
        raise ValueError(f"TIA map must be in MBq*h/mL, got {tia.unit!r}")
    if not labels.same_grid(ct):
        raise ValueError("the label map must be on the CT grid")
    rho_ct = density_g_per_ml_from_hu(ct.array) if density_ct is None else np.asarray(density_ct, float)
    inside = labels.array > 0
    medium = medium_on_dose_grid(ct, inside, tia, rho_ct)
    dose_kw = dict(settings=settings, svalues_mgy_per_mbq_s=svalues_mgy_per_mbq_s,
                   kernel_density_g_per_ml=kernel_density_g_per_ml, electron_energy_mev=electron_energy_mev,
                   photon_energy_mev=photon_energy_mev, workers=workers)
    dose = absorbed_dose_map_gy(tia.array, tia.voxel_volume_ml, medium, **dose_kw)
    dose_img = tia.with_array(dose.astype(np.float32), unit="Gy")

    rates = {}
    for tp, (activity, time_h) in (activity_bq_per_ml or {}).items():
        if not activity.same_grid(tia):
            raise ValueError(f"activity map of {tp} is not on the dose grid")
        rate = dose_rate_gy_per_h(activity.array, tia.voxel_volume_ml, medium, **dose_kw)
        rates[tp] = (tia.with_array(rate.astype(np.float32), unit="Gy/h"), float(time_h))

    voxels = label_voxel_indices(labels.array, set(names) | {MARROW_LABEL})
    # dose on the CT grid: zero outside the labels, so only the labelled box is resampled
    dose_ct_arr = np.zeros(ct.shape, np.float32, order=voxels.order)
    box = bounding_box(inside)
    if box is not None:
        sub = resample_to(dose_img, _sub_grid(ct, box), "linear", default_value=0.0)
        dose_ct_arr[box] = np.where(inside[box], sub.array, 0.0)
    dose_ct = ct.with_array(dose_ct_arr, unit="Gy")

    injected_gbq = injected_activity_mbq / 1000.0 if injected_activity_mbq else None
    present = {k: v for k, v in names.items() if voxels.indices[k].size}
    organs = organ_dose_table(dose_ct_arr, labels.array, present, ct.voxel_volume_ml, rho_ct, injected_gbq,
                              voxels=voxels)

    top = max([o.max_gy for o in organs] + [1e-9]) * 1.02
    edges = np.linspace(0.0, top, settings.dvh_bins + 1)
    dvh = {o.name: cumulative_dvh_of_values(voxels.values(dose_ct_arr, o.label), edges) for o in organs}

    marrow = {}
    if voxels.indices[MARROW_LABEL].size:
        voi = labels.array == MARROW_LABEL
        mbox = bounding_box(voi)
        # the TIA sampled (trilinear) at the VOI's CT voxels, over the VOI's box only
        c_map = float(resample_to(tia, _sub_grid(ct, mbox), "linear").array[voi[mbox]].mean())
        c_voi = c_map if marrow_voi_tia_mbq_h_per_ml is None else float(marrow_voi_tia_mbq_h_per_ml)
        marrow = eanm_marrow_dose(c_voi, electron_energy_mev, settings.sex, settings.marrow)
        marrow["voi_tia_concentration_source"] = (
            "mean of the voxel TIA map over the VOI (no recovery correction)" if marrow_voi_tia_mbq_h_per_ml is None
            else "kinetics organ-level fit of the VOI (fits.json; recovery-corrected when asked there)")
        marrow["voxel_map_voi_tia_concentration_mbq_h_per_ml"] = c_map
        d_voi = voxels.values(dose_ct_arr, MARROW_LABEL)
        rho_voi = voxels.values(rho_ct, MARROW_LABEL)
        marrow["voxel_mean_dose_in_voi_gy"] = float(np.sum(d_voi * rho_voi) / np.sum(rho_voi))
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
    if rates:
        assumptions["dose_rate"] = ("Gy/h from the activity at each time point, same kernels and density "
                                    "correction as the absorbed dose")
    balance = energy_balance(dose, medium.density_g_per_ml, tia.array, tia.voxel_volume_ml,
                             electron_energy_mev, photon_energy_mev, settings.min_density_g_per_ml)
    return DoseResult(dose_img, dose_ct, organs, edges, dvh, marrow, bed_rows, planning, assumptions, rates,
                      balance)


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
