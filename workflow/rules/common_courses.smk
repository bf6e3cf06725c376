# Configuration helpers of the spectdose workflow for therapy courses (split from common.smk,
# included right after it; the two share one namespace): the course manifests, their cycles as
# run units, the reduced-protocol cycles and the input/parameter functions of the course rules.

import os
import re
import shlex

import yaml
from snakemake.exceptions import WorkflowError


# ----------------------------------------------------------------------------------------------
# Therapy courses: a manifest with `cycles` (tracer study, therapy cycles), each cycle a run unit.

#: Pattern of a cycle id (one path component of results/<patient>/<cycle>/).
CYCLE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]*"
#: Course patient id -> {"input": course manifest, "cycles": [cycle dicts in order]}.
COURSES = {}
#: Sheet columns that a course gives per cycle instead.
COURSE_CYCLE_COLUMNS = ("injected_mbq", "injection_datetime", "reference_time_point", "masks")


def read_course(patient_id, path):
    """The course manifest's cycles (list of dicts) when ``path`` is one, else None."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return None  # read_manifest reports it
    if not isinstance(doc, dict) or "cycles" not in doc:
        return None
    cycles = doc["cycles"]

    def bad(problem):
        return WorkflowError(f"patient {patient_id}: course manifest {path} {problem}")

    if not isinstance(cycles, list) or not cycles:
        raise bad("has an empty or non-list `cycles`")
    seen = []
    for n, c in enumerate(cycles, start=1):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            raise bad(f"cycle {n} has no `id`")
        if not re.fullmatch(CYCLE_PATTERN, c["id"]) or c["id"] in ("course", "logs", "benchmarks"):
            raise bad(f"cycle id {c['id']!r}: use letters, digits, _ and - (not course, logs, benchmarks)")
        if c["id"] in seen:
            raise bad(f"lists cycle {c['id']} twice")
        if c.get("kind") not in ("tracer", "therapy"):
            raise bad(f"cycle {c['id']}: `kind` must be tracer or therapy")
        activity = c.get("injected_activity_mbq")
        if not isinstance(activity, (int, float)) or isinstance(activity, bool) or not activity > 0:
            raise bad(f"cycle {c['id']}: `injected_activity_mbq` must be a number > 0 (MBq)")
        if not isinstance(c.get("injection_datetime"), str):
            raise bad(f"cycle {c['id']}: `injection_datetime` (ISO 8601 text) is missing")
        if not isinstance(c.get("manifest"), str):
            raise bad(f"cycle {c['id']}: `manifest` (the cycle's scans: a manifest YAML or DICOM folder) is missing")
        source = c.get("kinetics_from")
        if source is not None and source not in seen:
            raise bad(f"cycle {c['id']}: kinetics_from {source!r} is not an earlier cycle")
        seen.append(c["id"])
    return cycles


def course_units(patient_id, path, row, cycles):
    """One Patient per cycle (id ``<patient>/<cycle>``), the cycle's administration as overrides."""
    given = [key for key in COURSE_CYCLE_COLUMNS if key in row]
    if given:
        raise WorkflowError(
            f"patient {patient_id}: {', '.join(given)} of the patient sheet cannot apply to a course "
            f"({path}); give the administration per cycle in the course manifest"
        )
    base = os.path.dirname(path)
    units = []
    for c in cycles:
        source = os.path.normpath(os.path.join(base, c["manifest"]))
        unit_id = f"{patient_id}/{c['id']}"
        cycle_row = {**row, "injected_mbq": float(c["injected_activity_mbq"]),
                     "injection_datetime": c["injection_datetime"]}
        if isinstance(c.get("masks"), str):  # the cycle's own masks (mask-based segment backends)
            cycle_row["masks"] = os.path.normpath(os.path.join(base, c["masks"]))
        if os.path.isdir(source):
            unit = Patient(unit_id, source, cycle_row, course=patient_id, cycle=c["id"])
        elif os.path.isfile(source):
            manifest, entries = read_manifest(unit_id, source)
            unit = Patient(unit_id, source, cycle_row, manifest, entries, course=patient_id, cycle=c["id"])
        else:
            raise WorkflowError(f"patient {patient_id}: cycle {c['id']}: {source} does not exist")
        check_unit(unit, source)
        units.append(unit)
    COURSES[patient_id] = {"input": path, "cycles": [dict(c) for c in cycles]}
    return units


def reduced_units(patients):
    """Run unit -> (method, earlier unit or None) for course cycles with one or two scans.

    A DICOM-folder cycle's scans are counted only after its ingest: it is never reduced here.
    """
    method = (config.get("kinetics") or {}).get("reduced", "prior_cycle")
    if method == "none":
        return {}
    out = {}
    for pid, course in COURSES.items():
        full = []
        for c in course["cycles"]:
            unit = patients[f"{pid}/{c['id']}"]
            n = len(unit.time_points) if unit.is_manifest else None
            if n is not None and n <= 2:
                prior = None
                if method != "haenscheid":
                    name = c.get("kinetics_from") or (full[-1] if full else None)
                    if name is None:
                        raise WorkflowError(
                            f"patient {pid}: cycle {c['id']} has {n} scan(s) and kinetics.reduced is {method}, "
                            "but no earlier cycle has three or more scans (set kinetics.reduced: haenscheid, "
                            "or kinetics_from)"
                        )
                    prior = f"{pid}/{name}"
                out[unit.patient_id] = (method, prior)
            else:
                full.append(c["id"])
    return out


def prior_fits(wildcards):
    method, prior = REDUCED[wildcards.patient]
    return [f"{RESULTS}/{prior}/kinetics/fits.json"] if prior else []


def reduced_flags(wildcards, input):
    method, _ = REDUCED[wildcards.patient]
    flags = f"--reduced {method}"
    if input.prior:
        flags += f" --prior-fits {shlex.quote(str(input.prior[0]))}"
    return flags


def uncertainty_prior_fits(wildcards):
    """A reduced-protocol cycle's earlier fits.json (its uncertainty propagates that fit's covariance)."""
    _, prior = REDUCED.get(wildcards.patient, (None, None))
    return [f"{RESULTS}/{prior}/kinetics/fits.json"] if prior else []


def uncertainty_prior_flag(wildcards, input):
    return f"--prior-fits {shlex.quote(str(input.prior[0]))}" if input.prior else ""


def course_cycle_units(patient_id):
    return [f"{patient_id}/{c['id']}" for c in COURSES[patient_id]["cycles"]]


def course_inputs(wildcards):
    """Every cycle's dose and kinetics results (and uncertainty when configured) plus the manifest."""
    units = course_cycle_units(wildcards.course)
    files = {"manifest": COURSES[wildcards.course]["input"]}
    names = {"organ_doses": "dose/organ_doses.csv", "bed": "dose/bed.csv", "planning": "dose/planning.json",
             "marrow": "dose/marrow.json", "fits": "kinetics/fits.json"}
    if (config.get("course") or {}).get("uncertainty", True):
        names["uncertainty"] = "uncertainty/uncertainty.json"
    for key, name in names.items():
        files[key] = [f"{RESULTS}/{unit}/{name}" for unit in units]
    if (config.get("course") or {}).get("cumulative_dose_map", True):
        files["dose_ct"] = [f"{RESULTS}/{unit}/dose/dose_ct.nii.gz" for unit in units]
        files["cts"] = [ingested(unit, reference_time_point(unit), "ct.nii.gz") for unit in units]
        files["labels"] = f"{RESULTS}/{units[0]}/segment/labels.nii.gz"
    return files


def course_flags():
    """`spectdose course` options from the `course:` section of the config."""
    settings = config.get("course") or {}
    pairs = [("--kidney-dose-limit-gy", settings.get("kidney_dose_limit_gy", 23)),
             ("--kidney-bed-limit-gy", settings.get("kidney_bed_limit_gy", 40)),
             ("--marrow-dose-limit-gy", settings.get("marrow_dose_limit_gy", 2)),
             ("--planning-basis", settings.get("planning_basis", "last"))]
    flags = _flags(pairs)
    if settings.get("cumulative_dose_map", True):
        flags += " --cumulative-map"
    return flags
