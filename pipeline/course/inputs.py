"""Reading a course: the course manifest and each cycle's kinetics, dose and uncertainty results.

A course manifest (YAML) lists ``cycles``, each with ``id``, ``kind`` (tracer or therapy),
``injected_activity_mbq``, ``injection_datetime``, ``manifest`` and optionally ``compound`` and
``kinetics_from``. The results of cycle ``c`` are in ``RESULTS/<c>/`` (the workflow's
``results/<patient>/<cycle>/``): ``dose/organ_doses.csv``, ``dose/marrow.json``,
``kinetics/fits.json`` and, when present, ``uncertainty/uncertainty.json``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..atomic import read_json
from ..dose.radiobiology import LQParameters, lq_g_factor_per_gy
from ..errors import InputError
from ..kinetics.models import MODEL_NAMES, exponential_terms
from .summary import SHARED_SOURCES, CycleRecord, StructureCycle

__all__ = ["read_course_manifest", "read_cycle", "lq_from_dose_config", "KIDNEYS"]

KIDNEYS = ("kidney_left", "kidney_right")


def read_course_manifest(path) -> dict:
    """The course manifest as a dict, with its cycles checked (InputError naming the file)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read the course manifest ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"course manifest is not valid YAML ({exc})") from None
    cycles = doc.get("cycles") if isinstance(doc, dict) else None
    if not isinstance(cycles, list) or not cycles:
        raise InputError(path, "course manifest has no `cycles` list")
    seen = set()
    for n, c in enumerate(cycles, start=1):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            raise InputError(path, f"cycle {n} has no `id`")
        if c["id"] in seen:
            raise InputError(path, f"cycle {c['id']} is listed twice")
        seen.add(c["id"])
        if c.get("kind") not in ("tracer", "therapy"):
            raise InputError(path, f"cycle {c['id']}: kind must be tracer or therapy")
        a = c.get("injected_activity_mbq")
        if not isinstance(a, (int, float)) or isinstance(a, bool) or not a > 0:
            raise InputError(path, f"cycle {c['id']}: injected_activity_mbq must be a number > 0 (MBq)")
    return doc


def lq_from_dose_config(dose_config: dict) -> dict:
    """Structure name -> LQParameters of the structures with LQ parameters of their own."""
    c = dose_config or {}
    kid = LQParameters(float(c.get("kidney_alpha_beta_gy", 2.6)), float(c.get("kidney_repair_half_time_h", 2.8)))
    out = {"kidney_left": kid, "kidney_right": kid, "kidneys": kid}
    for organ, par in (c.get("lq") or {}).items():
        out[organ] = LQParameters(float(par["alpha_beta_gy"]), float(par["repair_half_time_h"]))
    return out


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError(path, "not found (has the cycle's dose stage run?)")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(value):
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _terms_of_organ(organ: dict, fits_path: Path):
    """(coefficients, rates 1/h) of the organ's TIA curve shape in this cycle, and a description.

    A fitted model: its own terms. A reduced protocol: the shape it assumed (the earlier cycle's
    curve for prior_cycle, a mono-exponential with the earlier cycle's terminal rate for madsen,
    with T_eff = t for Hanscheid). None when unknown.
    """
    model, params = organ.get("chosen_model"), organ.get("chosen_params")
    if model in MODEL_NAMES and isinstance(params, dict) and organ.get("method") == model:
        c, r = exponential_terms(model, params)
        return np.real(c), np.real(r), model
    stp = organ.get("single_time_point") or {}
    used = stp.get("method_used") or organ.get("method")
    if used == "prior_cycle" and stp.get("prior_source"):
        prior = Path(stp["prior_source"])
        if not prior.is_file():  # a path relative to another working folder: the sibling cycle of that name
            prior = fits_path.parent.parent.parent / prior.parent.parent.name / "kinetics" / "fits.json"
        if prior.is_file():
            name = organ.get("_name")
            p = (read_json(prior).get("organs") or {}).get(name) or {}
            if p.get("chosen_model") in MODEL_NAMES and isinstance(p.get("chosen_params"), dict):
                c, r = exponential_terms(p["chosen_model"], p["chosen_params"])
                return np.real(c), np.real(r), f"prior_cycle ({p['chosen_model']} of {prior})"
        return None
    if used == "madsen" and stp.get("prior_terminal_effective_half_life_h"):
        return np.array([1.0]), np.array([math.log(2.0) / float(stp["prior_terminal_effective_half_life_h"])]), "madsen"
    if used == "hanscheid" and stp.get("time_h"):
        return np.array([1.0]), np.array([math.log(2.0) / float(stp["time_h"])]), "hanscheid"
    return None


