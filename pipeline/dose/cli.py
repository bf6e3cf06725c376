"""``spectdose dose``: absorbed-dose maps, organ doses, DVHs, marrow dose, BED and planning.

Reads the kinetics stage's ``tia.nii.gz`` (MBq*h/mL on the dose grid) and
``fits.json``, the label map and the reference CT; writes into ``--out``
(atomically, as one folder): ``dose.nii.gz`` (Gy, dose grid: mean dose of each SPECT voxel),
``dose_ct.nii.gz`` (Gy, CT grid: the organ-grid dose around the organs with ``--organ-grid ct``,
the default; organ doses and DVHs come from it), ``organ_doses.csv``, ``dvh.csv``, ``dvh.png``, ``marrow.json``,
``bed.csv``, ``planning.json`` and ``dose_provenance.json`` (settings, assumptions, kernel provenance;
with the photon Monte Carlo, ``--photon-method transport`` (default), its histories, energy balance and
every organ's photon dose with its statistical SD). ``--photon-method kernel`` takes the photons from
the photon voxel S-values of water instead.
With ``--dose-rate --register-dir DIR`` also ``dose_rate_<tp>.nii.gz`` (Gy/h, dose grid) for
every registered time point ``DIR/<tp>/spect.nii.gz`` (Bq/mL on the dose grid).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_dir, read_json
from ..cli import run_stage
from ..cli_checks import config_section, require_dir, require_file, require_output_dir
from ..errors import InputError
from ..imageio import make_sidecar, read_image, write_image
from ..qc import Gate
from .marrow import MarrowSettings
from .photon_transport import PhotonTransportSettings
from .plausibility import dose_checks
from .radiobiology import LQParameters
from .stage import DoseSettings, compute_dose

PROG = "spectdose dose"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinetics-dir", required=True, type=Path, help="folder with tia.nii.gz and fits.json")
    p.add_argument("--labels", required=True, type=Path, help="label map on the CT grid (labels.json beside it)")
    p.add_argument("--ct", required=True, type=Path, help="reference CT (HU)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--config", type=Path, help="YAML with a 'dose:' section (config/config.yaml)")
    p.add_argument("--method", choices=["convolution", "local"], help="default: convolution")
    p.add_argument("--no-photons", action="store_true", help="electrons only (photons left out, said in the outputs)")
    p.add_argument("--photon-method", choices=["transport", "kernel"],
                   help="photon dose: transport (default; photon Monte Carlo in the CT densities and media) or "
                        "kernel (photon voxel S-values in water, cut at the cube's extent)")
    p.add_argument("--organ-grid", choices=["ct", "dose"],
                   help="grid of the dose at the organs: ct (default; organ doses independent of the SPECT voxel "
                        "size) or dose (the SPECT-grid map resampled onto the CT)")
    p.add_argument("--sex", choices=["male", "female"], help="reference red-marrow mass (default male)")
    p.add_argument("--nuclide", help="override the radionuclide of the TIA sidecar")
    p.add_argument("--injected-mbq", type=float, help="override the injected activity (MBq)")
    p.add_argument("--threads", type=int, default=None,
                   help="FFT worker threads, and the photon Monte Carlo's threads (default: all cores)")
    p.add_argument("--register-dir", type=Path,
                   help="folder with <tp>/spect.nii.gz (Bq/mL on the dose grid), for --dose-rate")
    p.add_argument("--dose-rate", action="store_true",
                   help="also write dose_rate_<tp>.nii.gz (Gy/h) for every time point of --register-dir")
    return p


def settings_from_config(config: dict, args) -> DoseSettings:
    """DoseSettings from the ``dose:`` section of the workflow config and CLI overrides."""
    c = dict(config or {})
    sex = args.sex or c.get("sex", "male")
    curve = c.get("hu_density_curve", "schneider2000")
    if curve != "schneider2000":
        raise InputError(getattr(args, "config", None), f"unknown hu_density_curve {curve!r} (known: schneider2000)")
    mass_override = c.get("red_marrow_mass_g")
    reference_masses = c.get("reference_red_marrow_mass_g") or {}
    if mass_override is None and sex in reference_masses:
        mass_override = float(reference_masses[sex])
    marrow = MarrowSettings(
        l2l4_share=float(c.get("marrow_l2l4_share", 0.067)),
        red_marrow_density_g_per_ml=float(c.get("red_marrow_density_g_per_ml", 1.03)),
        electron_absorbed_fraction=float(c.get("marrow_electron_absorbed_fraction", 1.0)),
        red_marrow_mass_g=mass_override,
    )
    kid = LQParameters(float(c.get("kidney_alpha_beta_gy", 2.6)), float(c.get("kidney_repair_half_time_h", 2.8)))
    lq_by_organ = {"kidney_left": kid, "kidney_right": kid, "kidneys": kid}
    for organ, par in (c.get("lq") or {}).items():
        lq_by_organ[organ] = LQParameters(float(par["alpha_beta_gy"]), float(par["repair_half_time_h"]))
    photon_method = getattr(args, "photon_method", None) or c.get("photon_method", "transport")
    if photon_method not in ("transport", "kernel"):
        raise InputError(getattr(args, "config", None),
                         f"unknown photon_method {photon_method!r} (known: transport, kernel)")
    pt = dict(c.get("photon_transport") or {})
    transport = PhotonTransportSettings(
        target_rel_sd=float(pt.get("target_rel_sd", PhotonTransportSettings.target_rel_sd)),
        max_histories=int(pt.get("max_histories", PhotonTransportSettings.max_histories)),
        seed=int(pt.get("seed", PhotonTransportSettings.seed)))
    return DoseSettings(
        method=args.method or c.get("method", "convolution"),
        include_photons=not args.no_photons and bool(c.get("include_photons", True)),
        photon_method=photon_method,
        photon_transport=transport,
        organ_grid=getattr(args, "organ_grid", None) or c.get("organ_grid", "ct"),
        min_density_g_per_ml=float(c.get("min_density_g_per_ml", 0.1)),
        marrow=marrow,
        sex=sex,
        lq_default=kid,
        lq_by_organ=lq_by_organ,
        kidney_dose_limit_gy=c.get("kidney_dose_limit_gy", 23.0),
        kidney_bed_limit_gy=c.get("kidney_bed_limit_gy"),
        marrow_dose_limit_gy=c.get("marrow_dose_limit_gy", 2.0),
    )



def _read_vocabulary(labels_path: Path) -> dict[int, str]:
    from ..imageio import sidecar_path
    from ..segment.labels import read_vocabulary

    vocab = read_vocabulary(sidecar_path(labels_path))
    if not vocab:
        raise InputError(sidecar_path(labels_path), "no 'id: name' entries in the label vocabulary")
    return dict(sorted(vocab.items()))


def organ_fits_from_kinetics(fits_json: dict) -> dict:
    """Organ name -> ``{"model", "params"}`` of the chosen fit in the kinetics stage's fits.json.

    Organs whose TIA did not come from a fitted model (model-free, single time
    point) are left out: their BED needs a dose-rate shape that was not fitted.
    """
    out = {}
    for name, organ in fits_json.get("organs", {}).items():
        chosen = organ.get("chosen_model")
        if not chosen:
            continue
        cand = next((c for c in organ.get("candidates", []) if c["model"] == chosen), None)
        if cand is None or any(v is None for v in cand["params"].values()):
            continue
        out[name] = {"model": chosen, "params": cand["params"]}
    return out


def organ_rows_with_kinetic_uncertainty(organs, fits_json: dict) -> list[dict]:
    """Organ-table rows with ``mean_gy_relative_sd_kinetics`` from the kinetics fits.

    The relative standard deviation of the organ's TIA from the kinetics fit
    (delta method, ``tia_relative_sd`` in fits.json), as the relative standard
    uncertainty of the mean absorbed dose from the time integration alone
    (the mean dose is proportional to the TIA for self-dose; S-values,
    calibration, registration, segmentation and partial volume are not in it;
    EANM uncertainty guideline, Gear et al. EJNMMI 2018;45:2456). Empty when
    the kinetics stage did not fit the organ.
    """
    fitted = fits_json.get("organs", {})
    rows = []
    for o in organs:
        sd = fitted.get(o.name, {}).get("tia_relative_sd")
        rows.append({**o.as_row(), "mean_gy_relative_sd_kinetics": "" if sd is None else float(sd)})
    return rows


def marrow_voi_concentration(fits_json: dict, names: dict) -> float | None:
    """TIA concentration (MBq*h/mL) of the L2-L4 marrow VOI from the kinetics organ fit, or None.

    Its organ TIA (recovery- or partial-volume-corrected when the kinetics stage
    was asked to) over its volume in the SPECT field of view.
    """
    from .stage import MARROW_LABEL

    organ = fits_json.get("organs", {}).get(names.get(MARROW_LABEL, ""), {})
    tia, volume = organ.get("tia_mbq_h"), organ.get("volume_ml")
    if tia is None or not volume:
        return None
    return float(tia) / float(volume)


def _read_fits(kinetics_dir: Path) -> tuple[dict, dict]:
    """Chosen organ fits and the whole fits.json (empty when the file is absent)."""
    path = kinetics_dir / "fits.json"
    if not path.exists():
        return {}, {}
    data = read_json(path, "fitted kinetics")
    try:
        return organ_fits_from_kinetics(data), data
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, f"cannot read the fitted kinetics ({exc})") from None


def _write_csv(path: Path, rows: list[dict]):
    from ..atomic import write_text

    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(path, buf.getvalue())


def _dvh_png(path: Path, edges, dvh: dict):
    # a bare Agg figure: no pyplot (global figure state, slower import)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, v in dvh.items():
        ax.plot(edges, 100 * v, label=name)
    ax.set_xlabel("absorbed dose (Gy)")
    ax.set_ylabel("volume receiving at least this dose (%)")
    ax.set_ylim(0, 101)
    ax.set_xlim(0, edges[-1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Cumulative dose-volume histograms")
    fig.tight_layout()
    fig.savefig(path)


def _read_activity_maps(register_dir: Path, tia, nuclide: str) -> dict:
    """Time point id -> (activity concentration Image in Bq/mL on the dose grid, time in h)."""
    from ..kinetics.cli import read_register_dir

    images, tps, times_h, reg_nuclide, _ = read_register_dir(register_dir)
    if reg_nuclide != nuclide:
        raise InputError(register_dir, f"time points are {reg_nuclide}, the TIA map is {nuclide}")
    maps = {}
    for img, tp, th in zip(images, tps, times_h):
        if not img.same_grid(tia):
            raise InputError(register_dir, f"time point {tp} is not on the dose grid of the TIA map")
        maps[tp] = (img, float(th))
    return maps


def _run(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from kernels.decay import load_decay
    from kernels.select import svalues_for_voxel_size

    if args.dose_rate and args.register_dir is None:
        raise InputError(None, "--dose-rate needs --register-dir (the folder of the registered time points)")
    require_dir(args.kinetics_dir, "kinetics folder")
    require_file(args.ct, "reference CT")
    require_file(args.labels, "label map")
    if args.config is not None:
        require_file(args.config, "configuration")
    if args.register_dir is not None:
        require_dir(args.register_dir, "register folder")
    require_output_dir(args.out)
    tia_path = args.kinetics_dir / "tia.nii.gz"
    tia, tia_side = read_image(tia_path)
    ct, _ = read_image(args.ct, unit="HU")
    labels, _ = read_image(args.labels, unit="label")
    if not labels.same_grid(ct):
        raise InputError(args.labels, "label map is not on the grid of the CT given with --ct")
    names = _read_vocabulary(args.labels)
    nuclide = args.nuclide or tia_side.get("radionuclide")
    if not nuclide:
        raise InputError(tia_path, "no radionuclide in the sidecar; give --nuclide")
    decay = load_decay(nuclide)
    activity = _read_activity_maps(args.register_dir, tia, decay.nuclide) if args.dose_rate else None
    settings = settings_from_config(config_section(args.config, "dose"), args)
    fits, fits_json = _read_fits(args.kinetics_dir)
    injected = next((v for v in (args.injected_mbq, tia_side.get("injected_activity_mbq"),
                                 fits_json.get("injected_activity_mbq")) if v is not None), None)

    if args.threads and settings.transports_photons:
        import numba

        # the photon Monte Carlo's threads: no more than the job was given (a cluster node has more cores)
        numba.set_num_threads(max(1, min(int(args.threads), numba.config.NUMBA_NUM_THREADS)))
    kernel = None
    cube = photon_cube = near = None
    kernel_photons = settings.include_photons and not settings.transports_photons
    if settings.method == "convolution" or kernel_photons:
        kernel = svalues_for_voxel_size(decay.nuclide, tia.voxel_size_mm, medium="water", photons=kernel_photons)
    if settings.method == "convolution":
        cube = kernel.total_mgy_per_mbq_s if kernel_photons else kernel.electron_mgy_per_mbq_s
    elif kernel_photons:
        photon_cube = kernel.photon_mgy_per_mbq_s
    if settings.organ_grid == "ct":
        from .organgrid import near_electron_kernels

        near = near_electron_kernels(decay.nuclide, tia.voxel_size_mm, ct.voxel_size_mm, medium="water")
    result = compute_dose(
        tia, ct, labels, names, electron_energy_mev=decay.electron_energy_mev,
        photon_energy_mev=decay.photon_energy_mev, injected_activity_mbq=injected, svalues_mgy_per_mbq_s=cube,
        kernel_density_g_per_ml=kernel.density_g_per_ml if kernel else 1.0, fits=fits,
        decay_constant_per_h=decay.decay_constant_per_h, settings=settings, workers=args.threads,
        activity_bq_per_ml=activity, marrow_voi_tia_mbq_h_per_ml=marrow_voi_concentration(fits_json, names),
        photon_svalues_mgy_per_mbq_s=photon_cube, near_electron=near, decay=decay)

    gate = Gate(tia_path)
    gate.extend(dose_checks(result, injected, decay.decay_constant_per_h,
                            decay.electron_energy_mev + decay.photon_energy_mev, tia_path))
    gate.raise_on_fail()
    for line in gate.warnings:
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    common = {"radionuclide": decay.nuclide, "method": settings.method,
              "photon_method": settings.photon_method if settings.include_photons else None,
              "sources": [tia_side.get("patient_id", ""), tia_path.name]}
    kernel_prov = None if kernel is None else {"nuclide": kernel.nuclide, "medium": kernel.medium,
                                               "voxel_size_mm": list(map(float, kernel.voxel_size_mm)),
                                               "provenance": kernel.provenance}
    common["kernel"] = kernel_prov
    # volumes are written by a second thread (gzip runs without the GIL) while the tables and the
    # DVH figure are made; leaving the pool waits for them, before atomic_dir renames the folder
    with atomic_dir(args.out) as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        volumes = [pool.submit(write_image, tmp / "dose_ct.nii.gz", result.dose_on_ct,
                               make_sidecar("absorbed_dose", "Gy", grid="CT", organ_grid=settings.organ_grid,
                                            include_photons=settings.include_photons, **common)),
                   pool.submit(write_image, tmp / "dose.nii.gz", result.dose,
                               make_sidecar("absorbed_dose", "Gy", grid="dose (reference SPECT)",
                                            include_photons=settings.include_photons, **common))]
        for tp, (rate, time_h) in result.dose_rate.items():
            side = make_sidecar("absorbed_dose_rate", "Gy/h", grid="dose (reference SPECT)", time_point=tp,
                                time_h=time_h, **{**common, "sources": [tia_side.get("patient_id", ""),
                                                                        f"{tp}/spect.nii.gz"]})
            volumes.append(pool.submit(write_image, tmp / f"dose_rate_{_safe(tp)}.nii.gz", rate, side))
        _write_csv(tmp / "organ_doses.csv", organ_rows_with_kinetic_uncertainty(result.organs, fits_json))
        _write_csv(tmp / "dvh.csv", [{"dose_gy": float(d), **{n: float(v[i]) for n, v in result.dvh_volume_fraction.items()}}
                                     for i, d in enumerate(result.dvh_dose_gy)])
        _dvh_png(tmp / "dvh.png", result.dvh_dose_gy, result.dvh_volume_fraction)
        from ..atomic import write_json

        write_json(tmp / "marrow.json", result.marrow or {"status": "not available: no marrow VOI (label 5)"})
        _write_csv(tmp / "bed.csv", result.bed)
        write_json(tmp / "planning.json", result.planning)
        kinetics = {"options": fits_json.get("options"),
                    "partial_volume_correction": (fits_json.get("partial_volume_correction") or {}).get("method", "none"),
                    "note": "the dose maps, organ table and DVHs use the voxel TIA map, which no organ-level "
                            "correction of the kinetics stage changes; the EANM marrow dose uses the VOI's "
                            "organ-level TIA (corrected when asked there)"}
        write_json(tmp / "dose_provenance.json", {"assumptions": result.assumptions, "settings": _jsonable(asdict(settings)),
                                                  "injected_activity_mbq": injected, "kinetics": kinetics,
                                                  "energy_balance": result.energy_balance, "qc": gate.to_list(),
                                                  "qc_summary": gate.summary(), **common})
        for job in volumes:
            job.result()  # re-raise a failed write here
    for o in result.organs:
        gbq = "" if o.mean_gy_per_gbq is None else f"  {o.mean_gy_per_gbq:8.3f} Gy/GBq"
        print(f"{o.name:18s} {o.mean_gy:9.3f} Gy{gbq}")
    return 0


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
