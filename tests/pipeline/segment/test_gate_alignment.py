"""The gate's SPECT/CT alignment check (pipeline.segment.gate_alignment) on an analytic case."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.image import Image
from pipeline.segment.gate_alignment import best_uptake_shift, uptake_offset_check
from pipeline.segment.gate_grid import _Grid


def _grid_and_ball(shape=(60, 60, 40), vs=(2.0, 2.0, 2.5), radius_mm=25.0):
    affine = np.diag([*vs, 1.0])
    idx = np.indices(shape).astype(float)
    c = [n / 2 for n in shape]
    ball = sum(((idx[a] - c[a]) * vs[a]) ** 2 for a in range(3)) <= radius_mm ** 2
    g = _Grid(np.zeros(shape, np.float32), ball.astype(np.uint16), np.array(vs), affine, (1, 1, 1))
    return g, ball, affine


@pytest.mark.parametrize("shift_mm", [(0.0, 0.0, 0.0), (6.0, 0.0, 0.0), (0.0, -4.0, 7.5), (8.0, 6.0, -5.0)])
def test_the_best_shift_of_a_ball_over_its_blurred_uptake_is_the_uptakes_offset(shift_mm):
    # the uptake is the ball itself, blurred (12 mm FWHM) and moved by shift_mm: by symmetry the
    # mask holds the most activity when moved by the same vector (within half a voxel per axis)
    g, ball, affine = _grid_and_ball()
    act = ndi.gaussian_filter(ball.astype(np.float32) * 10.0 + 1.0, 12.0 / 2.3548 / g.vs)
    moved = affine.copy()
    moved[:3, 3] += shift_mm
    found, gain = best_uptake_shift(g, Image(act, moved, "Bq/mL"), ball)
    assert np.all(np.abs(found - shift_mm) <= 0.5 * g.vs + 1e-9), found
    assert gain >= 1.0
    c = uptake_offset_check(g, Image(act, moved, "Bq/mL"), "kidney_left", ball)
    assert c.status == ("warn" if np.linalg.norm(shift_mm) > 5.0 else "pass"), c.line()


def test_flat_uptake_has_no_offset_worth_a_warn():
    # uniform activity: every shift holds the same mean; the gain is 1, no shift is reported (the
    # smallest of the equal ones) and the check passes
    g, ball, affine = _grid_and_ball()
    c = uptake_offset_check(g, Image(np.ones(ball.shape, np.float32), affine, "Bq/mL"), "kidney_left", ball)
    assert c.status == "pass" and c.value == 0.0, c.line()
