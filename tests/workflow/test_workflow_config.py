"""Configuration and patient sheet validation: an invalid one stops even a dry run, clearly."""

from __future__ import annotations

import pytest
import yaml

from wf_helpers import CONFIG, REPO, snakemake, write_config, write_sheet


def _dry_run(workdir):
    return snakemake(workdir, "--dry-run", timeout_s=120)


def test_lint_is_clean(two_patient_workdir):
    result = snakemake(two_patient_workdir, "--lint", timeout_s=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in output


def test_repository_config_matches_its_schema():
    import jsonschema

    schema = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(CONFIG.read_text()))


def _schema_keys(schema, prefix=""):
    """Every property path of a schema with whether it has a description."""
    for key, sub in (schema.get("properties") or {}).items():
        yield f"{prefix}{key}", bool(sub.get("description")) or "$ref" in sub
        yield from _schema_keys(sub, f"{prefix}{key}.")


def test_every_config_key_is_described_in_the_schema_and_commented():
    schema = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())
    undescribed = [key for key, described in _schema_keys(schema) if not described]
    assert undescribed == []
    config = yaml.safe_load(CONFIG.read_text())

    def paths(d, prefix=""):
        for key, value in d.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict) and prefix.count(".") < 1 and key != "resources":
                yield from paths(value, f"{prefix}{key}.")

    known = {key for key, _ in _schema_keys(schema)}
    assert set(paths(config)) - known == set()
    # Every top-level and section key of config.yaml has a comment block above it or its section.
    lines = CONFIG.read_text().splitlines()
    for n, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped.endswith(":") and not line.startswith(" "):
            assert lines[n - 1].strip().startswith("#") or lines[n - 1].strip() == "", line


def test_patient_columns_are_all_described():
    schema = yaml.safe_load((REPO / "config" / "patients.schema.yaml").read_text())
    header = [line for line in (REPO / "config" / "patients.tsv").read_text().splitlines()
              if not line.startswith("#")][0].split("\t")
    assert set(header) == set(schema["properties"])
    assert all(p.get("description") for p in schema["properties"].values())


BAD_CONFIGS = {
    "unknown top-level key": ({"resourses": {}}, "Additional properties are not allowed ('resourses'"),
    "unknown segment backend": ({"segment": {"backend": "magic"}}, "'magic' is not one of"),
    "negative marrow share": ({"dose": {"marrow_l2l4_share": -0.1}}, "-0.1 is less than or equal to"),
    "pvc without the camera resolution": ({"kinetics": {"pvc": "gtm"}}, "On instance['kinetics']['psf_fwhm_mm']"),
    "threads not a number": (
        {"resources": {s: {"threads": "two", "mem_mb": 1000, "runtime_min": 5}
                       for s in ("ingest", "register", "segment", "kinetics", "dose", "report")}},
        "'two' is not of type 'integer'"),
}


# Each case is a snakemake start (2-3 s here): two run with the fast suite, the rest are slow.
FAST_CASES = {"unknown top-level key", "unknown segment backend", "unknown sex", "missing input",
              "reference not in manifest"}


def _cases(table):
    return [pytest.param(name, marks=() if name in FAST_CASES else pytest.mark.slow)
            for name in sorted(table)]


@pytest.mark.parametrize("case", _cases(BAD_CONFIGS))
def test_invalid_config_fails_dry_run_with_a_clear_message(two_patient_workdir, case):
    sections, message = BAD_CONFIGS[case]
    write_config(two_patient_workdir, **sections)
    result = _dry_run(two_patient_workdir)
    assert result.returncode != 0
    assert "Error validating config file" in result.stdout + result.stderr
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


BAD_SHEETS = {
    "unknown sex": ({"sex": "unknown"}, "row 1 (patient P01) is invalid"),
    "negative activity": ({"injected_mbq": -5}, "-5.0 is less than or equal to the minimum of 0"),
    "activity not a number": ({"injected_mbq": "lots"}, "'lots' is not of type 'number'"),
    "bad date": ({"injection_datetime": "5 Jan 2026"}, "does not match"),
    "unknown nuclide": ({"radionuclide": "I-131"}, "'I-131' is not one of"),
    "bad patient id": ({"patient_id": "P 01"}, "does not match"),
    "missing input": ({"input": "data/nowhere/manifest.yaml"}, "input data/nowhere/manifest.yaml does not exist"),
    "reference not in manifest": ({"reference_time_point": "t99h"}, "reference time point t99h is not in"),
}


@pytest.mark.parametrize("case", _cases(BAD_SHEETS))
def test_invalid_patient_sheet_fails_dry_run_with_a_clear_message(two_patient_workdir, case):
    change, message = BAD_SHEETS[case]
    row = {"patient_id": "P01", "input": "data/P01/manifest.yaml", "sex": "male", **change}
    write_sheet(two_patient_workdir, [row])
    result = _dry_run(two_patient_workdir)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


@pytest.mark.slow
def test_duplicate_patient_fails(two_patient_workdir):
    row = {"patient_id": "P01", "input": "data/P01/manifest.yaml", "sex": "male"}
    write_sheet(two_patient_workdir, [row, row])
    result = _dry_run(two_patient_workdir)
    assert result.returncode != 0
    assert "patient_id P01 is listed twice" in result.stdout + result.stderr


@pytest.mark.slow
def test_manifest_without_time_points_fails(two_patient_workdir):
    (two_patient_workdir / "data" / "P01" / "manifest.yaml").write_text("patient_id: P01\n")
    result = _dry_run(two_patient_workdir)
    assert result.returncode != 0
    assert "has no `time_points` list" in result.stdout + result.stderr


def test_mask_backend_needs_the_masks_column(two_patient_workdir):
    write_config(two_patient_workdir, segment={"backend": "nifti"})
    result = _dry_run(two_patient_workdir)
    assert result.returncode != 0
    assert "segment backend nifti needs the `masks` column" in result.stdout + result.stderr
