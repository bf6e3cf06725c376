"""When the CT's own levels settle L2-L4 for the atlas registration (pipeline.segment.builtin_levels)."""

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.segment.builtin_levels import refuse_agreeing_levels_on_uneven_bodies, settled_levels_z
from pipeline.segment.spine import Vertebra

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])  # working grid: 3 mm slices, z = 3 k


def spine(decision, bodies, manual=False, settled=None):
    """A spine result with ``bodies`` name -> (k_lo, k_hi) and the vote's decision."""
    vertebrae = [Vertebra(n, lo, hi, (50.0, 40.0), False) for n, (lo, hi) in bodies.items()]
    evidence = [{"name": "sacrum"}, {"name": "iliac_crests"}] + ([{"name": "manual"}] if manual else [])
    levels = {"decision": decision, "evidence": evidence, **({} if settled is None else {"settled": settled})}
    return SimpleNamespace(levels=levels,
                           by_name=lambda n: next((v for v in vertebrae if v.name == n), None))


NORMAL = {"L4": (10, 19), "L3": (23, 32), "L2": (36, 45)}  # 30 mm bodies, 12 mm discs


def test_agreeing_landmarks_give_the_l2_l4_centres():
    z = settled_levels_z(spine("pass", NORMAL), AFFINE, 3.0)
    assert z == pytest.approx({"L4": 43.5, "L3": 82.5, "L2": 121.5})


def test_an_operator_level_settles_them_even_against_a_landmark():
    assert settled_levels_z(spine("warn", NORMAL, manual=True), AFFINE, 3.0) is not None


def test_one_landmark_or_a_disagreement_does_not_settle_them():
    assert settled_levels_z(spine("warn", NORMAL), AFFINE, 3.0) is None
    assert settled_levels_z(spine("fail", NORMAL), AFFINE, 3.0) is None
    assert settled_levels_z(spine("warn", NORMAL, settled=False), AFFINE, 3.0) is None


def test_agreeing_landmarks_with_a_body_height_warning_settle_them():
    # the vote passed, then the body heights made it a warn: the landmarks still agree
    z = settled_levels_z(spine("warn", NORMAL, settled=True), AFFINE, 3.0)
    assert z == pytest.approx({"L4": 43.5, "L3": 82.5, "L2": 121.5})


def test_merged_bodies_or_a_missing_level_do_not_settle_them():
    merged = {"L4": (10, 19), "L3": (23, 45), "L2": (49, 58)}  # L3 69 mm: a disc missed
    assert settled_levels_z(spine("pass", merged), AFFINE, 3.0) is None
    far = {"L4": (0, 9), "L3": (23, 32), "L2": (36, 45)}  # L4 to L3 centres 69 mm apart
    assert settled_levels_z(spine("pass", far), AFFINE, 3.0) is None
    assert settled_levels_z(spine("pass", {"L3": (23, 32), "L2": (36, 45)}), AFFINE, 3.0) is None


def test_an_operator_level_on_merged_bodies_is_used_alone():
    merged = {"L4": (10, 19), "L3": (23, 45), "L2": (49, 58)}
    assert settled_levels_z(spine("warn", merged, manual=True), AFFINE, 3.0, "L3@-215") == {"L3": -215.0}
    assert settled_levels_z(spine("warn", merged, manual=True), AFFINE, 3.0, "L1@-150") is None  # no atlas L1
    assert settled_levels_z(spine("pass", merged), AFFINE, 3.0, None) is None


def test_bodies_of_very_different_heights_do_not_settle_them():
    # ICRP-110 AF, 3 mm, lung bases to sacrum: a disc found inside L2 and the L2-L3 disc missed
    # gave L3 42 mm and L2 18 mm, each within the single-body range, their centres 10 mm high
    uneven = {"L4": (10, 18), "L3": (20, 33), "L2": (36, 41)}  # 27, 42, 18 mm
    assert settled_levels_z(spine("pass", uneven), AFFINE, 3.0) is None
    similar = {"L4": (10, 20), "L3": (23, 35), "L2": (38, 45)}  # 33, 39, 24 mm (1.6 times)
    assert settled_levels_z(spine("pass", similar), AFFINE, 3.0) is not None


def test_agreeing_landmarks_on_uneven_bodies_are_refused_with_the_override():
    uneven = {"L4": (10, 18), "L3": (20, 33), "L2": (36, 41)}
    sp = spine("pass", uneven)
    sp.levels["evidence"] = [{"name": "sacrum", "agrees": True, "l1_segment_index": 6},
                             {"name": "iliac_crests", "agrees": True, "l1_segment_index": 6}]
    want = r"landmarks \(sacrum, iliac_crests\) agree.*L3 42 mm, L4 27 mm.*vertebra-level"
    with pytest.raises(InputError, match=want):
        refuse_agreeing_levels_on_uneven_bodies(sp, 3.0)


def test_the_refusal_names_where_the_landmarks_put_l3():
    sp = spine("pass", {"L4": (10, 18), "L3": (20, 33), "L2": (36, 41)})
    sp.levels["evidence"] = [{"name": "sacrum", "agrees": True, "l1_segment_index": 6},
                             {"name": "iliac_crests", "agrees": True, "l1_segment_index": 6}]
    # slices 20..33 of 3 mm from z = -100 mm: the bone from z -41.5 to +0.5 mm (outer faces)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[2, 3] = -100.0
    with pytest.raises(InputError, match=r"call L3 the bone at z -42\.\.0 mm \(check it on the CT\)"):
        refuse_agreeing_levels_on_uneven_bodies(sp, 3.0, affine)


def test_uneven_bodies_without_agreeing_landmarks_or_with_an_operator_level_go_on():
    uneven = {"L4": (10, 18), "L3": (20, 33), "L2": (36, 41)}
    refuse_agreeing_levels_on_uneven_bodies(spine("fail", uneven), 3.0)  # the atlas votes there
    refuse_agreeing_levels_on_uneven_bodies(spine("warn", uneven), 3.0)
    refuse_agreeing_levels_on_uneven_bodies(spine("pass", uneven, manual=True), 3.0)


def test_agreeing_landmarks_on_uneven_bodies_warn_instead_of_refusing_with_enough_lung():
    """With 150 mm of lung or more the free atlas registration holds (ICRP-110 AM at 4 mm, trunk:
    L2 20 mm, L3 40 mm, L4 30 mm, Dice unchanged); the warning is returned for the record, and
    below that the refusal stands."""
    from pipeline.segment.builtin_levels import ATLAS_LEVELS_MIN_LUNG_MM

    sp = spine("pass", {"L4": (10, 18), "L3": (20, 33), "L2": (36, 41)})
    sp.levels["evidence"] = [{"name": "sacrum", "agrees": True, "l1_segment_index": 6},
                             {"name": "iliac_crests", "agrees": True, "l1_segment_index": 6}]
    msg = refuse_agreeing_levels_on_uneven_bodies(sp, 3.0, lung_mm=ATLAS_LEVELS_MIN_LUNG_MM)
    assert "not single vertebrae of similar height" in msg and "left free" in msg
    with pytest.raises(InputError, match="not single vertebrae"):
        refuse_agreeing_levels_on_uneven_bodies(sp, 3.0, lung_mm=ATLAS_LEVELS_MIN_LUNG_MM - 1.0)
    assert refuse_agreeing_levels_on_uneven_bodies(spine("fail", NORMAL), 3.0, lung_mm=0.0) is None
