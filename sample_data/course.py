"""A therapy course of the digital patient: a tracer study and therapy cycles, with their truth.

``generate_course`` writes one sample patient per cycle (the same anatomy and seed, each with its
own administration, scan times and kinetics) and a course manifest that the workflow reads:

```
DIR/course.yaml                  patient_id, radionuclide, cycles (id, kind, compound, activity,
                                 date-time, manifest of the cycle's scans)
DIR/<cycle>/manifest.yaml ...    a sample patient (sample_data/README.md), one per cycle
DIR/truth/course_truth.json      per cycle: administration, kinetic changes, organ TIA (MBq h)
                                 and TIA per administered GBq (MBq h/GBq)
```

Kinetic changes between cycles are factors on the default compartments
(:data:`sample_data.kinetics.COMPARTMENTS`): the kidney uptake amplitude and the kidney washout
half-life (both kidneys), and the amplitudes of the red-marrow concentration. The default course
follows the seed study's observation that the kidney dose per GBq falls from the tracer study to
therapy: therapy cycle 1 has 80 % of the tracer's kidney uptake with a washout half-life 0.65
times as long; cycle 2 keeps cycle 1's kidney washout (so cycle 1's kinetics describe it) with a
further 10 % lower uptake, and is imaged once, at 72 h.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pipeline.errors import InputError

from .kinetics import Compartment, compartments_for, integrate

__all__ = ["CycleSpec", "DEFAULT_COURSE", "cycle_compartments", "generate_course", "course_manifest", "with_activity"]

_KIDNEYS = ("kidney_left", "kidney_right")
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True)
class CycleSpec:
    """One administration of a course and how the patient's kinetics differ in it.

    Attributes
    ----------
    cycle_id : str
        Folder and result name (letters, digits, ``_``, ``-``), e.g. ``tracer``, ``c1``.
    kind : {"tracer", "therapy"}
    injected_mbq : float
        Administered activity, MBq.
    injection_datetime : str
        ISO 8601 local time of the administration.
    time_points_h : tuple of float
        Scan times, h after this administration.
    compound : str
        Name of the radiopharmaceutical (recorded only).
    kidney_uptake_factor : float
        Factor on the kidney uptake amplitude (dimensionless).
    kidney_washout_half_life_factor : float
        Factor on the kidney biological washout half-life (dimensionless).
    marrow_uptake_factor : float
        Factor on the red-marrow concentration amplitudes (dimensionless).
    """

    cycle_id: str
    kind: str
    injected_mbq: float
    injection_datetime: str
    time_points_h: tuple = (1.0, 4.0, 24.0, 48.0, 168.0)
    compound: str = "Lu-177-PSMA (synthetic)"
    kidney_uptake_factor: float = 1.0
    kidney_washout_half_life_factor: float = 1.0
    marrow_uptake_factor: float = 1.0


#: The default course: tracer study (200 MBq, five scans), therapy 1 (7.4 GBq, five scans, lower
#: and faster kidney kinetics), therapy 2 (6.0 GBq, one scan at 72 h, cycle 1's kidney washout).
DEFAULT_COURSE = (
    CycleSpec("tracer", "tracer", 200.0, "2026-01-05T09:00:00"),
    CycleSpec("c1", "therapy", 7400.0, "2026-01-19T09:00:00", kidney_uptake_factor=0.8,
              kidney_washout_half_life_factor=0.65, marrow_uptake_factor=0.9),
    CycleSpec("c2", "therapy", 6000.0, "2026-03-16T09:00:00", time_points_h=(72.0,), kidney_uptake_factor=0.72,
              kidney_washout_half_life_factor=0.65, marrow_uptake_factor=0.9),
)


def cycle_compartments(spec: CycleSpec, nuclide: str) -> dict:
    """The kinetic compartments of one cycle: the defaults with the cycle's factors applied."""
    out = dict(compartments_for(nuclide))
    for name in _KIDNEYS:
        c = out[name]
        p = dict(c.parameters)
        p["a"] = p["a"] * spec.kidney_uptake_factor
        p["lambda_washout_per_h"] = p["lambda_washout_per_h"] / spec.kidney_washout_half_life_factor
        out[name] = Compartment(c.name, c.model, c.quantity, p)
    c = out["marrow"]
    p = dict(c.parameters)
    p["a1"] *= spec.marrow_uptake_factor
    p["a2"] *= spec.marrow_uptake_factor
    out["marrow"] = Compartment(c.name, c.model, c.quantity, p)
    return out


