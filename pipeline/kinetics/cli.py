"""``spectdose kinetics``: organ time-activity curves, fits, TIA per organ and per voxel.

Reads ``REGISTER_DIR/<tp>/spect.nii.gz`` (Bq/mL, all on the dose grid) with
their sidecars (``time_point``, ``time_h``, ``radionuclide``,
``injected_activity_mbq``) and a label map (any grid; its vocabulary from the
JSON beside it, ``{"labels": {"1": "kidney_left", ...}}``). Writes into OUT
(atomically, as one folder):

- ``organ_tac.csv``: label, name, volume in the SPECT field of view, time point,
  time, activity (MBq) before and after the recovery correction (with ``--pvc``
  also the correction applied, the PSF FWHM and the automatic RC / GTM diagonal);
- ``fits.json``: every candidate model (parameters, SD, covariance, AICc, Akaike
  weight, effective half-lives), the chosen one, the model-free and
  single-time-point estimates, fallbacks and warnings, and the voxel-sum check;
- ``tac_<name>.png`` per label;
- ``tia.nii.gz`` (MBq*h/mL; with ``--pvc rbv|iy`` of the partial-volume corrected images, and
  ``tia_uncorrected.nii.gz`` beside it), ``tia_quality.nii.gz`` (relative RMS deviation of
  the voxel fit), ``tia_status.nii.gz`` (status codes), each with a sidecar.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, read_json, write_json, write_text
from ..cli import run_stage
from ..cli_checks import require_dir, require_file, require_output_dir
from ..errors import InputError
from ..imageio import make_sidecar, read_image, read_sidecar, write_image
from ..qc import Gate
from .fitting import ErrorModel
from .models import MODEL_NAMES
from .plausibility import kinetics_checks
from .reduced import REDUCED_MAX_SCANS, prior_from_fits_json
from .stage import KineticsOptions, compute_kinetics
from .voxel import STATUS_CODES

__all__ = ["build_parser", "main", "read_register_dir", "read_label_names"]


def _key_value(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spectdose kinetics", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--register-dir", required=True, type=Path,
                   help="folder with <tp>/spect.nii.gz (Bq/mL, registered) and sidecars")
    p.add_argument("--labels", required=True, type=Path, help="label map (NIfTI, any grid)")
    p.add_argument("--label-names", type=Path, default=None,
                   help="label vocabulary JSON (default: the JSON beside the label map)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--voxel-method", choices=("fit", "organ-shape"), default="fit",
                   help="voxel-wise fit, or the organ curve shape scaled by the voxel's activity (default fit)")
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES),
                   help="candidate models for the organ curves (default: all)")
    p.add_argument("--smooth-fwhm-mm", type=float, default=0.0,
                   help="Gaussian smoothing before the voxel computation, FWHM mm (default 0: none)")
    p.add_argument("--recovery", type=_key_value, action="append", default=[], metavar="NAME=RC",
                   help="recovery coefficient of a structure, e.g. marrow_L2L4=0.7 (repeatable)")
    p.add_argument("--population-teff-h", type=_key_value, action="append", default=[], metavar="NAME=H",
                   help="population effective half-life (h) of a structure for Madsen's single-time-point "
                        "formula (repeatable); without it a single time point uses Hanscheid's formula")
    p.add_argument("--relative-sd", type=float, default=ErrorModel.relative_sd,
                   help="relative SD of one organ activity measurement in the error model (default 0.10)")
    p.add_argument("--head", choices=("linear", "constant"), default="linear",
                   help="activity before the first scan in the model-free organ estimate: linear rise from 0 "
                        "(default) or constant")
    p.add_argument("--voxel-head", choices=("organ", "linear", "constant"), default="organ",
                   help="activity before the first scan in the voxel fits: the shape of the voxel's organ's "
                        "fitted curve (default), a linear rise from 0, or constant")
    p.add_argument("--tail", choices=("fitted", "physical"), default="fitted",
                   help="tail of the model-free organ estimate (default fitted)")
    p.add_argument("--n-tail", type=int, default=3, help="time points of the voxel tail fit (default 3)")
    p.add_argument("--occupancy", choices=("fractional", "nearest"), default="fractional",
                   help="labels on the SPECT grid: fractional occupancy (default) or nearest neighbour")
    p.add_argument("--pvc", choices=("none", "rc", "gtm", "rbv", "iy"), default="none",
                   help="automatic partial-volume correction from the labels and a Gaussian PSF. Organ level (the "
                        "voxel TIA map is not corrected): rc (recovery coefficient per label, spill-out only) or gtm "
                        "(geometric transfer matrix, Rousset 1998). Voxel level (every SPECT corrected before the "
                        "organ curves and the voxel fits, so the TIA map and the doses follow; the uncorrected map "
                        "is written as tia_uncorrected.nii.gz): rbv (region-based voxel-wise, Thomas 2011) or iy "
                        "(iterative Yang). Default none. --recovery wins for its structure's organ curve")
    p.add_argument("--psf-fwhm-mm", type=float, nargs="+", default=None, metavar="MM",
                   help="FWHM of the SPECT point-spread function, mm: one value (isotropic) or three along the "
                        "SPECT grid axes i, j, k (rbv, iy); required with --pvc")
    p.add_argument("--psf-source", default=None,
                   help="where the PSF FWHM comes from (e.g. 'sphere phantom 2026-01-10, MELP, OSEM 4x8 + RR'); "
                        "recorded in fits.json")
    p.add_argument("--reduced", choices=("none", "prior_cycle", "madsen", "haenscheid"), default="none",
                   help="a reduced protocol (1 or 2 scans, a later cycle of a course): organ TIA from the earlier "
                        "cycle's curve scaled to the scans (prior_cycle), Madsen 2018 with the earlier cycle's "
                        "effective rate (madsen), or Hanscheid 2018 (haenscheid); stated in fits.json")
    p.add_argument("--prior-fits", type=Path, default=None,
                   help="fits.json of the earlier full-protocol cycle (for --reduced prior_cycle and madsen)")
    return p


def read_label_names(path: Path) -> dict:
    """Label vocabulary ``{"labels": {"1": name}}`` or ``{"1": name}``; ``{}`` when absent."""
    if not path.exists():
        return {}
    data = read_json(path, "label vocabulary")
    if isinstance(data, dict) and isinstance(data.get("labels"), dict):
        data = data["labels"]
    out = {}
    if isinstance(data, dict):
        for k, v in data.items():
            try:
                out[int(k)] = str(v)
            except (TypeError, ValueError):
                continue
    return out


def read_register_dir(folder: Path):
    """Registered SPECT volumes sorted by time.

    Returns
    -------
    images : list of Image
    time_points : list of str
    times_h : numpy.ndarray
    nuclide : str
    injected_mbq : float or None
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "register folder not found")
    entries = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = sub / "spect.nii.gz"
        if not path.exists():
            continue
        side = read_sidecar(path)
        if "time_h" not in side:
            raise InputError(path, "sidecar has no time_h (hours after injection)")
        try:
            th = float(side["time_h"])
        except (TypeError, ValueError):
            raise InputError(path, f"sidecar time_h is not a number: {side['time_h']!r}") from None
        if not math.isfinite(th) or th < 0:
            raise InputError(path, f"time_h must be a finite time after injection (>= 0), got {th}")
        entries.append((th, side.get("time_point", sub.name), path, side))
    if not entries:
        raise InputError(folder, "no <time point>/spect.nii.gz found")
    entries.sort(key=lambda e: e[0])
    for a, b in zip(entries, entries[1:]):
        if b[0] <= a[0]:
            raise InputError(folder, f"time points {a[1]} and {b[1]} have the same time ({a[0]:g} h); "
                                     "times must be strictly increasing")
    nuclides = {e[3].get("radionuclide") for e in entries} - {None}
    if len(nuclides) != 1:
        raise InputError(folder, "the sidecars name no radionuclide" if not nuclides else
                         f"the sidecars name different radionuclides: {sorted(nuclides)}")
    injected = {e[3].get("injected_activity_mbq") for e in entries} - {None}
    images = []
    for th, tp, path, side in entries:
        img, _ = read_image(path, unit="Bq/mL")
        if img.unit not in ("Bq/mL", "Bq/ml"):
            raise InputError(path, f"expected activity concentration in Bq/mL, unit is {img.unit!r}")
        images.append(img)
    return (images, [str(e[1]) for e in entries], np.array([e[0] for e in entries]), nuclides.pop(),
            (float(injected.pop()) if len(injected) == 1 else None))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _run(args) -> int:
    from kernels.decay import load_decay

    from .plots import tac_figure

    require_dir(args.register_dir, "register folder")
    require_file(args.labels, "label map")
    if args.label_names is not None:
        require_file(args.label_names, "label vocabulary")
    require_output_dir(args.out)
    images, tps, times, nuclide, injected = read_register_dir(args.register_dir)
    decay = load_decay(nuclide)
    labels, _ = read_image(args.labels, unit="label")
    names_path = args.label_names or args.labels.with_name(
        args.labels.name[:-7] + ".json" if args.labels.name.endswith(".nii.gz") else args.labels.stem + ".json")
    names = read_label_names(Path(names_path))
    if args.label_names is not None and not names:
        raise InputError(args.label_names, "no label names found")
    if not 0 < args.relative_sd < 1:
        raise InputError(None, f"--relative-sd must be in (0, 1), got {args.relative_sd}")
    fwhm = args.psf_fwhm_mm
    if fwhm is not None and len(fwhm) not in (1, 3):
        raise InputError(None, f"--psf-fwhm-mm takes 1 or 3 values, got {len(fwhm)}")
    fwhm = None if fwhm is None else (fwhm[0] if len(fwhm) == 1 else tuple(fwhm))
    prior = None
    if args.prior_fits is not None:
        require_file(args.prior_fits, "earlier cycle's fits.json")
        prior = prior_from_fits_json(read_json(args.prior_fits), str(args.prior_fits))
    elif args.reduced in ("prior_cycle", "madsen"):
        raise InputError(None, f"--reduced {args.reduced} needs --prior-fits (the earlier cycle's fits.json)")
    if prior is not None and prior.radionuclide and prior.radionuclide != decay.nuclide:
        raise InputError(args.prior_fits, f"earlier cycle is {prior.radionuclide}, this cycle {decay.nuclide}")
    options = KineticsOptions(
        models=tuple(dict.fromkeys(args.models)), error_model=ErrorModel(relative_sd=args.relative_sd),
        head=args.head, voxel_head=args.voxel_head, tail=args.tail, voxel_method=args.voxel_method, n_tail=args.n_tail,
        smooth_fwhm_mm=args.smooth_fwhm_mm, occupancy=args.occupancy, recovery=dict(args.recovery),
        population_effective_half_life_h=dict(args.population_teff_h), pvc=args.pvc, psf_fwhm_mm=fwhm,
        psf_source=args.psf_source, reduced=args.reduced, prior=prior)
    res = compute_kinetics(images, times, labels, decay.decay_constant_per_h, label_names=names, options=options)
    gate = Gate(args.register_dir)
    gate.extend(kinetics_checks(res, injected, args.register_dir))
    gate.raise_on_fail()
    for line in gate.warnings:
        print(f"spectdose kinetics: warning: {line}", file=sys.stderr)

    patient = images[0].meta.get("patient_id") or Path(args.register_dir).resolve().parent.name
    rec = dict(options.recovery)
    sources = [f"{tp}/spect.nii.gz" for tp in tps]
    with atomic_dir(args.out) as tmp:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        pvc = res.partial_volume
        vp = res.voxel_pvc
        fwhm_txt = None if vp is None else "x".join(f"{v:g}" for v in vp.fwhm_mm)
        header = ["label", "name", "volume_ml", "time_point", "time_h", "activity_mbq",
                  "activity_uncorrected_mbq", "recovery_coefficient"]
        if pvc is not None or vp is not None:  # extra columns only with an automatic correction (default layout unchanged)
            header += ["correction", "psf_fwhm_mm", "pvc_recovery_coefficient"]
        w.writerow(header)
        for i, name in res.label_names.items():
            for n, tp in enumerate(tps):
                row = [i, name, f"{res.volume_ml[i]:.4f}", tp, f"{times[n]:.6g}",
                       f"{res.activity_mbq[i][n]:.6g}", f"{res.activity_uncorrected_mbq[i][n]:.6g}"]
                if vp is not None:  # factor measured / corrected at this time point
                    a, u = res.activity_mbq[i][n], res.activity_uncorrected_mbq[i][n]
                    row += [f"{u / a:.6g}" if a != 0 else "", res.correction[i], fwhm_txt, ""]
                elif pvc is None:
                    row.append(rec.get(name, 1.0))
                else:  # effective factor measured / corrected at this time point (constant unless gtm)
                    a, u = res.activity_mbq[i][n], res.activity_uncorrected_mbq[i][n]
                    row += [f"{u / a:.6g}" if a != 0 else "", res.correction[i], f"{pvc.psf_fwhm_mm:g}",
                            f"{pvc.recovery[i]:.6g}" if i in pvc.recovery else ""]
                w.writerow(row)
        write_text(tmp / "organ_tac.csv", buf.getvalue())
        organs = {}
        for i, name in res.label_names.items():
            organs[name] = {"label": i, "volume_ml": res.volume_ml[i],
                            "recovery_coefficient": rec.get(name, 1.0),
                            **res.fits[i].to_dict(),
                            "voxel_check": res.voxel_check[i]}
            if pvc is not None:
                # the factor applied: manual RC, automatic RC, or none for the GTM (time-dependent;
                # see activity_measured_mbq / activity_corrected_mbq)
                if res.correction[i] == "rc":
                    organs[name]["recovery_coefficient"] = pvc.recovery.get(i)
                elif res.correction[i] == "gtm":
                    organs[name]["recovery_coefficient"] = None
                organs[name].update({
                    "correction": res.correction[i],
                    ("pvc_recovery_coefficient" if pvc.method == "rc" else "gtm_diagonal"): pvc.recovery.get(i),
                    "activity_measured_mbq": [float(x) for x in res.activity_uncorrected_mbq[i]],
                    "activity_corrected_mbq": [float(x) for x in res.activity_mbq[i]]})
            if vp is not None:
                a, u = res.activity_mbq[i], res.activity_uncorrected_mbq[i]
                if res.correction[i] != "manual":
                    organs[name]["recovery_coefficient"] = None
                organs[name].update({
                    "correction": res.correction[i],
                    "pvc_correction_factor": [float(x / y) if y != 0 else None for x, y in zip(a, u)],
                    "pvc_small_region": i in vp.small_regions,
                    "activity_measured_mbq": [float(x) for x in u],
                    "activity_corrected_mbq": [float(x) for x in a]})
            tac_figure(res.fits[i], name, tmp / f"tac_{_safe(name)}.png")
        fits = {
            "patient_id": patient,
            "radionuclide": decay.nuclide,
            "half_life_h": decay.half_life_h,
            "lambda_phys_per_h": decay.decay_constant_per_h,
            "injected_activity_mbq": injected,
            "time_points": [{"id": tp, "time_h": float(th)} for tp, th in zip(tps, times)],
            "options": {
                "models": list(options.models), "error_model": options.error_model.describe(),
                "selection": "AICc (Glatting 2007), only where N > K + 1; Akaike weights; largest weight chosen",
                "head": options.head, "tail": options.tail, "voxel_method": res.voxel_method,
                "voxel_head": options.voxel_head,
                "voxel_head_factors": {res.label_names[i]: round(v, 4) for i, v in res.voxel_head_factors.items()},
                "n_tail": options.n_tail, "smooth_fwhm_mm": options.smooth_fwhm_mm,
                "occupancy": res.occupancy.method, "recovery": rec,
                "population_effective_half_life_h": dict(options.population_effective_half_life_h),
                "pvc": options.pvc,
                "reduced_protocol": _reduced_json(options, times),
            },
            "organs": organs,
            **({"partial_volume_correction": pvc.describe(res.label_names)} if pvc is not None else {}),
            **({"partial_volume_correction": _voxel_pvc_json(res, tps, args.psf_source)} if vp is not None else {}),
            "voxel_status_codes": {str(k): v for k, v in STATUS_CODES.items()},
            "warnings": list(res.warnings),
            "qc": gate.to_list(),
            "qc_summary": gate.summary(),
        }
        write_json(tmp / "fits.json", fits)
        common = dict(radionuclide=decay.nuclide, patient_id=patient, sources=sources,
                      time_points=tps, time_h=[float(x) for x in times])
        write_image(tmp / "tia.nii.gz", res.tia, make_sidecar(
            "time_integrated_activity_concentration", "MBq*h/mL", method=f"voxel {res.voxel_method}",
            integration="0 to infinity", smooth_fwhm_mm=options.smooth_fwhm_mm,
            **({"partial_volume_correction": "none (organ-level correction only, see fits.json)"}
               if pvc is not None else {}),
            **({"partial_volume_correction": f"voxel level, {vp.method}, PSF FWHM {fwhm_txt} mm (see fits.json)",
                "uncorrected_map": "tia_uncorrected.nii.gz"} if vp is not None else {}), **common))
        if vp is not None:
            write_image(tmp / "tia_uncorrected.nii.gz", res.tia_uncorrected, make_sidecar(
                "time_integrated_activity_concentration", "MBq*h/mL", method=f"voxel {res.voxel_method}",
                integration="0 to infinity", smooth_fwhm_mm=options.smooth_fwhm_mm,
                partial_volume_correction="none (the map tia.nii.gz is corrected)", **common))
        write_image(tmp / "tia_quality.nii.gz", res.quality, make_sidecar(
            "fit_quality", "1", method=f"voxel {res.voxel_method}",
            definition="relative RMS deviation of the voxel model from its fitted points", **common))
        write_image(tmp / "tia_status.nii.gz", res.status, make_sidecar(
            "fit_status", "code", codes={str(k): v for k, v in STATUS_CODES.items()}, **common))
    for name, o in organs.items():
        sd = o["tia_sd_mbq_h"]
        sd_txt = f" +- {sd:.4g}" if sd is not None and np.isfinite(sd) else ""
        print(f"{name:16s} TIA {o['tia_mbq_h']:.5g}{sd_txt} MBq*h  ({o['method']})")
    return 0


