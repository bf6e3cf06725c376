"""The kinetics and dose plausibility gates on constructed inputs (physically impossible ones fail)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.dose.plausibility import MEV_TO_J, dose_checks, energy_balance
from pipeline.errors import InputError
from pipeline.image import Image
from pipeline.kinetics.fitting import fit_tac
from pipeline.kinetics.plausibility import kinetics_checks
from pipeline.qc import Gate, check_upper

LP = math.log(2) / 159.528  # Lu-177, 1/h


def _kinetics_result(curves: dict, times, tia_total=0.0):
    fits = {label: fit_tac(np.asarray(times, float), np.asarray(a, float), LP) for label, a in curves.items()}
    names = {1: "kidney_left", 7: "body", 100: "lesion"}
    tia = Image(np.full((2, 2, 2), tia_total / 8.0, np.float32), np.diag([10.0, 10.0, 10.0, 1.0]), "MBq*h/mL")
    return SimpleNamespace(label_names={k: names[k] for k in curves}, fits=fits, decay_constant_per_h=LP, tia=tia)


def _status(checks, name, subject):
    return next(c.status for c in checks if c.name == name and c.subject == subject)


def test_sample_like_curves_pass():
    t = [1, 4, 24, 48, 168]
    a = [70 * math.exp(-(LP + 0.0137) * x) * (1 - math.exp(-1.3 * x)) for x in t]
    checks = kinetics_checks(_kinetics_result({1: a}, t, tia_total=5000.0), 7400.0)
    assert all(c.status == "pass" for c in checks), [c.describe() for c in checks if c.status != "pass"]


def test_organ_tia_above_all_injected_activity_for_ever_fails():
    t = [1, 4, 24, 48, 168]
    a = [100 * math.exp(-LP * x) for x in t]  # 100 MBq staying for ever: TIA 100/LP MBq*h
    checks = kinetics_checks(_kinetics_result({1: a}, t), 50.0)  # but only 50 MBq injected
    assert _status(checks, "tia_over_injected_times_mean_life", "kidney_left") == "fail"
    with pytest.raises(InputError, match="tia_over_injected_times_mean_life"):
        gate = Gate("reg")
        gate.extend(checks)
        gate.raise_on_fail()


def test_extrapolated_tail_dominating_fails_for_an_organ_and_warns_for_the_body():
    t = [1, 2, 4]  # three early scans of a slowly cleared Lu-177 organ: most of the TIA is extrapolated
    a = [50 * math.exp(-(LP + 0.001) * x) for x in t]
    checks = kinetics_checks(_kinetics_result({1: a, 7: a}, t), 7400.0)
    assert _status(checks, "tia_share_after_last_point", "kidney_left") == "fail"
    assert _status(checks, "tia_share_after_last_point", "body") == "warn"


def test_tia_map_total_above_the_bound_fails():
    t = [1, 4, 24, 48, 168]
    a = [10 * math.exp(-(LP + 0.01) * x) for x in t]
    checks = kinetics_checks(_kinetics_result({1: a}, t, tia_total=2 * 7400 / LP), 7400.0)
    assert _status(checks, "tia_map_total_over_injected_times_mean_life", "tia map") == "fail"


def test_effective_half_life_never_longer_than_physical_for_the_fits():
    t = [1, 4, 24, 48, 168]
    a = [10 * math.exp(-LP * 0.5 * x) for x in t]  # slower than physical decay: impossible
    checks = kinetics_checks(_kinetics_result({1: a}, t), 7400.0)
    c = next(c for c in checks if c.name == "effective_over_physical_half_life")
    assert c.value <= 1.0 + 1e-9  # the fit keeps biological clearance >= 0


def _dose_result(mean_gy, mass_g, ratio_absorbed=0.88, fe=0.81):
    emitted = 10.0
    organ = SimpleNamespace(name="kidney_left", mass_g=mass_g, mean_gy=mean_gy)
    return SimpleNamespace(organs=[organ], energy_balance={"absorbed_j": ratio_absorbed * emitted,
                                                           "emitted_j": emitted, "ratio": ratio_absorbed,
                                                           "electron_share": fe})


def test_dose_checks_pass_on_plausible_numbers():
    checks = dose_checks(_dose_result(3.0, 150.0), 7400.0, LP, 0.183)
    assert all(c.status == "pass" for c in checks)


@pytest.mark.parametrize("ratio,status", [(1.5, "fail"), (1.05, "warn"), (0.3, "fail"), (0.7, "warn")])
def test_energy_balance_bounds(ratio, status):
    checks = dose_checks(_dose_result(3.0, 150.0, ratio_absorbed=ratio), 7400.0, LP, 0.183)
    assert status in {c.status for c in checks if c.name.startswith("energy_absorbed")}


def test_organ_dose_above_all_emitted_energy_fails():
    # all energy of 7400 MBq Lu-177 absorbed in 150 g: A0/lp * 3.6e9 * 0.183 MeV * 1.6e-13 / 0.15 kg
    d_max = 7400 / LP * 3.6e9 * 0.183 * MEV_TO_J / 0.15
    checks = dose_checks(_dose_result(1.5 * d_max, 150.0), 7400.0, LP, 0.183)
    assert _status(checks, "mean_dose_over_largest_possible", "kidney_left") == "fail"


def test_energy_balance_of_local_deposition_is_exact():
    tia = np.zeros((5, 5, 5))
    tia[2, 2, 2] = 10.0  # MBq*h/mL
    rho = np.ones_like(tia)
    e_mev = 0.15
    # local deposition: dose = TIA * 3.6e9 * E * 1.6e-13 J / (rho * 1e-3 kg/mL) per mL
    dose = tia * 3.6e9 * e_mev * MEV_TO_J / 1e-3
    bal = energy_balance(dose, rho, tia, 1.0, e_mev, 0.0)
    assert bal["ratio"] == pytest.approx(1.0, rel=1e-12)


def test_check_upper_fails_non_finite_values():
    assert check_upper("x", float("nan"), "1", 1.0, 2.0, "s").status == "fail"
    assert check_upper("x", 1.5, "1", 1.0, 2.0, "s").status == "warn"
