"""Failure detection and the QC overlay."""

import numpy as np
import pytest
from register_phantom import move, rigid_ras, spect_grid, spect_of

from pipeline.register.qc import QCLimits, deformable_problems, overlay_png, rigid_problems
from pipeline.register.rigid import RigidSettings
from pipeline.register.stage import RegisterOptions, register_time_point

FAST = RegisterOptions(rigid=RigidSettings(working_spacing_mm=4.0, metric_samples=25000, iterations=60))


def test_plausible_registration_has_no_problems():
    assert rigid_problems(-0.4, -1.0, 12.0, 3.0, 0.95, QCLimits()) == []


@pytest.mark.parametrize("args,word", [
    ((-1.0, -0.8, 12.0, 3.0, 0.95), "worse than the start"),
    ((-0.4, -1.0, 62.0, 3.0, 0.95), "translation 62.0 mm exceeds 50"),
    ((-0.4, -1.0, 12.0, 20.0, 0.95), "rotation 20.0 deg exceeds 15"),
    ((-0.4, -1.0, 12.0, 3.0, 0.30), "do not match"),
    ((-0.4, float("nan"), 12.0, 3.0, 0.95), "worse than the start"),
])
def test_each_failure_rule_fires_alone(args, word):
    problems = rigid_problems(*args, QCLimits())
    assert len(problems) == 1 and word in problems[0]


def test_limits_are_configurable():
    assert rigid_problems(-0.4, -1.0, 62.0, 3.0, 0.95, QCLimits(max_translation_mm=80.0)) == []


def test_deformable_rules_catch_folding_and_a_worse_metric():
    assert deformable_problems(-1.0, -1.1, 0.6, QCLimits()) == []
    assert "worse" in deformable_problems(-1.0, -0.9, 0.6, QCLimits())[0]
    assert "folds" in deformable_problems(-1.0, -1.1, -0.2, QCLimits())[0]


def test_ct_of_another_body_is_detected_and_reported(torso, real_ct_4mm):
    # the analytic torso as reference, the real patient's CT as the "other time point"
    ct, _, act = torso
    grid = spect_grid()
    result = register_time_point("t4h", ct, real_ct_4mm, spect_of(act, grid), grid, FAST)
    assert result.status == "failed" and result.spect is None
    assert result.problems == result.qc["problems"] and result.problems
    # the correlation rule fires whatever the optimiser did (measured 0.2-0.25 for this pair)
    assert any("do not match" in p for p in result.problems)
    assert result.qc["rigid"]["ct_correlation"]["after"] < QCLimits().min_correlation


def test_fallback_keeps_going_with_identity_and_records_why(torso):
    # a good registration rejected by a deliberately tight rotation limit
    ct, _, act = torso
    m = rigid_ras((3.0, 2.0, -2.0), (-6.0, 8.0, 5.0))
    grid = spect_grid()
    limits = QCLimits(max_rotation_deg=1.0)
    strict = RegisterOptions(rigid=FAST.rigid, limits=limits)
    failed = register_time_point("t4h", ct, move(ct, m), spect_of(act, grid, m), grid, strict)
    assert failed.status == "failed" and "rotation" in failed.problems[0]
    # the same-body correlation is high (0.97 measured; the floor 0.75 leaves a wide margin)
    assert failed.qc["rigid"]["ct_correlation"]["after"] > 0.9
    lenient = RegisterOptions(rigid=FAST.rigid, limits=limits, allow_fallback=True)
    result = register_time_point("t4h", ct, move(ct, m), spect_of(act, grid, m), grid, lenient)
    assert result.status == "fallback_identity" and result.problems
    assert result.transform.IsLinear() and np.allclose(result.transform.GetParameters(), 0.0)
    assert result.spect is not None and "identity" in result.qc["fallback"]


def test_overlay_png_is_written(torso, tmp_path):
    ct, _, act = torso
    m = rigid_ras()
    grid = spect_grid()
    spect = spect_of(act, grid)
    from register_phantom import euler_from_affine_ras

    path = overlay_png(tmp_path / "qc.png", ct, move(ct, m), spect, transform=euler_from_affine_ras(m),
                       spect_before=spect_of(act, grid, m), title="test", notes="line 1\nline 2")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
