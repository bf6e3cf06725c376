"""The course summary core: sums, BED summation, allowances, next activity, prediction."""

from __future__ import annotations

import math

import pytest

from pipeline.course.summary import CycleRecord, Limit, StructureCycle, summarise_course

AB = 2.6


def _cycle(cid, kind, mbq, kid_gy, marrow_gy, g=0.1, sd=None):
    return CycleRecord(cid, kind, mbq, f"2026-0{len(cid)}-01T09:00:00", structures={
        "kidneys": StructureCycle("kidneys", kid_gy, None if sd is None else sd * kid_gy, g, AB, "uptake_washout"),
        "red_marrow": StructureCycle("red_marrow", marrow_gy, None if sd is None else sd * marrow_gy),
    })


LIMITS = [Limit("kidneys", "absorbed_dose", 23.0), Limit("kidneys", "bed", 40.0),
          Limit("red_marrow", "absorbed_dose", 2.0)]


def test_dose_and_bed_add_over_cycles_with_each_cycles_own_protraction_factor():
    cycles = [_cycle("tracer", "tracer", 200, 0.3, 0.02, g=0.12),
              _cycle("c1", "therapy", 7400, 6.0, 0.4, g=0.10),
              _cycle("c2", "therapy", 6000, 4.0, 0.3, g=0.08)]
    s = summarise_course(cycles, LIMITS)
    k = s["structures"]["kidneys"]
    assert k["total_dose_gy"] == pytest.approx(10.3)
    expected_bed = sum(d + g * d * d / AB for d, g in ((0.3, 0.12), (6.0, 0.10), (4.0, 0.08)))
    assert k["total_bed_gy"] == pytest.approx(expected_bed)
    # summed BED is less than the BED of the summed dose in one protracted irradiation: repair between cycles
    assert k["total_bed_gy"] < 10.3 + 0.10 * 10.3 ** 2 / AB
    assert "complete repair" in s["bed_summation"]
    assert s["structures"]["red_marrow"]["total_bed_gy"] is None


def test_remaining_allowance_and_next_activity_use_the_last_cycles_dose_per_activity():
    cycles = [_cycle("tracer", "tracer", 200, 0.3, 0.02), _cycle("c1", "therapy", 7400, 6.0, 0.4, g=0.1)]
    s = summarise_course(cycles, LIMITS)
    rows = {(r["structure"], r["quantity"]): r for r in s["limits"]}
    dose = rows[("kidneys", "absorbed_dose")]
    assert dose["remaining_gy"] == pytest.approx(23.0 - 6.3)
    d = 6.0 / 7.4
    assert dose["next_cycle"]["activity_gbq"] == pytest.approx((23.0 - 6.3) / d)
    bed = rows[("kidneys", "bed")]
    a = bed["next_cycle"]["activity_gbq"]
    # the planned cycle's own BED (cycle 1's kinetics) uses up exactly the remaining BED allowance
    assert d * a + 0.1 * (d * a) ** 2 / AB == pytest.approx(bed["remaining_gy"], rel=1e-10)
    marrow = rows[("red_marrow", "absorbed_dose")]
    assert marrow["next_cycle"]["activity_gbq"] == pytest.approx((2.0 - 0.42) / (0.4 / 7.4))
    smallest = min(r["next_cycle"]["activity_gbq"] for r in rows.values())
    assert s["next_cycle"]["activity_gbq"] == pytest.approx(smallest)
    assert s["next_cycle"]["basis_cycle"] == "c1"


def test_tracer_basis_plans_from_the_tracer_study():
    cycles = [_cycle("tracer", "tracer", 200, 0.3, 0.02), _cycle("c1", "therapy", 7400, 6.0, 0.4)]
    s = summarise_course(cycles, LIMITS, basis="tracer")
    dose = next(r for r in s["limits"] if r["quantity"] == "absorbed_dose" and r["structure"] == "kidneys")
    assert dose["next_cycle"]["basis_cycle"] == "tracer"
    assert dose["next_cycle"]["activity_gbq"] == pytest.approx((23.0 - 6.3) / (0.3 / 0.2))


def test_exceeded_limit_gives_no_further_activity():
    cycles = [_cycle("c1", "therapy", 7400, 15.0, 0.4), _cycle("c2", "therapy", 7400, 10.0, 0.4)]
    s = summarise_course(cycles, LIMITS)
    dose = next(r for r in s["limits"] if r["quantity"] == "absorbed_dose" and r["structure"] == "kidneys")
    assert dose["status"] == "exceeded"
    assert dose["next_cycle"]["activity_gbq"] == 0.0
    assert s["next_cycle"]["activity_gbq"] == 0.0


