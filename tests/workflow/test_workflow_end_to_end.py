"""The workflow end to end on the small sample patient, with the real stages.

One module-scoped run of two patients through `--profile profiles/local` on 2 cores: S01 (the
small sample patient without its 48 h scan) and BAD01 (the same scans, but an injection time
after the scans in the patient sheet, so that its ingest fails). Then: every declared output of
S01 exists; BAD01's failure did not stop S01 and is in BAD01's log as the stage's one line; the
retry asked for twice the memory; a second run does nothing; adding the 48 h scan reruns only
its dependants. The fast variant of the rerun checks is test_workflow_dag.py (dry runs).

Skips, with the reason, while any stage module is missing (checked at run time).
"""

from __future__ import annotations

import pytest
import yaml

from dryrun import parse_jobs
from wf_helpers import REPO, missing_stages, snakemake, write_config, write_sheet

pytestmark = pytest.mark.slow

PROFILE = ("--profile", REPO / "profiles" / "local", "--cores", "2")
LATE_SCAN = "t48h"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    missing = missing_stages()
    if missing:
        pytest.skip(f"stage modules not present yet: {', '.join(missing)}")
    from sample_data.cli import main as phantom

    work = tmp_path_factory.mktemp("e2e")
    data = work / "data" / "S01"
    assert phantom(["--preset", "small", "--nuclide", "Lu-177", "--seed", "3", "--out", str(data),
                    "--patient-id", "S01"]) == 0
    manifest_path = data / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    late = [tp for tp in manifest["time_points"] if tp["id"] == LATE_SCAN]
    assert late, f"the sample patient has no {LATE_SCAN} scan"
    manifest["time_points"] = [tp for tp in manifest["time_points"] if tp["id"] != LATE_SCAN]
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    write_sheet(work, [
        {"patient_id": "S01", "input": "data/S01/manifest.yaml", "sex": "male"},
        {"patient_id": "BAD01", "input": "data/S01/manifest.yaml", "sex": "female",
         "injection_datetime": "2099-01-01T00:00:00"},
    ])
    write_config(work)
    dry = snakemake(work, "--dry-run", "results/S01/report/report.html", timeout_s=120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    declared = [out for job in parse_jobs(dry.stdout + dry.stderr) for out in job.outputs]
    run = snakemake(work, *PROFILE, timeout_s=1800)
    return {"work": work, "declared": declared, "run": run, "late": late[0], "manifest": manifest_path}


def test_first_run_writes_every_declared_output(first_run):
    work, declared = first_run["work"], first_run["declared"]
    assert len(declared) > 30
    missing = [out for out in declared if not (work / out).is_file() or (work / out).stat().st_size == 0]
    assert missing == [], first_run["run"].stderr[-4000:]


def test_failing_patient_does_not_stop_the_others(first_run):
    work, run = first_run["work"], first_run["run"]
    assert run.returncode != 0  # BAD01 failed ...
    assert (work / "results" / "S01" / "report" / "report.html").is_file()  # ... S01 finished
    logs = sorted((work / "results" / "BAD01" / "logs").glob("ingest.*.log"))
    assert logs
    lines = [line for line in logs[0].read_text().splitlines() if line.strip()]
    assert lines[-1].startswith("spectdose ingest: error: "), lines
    assert not (work / "results" / "BAD01" / "dose").exists()


def test_failed_job_is_retried_with_twice_the_memory(first_run):
    jobs = [j for j in parse_jobs(first_run["run"].stdout + first_run["run"].stderr)
            if j.rule == "ingest" and j.wildcards.get("patient") == "BAD01"]
    requested = {field.split("=")[1] for j in jobs for field in j.fields["resources"].split(", ")
                 if field.startswith("mem_mb=")}
    assert {"2000", "4000"} <= requested  # config: ingest 2000 MB; the retry (attempt 2) 4000 MB


def test_second_run_does_nothing(first_run):
    result = snakemake(first_run["work"], "--dry-run", "results/S01/report/report.html", timeout_s=120)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_time_point_reruns_only_its_dependants(first_run):
    work = first_run["work"]
    earlier = {p: p.stat().st_mtime_ns for p in (work / "results" / "S01" / "ingest").rglob("*.nii.gz")}
    segment = (work / "results" / "S01" / "segment" / "labels.nii.gz").stat().st_mtime_ns
    manifest = yaml.safe_load(first_run["manifest"].read_text())
    manifest["time_points"].append(first_run["late"])
    first_run["manifest"].write_text(yaml.safe_dump(manifest, sort_keys=False))
    target = "results/S01/report/report.html"
    dry = snakemake(work, "--dry-run", target, timeout_s=120)
    jobs = parse_jobs(dry.stdout + dry.stderr)
    assert sorted(j.key for j in jobs) == sorted([
        ("ingest", (("patient", "S01"), ("tp", LATE_SCAN))),
        ("register", (("patient", "S01"), ("tp", LATE_SCAN))),
        ("kinetics", (("patient", "S01"),)),
        ("dose", (("patient", "S01"),)),
        ("uncertainty", (("patient", "S01"),)),  # an input of the report since d88b06a; it uses the fits
        ("report", (("patient", "S01"),)),
    ])
    run = snakemake(work, *PROFILE, target, timeout_s=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    assert (work / "results" / "S01" / "register" / LATE_SCAN / "spect.nii.gz").is_file()
    # The earlier scans were not ingested again and the segmentation was not redone.
    assert {p: p.stat().st_mtime_ns for p in earlier} == earlier
    assert (work / "results" / "S01" / "segment" / "labels.nii.gz").stat().st_mtime_ns == segment
    fits = (work / "results" / "S01" / "kinetics" / "fits.json").read_text()
    assert f'"{LATE_SCAN}"' in fits
