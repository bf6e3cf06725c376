"""Choice of the reference time point."""

import numpy as np
import pytest

from pipeline.register.reference import choose_reference, ct_quality_problems

TIMES = {"t1h": 1.0, "t4h": 4.0, "t24h": 23.5, "t48h": 47.0, "t168h": 168.0}


def test_default_is_the_scan_closest_to_24h():
    tp, reason, rejected = choose_reference(TIMES)
    assert tp == "t24h" and "24" in reason and rejected == {}


def test_without_a_day_one_scan_the_nearest_wins():
    # 4 h is 20 h from 24 h, 47 h is 23 h away, 40 h is 16 h away
    assert choose_reference({"t1h": 1.0, "t4h": 4.0, "t47h": 47.0})[0] == "t4h"
    assert choose_reference({"t1h": 1.0, "t4h": 4.0, "t40h": 40.0})[0] == "t40h"


def test_user_choice_wins_and_must_exist():
    assert choose_reference(TIMES, requested="t4h")[0] == "t4h"
    with pytest.raises(KeyError):
        choose_reference(TIMES, requested="t5h")


def test_a_time_point_with_an_unusable_ct_is_passed_over():
    bad = {"t24h": ["body volume 0 mL is below 2000 mL"]}
    tp, reason, rejected = choose_reference(TIMES, ct_problems=lambda t: bad.get(t, []))
    assert tp == "t4h"  # next closest to 24 h: 20 h away (t48h is 23 h away)
    assert rejected == bad and "usable" in reason


def test_no_usable_ct_at_all_is_an_error():
    with pytest.raises(ValueError, match="no time point"):
        choose_reference({"t1h": 1.0}, ct_problems=lambda t: ["empty"])


def test_ct_quality_flags_an_empty_image_and_accepts_the_phantom(torso):
    ct, _, _ = torso
    assert ct_quality_problems(ct) == []
    empty = ct.with_array(np.full(ct.shape, -1000.0, np.float32))
    problems = ct_quality_problems(empty)
    assert any("body volume" in p for p in problems)