def test_prediction_ratio_is_the_change_of_dose_per_activity():
    cycles = [_cycle("tracer", "tracer", 200, 0.288, 0.02), _cycle("c1", "therapy", 7400, 5.92, 0.37)]
    s = summarise_course(cycles, LIMITS)
    p = next(r for r in s["prediction"] if r["structure"] == "kidneys")
    assert p["predicted_dose_gy"] == pytest.approx(0.288 / 0.2 * 7.4)
    assert p["delivered_over_predicted"] == pytest.approx((5.92 / 7.4) / (0.288 / 0.2))


def test_uncertainty_of_sums_and_next_activity():
    cycles = [_cycle("tracer", "tracer", 200, 0.3, 0.02, sd=0.1), _cycle("c1", "therapy", 7400, 6.0, 0.4, sd=0.1)]
    s = summarise_course(cycles, LIMITS)
    k = s["structures"]["kidneys"]
    assert k["total_dose_sd_gy"] == pytest.approx(math.hypot(0.03, 0.6))
    dose = next(r for r in s["limits"] if r["quantity"] == "absorbed_dose" and r["structure"] == "kidneys")
    a, d, rem = dose["next_cycle"]["activity_gbq"], 6.0 / 7.4, 23.0 - 6.3
    expected = math.hypot(k["total_dose_sd_gy"] / d, a * 0.1)
    assert dose["next_cycle"]["activity_sd_gbq"] == pytest.approx(expected, rel=1e-4)
    assert rem / d == pytest.approx(a)


def test_missing_sd_in_any_cycle_leaves_the_sum_sd_unknown():
    cycles = [_cycle("tracer", "tracer", 200, 0.3, 0.02, sd=0.1), _cycle("c1", "therapy", 7400, 6.0, 0.4)]
    s = summarise_course(cycles, LIMITS)
    assert s["structures"]["kidneys"]["total_dose_sd_gy"] is None


def test_bad_basis_and_empty_course_raise():
    with pytest.raises(ValueError):
        summarise_course([], LIMITS)
    with pytest.raises(ValueError):
        summarise_course([_cycle("c1", "therapy", 7400, 6.0, 0.4)], LIMITS, basis="median")


def test_zero_dose_per_activity_gives_no_activity_limit_and_valid_json():
    import json

    cycles = [_cycle("c1", "therapy", 7400, 6.0, 0.0)]
    s = summarise_course(cycles, LIMITS)
    marrow = next(r for r in s["limits"] if r["structure"] == "red_marrow")
    assert marrow["next_cycle"]["activity_gbq"] is None
    assert s["next_cycle"]["limiting_structure"] == "kidneys"
    json.dumps(s, allow_nan=False)


def test_shared_sources_add_linearly_over_cycles():
    from pipeline.course.summary import sum_sd

    # two cycles, SD 0.5 Gy each of which 0.3 Gy calibration (shared): 2 x 0.4^2 + (0.3 + 0.3)^2
    assert sum_sd([0.5, 0.5], [(("calibration", 0.3),), (("calibration", 0.3),)]) == pytest.approx(
        math.sqrt(2 * 0.16 + 0.36))
    assert sum_sd([0.5, 0.5], [(), ()]) == pytest.approx(math.sqrt(0.5))
    assert sum_sd([0.5, None], [(), ()]) is None
    cycles = [CycleRecord("c1", "therapy", 7400, "2026-01-01T09:00:00", structures={
        "kidneys": StructureCycle("kidneys", 5.0, 0.5, 0.1, AB, "", (("calibration", 0.3),))}),
        CycleRecord("c2", "therapy", 7400, "2026-02-01T09:00:00", structures={
            "kidneys": StructureCycle("kidneys", 5.0, 0.5, 0.1, AB, "", (("calibration", 0.3),))})]
    k = summarise_course(cycles, LIMITS)["structures"]["kidneys"]
    assert k["total_dose_sd_gy"] == pytest.approx(math.sqrt(2 * 0.16 + 0.36))
    f = 1 + 2 * 0.1 * 5.0 / AB
    assert k["total_bed_sd_gy"] == pytest.approx(f * math.sqrt(2 * 0.16 + 0.36))
