"""L2-L4 bodies and marrow VOI drawn on the CT's own in-plane grid (pipeline.segment.native_spine)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.segment.marrow import marrow_voi
from pipeline.segment.native_spine import bodies_on_ct_grid, marrow_on_ct_grid, upsample_mask
from pipeline.segment.orient import block_mean

VS_CT = (0.8, 0.8, 5.0)  # thin in-plane pixels, thick slices (a common diagnostic CT)
F = (2, 2, 1)  # the segmenter's working grid: 1.6 x 1.6 x 5 mm
SEMI_MM = (20.0, 15.0)  # body 40 mm wide, 30 mm deep
K_BODY = (4, 9)  # six 5 mm slices: a 30 mm body


def _vertebra(noise_hu=40.0, seed=0):
    """CT (HU) of one lumbar body and its arch around a CSF canal; the body's and the canal's masks."""
    shape = (101, 101, 14)
    x = (np.arange(shape[0]) - 50) * VS_CT[0]
    y = (np.arange(shape[1]) - 50) * VS_CT[1]
    X, Y = np.meshgrid(x, y, indexing="ij")
    r = np.sqrt((X / SEMI_MM[0]) ** 2 + (Y / SEMI_MM[1]) ** 2)
    body2d = r <= 1.0
    shell2d = body2d & (r > 1.0 - 1.5 / SEMI_MM[1])  # 1.5 mm cortex
    canal = np.hypot(X, Y + SEMI_MM[1] + 9.0) <= 8.0
    arch = (np.hypot(X, Y + SEMI_MM[1] + 9.0) <= 11.0) & ~canal & ~body2d
    ct = np.full(shape, -80.0, np.float32)  # retroperitoneal fat
    truth = np.zeros(shape, bool)
    for k in range(shape[2]):
        sl = ct[:, :, k]
        if K_BODY[0] <= k <= K_BODY[1]:
            sl[body2d] = 200.0  # trabecular bone
            sl[shell2d] = 700.0
            truth[:, :, k] = body2d
        else:
            sl[body2d] = 80.0  # disc
        sl[arch] = 700.0
        sl[canal] = 10.0
    ct += np.random.default_rng(seed).normal(0.0, noise_hu, shape).astype(np.float32)
    return ct, truth, np.repeat(canal[:, :, None], shape[2], axis=2)


def _working_outline(truth):
    w = block_mean(truth.astype(np.float32), F) > 0.5
    return w


def test_upsample_mask_repeats_blocks_and_pads_the_dropped_edge():
    w = np.zeros((3, 2, 2), bool)
    w[2, 1, 1] = True
    up = upsample_mask(w, (2, 2, 1), (7, 5, 2))
    assert up.shape == (7, 5, 2)
    assert up[4:7, 2:5, 1].all() and up.sum() == 9


def test_bodies_on_ct_grid_draws_each_slice_whole_even_from_a_fragment():
    ct, truth, canal = _vertebra()
    w = _working_outline(truth)
    k_frag = 6
    frag = w[:, :, k_frag].copy()
    frag[: frag.shape[0] // 2 + 3] = False  # the working outline holds one side of the body
    w[:, :, k_frag] = frag
    bodies, box = bodies_on_ct_grid({"L3": w}, ct, F, VS_CT)
    got = bodies["L3"]
    ref = truth[box]
    assert np.array_equal(got.any(axis=(0, 1)), ref.any(axis=(0, 1)))
    for k in np.flatnonzero(ref.any(axis=(0, 1))):
        a, b = got[:, :, k], ref[:, :, k]
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        # the smoothing (one 0.8 mm pixel) spreads the cortex by about a pixel: a 30 x 40 mm body
        # outline one pixel too wide has a Dice of 0.95
        assert dice > 0.93, (k, dice)
    # the canal's CSF stays out, but for its edge pixel next to the posterior cortex, which the
    # one-pixel smoothing lifts above 60 HU (the marrow VOI's extra pixel of erosion takes it off)
    assert not (got & ndi.binary_erosion(canal[box], np.ones((3, 3, 1), bool))).any()
    # nothing beyond the reach of one working voxel (1.6 mm) and the working grid's blocks (a pixel)
    d_mm = ndi.distance_transform_edt(~ref, sampling=VS_CT[:2] + (1e6,))
    assert d_mm[got].max() <= 2.5


def test_marrow_on_ct_grid_keeps_the_margin_in_mm_not_in_working_voxels():
    ct, truth, _ = _vertebra()
    w = _working_outline(truth)
    bodies, box = bodies_on_ct_grid({"L3": w}, ct, F, VS_CT)
    voi = marrow_on_ct_grid(bodies, VS_CT, margin_mm=4.0)["L3"]
    vol_ml = voi.sum() * np.prod(VS_CT) / 1000.0
    # analytic: the ellipse shrunk by 4 mm plus the one pixel (0.8 mm) taken for the cortex's
    # blur, on the four slices whose centres lie more than 4 mm from an endplate
    a, b = SEMI_MM[0] - 4.8, SEMI_MM[1] - 4.8
    expect_ml = np.pi * a * b * 4 * VS_CT[2] / 1000.0
    assert vol_ml == pytest.approx(expect_ml, rel=0.12)  # pixelised ellipse edges
    # every VOI voxel centre is at least 4 mm from the true body's surface in-plane
    d_mm = ndi.distance_transform_edt(truth[box], sampling=VS_CT[:2] + (1e6,))
    assert d_mm[voi].min() >= 4.0
    # the same VOI made on the working grid (before): the margin rounds up to whole 1.6 mm voxels
    # and the cortex pixel is a working voxel, about a quarter smaller
    inner = {"L3": ndi.binary_erosion(w, np.ones((3, 3, 1), bool))}
    old_ml = marrow_voi(inner, (1.6, 1.6, 5.0))["L3"].sum() * 1.6 * 1.6 * 5.0 / 1000.0
    assert old_ml < 0.85 * vol_ml


def test_bodies_on_ct_grid_returns_the_working_bodies_when_the_grids_are_the_same():
    ct, truth, _ = _vertebra()
    bodies, box = bodies_on_ct_grid({"L3": truth}, ct, (1, 1, 1), VS_CT)
    assert np.array_equal(bodies["L3"], truth[box])


def test_bodies_on_ct_grid_stop_at_the_front_of_the_spinal_canal():
    ct, truth, canal = _vertebra()
    w = _working_outline(truth)
    # a working outline that also holds the pedicles' roots beside the canal (the opening of the
    # filled bone keeps them on real CTs)
    xw = (np.arange(w.shape[0]) * F[0] + 0.5 * (F[0] - 1) - 50) * VS_CT[0]
    yw = (np.arange(w.shape[1]) * F[1] + 0.5 * (F[1] - 1) - 50) * VS_CT[1]
    Xw, Yw = np.meshgrid(xw, yw, indexing="ij")
    roots = (np.abs(Xw) > 7.0) & (np.abs(Xw) < 13.0) & (Yw > -24.0) & (Yw < -14.0)
    w[:, :, K_BODY[0]:K_BODY[1] + 1] |= roots[:, :, None]
    bodies, box = bodies_on_ct_grid({"L3": w}, ct, F, VS_CT)
    got = bodies["L3"]
    front_j = np.argwhere(canal[box])[:, 1].max()  # the canal's anterior edge (j grows anteriorly)
    # the roots reach 10 pixels behind it; the cut lies at most two pixels behind it (the
    # smoothing lifts the canal's edge pixels next to the cortex above the CSF threshold)
    assert got.any() and np.argwhere(got)[:, 1].min() >= front_j - 2
    ref = truth[box]
    assert (got & ref).sum() / ref.sum() > 0.95  # the body itself is kept


def _coarse_vertebra(lamina=True):
    """CT (HU) at 4 mm of a body (270 HU) with a partial-volumed canal (120 HU) and a
    lamina (350 HU) behind it, and an outline that took in all three (ICRP-110 AF at 4 mm);
    RAS order (j grows anteriorly). Returns the CT, the outline and the canal's anterior j."""
    vs = (4.0, 4.0, 5.0)
    sm = np.full((20, 30, 3), -80.0, np.float32)
    sm[6:14, 14:22] = 270.0  # the body: 32 mm wide, j 14-21 (32 mm deep)
    sm[8:12, 11:14] = 120.0  # the canal behind it, j 11-13, partial volume with the bone around
    if lamina:
        sm[8:12, 9:11] = 350.0  # the laminae, j 9-10
    outline = np.zeros(sm.shape, bool)
    outline[6:14, 9:22] = True  # body, canal and arch together
    return sm, outline, vs, 13