def read_cycle(results_dir, entry: dict, lq: dict) -> tuple[CycleRecord, list[str], dict]:
    """One cycle's record from ``RESULTS/<cycle>/``, warnings about it, and facts for the QC.

    Parameters
    ----------
    results_dir : path
        The course patient's results folder (``results/<patient>``).
    entry : dict
        The cycle's entry of the course manifest.
    lq : dict
        Structure name -> LQParameters (:func:`lq_from_dose_config`).
    """
    cdir = Path(results_dir) / entry["id"]
    warns = []
    fits_path = cdir / "kinetics" / "fits.json"
    if not fits_path.is_file():
        raise InputError(fits_path, "not found (has the cycle's kinetics stage run?)")
    fits = read_json(fits_path)
    rows = _read_csv(cdir / "dose" / "organ_doses.csv")
    unc_path = cdir / "uncertainty" / "uncertainty.json"
    unc = read_json(unc_path) if unc_path.is_file() else None
    fit_organs = fits.get("organs") or {}
    structures, masses, rel_kin = {}, {}, {}

    def relative_sd(name, block=None):
        """Relative SD of the mean dose: the uncertainty stage's, else the kinetic fit's (None: unknown).

        A missing or non-finite value of the uncertainty stage (a structure with zero dose, an
        ``uncertainty.json`` of an earlier version) falls back to the kinetic SD, with a warning.
        """
        if unc is not None:
            b = block if block is not None else (unc.get("organs") or {}).get(name)
            value = _float((b or {}).get("analytic_relative_sd"))
            if value is not None:
                return value, b
            if b:
                warns.append(f"{entry['id']}: {name}: no finite SD in {unc_path}: the kinetic fit's SD is used")
        if name in rel_kin and rel_kin[name] is not None:
            return rel_kin[name], None
        return None, None

    def shared(block):
        """The shared sources' SD parts (Gy) of an uncertainty block's budget."""
        budget = (block or {}).get("budget") or {}
        parts = ((src, _float((budget.get(src) or {}).get("sd_gy"))) for src in SHARED_SOURCES)
        return tuple((src, sd) for src, sd in parts if sd is not None)

    g_of = {}
    for row in rows:
        name = row.get("name")
        mean = _float(row.get("mean_gy"))
        if not name or mean is None:
            continue
        masses[name] = _float(row.get("mass_g")) or 0.0
        rel_kin[name] = _float(row.get("mean_gy_relative_sd_kinetics"))
        organ = dict(fit_organs.get(name) or {}, _name=name)
        g = None
        if name in lq:
            terms = _terms_of_organ(organ, fits_path)
            if terms is None:
                warns.append(f"{entry['id']}: {name}: no curve shape for the LQ protraction factor: no BED")
            else:
                g = float(lq_g_factor_per_gy(terms[0], terms[1], lq[name].repair_constant_per_h))
        g_of[name] = g
        rel, block = relative_sd(name)
        structures[name] = StructureCycle(name, mean, None if rel is None else rel * mean, g,
                                          lq[name].alpha_beta_gy if name in lq else None,
                                          str(organ.get("method", "")), shared(block))
    kid = [k for k in KIDNEYS if k in structures]
    if kid and sum(masses[k] for k in kid) > 0:
        w = np.array([masses[k] for k in kid]) / sum(masses[k] for k in kid)
        dose = float(sum(wi * structures[k].dose_gy for wi, k in zip(w, kid)))
        gs = [g_of[k] for k in kid]
        g = float(np.mean(gs)) if all(x is not None for x in gs) else None
        block = (unc or {}).get("kidneys_mass_weighted")
        rel, used = relative_sd("kidneys", block) if block else (None, None)
        if rel is None:
            sds = [structures[k].dose_sd_gy for k in kid]
            known = all(s is not None for s in sds) and dose > 0
            rel = float(sum(wi * s for wi, s in zip(w, sds))) / dose if known else None
        structures["kidneys"] = StructureCycle("kidneys", dose, None if rel is None else rel * dose, g,
                                               lq["kidneys"].alpha_beta_gy,
                                               "+".join(structures[k].kinetics_method for k in kid), shared(used))
    marrow_path = cdir / "dose" / "marrow.json"
    if marrow_path.is_file():
        marrow = read_json(marrow_path)
        d = _float(marrow.get("absorbed_dose_gy"))
        if d is not None:
            rel, used = relative_sd("red_marrow", (unc or {}).get("red_marrow_eanm") or {}) if unc else (None, None)
            structures["red_marrow"] = StructureCycle("red_marrow", d, None if rel is None else rel * d, None, None,
                                                      "EANM (marrow VOI)", shared(used))
    injected = _float(fits.get("injected_activity_mbq"))
    given = float(entry["injected_activity_mbq"])
    if injected is not None and abs(injected / given - 1) > 0.001:
        warns.append(f"{entry['id']}: administered activity {given:g} MBq in the course manifest, "
                     f"{injected:g} MBq in {fits_path}")
    reduced = ((fits.get("options") or {}).get("reduced_protocol") or None)
    record = CycleRecord(entry["id"], entry["kind"], given, str(entry.get("injection_datetime", "")),
                         str(entry.get("compound", "")), structures,
                         reduced if reduced and reduced.get("applied") else None,
                         len(fits.get("time_points") or []))
    return record, warns, {"radionuclide": fits.get("radionuclide"), "injected_in_results_mbq": injected,
                           "uncertainty": str(unc_path) if unc is not None else None}
