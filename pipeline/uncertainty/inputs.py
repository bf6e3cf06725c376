"""Read a patient's results into the organ-level dose chains the propagation works on.

Inputs (``results/<patient>/``): ``kinetics/fits.json`` (chosen model, parameters, data, error
model, partial-volume correction), ``dose/organ_doses.csv`` (mean dose, mass), ``dose/marrow.json``,
``dose/bed.csv`` (g factors, LQ parameters), ``dose/planning.json`` (limits),
``dose/dose_ct.nii.gz`` with ``segment/labels.nii.gz`` (boundary-shift and misregistration
sensitivities) and ``register/<tp>/qc.json`` (TRE, when reported).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..atomic import read_json
from ..errors import InputError
from .curvefit import noise_sigma_mbq
from .geometry import boundary_shift_relative_sd, registration_relative_sd
from .reduced import ReducedProtocol, prior_fits_path, reduced_protocol_of
from .sources import UncertaintySettings

__all__ = ["OrganChain", "PatientChains", "read_patient", "model_selection_relative_sd", "FITTED_MODELS"]

FITTED_MODELS = ("mono", "uptake_washout", "bi", "tri_uptake")


@dataclass(frozen=True)
class OrganChain:
    """One organ's dose chain ``D = k * TIA(A_1..A_N) * factors``.

    Attributes
    ----------
    name : str
    label : int
    dose_gy : float
        Central estimate (organ_doses.csv mean, or the EANM marrow dose).
    mass_g : float
    tia_mbq_h : float
        Central TIA of the organ fit.
    tia_fit_relative_sd : float
        From fits.json (used only when the method is not a fitted model).
    method : str
        Chosen model, or the kinetics fallback (model_free, hanscheid, ...).
    params : tuple of float
        Chosen parameters in model order (empty without a fitted model).
    time_h, activity_mbq, sigma_mbq : tuple of float
        The fitted data and the SD of each point (activity-noise source).
    lambda_phys_per_h : float
    recovery_relative_sensitivity : float
        d ln(correction) / d ln(FWHM) of the partial-volume correction (0 without one).
    segmentation_relative_sd : float
    model_selection_relative_sd : float
        Akaike-weighted relative spread of the candidates' TIA around the chosen one.
    registration_relative_sd : tuple of float
        Per time point (0 for the reference).
    noise_model : tuple
        (kind, relative SD, floor fraction, counts per MBq) of the activity-noise source, the
        arguments of :func:`.curvefit.noise_sigma_mbq` (also the weights of the Monte Carlo refits).
    uses_s_value : bool
        False for the EANM marrow dose (no S-value, no HU density).
    reduced : ReducedProtocol or None
        A reduced-protocol cycle's TIA formula and the earlier cycle's kinetics
        (:mod:`.reduced`); None for a fitted or fallback TIA.
    """

    name: str
    label: int
    dose_gy: float
    mass_g: float
    tia_mbq_h: float
    tia_fit_relative_sd: float
    method: str
    params: tuple
    time_h: tuple
    activity_mbq: tuple
    sigma_mbq: tuple
    lambda_phys_per_h: float
    recovery_relative_sensitivity: float
    segmentation_relative_sd: float
    registration_relative_sd: tuple
    noise_model: tuple = ("fit_error_model", 0.10, 0.02, None)
    model_selection_relative_sd: float = 0.0
    uses_s_value: bool = True
    reduced: ReducedProtocol | None = None

    @property
    def fitted(self) -> bool:
        return self.method in FITTED_MODELS and len(self.params) > 0


@dataclass(frozen=True)
class PatientChains:
    """Everything the propagation needs for one patient.

    Attributes
    ----------
    organs : tuple of OrganChain
    marrow : OrganChain or None
        The EANM red-marrow dose chain (the L2-L4 VOI fit scaled to marrow.json's dose).
    injected_gbq : float or None
    kidney_g_factor : float or None
        Mean LQ protraction factor of the kidneys (as the planning of the dose stage).
    lq : dict
        Organ name -> (alpha/beta Gy, repair half-time h) from bed.csv.
    g_factor : dict
        Organ name -> g from bed.csv.
    planning : dict
        dose/planning.json.
    tre_mm : dict
        Time point id -> TRE used (mm) and its source.
    prior_fits : str or None
        The earlier cycle's ``fits.json`` a reduced-protocol cycle's kinetics came from.
    """

    organs: tuple
    marrow: OrganChain | None
    injected_gbq: float | None
    lq: dict
    g_factor: dict
    planning: dict
    tre_mm: dict
    prior_fits: str | None = None


def _csv_rows(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _error_model_numbers(fits: dict) -> tuple[float, float]:
    """(relative_sd, floor_fraction) of the kinetics error model, from its description."""
    text = str((fits.get("options") or {}).get("error_model", ""))
    m = re.search(r"sigma_i\s*=\s*([0-9.eE+-]+)\s*\*\s*max\(\|y_i\|,\s*([0-9.eE+-]+)", text)
    return (float(m.group(1)), float(m.group(2))) if m else (0.10, 0.02)


def _find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], (int, float)):
            return float(obj[key])
        for v in obj.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _tre_per_time_point(pdir: Path, tps: list[str], default_mm: float) -> dict:
    reference = None
    ref_file = pdir / "register" / "reference.json"
    if ref_file.is_file():
        reference = read_json(ref_file, "registration reference").get("reference_time_point")
    out = {}
    for tp in tps:
        if tp == reference:
            out[tp] = {"tre_mm": 0.0, "source": "reference time point (not registered)"}
            continue
        qc = pdir / "register" / tp / "qc.json"
        value = _find_key(read_json(qc, "registration QC"), "tre_mm") if qc.is_file() else None
        out[tp] = ({"tre_mm": value, "source": f"{qc.relative_to(pdir)} tre_mm"} if value is not None else
                   {"tre_mm": float(default_mm), "source": "default (registration QC reports no TRE)"})
    return out


def model_selection_relative_sd(candidates, chosen_tia_mbq_h: float) -> float:
    """``sqrt(sum_m w_m (TIA_m - TIA_chosen)^2) / TIA_chosen`` over the candidates with an Akaike weight.

    ``candidates``: dicts (``fits.json``) or objects with ``akaike_weight`` and ``tia_mbq_h``.
    """
    total, wsum = 0.0, 0.0
    for c in candidates or ():
        w = c.get("akaike_weight") if isinstance(c, dict) else getattr(c, "akaike_weight", None)
        tia = c.get("tia_mbq_h") if isinstance(c, dict) else getattr(c, "tia_mbq_h", None)
        if w is None or tia is None or not np.isfinite(tia) or not np.isfinite(w):
            continue
        total += float(w) * (float(tia) - chosen_tia_mbq_h) ** 2
        wsum += float(w)
    if wsum <= 0 or not chosen_tia_mbq_h > 0:
        return 0.0
    return float(np.sqrt(total / wsum) / chosen_tia_mbq_h)


def _recovery_sensitivity(organ_fit: dict) -> float:
    """(1 - RC) / RC of the applied partial-volume correction (RC = measured / corrected activity)."""
    corr = organ_fit.get("correction")
    rc = organ_fit.get("recovery_coefficient")
    factor = organ_fit.get("pvc_correction_factor")
    if factor is not None:  # voxel-level: corrected / measured per time point
        f = np.atleast_1d(np.asarray(factor, float))
        rc = float(1.0 / np.mean(f[f > 0])) if np.any(f > 0) else 1.0
    elif isinstance(rc, list):
        rc = float(np.mean(rc))
    if (corr in (None, "none") and factor is None) or rc is None or not rc > 0:
        return 0.0
    return float(abs(1.0 - rc) / rc)


def _load_grids(pdir: Path):
    import nibabel as nib

    dose_path, label_path = pdir / "dose" / "dose_ct.nii.gz", pdir / "segment" / "labels.nii.gz"
    for p in (dose_path, label_path):
        if not p.is_file():
            raise InputError(p, "not found (needed for the segmentation and registration sensitivities)")
    dose_img, lab_img = nib.load(str(dose_path)), nib.load(str(label_path))
    if dose_img.shape[:3] != lab_img.shape[:3] or not np.allclose(dose_img.affine, lab_img.affine, atol=1e-3):
        raise InputError(dose_path, f"not on the grid of {label_path} (shape {dose_img.shape} vs {lab_img.shape})")
    spacing = np.sqrt(np.sum(dose_img.affine[:3, :3] ** 2, axis=0))
    return (np.asarray(dose_img.dataobj, dtype=np.float32), np.asarray(lab_img.dataobj).astype(np.int32),
            spacing)


def _chain(name, label, fit, dose_gy, mass_g, settings, em, dose, labels, spacing, tre, uses_s_value=True,
           reduced=None):
    t = tuple(float(v) for v in fit.get("time_h", ()))
    y = np.asarray(fit.get("activity_mbq", ()), float)
    method = str(fit.get("method"))
    params = ()
    if method in FITTED_MODELS and fit.get("chosen_params"):
        from ..kinetics.models import get_model

        params = tuple(float(fit["chosen_params"][n]) for n in get_model(method).param_names)
    kind = settings.activity_noise
    rel = em[0] if kind == "fit_error_model" else settings.activity_relative_sd
    sigma = noise_sigma_mbq(y, kind, rel, em[1], settings.counts_per_mbq) if y.size else np.array([])
    mask = labels == int(label)
    if mask.any():
        seg = boundary_shift_relative_sd(dose, mask, spacing, settings.segmentation_boundary_shift_voxels
                                         * float(np.prod(spacing) ** (1 / 3)))["relative_sd"]
        cache = {}
        reg = []
        for tp in tre:
            v = tre[tp]["tre_mm"]
            if v not in cache:
                cache[v] = registration_relative_sd(dose, mask, spacing, v)
            reg.append(cache[v])
    else:
        seg, reg = 0.0, [0.0] * len(tre)
    return OrganChain(
        name=name, label=int(label), dose_gy=float(dose_gy), mass_g=float(mass_g),
        tia_mbq_h=float(fit.get("tia_mbq_h") or 0.0), tia_fit_relative_sd=float(fit.get("tia_relative_sd") or 0.0),
        method=method, params=params, time_h=t, activity_mbq=tuple(float(v) for v in y),
        sigma_mbq=tuple(float(v) for v in sigma), lambda_phys_per_h=float(fit.get("lambda_phys_per_h") or 0.0),
        recovery_relative_sensitivity=_recovery_sensitivity(fit), segmentation_relative_sd=float(seg),
        registration_relative_sd=tuple(float(v) for v in reg),
        noise_model=(kind, float(rel), float(em[1]), settings.counts_per_mbq), uses_s_value=uses_s_value,
        reduced=reduced,
        model_selection_relative_sd=(
            model_selection_relative_sd(fit.get("candidates"), float(fit.get("tia_mbq_h") or 0.0))
            if settings.model_selection else 0.0))


def _reduced_protocols(fits: dict, fits_path: Path, prior_fits: Path | None) -> tuple[dict, str | None]:
    """Organ name -> :class:`.reduced.ReducedProtocol` of a reduced-protocol cycle (empty otherwise),
    and the earlier cycle's ``fits.json`` used (None when not needed or not named)."""
    reduced = (fits.get("options") or {}).get("reduced_protocol") or {}
    if not reduced.get("applied"):
        return {}, None
    organs = fits.get("organs") or {}
    needs_prior = any(((o.get("single_time_point") or {}).get("method_used") in ("prior_cycle", "madsen"))
                      for o in organs.values())
    try:
        prior_path = prior_fits_path(fits, fits_path, prior_fits)
    except InputError:
        if needs_prior or prior_fits is not None:
            raise
        prior_path = None  # every organ by Hanscheid's formula: the earlier cycle only helps to check t/T_eff
    if prior_path is None and needs_prior:
        raise InputError(fits_path, "a reduced-protocol cycle whose TIA used an earlier cycle, but it names no "
                                    "earlier fits.json (options.reduced_protocol.prior_fits): pass --prior-fits")
    prior = read_json(prior_path, "earlier cycle's kinetics fits") if prior_path is not None else None
    out = {}
    for name, organ in organs.items():
        red = reduced_protocol_of(name, organ, prior, prior_path, fits_path)
        if red is not None:
            out[name] = red
    return out, None if prior_path is None else str(prior_path)


def read_patient(patient_dir, settings: UncertaintySettings, prior_fits=None) -> PatientChains:
    """The organ chains of ``results/<patient>`` (see the module docstring for the files).

    ``prior_fits``: the earlier cycle's ``fits.json`` of a reduced-protocol cycle (default: the one
    its ``fits.json`` names, see :func:`.reduced.prior_fits_path`).
    """
    pdir = Path(patient_dir)
    fits_path = pdir / "kinetics" / "fits.json"
    fits = read_json(fits_path, "kinetics fits")
    reduced, prior_used = _reduced_protocols(fits, fits_path, None if prior_fits is None else Path(prior_fits))
    rows = _csv_rows(pdir / "dose" / "organ_doses.csv", "organ dose table")
    bed_rows = _csv_rows(pdir / "dose" / "bed.csv", "BED table") if (pdir / "dose" / "bed.csv").is_file() else []
    planning = read_json(pdir / "dose" / "planning.json", "planning")
    marrow_path = pdir / "dose" / "marrow.json"
    marrow_json = read_json(marrow_path, "marrow dose") if marrow_path.is_file() else {}
    em = _error_model_numbers(fits)
    tps = [tp["id"] for tp in fits.get("time_points", [])]
    tre = _tre_per_time_point(pdir, tps, settings.registration_tre_mm)
    dose, labels, spacing = _load_grids(pdir)
    organ_fits = fits.get("organs", {})
    organs = []
    for r in rows:
        name = r["name"]
        if name not in organ_fits:
            continue
        organs.append(_chain(name, int(r["label"]), organ_fits[name], float(r["mean_gy"]), float(r["mass_g"]),
                             settings, em, dose, labels, spacing, tre, reduced=reduced.get(name)))
    marrow = None
    voi = next((o for o in organs if o.name == "marrow_L2L4"), None)
    if marrow_json.get("absorbed_dose_gy") is not None and voi is not None:
        # the EANM dose is proportional to the VOI's TIA concentration: same fit, boundary and registration
        marrow = replace(voi, name="red_marrow", dose_gy=float(marrow_json["absorbed_dose_gy"]),
                         mass_g=float(marrow_json.get("red_marrow_mass_g") or 0.0), uses_s_value=False)
    injected = fits.get("injected_activity_mbq")
    lq = {b["name"]: (float(b["alpha_beta_gy"]), float(b["repair_half_time_h"])) for b in bed_rows}
    g = {b["name"]: float(b["g_factor"]) for b in bed_rows}
    return PatientChains(organs=tuple(organs), marrow=marrow,
                         injected_gbq=float(injected) / 1000.0 if injected else None,
                         lq=lq, g_factor=g, planning=planning, tre_mm=tre, prior_fits=prior_used)
