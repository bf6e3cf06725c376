# Configuration helpers of the spectdose workflow: the patient sheet, the manifests, the time
# points of each patient, and the input/parameter functions the rules use. Only functions and
# parse-time configuration live here; the rules (workflow/rules/<stage>.smk) hold no logic.

import csv
import json
import os
import re
import shlex
from dataclasses import dataclass, field

import yaml
from snakemake.exceptions import IncompleteCheckpointException, WorkflowError

#: Pattern of a time point id (also in config/patients.schema.yaml for reference_time_point).
TIME_POINT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
#: Results of each patient go to results/<patient>/<stage>/.
RESULTS = "results"
#: Number-valued columns of the patient sheet (cells are text until converted).
NUMBER_COLUMNS = ("injected_mbq", "calibration_cps_per_mbq")


@dataclass(frozen=True)
class Patient:
    """One row of the patient sheet with what the workflow derives from it at parse time.

    ``time_points`` and ``reference`` are known at parse time for manifest inputs; for a DICOM
    folder they come from the ingest checkpoint (``None`` here).
    """

    patient_id: str
    input: str
    row: dict
    manifest: dict | None = None
    time_point_entries: dict = field(default_factory=dict)
    #: For one cycle of a therapy course: the course patient's id and the cycle id (the run unit
    #: ``patient_id`` is then ``<course>/<cycle>``, its results in results/<course>/<cycle>/).
    course: str | None = None
    cycle: str | None = None

    @property
    def is_manifest(self) -> bool:
        return self.manifest is not None

    @property
    def pseudonym(self) -> str:
        """The patient's pseudonymous id (the course patient's for a cycle)."""
        return self.course or self.patient_id

    @property
    def time_points(self) -> list | None:
        return list(self.time_point_entries) if self.is_manifest else None

    @property
    def reference(self) -> str | None:
        """The reference time point, fixed by the sheet, else the manifest, else its first scan."""
        if self.row.get("reference_time_point"):
            return self.row["reference_time_point"]
        if not self.is_manifest:
            return None
        return self.manifest.get("reference_time_point") or self.time_points[0]


def _sheet_error(path, problem):
    return WorkflowError(f"patient sheet {path}: {problem}")