def _reduced_json(options, times) -> dict:
    """What fits.json says about a reduced protocol (method, earlier cycle, whether it applied)."""
    applies = options.reduced != "none" and len(times) <= REDUCED_MAX_SCANS
    out = {"method": options.reduced, "applied": bool(applies),
           "prior_fits": None if options.prior is None else options.prior.source}
    if applies:
        out["statement"] = {
            "prior_cycle": "organ TIA = the earlier cycle's fitted organ curve scaled to this cycle's scans "
                           "(least squares) and integrated: the earlier cycle's kinetics (shape) assumed",
            "madsen": "organ TIA = A(t) exp(k t) / k at the latest scan (Madsen et al. 2018), k the effective rate "
                      "of the terminal phase of the earlier cycle's fitted organ curve",
            "haenscheid": "organ TIA = A(t) 2 t / ln 2 at the latest scan (Hanscheid et al. 2018)",
        }[options.reduced]
    return out


def _voxel_pvc_json(res, tps, psf_source) -> dict:
    """fits.json ``partial_volume_correction`` of a voxel-level correction."""
    vp = res.voxel_pvc
    d = vp.describe(tps, res.tia.voxel_volume_ml, psf_source)
    d["organ_correction_factor"] = {
        name: [float(a / u) if u != 0 else None for a, u in zip(res.activity_mbq[i], res.activity_uncorrected_mbq[i])]
        for i, name in res.label_names.items()}
    d["organ_correction_factor_definition"] = "corrected / measured organ activity per time point"
    d["small_regions"] = {res.label_names[i]: v for i, v in vp.small_regions.items()}
    d["tia_uncorrected"] = "tia_uncorrected.nii.gz"
    d["dose_stage_reads"] = "tia.nii.gz (corrected)"
    return d


def main(argv=None) -> int:
    return run_stage("spectdose kinetics", build_parser(), _run, argv)
