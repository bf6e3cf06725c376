"""``sample_data.generate``: write a sample patient (scans, manifest, truth, montage).

See ``sample_data/README.md`` for the layout and conventions.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.image import Image

from . import imaging
from .anatomy import LABEL_NAMES, TISSUES, build_model
from .kinetics import compartments_for, evaluate, integrate
from .presets import NUCLIDES, get_preset

__all__ = ["generate", "time_point_id", "DEFAULT_TIME_POINTS_H", "activity_luts"]

DEFAULT_TIME_POINTS_H = (1.0, 4.0, 24.0, 48.0, 168.0)
DEFAULT_INJECTION = "2026-01-05T09:00:00"
#: The CT of each session is acquired this long before the SPECT starts.
CT_BEFORE_SPECT_MIN = 5.0


def time_point_id(hours: float) -> str:
    """``t1h``, ``t24h``, ``t0p5h`` for 0.5 h."""
    return "t" + f"{float(hours):g}".replace(".", "p") + "h"


def _tissue_volumes_ml(tissues: np.ndarray, voxel_ml: float) -> np.ndarray:
    return np.bincount(tissues.ravel(), minlength=256).astype(float) * voxel_ml


def activity_luts(compartments: dict, volumes_ml: np.ndarray, lambda_p: float, injected_mbq: float,
                  times_h) -> tuple[np.ndarray, np.ndarray]:
    """Per-tissue activity concentration (Bq/mL) at each time and TIA (MBq*h/mL).

    Returns
    -------
    conc : ndarray, shape (len(times_h), 256)
        Bq/mL of every tissue id at every time.
    tia : ndarray, shape (256,)
        MBq*h/mL of every tissue id.
    """
    times = np.atleast_1d(np.asarray(times_h, float))
    conc = np.zeros((len(times), 256))
    tia = np.zeros(256)
    injected_bq = injected_mbq * 1e6
    for name, comp in compartments.items():
        ids = [k for k, v in TISSUES.items() if v["compartment"] == name]
        if not ids:
            continue
        f = evaluate(comp.model, comp.parameters, times, lambda_p)
        integral = integrate(comp.model, comp.parameters, lambda_p)
        if comp.quantity == "fraction_of_injected":
            wv = sum(TISSUES[k]["weight"] * volumes_ml[k] for k in ids)
            if wv <= 0:
                continue
            for k in ids:
                share = TISSUES[k]["weight"] / wv  # per mL
                conc[:, k] = injected_bq * f * share
                tia[k] = injected_mbq * integral * share
        else:
            for k in ids:
                conc[:, k] = injected_bq * f
                tia[k] = injected_mbq * integral
    return conc, tia


def _validate(out_dir, preset, nuclide, fmt, time_points_h, injected_mbq, patient_id):
    from kernels.decay import normalise_nuclide

    try:
        nuc = normalise_nuclide(nuclide)
    except Exception:
        raise InputError(None, f"unknown radionuclide {nuclide!r}") from None
    if nuc not in NUCLIDES:
        raise InputError(None, f"radionuclide {nuclide!r} has no sample-data preset; choose from {sorted(NUCLIDES)}")
    try:
        get_preset(preset)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    if fmt not in ("dicom", "nifti"):
        raise InputError(None, f"format must be 'dicom' or 'nifti', not {fmt!r}")
    tps = [float(t) for t in time_points_h]
    if not tps or min(tps) <= 0 or len(set(tps)) != len(tps):
        raise InputError(None, f"time points must be distinct and > 0 h, got {list(time_points_h)}")
    if not injected_mbq > 0:
        raise InputError(None, f"injected activity must be > 0 MBq, got {injected_mbq}")
    if not patient_id or any(c in patient_id for c in "/\\ "):
        raise InputError(None, f"patient id {patient_id!r} must be non-empty without spaces or slashes")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.yaml").exists())):
        raise InputError(out, "exists and is not an empty folder or a previous sample patient; refusing to replace it")
    return nuc, sorted(tps)


def _reference_index(times):
    if 24.0 in times:
        return times.index(24.0)
    return len(times) // 2


def _organ_table(labels_ct, tissues_ct, voxel_ml, conc, tia, compartments, tp_ids):
    """Per DESIGN label: volume, activity per time point, TIA, generating model."""
    lab = labels_ct.ravel().astype(np.int64)
    tis = tissues_ct.ravel().astype(np.int64)
    organs = {}
    for label, name in LABEL_NAMES.items():
        sel = lab == label
        counts = np.bincount(tis[sel], minlength=256).astype(float)
        volume = counts.sum() * voxel_ml
        act_mbq = counts @ conc.T * voxel_ml / 1e6  # (n_tp,)
        tia_mbq_h = float(counts @ tia * voxel_ml)
        present = [k for k in np.nonzero(counts)[0] if TISSUES.get(int(k), {}).get("compartment")]
        comps = sorted({TISSUES[int(k)]["compartment"] for k in present})
        gen = "composite"
        if len(comps) == 1:
            comp = compartments[comps[0]]
            if comp.quantity == "fraction_of_injected":
                ids = [k for k, v in TISSUES.items() if v["compartment"] == comps[0]]
                full = all(counts[k] > 0 for k in ids)
                if full:
                    gen = {"model": comp.model, "quantity": "fraction_of_injected",
                           "parameters": dict(comp.parameters), "compartment": comp.name}
            else:
                vol_active = float(sum(counts[k] for k in present) * voxel_ml)
                params = {k: (v * vol_active if k in ("a", "a1", "a2") else v) for k, v in comp.parameters.items()}
                gen = {"model": comp.model, "quantity": "fraction_of_injected", "parameters": params,
                       "compartment": comp.name,
                       "note": "concentration compartment: amplitudes multiplied by the label volume (mL)"}
        mass = float(sum(counts[k] * voxel_ml * TISSUES[int(k)]["density_g_per_ml"]
                         for k in np.nonzero(counts)[0] if int(k) in TISSUES))
        organs[name] = {
            "label": label, "volume_ml": float(volume), "mass_g": mass,
            "activity_mbq": {tp: float(a) for tp, a in zip(tp_ids, act_mbq)},
            "tia_mbq_h": tia_mbq_h, "compartments": comps, "generating_model": gen,
        }
    return organs


def _montage(path, ct_list, spect_list, tp_ids, ct_voxel, spect_voxel, times):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from pipeline.atomic import atomic_path

    n = len(tp_ids)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 7.2), squeeze=False)
    for c, (ct, sp, tp, t) in enumerate(zip(ct_list, spect_list, tp_ids, times)):
        mip_ct = np.clip(ct, -200, 1300).max(axis=1)  # over j (AP) -> (i, k)
        mip_sp = sp.max(axis=1)
        ext_ct = [0, ct.shape[0] * ct_voxel[0], 0, ct.shape[2] * ct_voxel[2]]
        ext_sp = [0, sp.shape[0] * spect_voxel, 0, sp.shape[2] * spect_voxel]
        ax = axes[0, c]
        ax.imshow(mip_ct.T[::-1], cmap="gray", vmin=-200, vmax=1300, extent=ext_ct, aspect="equal")
        ax.set_title(f"{tp} CT MIP", fontsize=9)
        ax = axes[1, c]
        vmax = float(np.percentile(mip_sp, 99.9)) or 1.0
        ax.imshow(mip_sp.T[::-1], cmap="gray_r", vmin=0, vmax=vmax, extent=ext_sp, aspect="equal")
        ax.set_title(f"{tp} SPECT MIP\nmax {vmax / 1e3:.0f} kBq/mL", fontsize=9)
        for a in axes[:, c]:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle("spectdose sample patient: coronal MIPs (patient right on the left)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def generate(out_dir, preset: str = "small", nuclide: str = "Lu-177", seed: int = 0, noise: bool = True,
             deformed: bool = False, fmt: str = "dicom", time_points_h=DEFAULT_TIME_POINTS_H,
             injected_mbq: float = 7400.0, patient_id: str = "SAMPLE01",
             injection_datetime: str = DEFAULT_INJECTION, psf_fwhm_mm: float | None = None,
             sensitivity_cps_per_mbq: float | None = None, acquisition_s: float | None = None,
             compartments: dict | None = None) -> Path:
    """Generate the sample patient into ``out_dir`` (replaced atomically) and return it.

    Parameters
    ----------
    out_dir : path
        Output folder (must be absent, empty, or a previous sample patient).
    preset : {"small", "standard"}
    nuclide : {"Lu-177", "Cu-67", "Y-90"}
    seed : int
        Seed of every random choice (bowel gas, poses, noise); same seed -> identical output.
    noise : bool
        CT noise and SPECT Poisson noise; False gives noise-free images.
    deformed : bool
        Add a smooth deformation to every non-reference session.
    fmt : {"dicom", "nifti"}
    time_points_h : sequence of float
        Times of the SPECT acquisitions, h after injection.
    injected_mbq : float
        Injected activity, MBq.
    patient_id : str
        Pseudonymous id written to every file.
    injection_datetime : str
        ISO 8601 local time of the injection.
    psf_fwhm_mm, sensitivity_cps_per_mbq, acquisition_s : float, optional
        Override the nuclide/preset defaults of the SPECT model.
    compartments : dict, optional
        Name -> :class:`~sample_data.kinetics.Compartment` replacing the default kinetics (a
        therapy cycle of a course, :mod:`sample_data.course`); default
        :func:`~sample_data.kinetics.compartments_for` of the nuclide.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from kernels.decay import load_decay
    from pipeline import __version__
    from pipeline.atomic import atomic_dir, write_json, write_text
    from pipeline.imageio import make_sidecar, write_image

    t_start = time.perf_counter()
    nuc, times = _validate(out_dir, preset, nuclide, fmt, time_points_h, injected_mbq, patient_id)
    try:
        injection = _dt.datetime.fromisoformat(injection_datetime)
    except ValueError:
        raise InputError(None, f"injection date-time {injection_datetime!r} is not ISO 8601") from None
    p = get_preset(preset)
    cam = NUCLIDES[nuc]
    fwhm = float(psf_fwhm_mm if psf_fwhm_mm is not None else cam["psf_fwhm_mm"])
    sens = float(sensitivity_cps_per_mbq if sensitivity_cps_per_mbq is not None else cam["sensitivity_cps_per_mbq"])
    acq_s = float(acquisition_s if acquisition_s is not None else p.acquisition_s)
    decay = load_decay(nuc)
    lam_p = decay.decay_constant_per_h
    tp_ids = [time_point_id(t) for t in times]
    ref = _reference_index(times)

    model = build_model(p, seed)
    vox_ml = model.voxel_volume_ml
    volumes = _tissue_volumes_ml(model.tissues, vox_ml)
    compartments = dict(compartments) if compartments is not None else compartments_for(nuc)
    conc, tia = activity_luts(compartments, volumes, lam_p, injected_mbq, times)
    m_sl = imaging.margin_slices(fwhm, p.spect_voxel_mm)
    ext_shape, ext_aff = imaging.spect_geometry(p, m_sl)
    sp_shape, sp_aff = imaging.spect_geometry(p, 0)
    sp_vox_ml = p.spect_voxel_mm ** 3 / 1000.0

    pose_rng = np.random.default_rng([int(seed), 23])
    poses = []
    for n in range(len(times)):
        pose = imaging.random_pose(pose_rng, deformed=deformed)  # drawn for every session (stable streams)
        poses.append(imaging.Pose((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)) if n == ref else pose)

    out = Path(out_dir)
    timing = {}
    ct_mips, sp_mips = [], []
    tp_truth = []
    with atomic_dir(out) as tmp:
        for n, (t_h, tp, pose) in enumerate(zip(times, tp_ids, poses)):
            spect_dt = injection + _dt.timedelta(hours=t_h)
            ct_dt = spect_dt - _dt.timedelta(minutes=CT_BEFORE_SPECT_MIN)
            ct = imaging.simulate_ct(model, pose, np.random.default_rng([int(seed), 31, n]), noise=noise)
            binned = imaging.splat(model, pose, ext_shape, ext_aff, conc[n], vox_ml)
            fov_total_mbq = float(binned[:, :, m_sl:ext_shape[2] - m_sl].sum() / 1e6)
            sp_bq = imaging.blur_and_crop(binned, fwhm, p.spect_voxel_mm, m_sl)
            if noise:
                sp_bq = imaging.add_poisson_noise(sp_bq, sens, acq_s, np.random.default_rng([int(seed), 37, n]))
            sp_conc = (sp_bq / sp_vox_ml).astype(np.float32)
            ct_img = Image(np.clip(np.rint(ct), -1024, 3071).astype(np.int16), model.ct_affine, "HU")
            sp_img = Image(sp_conc, sp_aff, "Bq/mL")
            session = {
                "patient_id": patient_id, "time_point": tp, "nuclide": nuc,
                "uid_root": f"{seed}|{patient_id}|{tp}|{p.name}|{nuc}|{injected_mbq}|{noise}|{deformed}|{injection_datetime}",
                "injected_bq": injected_mbq * 1e6, "half_life_s": decay.half_life_s,
                "injection_datetime": injection, "spect_datetime": spect_dt, "ct_datetime": ct_dt,
                "study_datetime": ct_dt, "acquisition_s": acq_s, "photopeak_kev": cam["photopeak_kev"],
                "software_version": __version__,
            }
            session["study_uid"] = _uid(session, "study")
            session["frame_of_reference_uid"] = _uid(session, "frame-of-reference")
            if fmt == "dicom":
                from .dicom import write_ct_series, write_nm_spect

                write_ct_series(tmp / "dicom" / tp / "ct", ct_img, session)
                write_nm_spect(tmp / "dicom" / tp / "spect" / "NM_0001.dcm", sp_img, session)
            else:
                write_nifti_session(tmp / "nifti", tp, t_h, ct_img, sp_img, nuclide=nuc, injected_mbq=injected_mbq,
                                    injection=injection, ct_dt=ct_dt, spect_dt=spect_dt, acquisition_s=acq_s,
                                    patient_id=patient_id, source=f"spectdose sample patient {patient_id}")
            ct_mips.append(_ct_mip_above_table(ct, model, pose))
            sp_mips.append(sp_conc.max(axis=1))
            tp_truth.append({
                "id": tp, "time_h": t_h, "acquisition_datetime": spect_dt.isoformat(),
                "ct_acquisition_datetime": ct_dt.isoformat(),
                "frame_of_reference_uid": session["frame_of_reference_uid"],
                "transform": pose.to_dict(),
                "deformation": None if pose.deformation is None else {
                    **pose.deformation.to_dict(), "file": f"deformation_{tp}.nii.gz"},
                "total_activity_mbq": float(np.sum(volumes * conc[n]) / 1e6),
                "total_activity_in_spect_fov_mbq": fov_total_mbq,
            })
            if pose.deformation is not None:
                _write_deformation(tmp / "truth" / f"deformation_{tp}.nii.gz", pose, sp_shape, sp_aff, patient_id)
        timing["sessions_s"] = time.perf_counter() - t_start

        # ---- ground truth on the reference grids -------------------------------------
        truth_dir = tmp / "truth"
        tis_ct = model.crop(model.tissues)
        lab_ct = model.crop(model.labels)
        common = dict(patient_id=patient_id, radionuclide=nuc, injected_activity_mbq=injected_mbq,
                      sources=[f"spectdose sample patient {patient_id} (ground truth)"])
        write_image(truth_dir / "labels.nii.gz", Image(lab_ct.astype(np.uint16), model.ct_affine, "label"),
                    make_sidecar("labels", "label", labels={str(k): v for k, v in LABEL_NAMES.items()}, **common))
        write_image(truth_dir / "tissues.nii.gz", Image(tis_ct, model.ct_affine, "label"),
                    make_sidecar("tissues", "label", labels={"0": "air", **{str(k): v["name"] for k, v in TISSUES.items()}},
                                 **common))
        write_image(truth_dir / "ct_noisefree.nii.gz",
                    Image(np.rint(model.crop(model.hu)).astype(np.int16), model.ct_affine, "HU"),
                    make_sidecar("ct", "HU", method="noise-free reference CT", **common))
        for n, (t_h, tp) in enumerate(zip(times, tp_ids)):
            act = conc[n].astype(np.float32)[tis_ct]
            write_image(truth_dir / f"activity_{tp}.nii.gz", Image(act, model.ct_affine, "Bq/mL"),
                        make_sidecar("activity_concentration", "Bq/mL", time_point=tp, time_h=t_h,
                                     method="true activity, reference pose", **common))
        write_image(truth_dir / "tia.nii.gz", Image(tia.astype(np.float32)[tis_ct], model.ct_affine, "MBq*h/mL"),
                    make_sidecar("time_integrated_activity_concentration", "MBq*h/mL",
                                 method="analytic integral 0..inf of the true kinetics", **common))
        identity = imaging.Pose((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        for n, (t_h, tp) in enumerate(zip(times, tp_ids)):
            b = imaging.blur_and_crop(imaging.splat(model, identity, ext_shape, ext_aff, conc[n], vox_ml), fwhm, p.spect_voxel_mm, m_sl) / sp_vox_ml
            write_image(truth_dir / f"spect_psf_{tp}.nii.gz", Image(b.astype(np.float32), sp_aff, "Bq/mL"),
                        make_sidecar("activity_concentration", "Bq/mL", time_point=tp, time_h=t_h,
                                     method=f"truth binned to the SPECT grid and blurred by a {fwhm} mm FWHM PSF, "
                                            "reference pose, no noise", **common))
        b = imaging.blur_and_crop(imaging.splat(model, identity, ext_shape, ext_aff, tia, vox_ml), fwhm, p.spect_voxel_mm, m_sl) / sp_vox_ml
        write_image(truth_dir / "spect_psf_tia.nii.gz", Image(b.astype(np.float32), sp_aff, "MBq*h/mL"),
                    make_sidecar("time_integrated_activity_concentration", "MBq*h/mL",
                                 method=f"true TIA binned to the SPECT grid and blurred by a {fwhm} mm FWHM PSF",
                                 **common))

        organs = _organ_table(lab_ct, tis_ct, vox_ml, conc, tia, compartments, tp_ids)
        timing["total_s"] = time.perf_counter() - t_start
        truth = {
            "description": "Ground truth of the spectdose digital patient; see sample_data/README.md",
            "generator": {"software": "spectdose", "software_version": __version__, "preset": p.name,
                          "seed": int(seed), "noise": bool(noise), "deformed": bool(deformed), "format": fmt,
                          "generation_time_s": round(timing["total_s"], 2)},
            "patient_id": patient_id, "radionuclide": nuc, "half_life_h": decay.half_life_h,
            "decay_constant_per_h": lam_p, "injected_activity_mbq": float(injected_mbq),
            "injection_datetime": injection.isoformat(), "reference_time_point": tp_ids[ref],
            "time_points": tp_truth,
            "conventions": {
                "frame": "RAS+ mm; truth volumes are on the reference CT grid in the reference pose",
                "transform": "x_tp = matrix_ras @ (x_ref + u(x_ref)); matrix_lps = diag(-1,-1,1,1) @ matrix_ras "
                             "@ diag(-1,-1,1,1) is the ITK transform for fixed = reference, moving = tp",
                "time": "h after injection; SPECT AcquisitionDateTime = injection + time_h; images are the "
                        "activity at that instant",
                "activity": "Bq/mL; organ activities MBq; TIA MBq*h (organs) and MBq*h/mL (maps)",
            },
            "labels": {str(k): v for k, v in LABEL_NAMES.items()},
            "tissues": {str(k): {**v, "volume_ml": float(volumes[k]),
                                 "volume_ml_on_ct_grid": float(np.count_nonzero(tis_ct == k) * vox_ml)}
                        for k, v in TISSUES.items()},
            "compartments": {name: {"model": c.model, "quantity": c.quantity, "parameters": c.parameters,
                                    "integral_h": integrate(c.model, c.parameters, lam_p),
                                    "tissues": [TISSUES[k]["name"] for k in TISSUES
                                                if TISSUES[k]["compartment"] == name]}
                             for name, c in compartments.items()},
            "organs": organs,
            "imaging": {
                "ct": {"shape": list(model.ct_shape), "affine_ras": model.ct_affine.tolist(),
                       "voxel_size_mm": [p.ct_pixel_mm, p.ct_pixel_mm, p.ct_slice_mm],
                       "noise_sd_hu": p.ct_noise_hu if noise else 0.0, "blur_fwhm_mm": p.ct_blur_mm,
                       "dicom_rescale": "HU = stored * 1 - 1024"},
                "spect": {"shape": list(sp_shape), "affine_ras": sp_aff.tolist(), "voxel_size_mm": p.spect_voxel_mm,
                          "psf_fwhm_mm": fwhm, "sensitivity_cps_per_mbq": sens, "acquisition_s": acq_s,
                          "poisson_noise": bool(noise),
                          "dicom_rescale": "Bq/mL = stored * RescaleSlope + RescaleIntercept (uint16)"},
            },
        }
        write_json(truth_dir / "truth.json", truth)
        write_text(tmp / "manifest.yaml", _manifest_yaml(patient_id, nuc, injected_mbq, injection, tp_ids,
                                                         times, tp_truth, fmt, tp_ids[ref]))
        _montage(tmp / "montage.png", _unmip(ct_mips), _unmip(sp_mips), tp_ids,
                 (p.ct_pixel_mm, p.ct_pixel_mm, p.ct_slice_mm), p.spect_voxel_mm, times)
    return out


def write_nifti_session(folder, tp: str, t_h: float, ct_img, sp_img, *, nuclide: str, injected_mbq: float,
                        injection, ct_dt, spect_dt, acquisition_s: float, patient_id: str, source: str):
    """One session as ``folder/<tp>_ct.nii.gz`` (HU) and ``folder/<tp>_spect.nii.gz`` (Bq/mL) with
    their sidecars (time after injection ``t_h`` in h, acquisition times, ``acquisition_s`` in s)."""
    from pipeline.imageio import make_sidecar, write_image

    common = dict(time_point=tp, time_h=t_h, radionuclide=nuclide, injected_activity_mbq=injected_mbq,
                  injection_datetime=injection.isoformat(), patient_id=patient_id, sources=[source])
    write_image(Path(folder) / f"{tp}_ct.nii.gz", ct_img,
                make_sidecar("ct", "HU", acquisition_datetime=ct_dt.isoformat(), modality="CT", **common))
    write_image(Path(folder) / f"{tp}_spect.nii.gz", sp_img,
                make_sidecar("activity_concentration", "Bq/mL", acquisition_datetime=spect_dt.isoformat(),
                             modality="NM", acquisition_duration_s=acquisition_s, **common))


def _ct_mip_above_table(ct, model, pose):
    """Coronal MIP (over j) of the CT in front of the patient table, HU clipped to [-200, 1300].

    The table would otherwise fill the MIP with its shell HU; it is cut at its top surface
    in the session pose plus 14 mm (up to 3 degrees of tilt over the scan length).
    """
    from .anatomy import TABLE_TOP_Y_MM

    y = model.ct_affine[1, 1] * np.arange(ct.shape[1]) + model.ct_affine[1, 3]
    keep = y > TABLE_TOP_Y_MM + pose.matrix_ras[1, 3] + 14.0
    return np.clip(ct[:, keep, :], -200, 1300).max(axis=1)


def _unmip(mips):
    """Turn 2-D MIPs (i, k) into (i, 1, k) arrays so that the montage's max over axis 1 is a no-op."""
    return [m[:, None, :] for m in mips]


def _uid(session, what):
    from .dicom import det_uid

    return det_uid(session["uid_root"], what)


def _write_deformation(path, pose, shape, affine, patient_id):
    """u(x_ref) (RAS+ mm) sampled on the grid (shape, affine), 4-D NIfTI (I, J, K, 3) + sidecar.

    Values are rounded to 1 um so that the smooth field compresses well.
    """
    import nibabel as nib

    from pipeline.atomic import atomic_path, write_json
    from pipeline.imageio import make_sidecar, sidecar_path

    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    u = pose.deformation.displacement(world).reshape(*shape, 3)
    u = (np.rint(u * 1000.0) / 1000.0).astype(np.float32)
    nii = nib.Nifti1Image(u, affine)
    nii.set_sform(affine, code=1)
    nii.set_qform(affine, code=1)
    nii.header.set_intent("vector")
    with atomic_path(path) as tmp:
        nib.save(nii, str(tmp))
    write_json(sidecar_path(path), make_sidecar(
        "displacement", "mm", patient_id=patient_id,
        method="u(x_ref) in RAS+ mm (last axis x, y, z) on the reference SPECT grid; "
               "x_tp = matrix_ras @ (x_ref + u(x_ref)); exact analytic form in truth.json"))


def _manifest_yaml(patient_id, nuc, injected_mbq, injection, tp_ids, times, tp_truth, fmt, ref_tp) -> str:
    import yaml

    tps = []
    for tp, row in zip(tp_ids, tp_truth):
        if fmt == "dicom":
            tps.append({"id": tp, "dicom": f"dicom/{tp}"})
        else:
            tps.append({"id": tp, "ct": f"nifti/{tp}_ct.nii.gz", "spect": f"nifti/{tp}_spect.nii.gz",
                        "acquisition_datetime": row["acquisition_datetime"]})
    doc = {
        "patient_id": patient_id,
        "radionuclide": nuc,
        "injected_activity_mbq": float(injected_mbq),
        "injection_datetime": injection.isoformat(),
        "reference_time_point": ref_tp,
        "time_points": tps,
    }
    head = "# spectdose sample patient (synthetic). Ground truth in truth/ (never read by the pipeline).\n"
    return head + yaml.safe_dump(doc, sort_keys=False)