def test_the_canal_front_is_read_on_the_midline_where_the_canal_is_no_hole_below_csf():
    from pipeline.segment.native_spine import _canal_front_from_profile, _canal_front_j

    sm, outline, vs, canal_front = _coarse_vertebra()
    assert _canal_front_j(outline, sm, vs, 150.0, 60.0) is None  # no hole below 60 HU
    assert _canal_front_from_profile(outline, sm, vs) == canal_front
    bodies, box = bodies_on_ct_grid({"L3": outline}, sm, (1, 1, 1), vs)
    kept = np.argwhere(bodies["L3"])[:, 1] + box[1].start
    assert kept.min() == canal_front + 1 and kept.max() == 21  # the body alone, all of it


def test_a_dip_without_bone_behind_it_is_not_taken_for_the_canal():
    from pipeline.segment.native_spine import _canal_front_from_profile

    sm, outline, vs, _ = _coarse_vertebra(lamina=False)
    assert _canal_front_from_profile(outline, sm, vs) is None


def test_a_body_without_a_canal_hole_takes_the_canal_depth_of_its_neighbour():
    """Two bodies at 4 mm. Behind L4 the canal is a hole below the CSF threshold (10 HU, closed by
    the pedicles and the laminae). L3 is blurred: cortex (420 HU) in front, a darker trabecular
    core (250 HU), the posterior cortex, and a canal at 120 HU (no hole); its outline took in
    canal and arch. The midline profile's first dip is L3's core, with the posterior cortex behind
    it for a lamina (the GE CT rebinned from 4.4 to 2.2 mm: L2 and L3 cut 18 mm behind their front,
    marrow VOIs 1-1.5 mL); L3 takes L4's canal depth instead."""
    from pipeline.segment.native_spine import _canal_front_from_profile, _canal_fronts

    vs = (4.0, 4.0, 5.0)
    sm = np.full((20, 30, 6), -80.0, np.float32)
    sm[6:14, 9:11] = 350.0  # laminae, j 9-10
    sm[6:8, 11:14] = sm[12:14, 11:14] = 350.0  # pedicles beside the canal
    sm[8:12, 11:14, :3] = 10.0  # L4: CSF, a hole of the bone
    sm[6:14, 14:22, :3] = 270.0  # L4 body, j 14-21
    sm[8:12, 11:14, 3:] = 120.0  # L3: partial-volumed canal
    sm[6:14, 19:22, 3:] = 420.0  # L3 anterior cortex
    sm[6:14, 15:19, 3:] = 250.0  # L3 trabecular core
    sm[6:14, 14, 3:] = 420.0  # L3 posterior cortex
    l4 = np.zeros(sm.shape, bool)
    l4[6:14, 14:22, :3] = True
    l3 = np.zeros(sm.shape, bool)
    l3[6:14, 9:22, 3:] = True  # body, canal and arch
    assert _canal_front_from_profile(l3, sm, vs) == 18  # the core taken for the canal
    assert _canal_fronts({"L4": l4, "L3": l3}, sm, vs, 150.0, 60.0) == {"L4": 13, "L3": 13}
    bodies, box = bodies_on_ct_grid({"L4": l4, "L3": l3}, sm, (1, 1, 1), vs)
    kept = np.argwhere(bodies["L3"])[:, 1] + box[1].start
    assert kept.min() == 14 and kept.max() == 21  # the whole body, core and cortices


