"""``spectdose course`` on small hand-made cycle results: outputs, units, QC, errors."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml

from pipeline.course.cli import CSV_COLUMNS, main

LP = math.log(2.0) / (6.647 * 24.0)
UW = {"A": 1.0, "lambda_washout_per_h": math.log(2.0) / 40.0, "lambda_uptake_per_h": 1.2, "lambda_phys_per_h": LP}


def _cycle(root, cid, mbq, kid_gy_per_gbq, marrow_gy_per_gbq, nuclide="Lu-177", reduced=False, rel_sd=0.05):
    d = root / cid
    (d / "dose").mkdir(parents=True)
    (d / "kinetics").mkdir(parents=True)
    gbq = mbq / 1000.0
    organs = {}
    for name in ("kidney_left", "kidney_right", "liver"):
        if reduced:
            organs[name] = {"method": "prior_cycle", "chosen_model": None, "chosen_params": None,
                            "single_time_point": {"method_used": "prior_cycle",
                                                  "prior_source": "elsewhere/results/P1/c1/kinetics/fits.json"}}
        else:
            organs[name] = {"method": "uptake_washout", "chosen_model": "uptake_washout", "chosen_params": UW}
    fits = {"radionuclide": nuclide, "injected_activity_mbq": mbq, "organs": organs,
            "time_points": [{"id": "t72h", "time_h": 72.0}] if reduced else [{"id": f"t{h}h", "time_h": h}
                                                                            for h in (1, 4, 24, 48, 168)],
            "options": {"reduced_protocol": {"method": "prior_cycle", "applied": reduced}}}
    (d / "kinetics" / "fits.json").write_text(json.dumps(fits))
    rows = [("kidney_left", 120.0, kid_gy_per_gbq * gbq), ("kidney_right", 110.0, kid_gy_per_gbq * gbq),
            ("liver", 2000.0, 0.17 * gbq)]
    with open(d / "dose" / "organ_doses.csv", "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["label", "name", "mass_g", "mean_gy", "mean_gy_relative_sd_kinetics"])
        for n, (name, mass, dose) in enumerate(rows, start=1):
            w.writerow([n, name, mass, dose, rel_sd])
    (d / "dose" / "marrow.json").write_text(json.dumps({"absorbed_dose_gy": marrow_gy_per_gbq * gbq}))


@pytest.fixture
def course(tmp_path):
    res = tmp_path / "results" / "P1"
    _cycle(res, "tracer", 200.0, 1.44, 0.06)
    _cycle(res, "c1", 7400.0, 0.78, 0.05)
    _cycle(res, "c2", 6000.0, 0.70, 0.05, reduced=True)
    manifest = tmp_path / "course.yaml"
    manifest.write_text(yaml.safe_dump({"patient_id": "P1", "cycles": [
        {"id": "tracer", "kind": "tracer", "injected_activity_mbq": 200.0, "injection_datetime": "2026-01-05T09:00:00",
         "manifest": "tracer/manifest.yaml"},
        {"id": "c1", "kind": "therapy", "injected_activity_mbq": 7400.0, "injection_datetime": "2026-01-19T09:00:00",
         "manifest": "c1/manifest.yaml"},
        {"id": "c2", "kind": "therapy", "injected_activity_mbq": 6000.0, "injection_datetime": "2026-03-16T09:00:00",
         "manifest": "c2/manifest.yaml"}]}))
    return manifest, res


def _run(manifest, res, *extra):
    return main(["--course-manifest", str(manifest), "--results-dir", str(res), "--out", str(res / "course"), *extra])


def test_course_outputs_sums_limits_and_predictions(course):
    manifest, res = course
    assert _run(manifest, res) == 0
    out = json.loads((res / "course" / "course.json").read_text())
    kid = out["structures"]["kidneys"]
    assert kid["total_dose_gy"] == pytest.approx(1.44 * 0.2 + 0.78 * 7.4 + 0.70 * 6.0)
    # the reduced cycle's BED uses cycle 1's curve shape (the kinetics its TIA assumed)
    assert all(c["bed_gy"] is not None for c in kid["cycles"])
    assert kid["cycles"][2]["g_factor"] == pytest.approx(kid["cycles"][1]["g_factor"])
    assert "complete repair" in out["bed_summation"]
    assert kid["total_dose_sd_gy"] == pytest.approx(math.sqrt(sum((0.05 * c["dose_gy"]) ** 2 for c in kid["cycles"])))
    pred = {(p["cycle"], p["structure"]): p for p in out["prediction"]}
    assert pred[("c1", "kidneys")]["delivered_over_predicted"] == pytest.approx(0.78 / 1.44)
    assert pred[("c1", "kidneys")]["basis_cycle"] == "tracer"
    assert pred[("c2", "kidneys")]["basis_cycle"] == "c1"
    assert out["cycles"][2]["reduced_protocol"]["applied"] is True
    limits = {(r["structure"], r["quantity"]): r for r in out["limits"]}
    assert limits[("kidneys", "absorbed_dose")]["remaining_gy"] == pytest.approx(23.0 - kid["total_dose_gy"])
    assert out["next_cycle"]["basis_cycle"] == "c2"
    # the 0.54 change of the kidney dose per activity from tracer to therapy is a QC warning, not a failure
    assert out["qc_summary"]["fail"] == 0 and out["qc_summary"]["warn"] >= 1
    with open(res / "course" / "course.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    course_row = next(r for r in rows if r["structure"] == "kidneys" and r["cycle"] == "course")
    assert float(course_row["absorbed_dose_gy"]) == pytest.approx(kid["total_dose_gy"], rel=1e-5)
    assert float(course_row["limit_gy"]) == 23 and float(course_row["bed_limit_gy"]) == 40
    page = (res / "course" / "course.html").read_text()
    assert "complete repair" in page and "Prediction against delivery" in page
    assert f"limits the next cycle to {out['next_cycle']['activity_gbq']:.3g}" in page.replace("\u00a0", " ")


def test_limits_and_basis_are_options(course):
    manifest, res = course
    assert _run(manifest, res, "--kidney-dose-limit-gy", "10", "--planning-basis", "tracer") == 0
    out = json.loads((res / "course" / "course.json").read_text())
    row = next(r for r in out["limits"] if r["structure"] == "kidneys" and r["quantity"] == "absorbed_dose")
    assert row["limit_gy"] == 10 and row["next_cycle"]["basis_cycle"] == "tracer"


def test_missing_cycle_results_name_the_file(course, capsys):
    manifest, res = course
    (res / "c1" / "dose" / "organ_doses.csv").unlink()
    assert _run(manifest, res) == 2
    err = capsys.readouterr().err
    assert err.startswith("spectdose course: error: ") and "c1/dose/organ_doses.csv" in err
    assert not (res / "course").exists()


def test_two_radionuclides_fail(course, capsys):
    manifest, res = course
    fits = res / "c1" / "kinetics" / "fits.json"
    doc = json.loads(fits.read_text())
    doc["radionuclide"] = "Y-90"
    fits.write_text(json.dumps(doc))
    assert _run(manifest, res) == 2
    assert "one_radionuclide" in capsys.readouterr().err


def test_cycles_out_of_time_order_fail(course, capsys):
    manifest, res = course
    doc = yaml.safe_load(manifest.read_text())
    doc["cycles"][2]["injection_datetime"] = "2026-01-01T09:00:00"
    manifest.write_text(yaml.safe_dump(doc))
    assert _run(manifest, res) == 2
    assert "cycles_in_time_order" in capsys.readouterr().err


def test_bad_manifest_and_limits(course, tmp_path, capsys):
    manifest, res = course
    bad = tmp_path / "bad.yaml"
    bad.write_text("patient_id: P1\ntime_points: []\n")
    assert _run(bad, res) == 2
    assert "no `cycles` list" in capsys.readouterr().err
    assert _run(manifest, res, "--marrow-dose-limit-gy", "0") == 2


def test_uncertainty_stage_sd_is_used_and_a_non_finite_one_falls_back_to_the_kinetic_sd(course):
    manifest, res = course
    for cid, rel in (("c1", 0.12), ("c2", float("nan"))):
        (res / cid / "uncertainty").mkdir()
        organs = {n: {"analytic_relative_sd": rel} for n in ("kidney_left", "kidney_right", "liver")}
        (res / cid / "uncertainty" / "uncertainty.json").write_text(json.dumps(
            {"organs": organs, "kidneys_mass_weighted": {"analytic_relative_sd": rel},
             "red_marrow_eanm": {"analytic_relative_sd": rel}}))
    assert _run(manifest, res) == 0
    out = json.loads((res / "course" / "course.json").read_text())
    kid = {c["cycle"]: c for c in out["structures"]["kidneys"]["cycles"]}
    assert kid["c1"]["dose_sd_gy"] == pytest.approx(0.12 * kid["c1"]["dose_gy"])
    assert kid["c2"]["dose_sd_gy"] == pytest.approx(0.05 * kid["c2"]["dose_gy"])  # the kinetic SD of the fixture
    assert any("c2: kidney_left: no finite SD" in w for w in out["warnings"])
    assert out["cycles"][1]["uncertainty_source"].endswith("c1/uncertainty/uncertainty.json")


def test_shared_uncertainty_sources_of_the_budgets_are_correlated_over_cycles(course):
    manifest, res = course
    for cid in ("c1", "c2"):
        (res / cid / "uncertainty").mkdir()
        rows = {r["name"]: r for r in csv.DictReader((res / cid / "dose" / "organ_doses.csv").open())}
        dose = float(rows["kidney_left"]["mean_gy"])
        block = {"analytic_relative_sd": 0.10, "budget": {"calibration": {"sd_gy": 0.03 * dose},
                                                          "activity_noise": {"sd_gy": 0.09 * dose}}}
        (res / cid / "uncertainty" / "uncertainty.json").write_text(json.dumps({"organs": {"kidney_left": block}}))
    assert _run(manifest, res) == 0
    out = json.loads((res / "course" / "course.json").read_text())
    kl = {c["cycle"]: c for c in out["structures"]["kidney_left"]["cycles"]}
    d1, d2, t = kl["c1"]["dose_gy"], kl["c2"]["dose_gy"], kl["tracer"]["dose_sd_gy"]
    independent = t ** 2 + (0.01 - 0.0009) * (d1 ** 2 + d2 ** 2)
    expected = math.sqrt(independent + (0.03 * (d1 + d2)) ** 2)
    assert out["structures"]["kidney_left"]["total_dose_sd_gy"] == pytest.approx(expected, rel=1e-9)


def test_cumulative_map_sums_the_cycles_on_the_first_cycles_ct(course):
    import numpy as np

    from pipeline.image import Image
    from pipeline.imageio import read_image, write_image

    manifest, res = course
    n, v = 40, 6.0
    aff = np.diag([v, v, v, 1.0])
    aff[:3, 3] = -n * v / 2
    c = (np.arange(n) + 0.5) * v - n * v / 2
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    hu = np.where((x / 90) ** 2 + (y / 70) ** 2 < 1, 0.0, -1000.0)
    hu[(x - 30) ** 2 + (y + 20) ** 2 < 15 ** 2] = 700.0
    organ = (x + 30) ** 2 + (y - 10) ** 2 + z ** 2 < 30 ** 2
    labels = np.where(organ, 1, 0).astype(np.int16)
    for cid, gy in (("tracer", 0.1), ("c1", 2.0), ("c2", 1.5)):
        write_image(res / cid / "ingest" / "t24h" / "ct.nii.gz", Image(hu, aff, "HU"), {"quantity": "ct"})
        (res / cid / "register").mkdir(parents=True, exist_ok=True)
        (res / cid / "register" / "reference.json").write_text(json.dumps({"reference_time_point": "t24h"}))
        write_image(res / cid / "dose" / "dose_ct.nii.gz", Image(np.where(organ, gy, 0.0), aff, "Gy"), {"unit": "Gy"})
    write_image(res / "tracer" / "segment" / "labels.nii.gz", Image(labels, aff, "label"),
                {"labels": {"1": "kidney_left"}})
    assert _run(manifest, res, "--cumulative-map") == 0
    out = json.loads((res / "course" / "course.json").read_text())
    total, _ = read_image(res / "course" / "dose_ct_sum.nii.gz")
    core = (x + 30) ** 2 + (y - 10) ** 2 + z ** 2 < 20 ** 2
    assert np.asarray(total.array)[core].mean() == pytest.approx(3.6, rel=0.01)
    cm = out["cumulative_dose_map"]
    assert [r["cycle"] for r in cm["cycles"]] == ["tracer", "c1", "c2"]
    assert cm["cycles"][0]["registered"] is False and cm["cycles"][1]["registered"] is True
    assert cm["structures"]["kidney_left"]["mean_gy"] == pytest.approx(3.6, rel=0.02)
    assert (res / "course" / "dvh.csv").read_text().startswith("dose_gy,kidney_left")
