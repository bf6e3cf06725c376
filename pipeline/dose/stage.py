"""The dose stage as one function on in-memory data: TIA, CT, labels -> dose maps and tables.

Grids: the TIA map (and so the dose map ``dose``) lives on the dose grid (the
reference SPECT grid): the mean dose of each SPECT voxel. CT and labels live on
the CT grid, and so does ``dose_on_ct``, from which organ statistics and DVHs
are taken (organ boundaries of the segmentation, masses of the CT). With
``organ_grid="ct"`` (default) the CT voxels in the box around the organs get the
organ-grid dose of :mod:`pipeline.dose.organgrid` (electrons on the CT grid from
the SPECT voxels' activity placed by the label map, photons from the dose grid),
which makes organ doses independent of the SPECT voxel size; elsewhere (and
everywhere with ``organ_grid="dose"``) the dose-grid map is resampled
trilinearly. The marrow VOI concentration is the mean of the TIA map resampled
trilinearly onto the VOI.

Work that would not change a result (beyond float rounding) is skipped: only the labelled part of the
CT is resampled (with a margin wide enough for the anti-aliasing), the organ
voxels are found in one sort of the label map, and an integer CT takes its
densities from a table. Dose-rate maps (Gy/h) at the time points reuse the
dose-grid density and the same dose function (:mod:`pipeline.dose.doserate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
from .medium import DoseGridMedium, density_g_per_ml_from_hu, medium_on_dose_grid, sub_grid
from .organs import OrganDose, cumulative_dvh_of_values, label_voxel_indices, organ_dose_table
from .photon_stage import BODY_LABEL, labels_on_grid, photon_transport_record, transport_photon_dose
from .photon_transport import PhotonTransportSettings
from .planning import KIDNEY_LABELS, plan_from_doses
from .radiobiology import LQParameters, organ_bed_rows

__all__ = ["DoseSettings", "DoseResult", "DoseGridMedium", "compute_dose", "medium_on_dose_grid",
           "absorbed_dose_map_gy", "density_g_per_ml_from_hu", "KIDNEY_LABELS", "MARROW_LABEL"]

MARROW_LABEL = 5


@dataclass(frozen=True)
class DoseSettings:
    """Choices and assumptions of the dose stage (all reported in the outputs).

    Attributes
    ----------
    method : {"convolution", "local"}
        Voxel S-value convolution, or local deposition of the electron energy.
    include_photons : bool
        Add the photon part (by ``photon_method``, with either method: local deposition
        never puts photon energy on the spot). ``False`` leaves photons out (said in the
        assumptions).
    photon_method : {"kernel", "transport"}
        ``"transport"`` (the default of ``spectdose dose`` and the workflow): photon Monte
        Carlo in the patient's densities and media (:mod:`pipeline.dose.photon_transport`),
        added in Gy to the density-corrected electron dose; the S-value cube given to
        :func:`compute_dose` must then hold the electrons only, and ``decay`` is needed.
        ``"kernel"`` (the default of this class, so that library callers that pass the
        electron + photon cube keep their meaning): the photon voxel S-values in water
        (convolution, density corrected like the electrons; cut at the cube's extent).
    photon_transport : PhotonTransportSettings
        Histories, stopping rule and seed of the photon Monte Carlo.
    organ_grid : {"ct", "dose"}
        ``"ct"``: the dose at the organs is computed on the CT grid
        (:mod:`pipeline.dose.organgrid`: electrons there, photons from the dose
        grid), so organ doses do not depend on the SPECT voxel size; ``"dose"``:
        the dose-grid map resampled trilinearly onto the CT (organ edges lose
        5-12 % at 4.8 mm).
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
    photon_method: str = "kernel"
    photon_transport: PhotonTransportSettings = field(default_factory=PhotonTransportSettings)
    organ_grid: str = "ct"
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

    @property
    def transports_photons(self) -> bool:
        """Photons included and computed by the photon Monte Carlo."""
        if self.photon_method not in ("transport", "kernel"):
            raise ValueError(f"photon_method must be 'transport' or 'kernel', got {self.photon_method!r}")
        return self.include_photons and self.photon_method == "transport"


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


def medium_dose_gy(tia_mbq_s: np.ndarray, voxel_volume_ml: float, *, settings: DoseSettings,
                   svalues_mgy_per_mbq_s: np.ndarray | None, kernel_density_g_per_ml: float,
                   electron_energy_mev: float, photon_svalues_mgy_per_mbq_s: np.ndarray | None = None,
                   workers: int | None = None) -> np.ndarray:
    """Absorbed dose (Gy) in the kernel's homogeneous medium, before the density correction.

    Parameters
    ----------
    tia_mbq_s : numpy.ndarray, shape (I, J, K)
        Decays per voxel, MBq*s.
    voxel_volume_ml : float
    settings : DoseSettings
        ``method`` and ``include_photons``.
    svalues_mgy_per_mbq_s : numpy.ndarray or None
        Voxel S-value cube (method "convolution"; electrons, plus photons when included).
    kernel_density_g_per_ml : float
        Density of the kernel's medium.
    electron_energy_mev : float
        Electron energy emitted per decay, MeV (method "local").
    photon_svalues_mgy_per_mbq_s : numpy.ndarray or None
        Photon voxel S-value cube: method "local" with ``include_photons`` and
        ``photon_method`` "kernel" convolves the photon part with it (photons are never
        deposited on the spot). With ``photon_method`` "transport" the photons are not
        part of this dose (:func:`pipeline.dose.photon_stage.transport_photon_dose`).
    workers : int, optional
        FFT threads.
    """
    if settings.method == "convolution":
        if svalues_mgy_per_mbq_s is None:
            raise ValueError("convolution needs a voxel S-value cube")
        return convolution_dose_gy(tia_mbq_s, svalues_mgy_per_mbq_s, workers=workers)
    if settings.method == "local":
        dose = local_deposition_dose_gy(tia_mbq_s, electron_energy_mev, voxel_volume_ml, kernel_density_g_per_ml)
        if settings.include_photons and not settings.transports_photons:
            if photon_svalues_mgy_per_mbq_s is None:
                raise ValueError("local deposition with photons needs the photon S-value cube: photons "
                                 "travel centimetres and are never deposited on the spot")
            dose += convolution_dose_gy(tia_mbq_s, photon_svalues_mgy_per_mbq_s, workers=workers)
        return dose
    raise ValueError(f"unknown dose method {settings.method!r}")


def absorbed_dose_map_gy(tia_mbq_h_per_ml: np.ndarray, voxel_volume_ml: float, medium: DoseGridMedium, *,
                         settings: DoseSettings, svalues_mgy_per_mbq_s: np.ndarray | None,
                         kernel_density_g_per_ml: float, electron_energy_mev: float, photon_energy_mev: float = 0.0,
                         photon_svalues_mgy_per_mbq_s: np.ndarray | None = None,
                         workers: int | None = None, decay=None, voxel_mm=None) -> np.ndarray:
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
    electron_energy_mev : float
        Electron energy per decay, MeV (method "local").
    photon_energy_mev : float
        Photon energy per decay, MeV: unused by the dose (kept for callers that pass the
        decay data whole); method "local" takes the photons from ``photon_svalues_mgy_per_mbq_s``.
    photon_svalues_mgy_per_mbq_s : numpy.ndarray or None
        Photon S-value cube for method "local" with ``include_photons`` (photon_method "kernel").
    workers : int, optional
        FFT threads.
    decay : kernels.decay.DecayData, optional
        Photon lines, for ``photon_method`` "transport".
    voxel_mm : sequence of 3 float, optional
        Voxel sides of the grid, mm, for ``photon_method`` "transport".

    Returns
    -------
    numpy.ndarray, shape (I, J, K), float64
    """
    tia_s = tia_mbq_s_per_voxel(tia_mbq_h_per_ml, voxel_volume_ml)
    dose_medium = medium_dose_gy(tia_s, voxel_volume_ml, settings=settings,
                                 svalues_mgy_per_mbq_s=svalues_mgy_per_mbq_s,
                                 kernel_density_g_per_ml=kernel_density_g_per_ml,
                                 electron_energy_mev=electron_energy_mev,
                                 photon_svalues_mgy_per_mbq_s=photon_svalues_mgy_per_mbq_s, workers=workers)
    dose = density_corrected_dose_gy(dose_medium, medium.density_g_per_ml, medium.body,
                                     kernel_density_g_per_ml, settings.min_density_g_per_ml)
    if settings.transports_photons:
        dose += transport_photon_dose(tia_s, medium, voxel_mm, decay, settings).dose_gy
    return dose


def compute_dose(tia: Image, ct: Image, labels: Image, names: dict[int, str], *, electron_energy_mev: float,
                 photon_energy_mev: float, injected_activity_mbq: float | None,
                 svalues_mgy_per_mbq_s: np.ndarray | None = None, kernel_density_g_per_ml: float = 1.0,
                 fits: dict | None = None, decay_constant_per_h: float | None = None,
                 density_ct: np.ndarray | None = None, settings: DoseSettings = DoseSettings(),
                 workers: int | None = None, activity_bq_per_ml: dict | None = None,
                 marrow_voi_tia_mbq_h_per_ml: float | None = None,
                 photon_svalues_mgy_per_mbq_s: np.ndarray | None = None,
                 near_electron=None, decay=None) -> DoseResult:
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
    photon_svalues_mgy_per_mbq_s : numpy.ndarray, optional
        Photon voxel S-values, for method "local" with photons.
    near_electron : pipeline.dose.organgrid.NearElectronKernels, optional
        Truncated electron S-values at the dose-grid and CT voxel sizes; needed with
        ``settings.organ_grid == "ct"`` (:func:`pipeline.dose.organgrid.near_electron_kernels`).
    decay : kernels.decay.DecayData, optional
        The nuclide's photon lines; needed with photons by ``photon_method`` "transport"
        (then ``svalues_mgy_per_mbq_s`` must be the electron cube only).
    """
    from .doserate import dose_rate_gy_per_h
    from .plausibility import energy_balance

    if tia.unit != "MBq*h/mL":
        raise ValueError(f"TIA map must be in MBq*h/mL, got {tia.unit!r}")
    if not labels.same_grid(ct):
        raise ValueError("the label map must be on the CT grid")
    if settings.organ_grid not in ("ct", "dose"):
        raise ValueError(f"organ_grid must be 'ct' or 'dose', got {settings.organ_grid!r}")
    if settings.organ_grid == "ct" and near_electron is None:
        raise ValueError("organ_grid 'ct' needs the truncated electron S-values (near_electron)")
    rho_ct = density_g_per_ml_from_hu(ct.array) if density_ct is None else np.asarray(density_ct, float)
    inside = labels.array > 0
    medium = medium_on_dose_grid(ct, inside, tia, rho_ct)
    if settings.transports_photons and decay is None:
        raise ValueError("photon_method 'transport' needs the decay data (decay=)")
    dose_kw = dict(settings=settings, svalues_mgy_per_mbq_s=svalues_mgy_per_mbq_s,
                   kernel_density_g_per_ml=kernel_density_g_per_ml, electron_energy_mev=electron_energy_mev,
                   photon_svalues_mgy_per_mbq_s=photon_svalues_mgy_per_mbq_s, workers=workers)
    tia_s = tia_mbq_s_per_voxel(tia.array, tia.voxel_volume_ml)
    dose_medium = medium_dose_gy(tia_s, tia.voxel_volume_ml, **dose_kw)
    dose = density_corrected_dose_gy(dose_medium, medium.density_g_per_ml, medium.body, kernel_density_g_per_ml,
                                     settings.min_density_g_per_ml)
    voxels = label_voxel_indices(labels.array, set(names) | {MARROW_LABEL})
    photon = None
    if settings.transports_photons:
        regions = labels_on_grid(voxels, ct, tia, set(names) - {BODY_LABEL})
        photon = transport_photon_dose(tia_s, medium, tia.voxel_size_mm, decay, settings, regions, other_dose_gy=dose)
        dose += photon.dose_gy
    dose_img = tia.with_array(dose.astype(np.float32), unit="Gy")
    fine = None
    if settings.organ_grid == "ct":
        from .organgrid import organ_grid_dose

        if settings.method == "local":
            near_coarse = local_deposition_dose_gy(tia_s, electron_energy_mev, tia.voxel_volume_ml,
                                                   kernel_density_g_per_ml)
        else:
            near_coarse = convolution_dose_gy(tia_s, near_electron.coarse_mgy_per_mbq_s, workers=workers)
        far = dose_medium - near_coarse
        del near_coarse
        fine = organ_grid_dose(tia, ct, labels.array, rho_ct, far, near_electron, method=settings.method,
                               electron_energy_mev=electron_energy_mev,
                               kernel_density_g_per_ml=kernel_density_g_per_ml,
                               min_density_g_per_ml=settings.min_density_g_per_ml, workers=workers,
                               photon_gy=None if photon is None else photon.dose_gy)
        del far
    del dose_medium, tia_s
    dose_kw.update(photon_energy_mev=photon_energy_mev, decay=decay, voxel_mm=tia.voxel_size_mm)
    if photon is not None:
        # dose-rate maps: the absorbed dose's histories and seeds, so that they stay linear in the activity
        fixed = replace(settings.photon_transport, target_rel_sd=0.0, max_histories=photon.histories)
        dose_kw["settings"] = replace(settings, photon_transport=fixed)

    rates = {}
    for tp, (activity, time_h) in (activity_bq_per_ml or {}).items():
        if not activity.same_grid(tia):
            raise ValueError(f"activity map of {tp} is not on the dose grid")
        rate = dose_rate_gy_per_h(activity.array, tia.voxel_volume_ml, medium, **dose_kw)
        rates[tp] = (tia.with_array(rate.astype(np.float32), unit="Gy/h"), float(time_h))

    # dose on the CT grid: zero outside the labels, so only the labelled box is resampled
    dose_ct_arr = np.zeros(ct.shape, np.float32, order=voxels.order)
    box = bounding_box(inside)
    if box is not None:
        sub = resample_to(dose_img, sub_grid(ct, box), "linear", default_value=0.0)
        dose_ct_arr[box] = np.where(inside[box], sub.array, 0.0)
    if fine is not None:
        view = dose_ct_arr[fine.box]
        view[fine.targets] = fine.dose_gy[fine.targets]
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
        c_map = float(resample_to(tia, sub_grid(ct, mbox), "linear").array[voi[mbox]].mean())
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

    bed_rows = organ_bed_rows(organs, fits or {}, decay_constant_per_h, settings.lq_for)
    planning = plan_from_doses(organs, marrow, bed_rows, injected_gbq, settings)
    assumptions = {
        "method": settings.method,
        "include_photons": settings.include_photons,
        "photon_method": settings.photon_method if settings.include_photons else None,
        "photons": ("photon Monte Carlo in the dose grid's CT densities and media (vacuum outside the body; "
                    "photoelectric, Compton (Klein-Nishina); kerma approximation), in Gy, added to the "
                    "density-corrected electron dose; organ grid: sampled trilinearly at the CT voxels"
                    if settings.transports_photons else
                    "photon voxel S-values (water, cube extent) convolved with the TIA map, density corrected"
                    if settings.include_photons else
                    "left out: the doses hold the electron energy only (include_photons false)"),
        "electrons": ("deposited in the voxel of the decay (local deposition)" if settings.method == "local"
                      else "voxel S-value convolution"),
        "kernel_medium_density_g_per_ml": kernel_density_g_per_ml,
        "density_correction": "dose x rho_medium / rho_local; rho floor "
                              f"{settings.min_density_g_per_ml} g/mL; zero outside the body",
        "hu_to_density": "Schneider et al. 2000 (pipeline.segment.density)" if density_ct is None else "given",
        "organ_statistics_grid": "CT grid",
        "dose_map_grids": {
            "dose.nii.gz": "dose grid (reference SPECT): mean dose of each SPECT voxel",
            "dose_ct.nii.gz": ("CT grid: inside the organs' box the organ-grid dose (electrons on the CT grid, "
                               "photons from the dose grid), elsewhere the dose-grid map resampled trilinearly"
                               if fine is not None else "CT grid: the dose-grid map resampled trilinearly"),
        },
        "organ_grid": ({"setting": "ct", **fine.info} if fine is not None else "dose" if settings.organ_grid == "dose"
                       else "ct not applied (no organ labels, or CT axes oblique to the dose grid): "
                            "the dose-grid map resampled trilinearly"),
        "sex": settings.sex,
    }
    if rates:
        assumptions["dose_rate"] = ("Gy/h from the activity at each time point, same kernels and density "
                                    "correction as the absorbed dose")
    balance = energy_balance(dose, medium.density_g_per_ml, tia.array, tia.voxel_volume_ml,
                             electron_energy_mev, photon_energy_mev, settings.min_density_g_per_ml)
    if photon is not None:
        record = photon_transport_record(photon, organs, voxels, tia, ct, rho_ct, settings, fine, medium)
        assumptions["photon_transport"] = record
        balance["photon_transport"] = {k: record[k] for k in ("energy_emitted_j", "energy_deposited_j",
                                                              "energy_escaped_j", "escaped_fraction",
                                                              "conservation_error", "histories")}
    return DoseResult(dose_img, dose_ct, organs, edges, dvh, marrow, bed_rows, planning, assumptions, rates,
                      balance)
