"""The issue's criteria on a generated course (small preset, Poisson noise, seed 0), against its truth.

Runs :func:`sample_data.course_validation.run_validation` once (about 3.5 min on 2 cores): the
default course (tracer 200 MBq five scans, therapy 7.4 GBq five scans with faster and lower
kidney kinetics, therapy 6.0 GBq one scan at 72 h), each cycle through ingest, register,
kinetics (the one-scan cycle with cycle 1's kinetics) and dose on the truth labels, then
``spectdose course``; truth: the generator's TIA as imaged through the same dose stage.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    from sample_data.course_validation import run_validation

    return run_validation(tmp_path_factory.mktemp("course_validation"), preset="small", noise=True, seed=0)


def test_cumulative_kidney_dose_and_bed_within_5_percent_of_the_truth(validation):
    c = validation["course"]
    print(f"kidneys course dose {c['kidneys_dose_gy']:.4f} Gy vs truth {c['kidneys_dose_truth_gy']:.4f} Gy "
          f"({c['kidneys_dose_pct']:+.2f} %); BED {c['kidneys_bed_gy']:.4f} vs {c['kidneys_bed_truth_gy']:.4f} Gy "
          f"({c['kidneys_bed_pct']:+.2f} %); dose map {c['cumulative_map_mean_pct']}")
    # measured: -2.3 % dose, -2.7 % BED
    assert abs(c["kidneys_dose_pct"]) < 5.0
    assert abs(c["kidneys_bed_pct"]) < 5.0
    for side, pct in c["cumulative_map_mean_pct"].items():
        assert abs(pct) < 5.0, side
    assert c["qc_summary"]["fail"] == 0


def test_prediction_against_delivery_reproduces_the_kinetics_change(validation):
    rows = validation["prediction_kidneys"]
    assert [r["cycle"] for r in rows] == ["c1", "c2"]
    for r in rows:
        print(f"{r['cycle']} from {r['basis']}: delivered/predicted {r['delivered_over_predicted']:.4f}, "
              f"truth change {r['truth_ratio']:.4f} ({r['pct']:+.2f} %)")
        # measured: +0.2 % (tracer -> c1, a 0.57 change), -1.7 % (c1 -> c2)
        assert abs(r["pct"]) < 3.0
    assert rows[0]["delivered_over_predicted"] < 0.65  # the generator's large tracer-to-therapy change is seen


def test_single_scan_with_cycle_1_kinetics_within_10_percent_and_hanscheid_beside_it(validation):
    organs = validation["single_time_point"]["organs"]
    for name, o in organs.items():
        print(f"{name}: cycle-1 kinetics {o['prior_cycle_pct']:+.1f} %, Hanscheid {o['haenscheid_pct']:+.1f} %")
        assert abs(o["prior_cycle_pct"]) < 10.0, name
    # measured: Hanscheid at 72 h (3 kidney effective half-lives) -13 / -19 % for the kidneys
    for kidney in ("kidney_left", "kidney_right"):
        assert abs(organs[kidney]["haenscheid_pct"]) > abs(organs[kidney]["prior_cycle_pct"])


def test_planned_activity_brings_the_kidneys_to_their_limit(validation):
    p = validation["planning"]
    print(p)
    # the verify cycle's kidney Gy/GBq (same kinetics as the tracer) at the tracer's 23 Gy plan: +0.5 %
    assert p["kidneys_at_23gy_plan_delivered_gy_by_linearity"] == pytest.approx(23.0, rel=0.02)


@pytest.mark.xfail(strict=True, reason="the 200 MBq tracer study's marrow VOI holds ~6 kBq at 168 h (~90 counts): "
                                       "its marrow Gy/GBq is 7 % high, so the marrow-limited plan delivers 0.93 Gy "
                                       "(noise-free: 1.000 Gy)")
def test_planned_activity_brings_the_limiting_organ_within_2_percent_of_its_limit(validation):
    p = validation["planning"]
    assert p["limiting"] == "red_marrow"
    assert p["delivered_limiting_gy"] == pytest.approx(p["limit_gy"], rel=0.02)