def test_an_outline_that_is_mostly_arch_is_drawn_again_as_the_body_in_front_of_the_canal():
    # the outline holds the arch, the canal and only the back fifth of the body (an eroded piece of
    # the arch stood for a body broken at the bone threshold); trabecular bone at 160 HU, noisy
    from pipeline.segment.native_spine import _body_in_front_of_canal

    ct, truth, canal = _vertebra(noise_hu=30.0)
    ct[truth & (ct < 600.0)] -= 40.0  # 200 -> 160 HU spongiosa (the ICRP-110 male's)
    y = (np.arange(ct.shape[1]) - 50) * VS_CT[1]
    back_of_body = truth & (y[None, :, None] < -0.6 * SEMI_MM[1])
    arch_and_canal = np.zeros_like(truth)
    for k in range(K_BODY[0], K_BODY[1] + 1):
        ring = ndi.binary_fill_holes(ct[:, :, k] > 400.0) & (y[None, :] < -SEMI_MM[1] + 1.0)
        arch_and_canal[:, :, k] = ring | canal[:, :, k]
    outline = back_of_body | arch_and_canal
    sm = ndi.gaussian_filter(ct, sigma=(1.0, 1.0, 0.0))
    front = int(np.argwhere(canal)[:, 1].max())  # the canal's anterior edge (j grows anteriorly)
    got = _body_in_front_of_canal(outline, sm, VS_CT, front)
    assert (got & truth).sum() / truth.sum() > 0.85  # the body, drawn again
    assert (got & ~truth).sum() / got.sum() < 0.1
    assert np.argwhere(got)[:, 1].min() > front  # nothing of the canal, nor behind it
