"""The rib-cage test on a synthetic trunk: ribs on an ellipse, an anterior gap, a spine, arms, a table."""

import numpy as np

from pipeline.segment.rib_cage import bridge_gaps, outside_rib_cage

VS = (2.0, 2.0, 5.0)


def _trunk(shape=(200, 150, 12)):
    """CT (HU) and the trunk's geometry: body ellipse 150 x 110 mm (semi-axes), subcutaneous fat
    15 mm, ribs on an ellipse at 80 % of the body except in the anterior 90 degrees (j large is
    anterior here), a vertebral body behind the centre, two arms beside the trunk and a table."""
    ni, nj, nk = shape
    i, j = np.meshgrid(np.arange(ni) * VS[0], np.arange(nj) * VS[1], indexing="ij")
    ci, cj = ni * VS[0] / 2, nj * VS[1] / 2
    u, v = (i - ci) / 150.0, (j - cj) / 110.0
    rho = np.hypot(u, v)  # 1 at the body surface
    ang = np.degrees(np.arctan2(v, u))  # 90: anterior
    ct = np.full((ni, nj), -1000.0, np.float32)
    ct[rho < 1.0] = -100.0  # subcutaneous fat
    ct[rho < 0.88] = 45.0  # muscle and organs
    ribs = (np.abs(rho - 0.8) < 0.025) & ~((ang > 45) & (ang < 135))
    ct[ribs] = 500.0
    spine = np.hypot(i - ci, j - (cj - 60.0)) < 18.0
    ct[spine] = 300.0
    arms = (np.hypot(i - (ci - 175.0), j - cj) < 25.0) | (np.hypot(i - (ci + 175.0), j - cj) < 25.0)
    ct[arms] = 40.0
    ct[(np.hypot(i - (ci - 175.0), j - cj) < 8.0)] = 800.0  # humerus
    ct[(j < 8.0) & (np.abs(i - ci) < 190)] = 200.0  # the table, apart from the body
    geo = {"rho": rho, "ang": ang, "arms": arms}
    return np.repeat(ct[:, :, None], shape[2], axis=2), geo


def test_the_body_wall_outside_the_ribs_is_outside_and_the_inside_is_not():
    ct, g = _trunk()
    out = outside_rib_cage(ct, VS)[:, :, 6]
    rho, ang = g["rho"], g["ang"]
    lateral = (np.abs(ang) < 30) | (np.abs(ang) > 150) | ((ang < -60) & (ang > -120))
    wall = (rho > 0.86) & (rho < 0.98) & lateral  # muscle and fat outside the ribs
    # inside the ribs, except straight behind the vertebral body (which hides what lies behind
    # it as a rib would: the back muscles; no organ lies there)
    inside = (rho < 0.74) & ~((ang > -115) & (ang < -65))
    assert out[wall].mean() > 0.95
    assert not out[inside].any()


def test_the_anterior_gap_without_ribs_says_nothing():
    ct, g = _trunk()
    out = outside_rib_cage(ct, VS)[:, :, 6]
    gap = (g["ang"] > 60) & (g["ang"] < 120) & (g["rho"] < 1.0)
    assert not out[gap].any()


def test_arms_table_and_air_are_never_outside_the_rib_cage():
    ct, g = _trunk()
    out = outside_rib_cage(ct, VS)
    assert not out[:, :, 6][g["arms"]].any()
    assert not out[:, :, 6][g["rho"] >= 1.0].any()


def test_slices_without_ribs_say_nothing():
    ct, _ = _trunk()
    ct[ct >= 250.0] = 45.0  # no bone at all (below the rib cage, spine aside)
    assert not outside_rib_cage(ct, VS).any()


def test_an_intercostal_space_on_the_slice_is_bridged_and_its_wall_is_outside():
    ct, g = _trunk()
    rho, ang = g["rho"], g["ang"]
    space = (ang > -10) & (ang < 5)  # 15 degrees without rib on every slice, laterally
    ct[(np.abs(rho - 0.8) < 0.025)[:, :, None].repeat(ct.shape[2], 2) & space[:, :, None]] = 45.0
    out = outside_rib_cage(ct, VS)[:, :, 6]
    wall = (rho > 0.86) & (rho < 0.98) & (ang > -7) & (ang < 2)
    assert out[wall].mean() > 0.95
    assert not out[(rho < 0.74) & space].any()
    # without bridging the space says nothing
    assert not outside_rib_cage(ct, VS, max_gap_deg=0.0)[:, :, 6][wall].any()


def test_bridge_gaps_interpolates_short_runs_across_the_circle_and_leaves_long_ones():
    r = np.full(12, np.nan)
    r[[0, 3, 10]] = [10.0, 16.0, 30.0]
    out = bridge_gaps(r, 2)
    np.testing.assert_allclose(out[[1, 2]], [12.0, 14.0])  # 10 -> 16 over three steps
    np.testing.assert_allclose(out[11], 20.0)  # 30 -> 10 across the wrap
    assert np.isnan(out[4:10]).all()  # six sectors: too long
    assert np.isnan(bridge_gaps(r, 0)[1])
