"""A therapy course through the real workflow (small preset): every cycle's stages and the course.

A course of two cycles (tracer study, three scans; therapy cycle, one scan at 72 h with the
tracer's kinetics) through `--profile profiles/local` on 2 cores to results/C01/course/course.json
(reports left out); then a second run does nothing. About 2-3 min on 2 shared cores.
"""

from __future__ import annotations

import json

import pytest

from wf_helpers import REPO, missing_stages, snakemake, write_config, write_sheet

pytestmark = pytest.mark.slow

PROFILE = ("--profile", REPO / "profiles" / "local", "--cores", "2")
TARGET = "results/C01/course/course.json"


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    missing = missing_stages()
    if missing:
        pytest.skip(f"stage modules not present yet: {', '.join(missing)}")
    from sample_data.course import CycleSpec, generate_course

    work = tmp_path_factory.mktemp("course_e2e")
    specs = (CycleSpec("tracer", "tracer", 200.0, "2026-01-05T09:00:00", time_points_h=(4.0, 24.0, 168.0)),
             CycleSpec("c1", "therapy", 7400.0, "2026-01-19T09:00:00", time_points_h=(72.0,)))
    generate_course(work / "data" / "C01", specs, preset="small", seed=1, patient_id="C01")
    write_sheet(work, [{"patient_id": "C01", "input": "data/C01/course.yaml", "sex": "male"}])
    write_config(work)
    run = snakemake(work, *PROFILE, TARGET, timeout_s=1800)
    return work, run


def test_course_summary_is_written_from_both_cycles(course_run):
    work, run = course_run
    assert run.returncode == 0, run.stderr[-4000:]
    for cycle in ("tracer", "c1"):
        assert (work / "results" / "C01" / cycle / "dose" / "organ_doses.csv").is_file()
    fits = json.loads((work / "results" / "C01" / "c1" / "kinetics" / "fits.json").read_text())
    assert fits["options"]["reduced_protocol"]["applied"]
    assert fits["options"]["reduced_protocol"]["prior_fits"] == "results/C01/tracer/kinetics/fits.json"
    course = json.loads((work / TARGET).read_text())
    assert [c["id"] for c in course["cycles"]] == ["tracer", "c1"]
    kid = course["structures"]["kidneys"]
    assert kid["total_dose_gy"] == pytest.approx(sum(c["dose_gy"] for c in kid["cycles"]))
    assert kid["total_bed_gy"] > kid["total_dose_gy"]
    assert course["qc_summary"]["fail"] == 0
    assert isinstance(course["cumulative_dose_map"], dict)
    for name in ("course.csv", "course.html", "dose_ct_sum.nii.gz", "dvh.csv"):
        assert (work / "results" / "C01" / "course" / name).is_file(), name
    # the same kinetics in both cycles: delivered / predicted near 1 for the kidneys
    pred = next(p for p in course["prediction"] if p["structure"] == "kidneys")
    assert pred["delivered_over_predicted"] == pytest.approx(1.0, abs=0.1)


def test_second_run_does_nothing(course_run):
    work, _ = course_run
    dry = snakemake(work, "--dry-run", TARGET, timeout_s=300)
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr
