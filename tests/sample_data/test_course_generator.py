"""The sample course generator: one sample patient per cycle, the course manifest, the truth."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from pipeline.course.inputs import read_course_manifest
from pipeline.errors import InputError
from sample_data.course import DEFAULT_COURSE, CycleSpec, cycle_compartments, generate_course
from sample_data.kinetics import COMPARTMENTS, integrate

LP = math.log(2.0) / (6.647 * 24.0)


def test_cycle_factors_change_the_kidney_and_marrow_kinetics_only():
    spec = CycleSpec("c1", "therapy", 7400.0, "2026-01-19T09:00:00", kidney_uptake_factor=0.8,
                     kidney_washout_half_life_factor=0.5, marrow_uptake_factor=0.9)
    comps = cycle_compartments(spec, "Lu-177")
    base = COMPARTMENTS["kidney_left"].parameters
    p = comps["kidney_left"].parameters
    assert p["a"] == pytest.approx(0.8 * base["a"])
    assert p["lambda_washout_per_h"] == pytest.approx(2.0 * base["lambda_washout_per_h"])
    assert p["lambda_uptake_per_h"] == base["lambda_uptake_per_h"]
    assert comps["marrow"].parameters["a2"] == pytest.approx(0.9 * COMPARTMENTS["marrow"].parameters["a2"])
    assert comps["liver"] is COMPARTMENTS["liver"]
    # the default course: therapy kidney dose per GBq about 0.56 of the tracer's (seed study: 0.78/1.44)
    t, c1 = (integrate("uptake_washout", cycle_compartments(s, "Lu-177")["kidney_left"].parameters, LP)
             for s in DEFAULT_COURSE[:2])
    assert 0.5 < c1 / t < 0.6
    assert len(DEFAULT_COURSE[2].time_points_h) == 1


def test_generate_course_writes_cycles_manifest_and_truth(tmp_path):
    specs = (CycleSpec("tracer", "tracer", 200.0, "2026-01-05T09:00:00", time_points_h=(24.0,)),
             CycleSpec("c1", "therapy", 7400.0, "2026-01-19T09:00:00", time_points_h=(72.0,),
                       kidney_uptake_factor=0.8, kidney_washout_half_life_factor=0.65))
    out = generate_course(tmp_path / "course", specs, noise=False, fmt="nifti", patient_id="C01")
    doc = read_course_manifest(out / "course.yaml")
    assert [c["id"] for c in doc["cycles"]] == ["tracer", "c1"]
    assert doc["cycles"][1]["injected_activity_mbq"] == 7400.0
    for c in doc["cycles"]:
        manifest = yaml.safe_load((out / c["manifest"]).read_text())
        assert manifest["injected_activity_mbq"] == c["injected_activity_mbq"]
        assert manifest["injection_datetime"] == c["injection_datetime"]
    truth = json.loads((out / "truth" / "course_truth.json").read_text())
    t0, t1 = truth["cycles"]
    ratio = truth["tia_per_gbq_ratio_to_first_cycle"]["c1"]
    # organ TIA per GBq: kidneys follow the kinetic factors exactly, the liver is unchanged
    k0 = t0["organs"]["kidney_left"]["tia_per_gbq_mbq_h_per_gbq"]
    k1 = t1["organs"]["kidney_left"]["tia_per_gbq_mbq_h_per_gbq"]
    integral_ratio = t1["kidney_kinetics"]["kidney_left"]["integral_h"] / t0["kidney_kinetics"]["kidney_left"]["integral_h"]
    assert k1 / k0 == pytest.approx(integral_ratio, rel=1e-9)
    assert ratio["kidney_left"] == pytest.approx(integral_ratio, rel=1e-9)
    assert ratio["liver"] == pytest.approx(1.0, rel=1e-9)
    per_cycle = json.loads((out / "c1" / "truth" / "truth.json").read_text())
    assert per_cycle["injected_activity_mbq"] == 7400.0
    assert per_cycle["organs"]["kidney_left"]["tia_mbq_h"] == pytest.approx(t1["organs"]["kidney_left"]["tia_mbq_h"])


@pytest.mark.parametrize("specs, text", [
    ((), "at least one cycle"),
    ((CycleSpec("a", "tracer", 1.0, "2026-01-01T00:00:00"), CycleSpec("a", "therapy", 1.0, "2026-01-02T00:00:00")),
     "distinct"),
    ((CycleSpec("c/1", "therapy", 1.0, "2026-01-01T00:00:00"),), "cycle id"),
    ((CycleSpec("c1", "boost", 1.0, "2026-01-01T00:00:00"),), "kind"),
    ((CycleSpec("c1", "therapy", 1.0, "2026-01-01T00:00:00", kidney_uptake_factor=0.0),), "kidney_uptake_factor"),
])
def test_bad_courses_are_refused(tmp_path, specs, text):
    with pytest.raises(InputError, match=text):
        generate_course(tmp_path / "x", specs)


def test_phantom_cli_course_flag(tmp_path, monkeypatch):
    import sample_data.course as course_mod
    from sample_data.cli import main

    calls = {}

    def fake(out, **kw):
        calls.update(kw, out=out)
        return out

    monkeypatch.setattr(course_mod, "generate_course", fake)
    assert main(["--course", "--out", str(tmp_path / "c"), "--patient-id", "C01", "--noise-free", "--seed", "3"]) == 0
    assert calls["patient_id"] == "C01" and calls["noise"] is False and calls["seed"] == 3
    assert main(["--course", "--out", str(tmp_path / "c"), "--patient-id", "C/01"]) == 2