def read_patient_sheet(path):
    """Rows of the tab-separated patient sheet as dicts; empty cells are left out.

    Lines starting with ``#`` are comments; numeric columns are converted when they parse as
    numbers (otherwise the schema reports them).
    """
    if not os.path.isfile(path):
        raise _sheet_error(path, "file not found (set `patients:` in the config)")
    with open(path, newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    rows = []
    for number, raw in enumerate(reader, start=1):
        if None in raw:
            raise _sheet_error(path, f"row {number} has more cells than the header has columns")
        row = {key.strip(): (value or "").strip() for key, value in raw.items() if key}
        row = {key: value for key, value in row.items() if value != ""}
        for key in NUMBER_COLUMNS:
            if key in row:
                try:
                    row[key] = float(row[key])
                except ValueError:
                    pass
        rows.append(row)
    if not rows:
        raise _sheet_error(path, "no patients listed")
    return rows


def validate_patient_rows(path, rows, schema):
    """Validate every row against the sheet schema, naming the row and patient on failure."""
    seen = set()
    for number, row in enumerate(rows, start=1):
        try:
            validate(row, schema, set_default=False)
        except WorkflowError as exc:
            who = row.get("patient_id", "?")
            detail = str(exc).replace("Error validating config file.", "").strip()
            raise _sheet_error(path, f"row {number} (patient {who}) is invalid:\n{detail}") from None
        if row["patient_id"] in seen:
            raise _sheet_error(path, f"patient_id {row['patient_id']} is listed twice")
        seen.add(row["patient_id"])


def read_manifest(patient_id, path):
    """Parse a patient's manifest YAML far enough to enumerate its time points."""
    problem = None
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = yaml.safe_load(handle)
    except OSError as exc:
        raise WorkflowError(f"patient {patient_id}: cannot read manifest {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        raise WorkflowError(f"patient {patient_id}: manifest {path} is not valid YAML: {exc}")
    entries = manifest.get("time_points") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries:
        problem = "has no `time_points` list"
    else:
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                problem = "has a time point without an `id`"
            elif not re.fullmatch(TIME_POINT_PATTERN, entry["id"]):
                problem = f"has time point id {entry['id']!r} (use letters, digits, _ . -)"
            elif "dicom" not in entry and not ("ct" in entry and "spect" in entry):
                problem = f"time point {entry['id']} needs `dicom` or both `ct` and `spect`"
            if problem:
                break
        ids = [entry["id"] for entry in entries] if not problem else []
        if not problem and len(set(ids)) != len(ids):
            problem = "lists a time point id twice"
    if problem:
        raise WorkflowError(f"patient {patient_id}: manifest {path} {problem}")
    return manifest, {entry["id"]: entry for entry in entries}


def load_patients(sheet_path, schema):
    """All run units of the sheet, validated, with their manifests parsed.

    A patient is one run unit; a patient whose manifest lists ``cycles`` (a therapy course) is
    one run unit ``<patient>/<cycle>`` per cycle, recorded in COURSES.
    """
    rows = read_patient_sheet(sheet_path)
    validate_patient_rows(sheet_path, rows, schema)
    patients = {}
    for row in rows:
        pid, source = row["patient_id"], row["input"]
        course = read_course(pid, source) if os.path.isfile(source) else None
        if course is not None:
            for unit in course_units(pid, source, row, course):
                patients[unit.patient_id] = unit
            continue
        if os.path.isdir(source):
            patient = Patient(pid, source, row)
        elif os.path.isfile(source):
            manifest, entries = read_manifest(pid, source)
            patient = Patient(pid, source, row, manifest, entries)
        else:
            raise WorkflowError(
                f"patient {pid}: input {source} does not exist (a manifest YAML or a DICOM "
                "folder; relative paths are relative to the working directory)"
            )
        check_unit(patient, source)
        patients[pid] = patient
    return patients


def check_unit(patient, source):
    """The reference time point exists; a mask-based segment backend has its masks."""
    pid, row = patient.patient_id, patient.row
    if patient.is_manifest and patient.reference not in patient.time_point_entries:
        raise WorkflowError(
            f"patient {pid}: reference time point {patient.reference} is not in {source} "
            f"(time points: {', '.join(patient.time_points)})"
        )
    if config["segment"]["backend"] not in ("builtin", "totalsegmentator") and "masks" not in row:
        raise WorkflowError(
            f"patient {pid}: segment backend {config['segment']['backend']} needs the "
            "`masks` column of the patient sheet"
        )


def alternatives(names):
    """A regular expression matching exactly ``names`` (never matching when empty)."""
    return "|".join(re.escape(name) for name in sorted(names)) or "(?!)"


# ----------------------------------------------------------------------------------------------
# Time points: from the manifest, or from the ingest checkpoint of a DICOM folder.


def ingested_time_points(patient_id):
    """Time point ids of a DICOM-folder patient after its ingest, ordered by time after injection."""
    manifest_json = checkpoints.ingest_folder.get(patient=patient_id).output.manifest
    ingest_dir = os.path.dirname(manifest_json)
    found = []
    for name in sorted(os.listdir(ingest_dir)):
        record = os.path.join(ingest_dir, name, "timepoint.json")
        if os.path.isfile(record):
            with open(record, encoding="utf-8") as handle:
                found.append((float(json.load(handle).get("time_h", 0.0)), name))
    if not found:
        raise WorkflowError(f"patient {patient_id}: ingest of {ingest_dir} found no time points")
    return [name for _, name in sorted(found)]


def folder_ingest_pending(patient_id):
    """The ingest checkpoint's output while a DICOM folder has not been ingested, else None.

    Input functions then name that file for every input, so that the job waits for the
    checkpoint (and is re-evaluated after it) while keeping its named inputs.
    """
    if PATIENTS[patient_id].is_manifest:
        return None
    try:
        checkpoints.ingest_folder.get(patient=patient_id)
    except IncompleteCheckpointException as exc:
        return exc.targetfile
    return None


def time_points(patient_id):
    patient = PATIENTS[patient_id]
    return patient.time_points if patient.is_manifest else ingested_time_points(patient_id)


def reference_time_point(patient_id):
    """The sheet's or manifest's reference; for a DICOM folder, else the ingest's, else the earliest."""
    patient = PATIENTS[patient_id]
    if patient.reference:
        return patient.reference
    found = ingested_time_points(patient_id)
    manifest_json = checkpoints.ingest_folder.get(patient=patient_id).output.manifest
    with open(manifest_json, encoding="utf-8") as handle:
        named = json.load(handle).get("reference_time_point")
    return named if named in found else found[0]


# ----------------------------------------------------------------------------------------------
# Input functions.


def ingest_inputs(wildcards):
    """The manifest (its edits do not rerun earlier scans) and the files of one time point."""
    patient = PATIENTS[wildcards.patient]
    entry = patient.time_point_entries.get(wildcards.tp)
    if entry is None:
        raise WorkflowError(
            f"patient {wildcards.patient}: time point {wildcards.tp} is not in {patient.input}"
        )
    base = os.path.dirname(patient.input)
    files = {"manifest": ancient(patient.input)}
    keys = ("dicom",) if "dicom" in entry else ("ct", "spect")
    for key in keys:
        files[key] = os.path.normpath(os.path.join(base, str(entry[key])))
    return files


def ingested(patient_id, tp, name):
    return f"{RESULTS}/{patient_id}/ingest/{tp}/{name}"


def register_inputs(wildcards):
    pending = folder_ingest_pending(wildcards.patient)
    if pending:
        return dict.fromkeys(("ct", "spect", "reference_ct", "reference_spect"), pending)
    pid, ref = wildcards.patient, reference_time_point(wildcards.patient)
    return {
        "ct": ingested(pid, wildcards.tp, "ct.nii.gz"),
        "spect": ingested(pid, wildcards.tp, "spect.nii.gz"),
        "reference_ct": ingested(pid, ref, "ct.nii.gz"),
        "reference_spect": ingested(pid, ref, "spect.nii.gz"),
    }


def segment_inputs(wildcards):
    pending = folder_ingest_pending(wildcards.patient)
    if pending:
        return dict.fromkeys(("ct", "spect"), pending)
    pid, ref = wildcards.patient, reference_time_point(wildcards.patient)
    files = {
        "ct": ingested(pid, ref, "ct.nii.gz"),
        "spect": f"{RESULTS}/{pid}/register/{ref}/spect.nii.gz",
    }
    if "masks" in PATIENTS[pid].row:
        files["masks"] = PATIENTS[pid].row["masks"]
    return files


def registered_spects(wildcards):
    pid = wildcards.patient
    pending = folder_ingest_pending(pid)
    if pending:
        return [pending]
    return [f"{RESULTS}/{pid}/register/{tp}/spect.nii.gz" for tp in time_points(pid)]


def registration_qc(wildcards):
    pid = wildcards.patient
    pending = folder_ingest_pending(pid)
    if pending:
        return [pending]
    return [f"{RESULTS}/{pid}/register/{tp}/qc.json" for tp in time_points(pid)]


def reference_ct(wildcards):
    pending = folder_ingest_pending(wildcards.patient)
    if pending:
        return pending
    return ingested(wildcards.patient, reference_time_point(wildcards.patient), "ct.nii.gz")


# ----------------------------------------------------------------------------------------------
# Parameters: command-line flags from the sheet and the config.


def _flags(pairs):
    return " ".join(f"{flag} {shlex.quote(str(value))}" for flag, value in pairs)


def ingest_flags(wildcards):
    """Overrides from the patient sheet for `spectdose ingest`.

    For a course cycle (run unit ``<patient>/<cycle>``) also the cycle's administration and, last,
    ``--patient-id <patient>``: it replaces the rule's ``--patient-id {wildcards.patient}`` (the
    last one given counts), so that a single-study patient's command and parameters, and with
    them its finished results, stay exactly as they were.
    """
    unit = PATIENTS[wildcards.patient]
    row = unit.row
    options = (
        ("radionuclide", "--nuclide"),
        ("injected_mbq", "--injected-mbq"),
        ("injection_datetime", "--injection-datetime"),
        ("calibration_cps_per_mbq", "--calibration-cps-per-mbq"),
    )
    pairs = [(flag, row[key]) for key, flag in options if key in row]
    if unit.course:
        pairs.append(("--patient-id", unit.pseudonym))
    return _flags(pairs)


def register_flags():
    settings = config["register"]
    return " ".join(
        flag
        for key, flag in (("deformable", "--deformable"), ("allow_fallback", "--allow-fallback"))
        if settings.get(key)
    )


def kinetics_flags():
    """Options of `spectdose kinetics` from the `kinetics:` section of the config."""
    settings = config.get("kinetics") or {}
    flags = [("--voxel-method", settings.get("voxel_method"))]
    if settings.get("pvc", "none") != "none":
        flags += [("--pvc", settings["pvc"]), ("--psf-fwhm-mm", settings.get("psf_fwhm_mm"))]
    return _flags((flag, value) for flag, value in flags if value is not None)


def segment_masks_flag(wildcards, input):
    """--masks from the sheet's masks column, --vertebra-level from its vertebra_level column,
    --absent-organ from the config's segment.absent_organs and the sheet's absent_organs column."""
    row = PATIENTS[wildcards.patient].row
    pairs = [("--masks", input.masks)] if "masks" in input.keys() else []
    if row.get("vertebra_level"):
        pairs.append(("--vertebra-level", row["vertebra_level"]))
    absent = list(config["segment"].get("absent_organs", []))
    absent += [o.strip() for o in (row.get("absent_organs") or "").split(",") if o.strip() and o.strip() not in absent]
    pairs += [("--absent-organ", o) for o in absent]
    return _flags(pairs)


def dose_config_file():
    """The config file the dose stage reads its `dose:` settings from."""
    given = list(workflow.config_settings.configfiles or [])
    return str(given[-1]) if given else "config/config.yaml"


def patient_sex(wildcards):
    return PATIENTS[wildcards.patient].row["sex"]


def stage_threads(stage):
    return config["resources"][stage]["threads"]


def stage_mem_mb(stage):
    """Memory of a stage's job in MB, scaled by the attempt number (retries get more)."""
    base = config["resources"][stage]["mem_mb"]
    return lambda wildcards, attempt: base * attempt


def stage_runtime_min(stage):
    return config["resources"][stage]["runtime_min"]


def results_dir(output_file, levels):
    """The folder ``levels`` above an output file (the stage's --out folder)."""
    path = str(output_file)
    for _ in range(levels):
        path = os.path.dirname(path)
    return path
