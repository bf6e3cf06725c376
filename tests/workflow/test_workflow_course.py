"""Therapy courses in the workflow (dry runs): cycles as run units, reduced protocols, the course
rule, and that adding a cycle to a finished course reruns only that cycle and the course summary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dryrun import parse_jobs
from wf_helpers import snakemake, write_config, write_nifti_manifest, write_sheet

FULL = ["t1h", "t4h", "t24h", "t48h", "t168h"]
CYCLES = (("tracer", "tracer", 200.0, "2026-01-05T09:00:00", FULL),
          ("c1", "therapy", 7400.0, "2026-01-19T09:00:00", FULL),
          ("c2", "therapy", 6000.0, "2026-03-16T09:00:00", ["t72h"]))


def _cycle_entry(cid, kind, mbq, when):
    return {"id": cid, "kind": kind, "compound": "Lu-177-PSMA", "injected_activity_mbq": mbq,
            "injection_datetime": when, "manifest": f"{cid}/manifest.yaml"}


def make_course(root: Path, cycles=CYCLES, sheet_extra=None, single=True, **config_sections) -> Path:
    """A course patient C01 (NIfTI cycles, empty files) and (``single``) a single-study patient P01."""
    for cid, _kind, _mbq, _when, tps in cycles:
        write_nifti_manifest(root / "data" / "C01" / cid, "C01", tps)
    doc = {"patient_id": "C01", "radionuclide": "Lu-177",
           "cycles": [_cycle_entry(c, k, a, w) for c, k, a, w, _ in cycles]}
    (root / "data" / "C01" / "course.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    write_nifti_manifest(root / "data" / "P01", "P01", ["t1h", "t4h", "t24h"])
    rows = [{"patient_id": "C01", "input": "data/C01/course.yaml", "sex": "male", **(sheet_extra or {})}]
    if single:
        rows.append({"patient_id": "P01", "input": "data/P01/manifest.yaml", "sex": "female"})
    write_sheet(root, rows)
    write_config(root, **config_sections)
    return root


def dry_run(root: Path, *targets):
    proc = snakemake(root, "--dry-run", "--printshellcmds", *targets, timeout_s=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return parse_jobs(proc.stdout)


def test_every_stage_runs_per_cycle_and_the_course_rule_sums_them(tmp_path):
    jobs = dry_run(make_course(tmp_path))
    units = {j.wildcards.get("patient") for j in jobs if "patient" in j.wildcards}
    assert units == {"C01/tracer", "C01/c1", "C01/c2", "P01"}
    ingest = [j for j in jobs if j.rule == "ingest" and j.wildcards["patient"] == "C01/tracer"]
    assert len(ingest) == 5
    # the pseudonym, not the run unit, is the patient id written to the outputs (the last --patient-id counts)
    assert all(j.shell.split("--patient-id")[-1].split()[0] == "C01" and "--injected-mbq 200.0" in j.shell
               and "--injection-datetime 2026-01-05T09:00:00" in j.shell for j in ingest)
    assert all(o.startswith("results/C01/tracer/ingest/") for j in ingest for o in j.outputs)
    # the one-scan cycle takes cycle 1's kinetics; the full-protocol cycles are fitted as before
    reduced = [j for j in jobs if j.rule == "kinetics_reduced"]
    assert [j.wildcards["patient"] for j in reduced] == ["C01/c2"]
    assert "--reduced prior_cycle --prior-fits results/C01/c1/kinetics/fits.json" in reduced[0].shell
    assert "results/C01/c1/kinetics/fits.json" in reduced[0].inputs
    fitted = sorted(j.wildcards["patient"] for j in jobs if j.rule == "kinetics")
    assert fitted == ["C01/c1", "C01/tracer", "P01"]
    course = [j for j in jobs if j.rule == "course"]
    assert len(course) == 1 and course[0].wildcards == {"course": "C01"}
    assert set(course[0].outputs) == {"results/C01/course/course.json", "results/C01/course/course.csv",
                                      "results/C01/course/dose_ct_sum.nii.gz", "results/C01/course/dvh.csv"}
    assert "results/C01/c2/dose/dose_ct.nii.gz" in course[0].inputs and "--cumulative-map" in course[0].shell
    assert "results/C01/c2/ingest/t72h/ct.nii.gz" in course[0].inputs
    for cid in ("tracer", "c1", "c2"):
        assert f"results/C01/{cid}/dose/organ_doses.csv" in course[0].inputs
        assert f"results/C01/{cid}/uncertainty/uncertainty.json" in course[0].inputs
    assert "spectdose course --course-manifest data/C01/course.yaml --results-dir results/C01" in course[0].shell
    assert "--kidney-bed-limit-gy 40" in course[0].shell
    # a single-study patient is unchanged: results/<patient>/<stage>/, its own id
    p01 = [j for j in jobs if j.wildcards.get("patient") == "P01"]
    assert all(o.startswith("results/P01/") and not o.startswith("results/P01/P01") for j in p01 for o in j.outputs)
    assert all("--patient-id P01 " in j.shell for j in p01 if j.rule == "ingest")


def _finish(root: Path):
    """Create every output of a dry run and mark them up to date (a finished course)."""
    for job in dry_run(root):
        for out in job.outputs:
            path = root / out
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    proc = snakemake(root, "--touch", "--cores", "1", timeout_s=300)
    assert proc.returncode == 0, proc.stderr
    assert dry_run(root) == []


def test_adding_a_third_cycle_reruns_only_that_cycle_and_the_course_summary(tmp_path):
    # a smaller finished course (fewer jobs to create) than CYCLES: the same rules are involved
    cycles = (("tracer", "tracer", 200.0, "2026-01-05T09:00:00", ["t4h", "t24h", "t168h"]),
              ("c1", "therapy", 7400.0, "2026-01-19T09:00:00", ["t72h"]))
    root = make_course(tmp_path, cycles=cycles, single=False)
    _finish(root)
    write_nifti_manifest(root / "data" / "C01" / "c3", "C01", ["t24h", "t96h"])
    path = root / "data" / "C01" / "course.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["cycles"].append(_cycle_entry("c3", "therapy", 5000.0, "2026-05-11T09:00:00"))
    assert len(doc["cycles"]) == 3
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    jobs = dry_run(root)
    rules = sorted(j.rule for j in jobs)
    assert rules == sorted(["ingest", "ingest", "register", "register", "segment", "kinetics_reduced", "dose",
                            "uncertainty", "report", "course", "all"])
    for j in jobs:
        if j.rule in ("course", "all"):
            continue
        assert j.wildcards["patient"] == "C01/c3", (j.rule, j.wildcards)
    course = next(j for j in jobs if j.rule == "course")
    assert "results/C01/c3/dose/organ_doses.csv" in course.inputs
    # two scans: a reduced protocol with the latest earlier full-protocol cycle's kinetics (the tracer's)
    kin = next(j for j in jobs if j.rule == "kinetics_reduced")
    assert "--prior-fits results/C01/tracer/kinetics/fits.json" in kin.shell


@pytest.mark.parametrize("method", ["haenscheid", "madsen", "none"])
def test_reduced_protocol_method_is_a_config_choice(tmp_path, method):
    root = make_course(tmp_path, kinetics={"voxel_method": "fit", "pvc": "none", "psf_fwhm_mm": None,
                                           "psf_source": None, "reduced": method})
    jobs = dry_run(root, "results/C01/c2/kinetics/fits.json")
    kin = [j for j in jobs if j.rule in ("kinetics", "kinetics_reduced") and j.wildcards["patient"] == "C01/c2"]
    assert len(kin) == 1
    if method == "none":
        assert kin[0].rule == "kinetics" and "--reduced" not in kin[0].shell
    elif method == "haenscheid":
        assert "--reduced haenscheid" in kin[0].shell and "--prior-fits" not in kin[0].shell
    else:
        assert "--reduced madsen --prior-fits results/C01/c1/kinetics/fits.json" in kin[0].shell


def _fails(root: Path, text: str):
    proc = snakemake(root, "--dry-run", timeout_s=300)
    assert proc.returncode != 0
    assert text in proc.stderr + proc.stdout, proc.stderr


def test_a_course_refuses_sheet_administration_columns(tmp_path):
    _fails(make_course(tmp_path, sheet_extra={"injected_mbq": 7400}),
           "injected_mbq of the patient sheet cannot apply to a course")


def test_a_single_scan_first_cycle_needs_haenscheid(tmp_path):
    cycles = (("c1", "therapy", 7400.0, "2026-01-19T09:00:00", ["t72h"]),)
    _fails(make_course(tmp_path, cycles=cycles), "no earlier cycle has three or more scans")


def test_bad_cycle_entries_are_named(tmp_path):
    root = make_course(tmp_path)
    path = root / "data" / "C01" / "course.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["cycles"][1]["kind"] = "therapeutic"
    path.write_text(yaml.safe_dump(doc))
    _fails(root, "cycle c1: `kind` must be tracer or therapy")
    doc["cycles"][1]["kind"] = "therapy"
    doc["cycles"][2]["id"] = "c1"
    path.write_text(yaml.safe_dump(doc))
    _fails(root, "lists cycle c1 twice")


def test_kinetics_from_names_the_earlier_cycle(tmp_path):
    root = make_course(tmp_path, single=False)
    path = root / "data" / "C01" / "course.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["cycles"][2]["kinetics_from"] = "tracer"
    path.write_text(yaml.safe_dump(doc))
    jobs = dry_run(root, "results/C01/c2/kinetics/fits.json")
    kin = next(j for j in jobs if j.rule == "kinetics_reduced")
    assert "--prior-fits results/C01/tracer/kinetics/fits.json" in kin.shell
    doc["cycles"][2]["kinetics_from"] = "c3"
    path.write_text(yaml.safe_dump(doc))
    _fails(root, "kinetics_from 'c3' is not an earlier cycle")


def test_mask_backend_takes_each_cycles_masks_from_the_course_manifest(tmp_path):
    root = make_course(tmp_path, single=False, segment={"backend": "nifti", "atlas": "none"})
    path = root / "data" / "C01" / "course.yaml"
    _fails(root, "needs the `masks` column")
    doc = yaml.safe_load(path.read_text())
    for c in doc["cycles"]:
        (root / "data" / "C01" / c["id"] / "labels.nii.gz").touch()
        c["masks"] = f"{c['id']}/labels.nii.gz"
    path.write_text(yaml.safe_dump(doc))
    jobs = dry_run(root, "results/C01/c2/segment/labels.nii.gz")
    seg = next(j for j in jobs if j.rule == "segment")
    assert "data/C01/c2/labels.nii.gz" in seg.inputs and "--masks data/C01/c2/labels.nii.gz" in seg.shell
