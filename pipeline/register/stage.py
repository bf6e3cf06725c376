"""One registration run: find the time points, pick the reference, register, write.

:func:`register_time_point` is the pure core (images in, images and a QC
record out); :func:`run_register` does the I/O around it with the layout of
``spectdose register``::

    OUT/reference.json              reference time point, why, the dose grid
    OUT/reference_ct.nii.gz         the reference CT (written with the reference time point)
    OUT/<tp>/spect.nii.gz           SPECT on the dose grid, Bq/mL (+ .json sidecar)
    OUT/<tp>/ct.nii.gz              the time point's CT moved onto the reference CT grid, HU
    OUT/<tp>/transform.tfm          reference LPS mm -> time point LPS mm (ITK convention)
    OUT/<tp>/qc.json, qc.png        QC record and overlay

Each ``OUT/<tp>/`` folder is written to a temporary name and renamed at the
end. A time point that fails its checks (without ``allow_fallback``) gets a
folder with only ``qc.json`` and ``qc.png``, and the run ends with an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_dir, read_json, write_json
from ..errors import InputError, SpectdoseError
from ..image import Image
from ..imageio import make_sidecar, read_image, read_sidecar, write_image
from .deformable import DeformableSettings, inverse_field_on, register_deformable
from .qc import QCLimits, RegistrationFailed, ct_correlation, deformable_problems, overlay_png, rigid_problems
from .reference import choose_reference, ct_quality_problems
from .resample import MovingToReference, resample_activity, resample_image
from .rigid import RigidSettings, register_rigid
from .transforms import affine_ras

__all__ = ["RegisterOptions", "TimePointResult", "TimePointInput", "find_time_points",
           "register_time_point", "run_register", "ACTIVITY_TOLERANCE"]

#: Largest accepted relative change of the activity inside the dose-grid FOV.
ACTIVITY_TOLERANCE = 0.005
#: The inverse displacement field is computed on the dose grid coarsened by this factor (the
#: B-spline, with control points several cm apart, is smooth on that scale).
INVERSE_FIELD_FACTOR = 2
#: Sidecar fields carried from the ingest SPECT sidecar to the registered SPECT.
CARRIED_FIELDS = ("patient_id", "time_point", "time_h", "time_after_injection_s", "acquisition_datetime",
                  "injection_datetime", "radionuclide", "half_life_h", "injected_activity_mbq",
                  "activity_reference")


@dataclass(frozen=True)
class RegisterOptions:
    """Everything that steers a registration run.

    Attributes
    ----------
    rigid : RigidSettings
    deformable : DeformableSettings or None
        None: rigid only.
    limits : QCLimits
    allow_fallback : bool
        On failure use the fallback (identity for a failed rigid stage, the rigid
        result for a failed deformable stage) instead of stopping.
    region : Image or None
        Boolean mask in reference space restricting the metric.
    bone_weighting : bool
        Metric on bone and its surroundings only.
    """

    rigid: RigidSettings = field(default_factory=RigidSettings)
    deformable: DeformableSettings | None = None
    limits: QCLimits = field(default_factory=QCLimits)
    allow_fallback: bool = False
    region: Image | None = None
    bone_weighting: bool = False


@dataclass(frozen=True)
class TimePointInput:
    """The ingest files of one time point (paths only; nothing read)."""

    id: str
    time_h: float
    ct_path: Path
    spect_path: Path


@dataclass
class TimePointResult:
    """Outcome of :func:`register_time_point`.

    Attributes
    ----------
    time_point : str
    status : str
        ``"reference"``, ``"registered"``, ``"fallback_identity"``, ``"fallback_rigid"``
        or ``"failed"``.
    transform : SimpleITK.Transform
        Reference -> moving (LPS), as applied.
    spect : Image or None
        SPECT on the dose grid (Bq/mL); None when failed.
    ct : Image or None
        Moving CT on the reference CT grid (HU); None when failed.
    qc : dict
        The QC record (JSON-ready).
    problems : list of str
    """

    time_point: str
    status: str
    transform: object
    spect: Image | None
    ct: Image | None
    qc: dict
    problems: list


def _identity_at(center_lps) -> sitk.Euler3DTransform:
    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(v) for v in center_lps])
    return tx


def register_time_point(time_point: str, reference_ct: Image, moving_ct: Image, moving_spect: Image,
                        dose_grid: Image, options: RegisterOptions | None = None,
                        is_reference: bool = False) -> TimePointResult:
    """Register one time point to the reference and move its SPECT onto the dose grid.

    Parameters
    ----------
    time_point : str
        Its id (for messages).
    reference_ct : Image
        Reference CT, HU.
    moving_ct, moving_spect : Image
        The time point's CT (HU) and SPECT (Bq/mL), in their shared frame.
    dose_grid : Image
        Target grid of the SPECT (reference space).
    options : RegisterOptions, optional
    is_reference : bool
        True for the reference time point itself: identity transform, SPECT
        resampled only if the dose grid differs from its own grid.

    Returns
    -------
    TimePointResult
        With ``status == "failed"`` (and no images) when a check failed and no
        fallback is allowed; the caller decides how to report it.
    """
    options = options or RegisterOptions()
    qc: dict = {"time_point": time_point, "convention": (
        "fixed = reference CT, moving = this time point's CT; transform.tfm maps reference-space "
        "LPS mm to moving-space LPS mm (ITK); affine_ras is the same map on RAS+ mm")}
    problems: list = []
    timings = {}
    if is_reference:
        status = "reference"
        transform = sitk.Euler3DTransform()
        qc["rigid"] = {"status": "identity (reference time point)"}
    else:
        status, transform = _register(time_point, reference_ct, moving_ct, options, qc, problems, timings)
    if status == "failed":
        qc.update(status=status, problems=problems, timings_s=timings)
        return TimePointResult(time_point, status, transform, None, None, qc, problems)

    start = time.perf_counter()
    if is_reference and moving_spect.same_grid(dose_grid):
        spect = moving_spect.with_array(np.asarray(moving_spect.array, np.float32))
        total = float(np.asarray(spect.array, np.float64).sum()) * spect.voxel_volume_ml / 1e6
        balance = {"source_mbq": total, "left_fov_mbq": 0.0, "in_fov_before_mbq": total, "after_mbq": total,
                   "relative_change_in_fov": 0.0, "method": "copied (dose grid = this SPECT's grid)"}
    else:
        mapping = _mapping(transform, dose_grid, qc)
        spect, bal = resample_activity(moving_spect, dose_grid, mapping, transform=transform)
        balance = bal.as_dict()
        if abs(bal.relative_change_in_fov) > ACTIVITY_TOLERANCE:
            problems.append(f"activity in the field of view changed by {100 * bal.relative_change_in_fov:.2f} % "
                            f"on resampling (limit {100 * ACTIVITY_TOLERANCE:g} %)")
            status = "failed"
    timings["resample_spect"] = time.perf_counter() - start
    qc["activity"] = balance
    if balance["source_mbq"] > 0:
        qc["activity"]["fraction_left_fov"] = balance["left_fov_mbq"] / balance["source_mbq"]
    moved_ct = (moving_ct if is_reference and moving_ct.same_grid(reference_ct)
                else resample_image(moving_ct, reference_ct, transform, default_value=-1000.0))
    qc.update(status=status, problems=problems, timings_s=timings)
    if status == "failed":
        return TimePointResult(time_point, status, transform, None, None, qc, problems)
    return TimePointResult(time_point, status, transform, spect, moved_ct.with_array(moved_ct.array, unit="HU"),
                           qc, problems)


def _register(time_point, reference_ct, moving_ct, options, qc, problems, timings):
    """Rigid (+ deformable) stage with checks and fallbacks; returns (status, transform)."""
    limits = options.limits
    try:
        rigid = register_rigid(reference_ct, moving_ct, options.rigid, options.region, options.bone_weighting)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: ITK gave up (e.g. no overlap left)
        exc = str(exc).strip().splitlines()[-1] if isinstance(exc, RuntimeError) else exc
        problems.append(f"rigid registration could not run: {exc}")
        qc["rigid"] = {"status": "not run", "error": str(exc)}
        if not options.allow_fallback:
            return "failed", sitk.Euler3DTransform()
        qc["fallback"] = "identity (scanner coordinates)"
        return "fallback_identity", sitk.Euler3DTransform()
    timings["rigid"] = rigid.elapsed_s
    metric_start = min(rigid.metric_identity, rigid.metric_initial)
    corr = ct_correlation(rigid.pair, rigid.transform)
    corr_before = ct_correlation(rigid.pair, _identity_at(rigid.transform.GetCenter()))
    rproblems = rigid_problems(metric_start, rigid.metric_final, rigid.translation_mm, rigid.rotation_deg,
                               corr, limits)
    qc["rigid"] = {
        "status": "failed" if rproblems else "ok",
        "method": "Euler3D, Mattes MI, multi-resolution, regular-step gradient descent",
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options.rigid).items()},
        "bone_weighting": options.bone_weighting,
        "region": None if options.region is None else options.region.meta.get("description", "mask"),
        "metric": {"name": "Mattes mutual information (ITK sign: lower is better)",
                   "scanner_coordinates": rigid.metric_identity, "initial_alignment": rigid.metric_initial,
                   "final": rigid.metric_final, "optimiser_end": rigid.optimiser_metric_final},
        "kept_start": rigid.kept_start,
        "ct_correlation": {"before": corr_before, "after": corr},
        "parameters": rigid.parameters(),
        "iterations_last_level": rigid.iterations,
        "stop_condition": rigid.stop_condition,
        "limits": limits.as_dict(),
        "problems": rproblems,
    }
    if rproblems:
        problems.extend(rproblems)
        if not options.allow_fallback:
            qc["rigid"]["rejected_transform"] = rigid.parameters()
            return "failed", rigid.transform
        qc["fallback"] = "identity (scanner coordinates)"
        return "fallback_identity", _identity_at(rigid.transform.GetCenter())
    if options.deformable is None:
        return "registered", rigid.transform
    try:
        d = register_deformable(rigid.pair, rigid.transform, options.deformable, options.rigid)
    except RuntimeError as exc:  # ITK gave up
        message = str(exc).strip().splitlines()[-1]
        problems.append(f"deformable registration could not run: {message}")
        qc["deformable"] = {"status": "not run", "error": message}
        if not options.allow_fallback:
            return "failed", rigid.transform
        qc["fallback"] = "rigid (deformable stage failed)"
        return "fallback_rigid", rigid.transform
    timings["deformable"] = d.elapsed_s
    dproblems = deformable_problems(d.optimiser_start, d.optimiser_final, d.min_jacobian, limits)
    qc["deformable"] = {
        "status": "failed" if dproblems else "ok",
        "method": "cubic B-spline after the rigid transform, Mattes MI, L-BFGS-B; "
                  "regularised by the control-point spacing",
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options.deformable).items()},
        "metric": {"name": "Mattes MI on the rigid QC samples (information; lower is better)",
                   "rigid": d.metric_rigid, "final": d.metric_final},
        **d.parameters(),
        "problems": dproblems,
    }
    if dproblems:
        problems.extend(dproblems)
        if not options.allow_fallback:
            return "failed", d.transform
        qc["fallback"] = "rigid (deformable stage rejected)"
        return "fallback_rigid", rigid.transform
    return "registered", d.transform


def _mapping(transform, dose_grid: Image, qc: dict) -> MovingToReference:
    """Moving -> reference map (inverse of ``transform``) for the activity resampling."""
    if transform.IsLinear():
        return MovingToReference.from_rigid(affine_ras(transform))
    comp = sitk.CompositeTransform(transform)
    rigid = comp.GetNthTransform(0)
    field = comp.GetNthTransform(1)
    grid = _coarser(dose_grid, INVERSE_FIELD_FACTOR)
    v, residual = inverse_field_on(field, grid)
    qc.setdefault("deformable", {})["inverse_residual_mm"] = residual
    return MovingToReference(np.linalg.inv(affine_ras(rigid)), v, grid)


def _coarser(grid: Image, factor: int) -> Image:
    """A grid over the same extent with voxels ``factor`` times larger (same orientation)."""
    shape = tuple(max(int(np.ceil(n / factor)), 2) for n in grid.shape)
    affine = grid.affine.copy()
    affine[:3, :3] = grid.affine[:3, :3] * factor
    # keep the centre of the field of view
    centre = grid.index_to_world((np.array(grid.shape) - 1) / 2.0)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return Image(np.zeros(shape, np.uint8), affine, "grid")


# -- files --------------------------------------------------------------------------------

def find_time_points(ingest_dir) -> dict:
    """Time points of an ingest folder: ``<tp>/ct.nii.gz`` + ``<tp>/spect.nii.gz`` with sidecars.

    Returns
    -------
    dict
        Time point id -> :class:`TimePointInput`, ordered by time after injection.
    """
    ingest_dir = Path(ingest_dir)
    if not ingest_dir.is_dir():
        raise InputError(ingest_dir, "ingest folder not found")
    found = {}
    for sub in sorted(p for p in ingest_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        ct, spect = sub / "ct.nii.gz", sub / "spect.nii.gz"
        if not (ct.exists() and spect.exists()):
            continue
        side = read_sidecar(spect)
        if "time_h" not in side:
            raise InputError(spect, "sidecar has no time_h (hours after injection); run spectdose ingest")
        tp = str(side.get("time_point", sub.name))
        if tp != sub.name:
            raise InputError(spect, f"sidecar says time point {tp!r} but the folder is {sub.name!r}")
        found[tp] = TimePointInput(tp, float(side["time_h"]), ct, spect)
    if not found:
        raise InputError(ingest_dir, "no time points (<tp>/ct.nii.gz and <tp>/spect.nii.gz) found")
    return dict(sorted(found.items(), key=lambda kv: kv[1].time_h))


def _read(path, unit) -> tuple[Image, dict]:
    image, side = read_image(path, unit=unit)
    if image.unit != unit:
        raise InputError(path, f"expected {unit}, the sidecar says {image.unit!r}")
    return image, side


def _manifest(ingest_dir: Path) -> dict:
    path = ingest_dir / "manifest.json"
    return read_json(path, "ingest manifest") if path.exists() else {}


def _resolve_reference(ingest_dir: Path, tps: dict, requested: str | None) -> tuple[str, str, dict]:
    if requested is None:
        wanted = _manifest(ingest_dir).get("reference_time_point")
        if wanted in tps:
            return wanted, "named in the ingest manifest", {}
    try:
        return choose_reference({k: v.time_h for k, v in tps.items()}, requested,
                                ct_problems=lambda tp: ct_quality_problems(_read(tps[tp].ct_path, "HU")[0]))
    except KeyError:
        raise InputError(ingest_dir, f"reference time point {requested!r} not found; have {list(tps)}") from None
    except ValueError as exc:
        raise InputError(ingest_dir, str(exc)) from None


def run_register(ingest_dir, out_dir, reference: str | None = None, time_point: str | None = None,
                 options: RegisterOptions | None = None, log=None) -> dict:
    """Register the time points of an ingest folder and write the results.

    Parameters
    ----------
    ingest_dir : path
        ``results/<patient>/ingest``.
    out_dir : path
        ``results/<patient>/register``.
    reference : str, optional
        Reference time point id (default: see :mod:`pipeline.register.reference`).
    time_point : str, optional
        Do only this time point (the reference files are written when it is the reference).
    options : RegisterOptions, optional
    log : callable, optional
        Receives one line of text per time point.

    Returns
    -------
    dict
        Time point -> status.

    Raises
    ------
    RegistrationFailed
        When a time point failed (after all requested time points were tried).
    """
    options = options or RegisterOptions()
    ingest_dir, out_dir = Path(ingest_dir), Path(out_dir)
    tps = find_time_points(ingest_dir)
    if time_point is not None and time_point not in tps:
        raise InputError(ingest_dir, f"no time point {time_point!r}; have {list(tps)}")
    ref_id, reason, rejected = _resolve_reference(ingest_dir, tps, reference)
    ref_ct, ref_ct_side = _read(tps[ref_id].ct_path, "HU")
    ref_spect, _ = _read(tps[ref_id].spect_path, "Bq/mL")
    dose_grid = ref_spect.with_array(np.zeros(ref_spect.shape, np.uint8), unit="grid")
    todo = [time_point] if time_point is not None else list(tps)
    if ref_id in todo:  # the reference first, so that its files exist for the others
        todo.remove(ref_id)
        todo.insert(0, ref_id)
    statuses, failures = {}, []
    for tp in todo:
        is_ref = tp == ref_id
        ct, _ = (ref_ct, ref_ct_side) if is_ref else _read(tps[tp].ct_path, "HU")
        spect, spect_side = _read(tps[tp].spect_path, "Bq/mL")
        start = time.perf_counter()
        result = register_time_point(tp, ref_ct, ct, spect, dose_grid, options, is_reference=is_ref)
        result.qc["reference_time_point"] = ref_id
        result.qc["timings_s"]["total"] = time.perf_counter() - start
        _write_time_point(out_dir / tp, result, ref_ct, ct, spect, spect_side, ref_id, tps[tp])
        if is_ref:
            _write_reference(out_dir, ref_id, reason, rejected, ref_ct, ref_ct_side, dose_grid, tps)
        statuses[tp] = result.status
        if log is not None:
            log(_summary(result))
        if result.status == "failed":
            failures.append(result)
    if len(failures) == 1:
        first = failures[0]
        raise RegistrationFailed(first.time_point, first.problems, out_dir / first.time_point / "qc.json")
    if failures:
        raise SpectdoseError(
            "registration failed for " + ", ".join(f.time_point for f in failures) + ": "
            + " | ".join(f"{f.time_point}: {'; '.join(f.problems)}" for f in failures)
            + f" (QC records in {out_dir}/<tp>/qc.json; use --allow-fallback to continue without them)")
    return statuses


def _summary(result: TimePointResult) -> str:
    qc = result.qc
    parts = [f"{result.time_point}: {result.status}"]
    rigid = qc.get("rigid", {})
    if "parameters" in rigid:
        p = rigid["parameters"]
        m = rigid["metric"]
        parts.append(f"rigid {p['translation_at_center_mm']:.1f} mm / {p['rotation_deg']:.2f} deg, "
                     f"MI {m['scanner_coordinates']:.3f} -> {m['final']:.3f}")
    if "activity" in qc:
        a = qc["activity"]
        parts.append(f"activity {a['in_fov_before_mbq']:.2f} -> {a['after_mbq']:.2f} MBq in the dose-grid FOV "
                     f"({100 * a['relative_change_in_fov']:+.3f} %), {a['left_fov_mbq']:.2f} MBq outside")
    if result.problems:
        parts.append("problems: " + "; ".join(result.problems))
    parts.append(f"{qc['timings_s'].get('total', 0.0):.1f} s")
    return ", ".join(parts)


def _write_time_point(folder: Path, result: TimePointResult, ref_ct: Image, ct: Image, spect: Image,
                      spect_side: dict, ref_id: str, tp: TimePointInput) -> None:
    carried = {k: spect_side[k] for k in CARRIED_FIELDS if k in spect_side}
    registration = {
        "status": result.status,
        "reference_time_point": ref_id,
        "transform": "transform.tfm",
        "convention": "transform.tfm maps reference-space LPS mm to this time point's LPS mm (ITK)",
        "deformable": "deformable" in result.qc and result.status == "registered"
                      and not result.transform.IsLinear(),
    }
    with atomic_dir(folder) as tmp:
        write_json(tmp / "qc.json", {**make_sidecar("registration_qc", "n/a"), **carried, **result.qc})
        try:
            qc_spect = result.spect if result.spect is not None else spect
            tx = None if result.status == "reference" else result.transform
            notes = _qc_notes(result)
            overlay_png(tmp / "qc.png", ref_ct, ct, qc_spect, transform=tx,
                        spect_before=spect if tx is not None else None,
                        title=f"{tp.id} ({tp.time_h:.1f} h) registered to {ref_id}: {result.status}", notes=notes)
        except (RuntimeError, ValueError) as exc:  # a broken image must not hide the QC record
            result.qc["overlay_error"] = str(exc)
            write_json(tmp / "qc.json", {**make_sidecar("registration_qc", "n/a"), **carried, **result.qc})
        if result.status == "failed":
            return
        sitk.WriteTransform(result.transform, str(tmp / "transform.tfm"))
        write_image(tmp / "spect.nii.gz", result.spect, {
            **make_sidecar("activity_concentration", "Bq/mL"), **carried,
            "grid": f"dose grid = reference SPECT grid ({ref_id})",
            "registration": registration,
            "activity_balance": result.qc["activity"],
            "sources": [f"ingest/{tp.id}/spect.nii.gz", f"ingest/{tp.id}/ct.nii.gz"],
        })
        write_image(tmp / "ct.nii.gz", result.ct, {
            **make_sidecar("ct_hounsfield", "HU"), **carried,
            "grid": f"reference CT grid ({ref_id})", "purpose": "QC of the registration",
            "registration": registration, "sources": [f"ingest/{tp.id}/ct.nii.gz"],
        })


def _qc_notes(result: TimePointResult) -> str:
    rigid = result.qc.get("rigid", {})
    lines = []
    if "parameters" in rigid:
        p, m, c = rigid["parameters"], rigid["metric"], rigid["ct_correlation"]
        lines.append(f"rigid: {p['translation_at_center_mm']:.1f} mm, {p['rotation_deg']:.2f} deg; "
                     f"MI {m['scanner_coordinates']:.3f} -> {m['final']:.3f}; "
                     f"CT corr {c['before']:.2f} -> {c['after']:.2f}")
    d = result.qc.get("deformable", {})
    if "metric" in d:
        lines.append(f"deformable: MI {d['metric']['rigid']:.3f} -> {d['metric']['final']:.3f}, "
                     f"max {d['max_displacement_mm']:.1f} mm, Jacobian {d['min_jacobian']:.2f}..{d['max_jacobian']:.2f}")
    a = result.qc.get("activity")
    if a:
        lines.append(f"activity in FOV {a['in_fov_before_mbq']:.1f} -> {a['after_mbq']:.1f} MBq "
                     f"({100 * a['relative_change_in_fov']:+.3f} %)")
    if result.problems:
        lines.append("PROBLEMS: " + "; ".join(result.problems))
    return "\n".join(lines)


def _write_reference(out_dir: Path, ref_id: str, reason: str, rejected: dict, ref_ct: Image,
                     ref_ct_side: dict, dose_grid: Image, tps: dict) -> None:
    carried = {k: ref_ct_side[k] for k in ("patient_id", "time_point", "time_h", "acquisition_datetime")
               if k in ref_ct_side}
    write_image(out_dir / "reference_ct.nii.gz", ref_ct, {
        **make_sidecar("ct_hounsfield", "HU"), **carried,
        "purpose": "registration reference (the frame of every registered volume)",
        "sources": [f"ingest/{ref_id}/ct.nii.gz"]})
    write_json(out_dir / "reference.json", {
        **make_sidecar("registration_reference", "n/a"),
        "reference_time_point": ref_id,
        "reason": reason,
        "rejected": rejected,
        "time_points": {k: v.time_h for k, v in tps.items()},
        "dose_grid": {"description": f"reference SPECT grid ({ref_id})", "shape": list(dose_grid.shape),
                      "affine_ras": dose_grid.affine.tolist(),
                      "voxel_size_mm": [float(v) for v in dose_grid.voxel_size_mm]},
        "convention": "fixed = reference; each <tp>/transform.tfm maps reference-space LPS mm to that "
                      "time point's LPS mm (ITK convention); RAS = diag(-1,-1,1) LPS",
    })
