"""Activity planning: limits reproduced exactly; BED planning against a direct root solve."""

import pytest
from scipy.optimize import brentq

from pipeline.dose.planning import OrganLimit, activity_for_bed_limit_gbq, plan_activity
from pipeline.dose.radiobiology import LQParameters, bed_gy

KIDNEY = LQParameters(2.6, 2.8)


def test_prescribed_activity_reproduces_the_kidney_dose_limit_exactly():
    # seed-study-like tracer result: kidney 1.44 Gy/GBq, marrow 0.042 Gy/GBq
    plan = plan_activity([
        OrganLimit("kidneys", 1.44, dose_limit_gy=23.0),
        OrganLimit("red_marrow", 0.042, dose_limit_gy=2.0),
    ])
    assert plan["limiting_organ"] == "kidneys"
    assert plan["activity_gbq"] == pytest.approx(23.0 / 1.44, rel=1e-12)
    assert plan["organs"]["kidneys"]["absorbed_dose_gy"] == pytest.approx(23.0, rel=1e-12)
    assert plan["organs"]["red_marrow"]["absorbed_dose_gy"] == pytest.approx(0.042 * 23.0 / 1.44, rel=1e-12)


def test_marrow_limits_when_its_dose_per_activity_is_high():
    plan = plan_activity([
        OrganLimit("kidneys", 0.73, dose_limit_gy=23.0),
        OrganLimit("red_marrow", 0.57, dose_limit_gy=1.0),
    ])
    assert plan["limiting_organ"] == "red_marrow"
    assert plan["organs"]["red_marrow"]["absorbed_dose_gy"] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("g", [0.02, 0.1, 0.5, 1.0])
def test_bed_limited_activity_matches_a_direct_solve(g):
    d = 1.44  # Gy/GBq
    exact = activity_for_bed_limit_gbq(d, 40.0, g, KIDNEY)
    direct = brentq(lambda a: float(bed_gy(d * a, g, KIDNEY)) - 40.0, 1e-6, 1e3, xtol=1e-14)
    assert exact == pytest.approx(direct, rel=1e-10)
    assert float(bed_gy(d * exact, g, KIDNEY)) == pytest.approx(40.0, rel=1e-12)


def test_the_stricter_of_dose_and_bed_limit_wins():
    plan = plan_activity([OrganLimit("kidneys", 1.44, dose_limit_gy=23.0, bed_limit_gy=28.0, g_factor=0.1, lq=KIDNEY)])
    assert plan["limiting_quantity"] == "bed"
    assert plan["organs"]["kidneys"]["bed_gy"] == pytest.approx(28.0, rel=1e-10)
    assert plan["organs"]["kidneys"]["absorbed_dose_gy"] < 23.0


def _organ(label, name, mean_gy, mass_g):
    from pipeline.dose.organs import OrganDose

    return OrganDose(label, name, 100, mass_g, mass_g, mean_gy, mean_gy, mean_gy, mean_gy, mean_gy, mean_gy,
                     mean_gy, None)


def test_a_solitary_kidney_is_planned_on_its_own_dose_and_said_to_be_solitary():
    from pipeline.dose.planning import plan_from_doses
    from pipeline.dose.stage import DoseSettings

    settings = DoseSettings()
    both = plan_from_doses([_organ(1, "kidney_left", 4.0, 150.0), _organ(2, "kidney_right", 2.0, 150.0)],
                           {}, [], 7.4, settings)
    one = plan_from_doses([_organ(2, "kidney_right", 6.0, 250.0)], {}, [], 7.4, settings)
    # both kidneys: the limit applies to their mass-weighted mean, 3 Gy at 7.4 GBq
    assert both["activity_gbq"] == pytest.approx(settings.kidney_dose_limit_gy / 3.0 * 7.4, rel=1e-9)
    assert "solitary" not in both["basis"]
    # one kidney (the other declared absent): to that kidney's own mean
    assert one["activity_gbq"] == pytest.approx(settings.kidney_dose_limit_gy / 6.0 * 7.4, rel=1e-9)
    assert "solitary kidney" in one["basis"] and "kidney_right" in one["basis"]