def _check(specs, out_dir):
    if not specs:
        raise InputError(None, "a course needs at least one cycle")
    ids = [s.cycle_id for s in specs]
    for s in specs:
        if not s.cycle_id or not set(s.cycle_id) <= _ID_CHARS or s.cycle_id in ("course", "truth"):
            raise InputError(None, f"cycle id {s.cycle_id!r}: use letters, digits, _ and - (not course or truth)")
        if s.kind not in ("tracer", "therapy"):
            raise InputError(None, f"cycle {s.cycle_id}: kind must be tracer or therapy, not {s.kind!r}")
        for f in ("kidney_uptake_factor", "kidney_washout_half_life_factor", "marrow_uptake_factor"):
            if not getattr(s, f) > 0:
                raise InputError(None, f"cycle {s.cycle_id}: {f} must be > 0")
    if len(set(ids)) != len(ids):
        raise InputError(None, f"cycle ids must be distinct, got {ids}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "course.yaml").exists())):
        raise InputError(out, "exists and is not an empty folder or a previous sample course; refusing to replace it")


def course_manifest(patient_id: str, nuclide: str, specs) -> dict:
    """The course manifest (``course.yaml``) as a dict: the cycles with their administrations."""
    return {
        "patient_id": patient_id,
        "radionuclide": nuclide,
        "cycles": [{"id": s.cycle_id, "kind": s.kind, "compound": s.compound,
                    "injected_activity_mbq": float(s.injected_mbq), "injection_datetime": s.injection_datetime,
                    "manifest": f"{s.cycle_id}/manifest.yaml"} for s in specs],
    }


def generate_course(out_dir, specs=DEFAULT_COURSE, *, preset: str = "small", nuclide: str = "Lu-177", seed: int = 0,
                    noise: bool = True, fmt: str = "dicom", patient_id: str = "COURSE01") -> Path:
    """Write a course (one sample patient per cycle, a course manifest, the course truth).

    Parameters
    ----------
    out_dir : path
        Output folder (absent, empty, or a previous sample course; replaced cycle by cycle).
    specs : sequence of CycleSpec
        The cycles in order of administration.
    preset, nuclide, seed, noise, fmt, patient_id
        As for :func:`sample_data.generator.generate` (one anatomy and seed for every cycle).

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    import json

    import yaml

    from kernels.decay import load_decay, normalise_nuclide
    from pipeline.atomic import write_json, write_text

    from .generator import generate

    specs = tuple(specs)
    _check(specs, out_dir)
    nuc = normalise_nuclide(nuclide)
    lam_p = load_decay(nuc).decay_constant_per_h
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth_cycles = []
    for spec in specs:
        try:
            _dt.datetime.fromisoformat(spec.injection_datetime)
        except ValueError:
            raise InputError(None, f"cycle {spec.cycle_id}: date-time {spec.injection_datetime!r} "
                                   "is not ISO 8601") from None
        comps = cycle_compartments(spec, nuc)
        generate(out / spec.cycle_id, preset=preset, nuclide=nuc, seed=seed, noise=noise, fmt=fmt,
                 time_points_h=spec.time_points_h, injected_mbq=spec.injected_mbq, patient_id=patient_id,
                 injection_datetime=spec.injection_datetime, compartments=comps)
        with open(out / spec.cycle_id / "truth" / "truth.json", encoding="utf-8") as handle:
            truth = json.load(handle)
        gbq = spec.injected_mbq / 1000.0
        organs = {name: {"tia_mbq_h": o["tia_mbq_h"], "tia_per_gbq_mbq_h_per_gbq": o["tia_mbq_h"] / gbq,
                         "mass_g": o["mass_g"]} for name, o in truth["organs"].items()}
        kid = {name: {"effective_half_life_washout_h":
                      math.log(2.0) / (comps[name].parameters["lambda_washout_per_h"] + lam_p),
                      "integral_h": integrate(comps[name].model, comps[name].parameters, lam_p)}
               for name in _KIDNEYS}
        truth_cycles.append({**asdict(spec), "time_points_h": list(spec.time_points_h),
                             "reference_time_point": truth["reference_time_point"],
                             "kidney_kinetics": kid, "organs": organs})
    manifest = course_manifest(patient_id, nuc, specs)
    head = "# spectdose sample course (synthetic): one folder per cycle; ground truth in */truth/ and truth/.\n"
    write_text(out / "course.yaml", head + yaml.safe_dump(manifest, sort_keys=False))
    ratios = {}
    base = truth_cycles[0]
    for c in truth_cycles[1:]:
        ratios[c["cycle_id"]] = {name: c["organs"][name]["tia_per_gbq_mbq_h_per_gbq"]
                                 / base["organs"][name]["tia_per_gbq_mbq_h_per_gbq"]
                                 for name in base["organs"] if base["organs"][name]["tia_per_gbq_mbq_h_per_gbq"] > 0}
    write_json(out / "truth" / "course_truth.json", {
        "description": "Ground truth of the spectdose sample course (sample_data/course.py)",
        "patient_id": patient_id, "radionuclide": nuc, "preset": preset, "seed": int(seed), "noise": bool(noise),
        "cycles": truth_cycles,
        "tia_per_gbq_ratio_to_first_cycle": ratios,
        "note": "TIA as generated (unblurred); organ TIA per GBq ratios are the kinetics change the "
                "prediction-versus-delivery table should reproduce",
    })
    return out


def with_activity(spec: CycleSpec, injected_mbq: float, cycle_id: str | None = None) -> CycleSpec:
    """A copy of ``spec`` at another activity (and id): the same kinetics, e.g. to check a plan."""
    return replace(spec, injected_mbq=float(injected_mbq), cycle_id=cycle_id or spec.cycle_id)
