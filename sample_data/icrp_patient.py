"""A real-anatomy patient: an ICRP-110 adult phantom with Lu-177 (or Cu-67, Y-90) sessions.

The sample patient (:mod:`sample_data.generator`) has ellipsoid organs drawn by this team; a
segmenter tuned on it proves little. This patient has the anatomy of a real person (the ICRP
Publication 110 adult female or male reference phantom, label maps of two people's CT,
:mod:`sample_data.icrp110`), so the whole chain (ingest, registration, segmentation, kinetics,
dose) can be checked against a ground truth on real anatomy: :mod:`sample_data.icrp_validation`.

What is written (``out_dir``)::

    manifest.yaml                  the sessions (NIfTI + sidecars), read by the workflow
    nifti/<tp>_ct.nii.gz           low-dose CT of each session (new noise each time, same pose)
    nifti/<tp>_spect.nii.gz        quantitative SPECT, Bq/mL (4.8 mm, PSF blur, Poisson noise)
    atlas_without_<phantom>/       the other phantom as an atlas folder (leave-one-out segmentation)
    truth/labels.nii.gz            reference labels on the CT grid (spectdose ids)
    truth/tia.nii.gz               true time-integrated activity concentration, MBq*h/mL (CT grid)
    truth/spect_psf_tia.nii.gz     the same as the SPECT images it (blur, SPECT grid, no noise)
    truth/truth.json               organ activities and TIAs, kinetics, imaging parameters

Activity: the kinetics of :mod:`sample_data.kinetics` (a peptide-like radioligand: kidneys,
liver, spleen, urine as organ totals; blood, marrow, lung, muscle, fat, bowel, bone and the
rest as concentrations), given to the phantom's own tissues through :func:`compartment_of`.
Inside the kidneys the cortex and the renal pelvis (urine) hold the kidney's activity at
1.0 and the medulla at 0.6 per mL. By default the patient lies still (every session in the
reference pose); ``motion_mm`` / ``motion_deg`` move the patient rigidly between sessions (CT and
activity together, the first session stays the reference; the poses are in ``truth.json``).
``fmt="dicom"`` writes each session as a CT series and an NM SPECT file, as a scanner would.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

__all__ = ["compartment_of", "generate_icrp_patient", "main", "KIDNEY_WEIGHTS"]

#: Relative activity per mL inside a kidney (ICRP-110 ids): cortex and pelvis 1.0, medulla 0.6.
KIDNEY_WEIGHTS = {89: 1.0, 90: 0.6, 91: 1.0, 92: 1.0, 93: 0.6, 94: 1.0}
_ORGAN_OF_REFERENCE = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen"}


def compartment_of(tissue_name: str) -> str:
    """The kinetic compartment (:data:`sample_data.kinetics.COMPARTMENTS`) of an ICRP-110 tissue name.

    Kidneys, liver and spleen are taken from the reference labels, not from here.
    """
    n = tissue_name.lower()
    if n.startswith("blood") or n == "heart":
        return "blood"
    if "spongiosa" in n or "medullary" in n:
        return "marrow"
    if n.startswith("lung"):
        return "lung"
    if n.startswith("muscle"):
        return "muscle"
    if n.startswith("adipose") or n.startswith("breast"):
        return "fat"
    if n in ("stomach", "small_intestine", "large_intestine", "oesophagus") or n.startswith("gastro"):
        return "bowel"
    if n.startswith("mineral_bone") or n.startswith("cartilage") or n == "teeth":
        return "bone"
    if n == "urine":
        return "bladder"
    if n.startswith("air"):
        return "air"
    return "soft_low"


def _activity_maps(native: np.ndarray, ref: np.ndarray, tissue: dict, voxel_ml: float, compartments: dict,
                   lambda_p: float, injected_mbq: float, times_h) -> tuple[np.ndarray, np.ndarray, dict]:
    """Activity concentration at each time (Bq/mL) and TIA (MBq*h/mL) on the CT grid.

    Returns
    -------
    conc : numpy.ndarray, float32, shape (T, I, J, K)
    tia : numpy.ndarray, float32, shape (I, J, K)
    organs : dict
        Per compartment that is an organ total: volume (mL), activity at each time (MBq), TIA (MBq*h).
    """
    from .kinetics import evaluate, integrate

    groups = {}
    for lid, name in _ORGAN_OF_REFERENCE.items():
        groups[name] = ref == lid
    taken = np.isin(ref, list(_ORGAN_OF_REFERENCE))
    by_comp = {}
    for tid, name in tissue.items():
        by_comp.setdefault(compartment_of(name), []).append(tid)
    for comp, ids in by_comp.items():
        if comp != "air":
            groups[comp] = np.isin(native, ids) & ~taken
    weight = np.ones(native.shape, np.float32)
    for tid, w in KIDNEY_WEIGHTS.items():
        weight[native == tid] = w
    times = np.asarray(times_h, float)
    conc = np.zeros((len(times),) + native.shape, np.float32)
    tia = np.zeros(native.shape, np.float32)
    organs = {}
    for comp_name, mask in groups.items():
        comp = compartments.get(comp_name)
        if comp is None or not mask.any():
            continue
        f = evaluate(comp.model, comp.parameters, times, lambda_p)
        integral = integrate(comp.model, comp.parameters, lambda_p)
        if comp.quantity == "fraction_of_injected":
            w = np.where(mask, weight, 0.0)
            share = w / (w.sum() * voxel_ml)  # per mL, sums to 1 over the organ
            for n in range(len(times)):
                conc[n] += (injected_mbq * 1e6 * f[n] * share).astype(np.float32)
            tia += (injected_mbq * integral * share).astype(np.float32)
            organs[comp_name] = {"volume_ml": float(mask.sum() * voxel_ml),
                                 "activity_mbq": [float(injected_mbq * v) for v in f],
                                 "tia_mbq_h": float(injected_mbq * integral)}
        else:
            for n in range(len(times)):
                conc[n][mask] += np.float32(injected_mbq * 1e6 * f[n])
            tia[mask] += np.float32(injected_mbq * integral)
    return conc, tia, organs


def _random_pose(rng, centre_lps, motion_mm: float, motion_deg: float):
    """A rigid motion (SimpleITK Euler3D about ``centre_lps``, LPS mm): each rotation angle and each
    translation component uniform in +-``motion_deg`` (degrees) / +-``motion_mm`` (mm)."""
    import SimpleITK as sitk

    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(v) for v in centre_lps])
    angles = np.deg2rad(rng.uniform(-motion_deg, motion_deg, 3))
    tx.SetRotation(*[float(a) for a in angles])
    tx.SetTranslation([float(v) for v in rng.uniform(-motion_mm, motion_mm, 3)])
    return tx


def generate_icrp_patient(out_dir, phantom: str = "AF", voxel_size_mm=(3.0, 3.0, 3.0), nuclide: str = "Lu-177",
                          times_h=(4.0, 24.0, 72.0, 168.0), injected_mbq: float = 7400.0, seed: int = 0,
                          patient_id: str | None = None, spect_voxel_mm: float = 4.8,
                          psf_fwhm_mm: float | None = None, acquisition_s: float = 1200.0,
                          injection_datetime: str = "2026-01-05T09:00:00", zip_path=None,
                          motion_mm: float = 0.0, motion_deg: float = 0.0, fmt: str = "nifti",
                          fov: str = "trunk", rebin_mm: float | None = None) -> Path:
    """Write a real-anatomy patient (see the module docstring) into ``out_dir`` (replaced atomically).

    Parameters
    ----------
    out_dir : path
    phantom : {"AF", "AM"}
    voxel_size_mm : tuple of 3 float
        CT voxel size (left-right, anterior-posterior, superior-inferior), mm; low-dose noise
        as the development cases (:func:`sample_data.icrp110.make_ct`).
    nuclide : {"Lu-177", "Cu-67", "Y-90"}
    times_h : sequence of float
        SPECT acquisition times, h after injection; the first is the reference session.
    injected_mbq : float
        Injected activity, MBq.
    seed : int
        CT and SPECT noise.
    patient_id : str, optional
        Pseudonymous id (default ``ICRP<phantom>01``).
    spect_voxel_mm : float
        SPECT voxel size (isotropic), mm.
    psf_fwhm_mm : float, optional
        SPECT resolution (Gaussian FWHM), mm; default the nuclide's (:data:`sample_data.presets.NUCLIDES`).
    acquisition_s : float
        SPECT acquisition time, s (Poisson noise with the nuclide's sensitivity).
    injection_datetime : str
        ISO 8601 local time.
    zip_path : path, optional
        The OpenDose ICRP-110 zip (default :func:`sample_data.icrp110.default_zip_path`).
    motion_mm, motion_deg : float
        Rigid motion of every session after the first: each translation component (mm) and each
        rotation angle (degrees) uniform within +- these; 0 (default): no motion.
    fmt : {"nifti", "dicom"}
        NIfTI images with sidecars, or DICOM (a CT series and an NM SPECT file per session).
    fov : str
        Field of view of every session (:func:`sample_data.icrp110.fov_z_range`): ``"trunk"``
        (default), ``"abdomen"``, or a clinical ``"bases:LUNG_MM:SACRUM_MM"``.
    rebin_mm : float, optional
        Each session's CT, made at ``voxel_size_mm`` (the acquisition), rebinned to isotropic
        voxels of this size, mm (:func:`sample_data.icrp110.load_case`), as the held-back case of
        issue 14 was; the truth is made on the rebinned grid.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from kernels.decay import load_decay
    from pipeline.atomic import atomic_dir, write_json, write_text
    from pipeline.imageio import make_sidecar, write_image
    from pipeline.register.resample import resample_image
    from pipeline.segment.atlas_store import write_atlas_subject
    from pipeline.segment.evaluate import resample_nearest
    from pipeline.segment.labels import vocabulary_for

    from . import imaging
    from .generator import _manifest_yaml, time_point_id, write_nifti_session
    from .icrp110 import DevelopmentCase, atlas_subjects, default_zip_path, load_case, load_phantom
    from .kinetics import compartments_for
    from .presets import NUCLIDES
    from .seg_spect import imaged

    if phantom not in ("AF", "AM"):
        raise InputError(None, f"phantom {phantom!r}: choose AF or AM")
    if nuclide not in NUCLIDES:
        raise InputError(None, f"nuclide {nuclide!r}: choose from {', '.join(NUCLIDES)}")
    times = [float(t) for t in times_h]
    if fmt not in ("nifti", "dicom"):
        raise InputError(None, f"format {fmt!r}: choose nifti or dicom")
    if not times or any(t <= 0 for t in times) or sorted(times) != times:
        raise InputError(None, f"time points {times_h!r}: give increasing times after injection, h")
    zip_path = Path(zip_path) if zip_path is not None else default_zip_path()
    if not zip_path.is_file():
        raise InputError(zip_path, "the ICRP-110 OpenDose archive is not there")
    patient_id = patient_id or f"ICRP{phantom}01"
    injection = _dt.datetime.fromisoformat(injection_datetime)
    decay = load_decay(nuclide)
    cam = NUCLIDES[nuclide]
    fwhm = float(psf_fwhm_mm if psf_fwhm_mm is not None else cam["psf_fwhm_mm"])
    tp_ids = [time_point_id(t) for t in times]

    ph = load_phantom(zip_path, phantom)
    case = DevelopmentCase(f"{phantom}_patient", phantom, tuple(float(v) for v in voxel_size_mm), fov=fov)
    ct, ref, levels = load_case(zip_path, case, seed=seed, phantom=ph, rebin_mm=rebin_mm)
    native = np.asarray(resample_nearest(ph.labels, ct))
    ref_arr = np.asarray(ref.array)
    voxel_ml = float(np.prod(ct.voxel_size_mm)) / 1000.0
    compartments = compartments_for(nuclide)
    conc, tia, organs = _activity_maps(native, ref_arr, ph.tissue, voxel_ml, compartments,
                                       decay.decay_constant_per_h, injected_mbq, times)
    other = "AM" if phantom == "AF" else "AF"
    sp_voxel_ml = spect_voxel_mm ** 3 / 1000.0
    centre_lps = np.argwhere(ref_arr > 0).mean(axis=0)
    centre_lps = ct.index_to_world(centre_lps[None, :])[0] * np.array([-1.0, -1.0, 1.0])
    pose_rng = np.random.default_rng([int(seed), 23])
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        tp_truth = []
        for n, (t_h, tp) in enumerate(zip(times, tp_ids)):
            spect_dt = injection + _dt.timedelta(hours=t_h)
            ct_dt = spect_dt - _dt.timedelta(minutes=5)
            ct_n = ct if n == 0 else load_case(zip_path, case, seed=seed + 1000 * n, phantom=ph, rebin_mm=rebin_mm)[0]
            conc_n = ct.with_array(conc[n], unit="Bq/mL")
            pose = None
            if n > 0 and (motion_mm > 0 or motion_deg > 0):
                pose = _random_pose(pose_rng, centre_lps, motion_mm, motion_deg)
                # the content moved by the pose: pull each grid point from where the pose came from
                ct_n = resample_image(ct_n, ct_n, pose.GetInverse(), -1024.0)
                conc_n = resample_image(conc_n, conc_n, pose.GetInverse(), 0.0)
            sp = imaged(ct, np.asarray(conc_n.array), fwhm, spect_voxel_mm, ct_direction=fmt == "dicom")
            bq = np.asarray(sp.array, np.float64) * sp_voxel_ml
            noisy = imaging.add_poisson_noise(bq, cam["sensitivity_cps_per_mbq"], acquisition_s,
                                              np.random.default_rng([int(seed), 37, n])) / sp_voxel_ml
            ct_out = ct_n.with_array(np.clip(np.rint(np.asarray(ct_n.array)), -1024, 3071).astype(np.int16), unit="HU")
            sp_out = sp.with_array(noisy.astype(np.float32), unit="Bq/mL")
            if fmt == "dicom":
                _write_dicom_session(tmp / "dicom" / tp, ct_out, sp_out, patient_id, tp, nuclide, injected_mbq,
                                     decay.half_life_s, injection, spect_dt, ct_dt, acquisition_s,
                                     cam["photopeak_kev"], seed, phantom)
            else:
                write_nifti_session(tmp / "nifti", tp, t_h, ct_out, sp_out, nuclide=nuclide, injected_mbq=injected_mbq,
                                    injection=injection, ct_dt=ct_dt, spect_dt=spect_dt, acquisition_s=acquisition_s,
                                    patient_id=patient_id, source=f"spectdose ICRP-110 {phantom} patient {patient_id}")
            tp_truth.append({"id": tp, "time_h": t_h, "acquisition_datetime": spect_dt.isoformat(),
                             "total_activity_mbq": float(conc[n].sum(dtype=np.float64) * voxel_ml / 1e6),
                             "pose_lps": None if pose is None else _pose_record(pose)})
        truth_common = dict(patient_id=patient_id, radionuclide=nuclide, injected_activity_mbq=injected_mbq,
                            sources=[f"spectdose ICRP-110 {phantom} patient {patient_id} (ground truth)"])
        write_image(tmp / "truth" / "labels.nii.gz", ref.with_array(ref_arr.astype(np.uint16)),
                    make_sidecar("labels", "label", labels={str(k): v for k, v in vocabulary_for(ref_arr).items()},
                                 **truth_common))
        write_image(tmp / "truth" / "tia.nii.gz", ct.with_array(tia, unit="MBq*h/mL"),
                    make_sidecar("time_integrated_activity_concentration", "MBq*h/mL",
                                 method="analytic integral 0..inf of the true kinetics", **truth_common))
        tia_imaged = imaged(ct, tia, fwhm, spect_voxel_mm)
        write_image(tmp / "truth" / "spect_psf_tia.nii.gz", tia_imaged.with_array(tia_imaged.array, unit="MBq*h/mL"),
                    make_sidecar("time_integrated_activity_concentration", "MBq*h/mL",
                                 method=f"true TIA blurred by a {fwhm} mm FWHM PSF on the SPECT grid, no noise",
                                 **truth_common))
        for subject in atlas_subjects(zip_path, names=(other,)):
            write_atlas_subject(tmp / f"atlas_without_{phantom}", subject)
        write_json(tmp / "truth" / "truth.json", {
            "description": f"Ground truth of the spectdose ICRP-110 {phantom} patient; see sample_data/icrp_patient.py",
            "phantom": phantom, "patient_id": patient_id, "radionuclide": nuclide,
            "half_life_h": decay.half_life_h, "injected_activity_mbq": float(injected_mbq),
            "injection_datetime": injection.isoformat(), "reference_time_point": tp_ids[0], "seed": int(seed),
            "time_points": tp_truth, "organs": organs,
            "lumbar_levels": {k: {"z_range_mm": v["z_range_mm"]} for k, v in levels.items() if k.startswith("L")},
            "imaging": {"ct_voxel_size_mm": [float(v) for v in ct.voxel_size_mm], "ct_shape": list(ct.shape),
                        "field_of_view": fov,
                        "ct_noise_hu": float(ct.meta.get("noise_hu", 0.0)),
                        "spect_voxel_mm": spect_voxel_mm, "psf_fwhm_mm": fwhm,
                        "sensitivity_cps_per_mbq": cam["sensitivity_cps_per_mbq"], "acquisition_s": acquisition_s},
            "atlas": f"atlas_without_{phantom}: the {other} phantom only (leave-one-out)",
        })
        write_text(tmp / "manifest.yaml", _manifest_yaml(patient_id, nuclide, injected_mbq, injection, tp_ids,
                                                         times, tp_truth, fmt, tp_ids[0]))
    return out


def _pose_record(pose) -> dict:
    """A rigid pose as JSON: Euler parameters and the 4 x 4 matrices (LPS and RAS+, mm) mapping a
    reference point to where it lies in the session."""
    m = np.array(pose.GetMatrix()).reshape(3, 3)
    c = np.array(pose.GetCenter())
    lps = np.eye(4)
    lps[:3, :3] = m
    lps[:3, 3] = c + np.array(pose.GetTranslation()) - m @ c
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return {"center_mm": [float(v) for v in c], "angles_rad": [pose.GetAngleX(), pose.GetAngleY(), pose.GetAngleZ()],
            "rotation_order": "ZXY (SimpleITK Euler3DTransform)",
            "translation_mm": [float(v) for v in pose.GetTranslation()],
            "matrix_lps": lps.tolist(), "matrix_ras": (flip @ lps @ flip).tolist(),
            "convention": "x_session = matrix @ x_reference (homogeneous, mm)"}


def _write_dicom_session(folder, ct, spect, patient_id, tp, nuclide, injected_mbq, half_life_s, injection,
                         spect_dt, ct_dt, acquisition_s, photopeak_kev, seed, phantom):
    """One session as DICOM: ``folder/ct/CT_*.dcm`` and ``folder/spect/NM_0001.dcm`` (one frame of reference)."""
    from pipeline import __version__

    from .dicom import det_uid, write_ct_series, write_nm_spect

    session = {"patient_id": patient_id, "time_point": tp, "nuclide": nuclide,
               "uid_root": f"icrp110|{phantom}|{seed}|{patient_id}|{tp}|{nuclide}|{injected_mbq}",
               "injected_bq": injected_mbq * 1e6, "half_life_s": half_life_s, "injection_datetime": injection,
               "spect_datetime": spect_dt, "ct_datetime": ct_dt, "study_datetime": ct_dt,
               "acquisition_s": acquisition_s, "photopeak_kev": photopeak_kev, "software_version": __version__}
    session["study_uid"] = det_uid(session["uid_root"], "study")
    session["frame_of_reference_uid"] = det_uid(session["uid_root"], "frame-of-reference")
    write_ct_series(Path(folder) / "ct", ct, session)
    write_nm_spect(Path(folder) / "spect" / "NM_0001.dcm", spect, session)


def main(argv=None) -> int:
    """Write an ICRP-110 real-anatomy patient (``python -m sample_data.icrp_patient``)."""
    p = argparse.ArgumentParser(prog="python -m sample_data.icrp_patient", description=main.__doc__)
    p.add_argument("--phantom", choices=("AF", "AM"), default="AF")
    p.add_argument("--voxel-mm", type=float, nargs=3, default=(3.0, 3.0, 3.0), metavar=("X", "Y", "Z"))
    p.add_argument("--nuclide", default="Lu-177", choices=("Lu-177", "Cu-67", "Y-90"))
    p.add_argument("--times-h", type=float, nargs="+", default=(4.0, 24.0, 72.0, 168.0))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--motion-mm", type=float, default=0.0, help="rigid motion between sessions: translation, mm")
    p.add_argument("--motion-deg", type=float, default=0.0, help="rigid motion between sessions: rotation, degrees")
    p.add_argument("--format", choices=("nifti", "dicom"), default="nifti")
    p.add_argument("--fov", default="trunk", help="field of view (sample_data.icrp110.fov_z_range): trunk, abdomen, "
                                                  "or bases:LUNG_MM:SACRUM_MM, e.g. bases:80:10")
    p.add_argument("--rebin", type=float, default=None, metavar="MM",
                   help="each CT, made at --voxel-mm, rebinned to MM isotropic voxels (linear interpolation)")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        generate_icrp_patient(args.out, args.phantom, tuple(args.voxel_mm), args.nuclide, tuple(args.times_h),
                              seed=args.seed, motion_mm=args.motion_mm, motion_deg=args.motion_deg, fmt=args.format,
                              fov=args.fov, rebin_mm=args.rebin)
    except InputError as exc:
        print(f"python -m sample_data.icrp_patient: error: {exc}")
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
