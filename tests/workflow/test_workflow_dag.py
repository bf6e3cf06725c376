"""The workflow's DAG from dry runs: jobs per patient and time point, command lines, reruns.

These need no stage to exist: they run snakemake's CLI with --dry-run on manifests whose image
files exist but are empty. The expected job sets are written out by hand from the manifests.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import yaml

from dryrun import parse_jobs
from wf_helpers import make_two_patient_workdir, snakemake

STAGES = ("ingest", "register", "segment", "kinetics", "dose", "report")


@pytest.fixture(scope="module")
def base_jobs(tmp_path_factory):
    """The dry run of the two-patient folder, shared by the tests that only read it."""
    return _dry_run(make_two_patient_workdir(tmp_path_factory.mktemp("dag")))


def _dry_run(workdir, *args):
    result = snakemake(workdir, "--dry-run", "--printshellcmds", *args, timeout_s=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return parse_jobs(result.stdout + result.stderr)


def _job(jobs, rule, **wildcards):
    found = [j for j in jobs if j.rule == rule and j.wildcards == wildcards]
    assert len(found) == 1, f"{rule} {wildcards}: {len(found)} jobs"
    return found[0]


def test_dry_run_has_one_job_per_stage_and_time_point(base_jobs):
    jobs = base_jobs
    counts = Counter(j.rule for j in jobs)
    # P01 has 3 time points, P02 has 2: ingest and register per time point, the rest per patient.
    assert counts == {"ingest": 5, "register": 5, "segment": 2, "kinetics": 2, "dose": 2, "uncertainty": 2,
                      "report": 2, "all": 1}
    assert {j.wildcards.get("tp") for j in jobs if j.rule == "ingest" and j.wildcards["patient"] == "P01"} \
        == {"t1h", "t4h", "t24h"}


def test_every_stage_rule_calls_its_spectdose_subcommand_with_a_log(base_jobs):
    jobs = base_jobs
    for job in jobs:
        if job.rule == "all":
            continue
        assert f"spectdose {job.rule} " in job.shell, job.shell
        log = job.fields["log"]
        assert log.startswith(f"results/{job.wildcards['patient']}/logs/{job.rule}"), log
        assert job.shell.endswith(f"> {log} 2>&1"), job.shell
        assert job.fields["benchmark"].startswith(f"results/{job.wildcards['patient']}/benchmarks/")


def test_reference_time_point_comes_from_manifest_or_first_scan(base_jobs):
    jobs = base_jobs
    # P01's manifest names no reference: its first scan, t1h. P02's manifest says t24h.
    for tp in ("t1h", "t4h", "t24h"):
        assert "--reference t1h" in _job(jobs, "register", patient="P01", tp=tp).shell
    register = _job(jobs, "register", patient="P02", tp="t1h")
    assert "--reference t24h --time-point t1h" in register.shell
    assert "results/P02/ingest/t24h/ct.nii.gz" in register.inputs
    segment = _job(jobs, "segment", patient="P02")
    assert "--ct results/P02/ingest/t24h/ct.nii.gz" in segment.shell
    assert "--spect results/P02/register/t24h/spect.nii.gz" in segment.shell


def test_sheet_reference_overrides_the_manifest(two_patient_workdir):
    sheet = two_patient_workdir / "patients.tsv"
    lines = sheet.read_text().splitlines()
    header = lines[0].split("\t")
    row = lines[2].split("\t")  # P02
    row[header.index("reference_time_point")] = "t1h"
    sheet.write_text("\n".join([lines[0], lines[1], "\t".join(row)]) + "\n")
    jobs = _dry_run(two_patient_workdir)
    assert "--reference t1h" in _job(jobs, "register", patient="P02", tp="t24h").shell


def test_patient_sheet_overrides_and_sex_reach_the_stages(base_jobs):
    jobs = base_jobs
    ingest = _job(jobs, "ingest", patient="P02", tp="t1h")
    assert "--nuclide Lu-177" in ingest.shell
    assert "--injected-mbq 7400.0" in ingest.shell
    assert "--injection-datetime 2026-01-05T09:00:00" in ingest.shell
    assert "--nuclide" not in _job(jobs, "ingest", patient="P01", tp="t1h").shell
    assert "--sex female" in _job(jobs, "dose", patient="P02").shell
    assert "--sex male" in _job(jobs, "dose", patient="P01").shell
    assert "/config.yaml --sex male" in _job(jobs, "dose", patient="P01").shell


def test_kinetics_and_dose_rate_options_reach_their_stages_only_when_configured(two_patient_workdir, base_jobs):
    from wf_helpers import write_config

    kinetics = _job(base_jobs, "kinetics", patient="P01").shell
    assert "--pvc" not in kinetics and "--dose-rate" not in _job(base_jobs, "dose", patient="P01").shell
    write_config(two_patient_workdir, kinetics={"voxel_method": "fit", "pvc": "gtm", "psf_fwhm_mm": 11.0},
                 dose={**yaml.safe_load(open(two_patient_workdir / "config.yaml"))["dose"], "dose_rate_maps": True})
    jobs = _dry_run(two_patient_workdir)
    assert "--voxel-method fit --voxel-head organ --pvc gtm --psf-fwhm-mm 11.0" in _job(jobs, "kinetics", patient="P01").shell
    dose = _job(jobs, "dose", patient="P01")
    assert "--register-dir results/P01/register --dose-rate" in dose.shell
    assert "results/P01/register/t1h/spect.nii.gz" in dose.inputs


def test_first_attempt_requests_the_configured_memory(two_patient_workdir):
    # The config asks 4000 MB for the dose stage and 2000 MB for ingest: attempt 1 requests
    # exactly that (the doubled retry is checked by the end-to-end --keep-going test).
    jobs = _dry_run(two_patient_workdir)
    assert "mem_mb=4000" in _job(jobs, "dose", patient="P01").fields["resources"]
    assert "mem_mb=2000" in _job(jobs, "ingest", patient="P01", tp="t1h").fields["resources"]
    assert "runtime=30" in _job(jobs, "ingest", patient="P01", tp="t1h").fields["resources"]


def test_dag_for_two_patients_connects_the_stages(two_patient_workdir):
    result = snakemake(two_patient_workdir, "--dag", timeout_s=120)
    assert result.returncode == 0, result.stderr[-3000:]
    dot = result.stdout
    assert dot.lstrip().startswith("digraph")
    # One node per job: 5 ingest + 5 register + 2 x (segment, kinetics, dose, uncertainty, report) + all.
    assert dot.count('label = "') == 21


def _complete_run_on_disk(workdir):
    """Create every output of a dry run, stage by stage with increasing times (as a run would)."""
    jobs = _dry_run(workdir)
    stamp = time.time() - 1000
    for path in (workdir / "data").rglob("*"):
        os.utime(path, (stamp - 1000, stamp - 1000))
    for stage in STAGES:
        stamp += 10
        for job in (j for j in jobs if j.rule == stage):
            for out in job.outputs:
                path = workdir / out
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("x")
                os.utime(path, (stamp, stamp))


def test_nothing_to_do_once_every_output_is_newer_than_its_inputs(two_patient_workdir):
    _complete_run_on_disk(two_patient_workdir)
    result = snakemake(two_patient_workdir, "--dry-run", timeout_s=120)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_time_point_reruns_only_its_dependants(two_patient_workdir):
    _complete_run_on_disk(two_patient_workdir)
    manifest_path = two_patient_workdir / "data" / "P01" / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    for kind in ("ct", "spect"):
        (two_patient_workdir / "data" / "P01" / "nifti" / f"t48h_{kind}.nii.gz").write_text("new scan")
    manifest["time_points"].append({"id": "t48h", "ct": "nifti/t48h_ct.nii.gz",
                                    "spect": "nifti/t48h_spect.nii.gz"})
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    jobs = _dry_run(two_patient_workdir)
    assert sorted(j.key for j in jobs) == sorted([
        ("ingest", (("patient", "P01"), ("tp", "t48h"))),
        ("register", (("patient", "P01"), ("tp", "t48h"))),
        ("kinetics", (("patient", "P01"),)),
        ("dose", (("patient", "P01"),)),
        ("uncertainty", (("patient", "P01"),)),
        ("report", (("patient", "P01"),)),
        ("all", ()),
    ])
    kinetics = _job(jobs, "kinetics", patient="P01")
    assert "results/P01/register/t48h/spect.nii.gz" in kinetics.inputs


def test_dicom_folder_patient_is_ingested_by_a_checkpoint(two_patient_workdir):
    (two_patient_workdir / "data" / "P03").mkdir()
    with open(two_patient_workdir / "patients.tsv", "a") as handle:
        handle.write("P03\tdata/P03\t\tfemale\t\t\t\t\t\n")
    result = snakemake(two_patient_workdir, "--dry-run", "--printshellcmds", timeout_s=120)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = parse_jobs(result.stdout + result.stderr)
    ingest = _job(jobs, "ingest_folder", patient="P03")
    assert ingest.shell.startswith("OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 spectdose ingest data/P03 ")
    assert "--time-point" not in ingest.shell
    # Its time points are known only after the checkpoint: no register job for P03 yet.
    assert not [j for j in jobs if j.rule == "register" and j.wildcards["patient"] == "P03"]
    assert "checkpoint jobs" in result.stdout + result.stderr


def test_segment_qc_mode_absent_organs_and_vertebra_level_reach_the_segment_stage(two_patient_workdir, base_jobs):
    from wf_helpers import write_config

    segment = _job(base_jobs, "segment", patient="P01").shell
    assert "--qc fail" in segment and "--vertebra-level" not in segment and "--absent-organ" not in segment
    sheet = two_patient_workdir / "patients.tsv"
    lines = sheet.read_text().splitlines()
    header = lines[0].split("\t")
    row = lines[1].split("\t")  # P01
    row[header.index("vertebra_level")] = "L3@-215"
    p02 = lines[2].split("\t")
    # the sheet's absent_organs (this patient's nephrectomy) adds to the config's list (every patient)
    sheet.write_text("\n".join([lines[0] + "\tabsent_organs", "\t".join(row) + "\tkidney_left,spleen",
                                "\t".join(p02) + "\t"]) + "\n")
    write_config(two_patient_workdir, segment={"backend": "builtin", "qc": "warn", "absent_organs": ["spleen"]})
    jobs = _dry_run(two_patient_workdir)
    segment = _job(jobs, "segment", patient="P01").shell
    assert "--vertebra-level L3@-215" in segment and "--qc warn" in segment
    assert segment.count("--absent-organ spleen") == 1 and "--absent-organ kidney_left" in segment
    p02_segment = _job(jobs, "segment", patient="P02").shell
    assert "--absent-organ spleen" in p02_segment and "kidney_left" not in p02_segment
    assert "--vertebra-level" not in _job(jobs, "segment", patient="P02").shell
    assert "results/P01/segment/qc.json" in _job(jobs, "report", patient="P01").inputs
    assert "--atlas 'none'" in segment  # the test helper keeps the synthetic patients on the rules
    write_config(two_patient_workdir, segment={"backend": "builtin", "atlas": "/data/atlas"})
    assert "--atlas '/data/atlas'" in _job(_dry_run(two_patient_workdir), "segment", patient="P01").shell
