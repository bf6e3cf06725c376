"""Atlas registration and the CT-based organ refinement on synthetic torsos with a known answer.

The synthetic torso: an elliptic body of soft tissue (40 HU) in air, a fat layer, lungs
(-850 HU) in the upper part, a spine (bone, 400 HU) and two "kidneys" (30 HU) in fat.
The atlas is the same torso moved and stretched by a known amount, so the organs it
carries must land on the target's; tolerances are a voxel or two of the 4 mm working grid.
"""

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.image import Image, affine_from_geometry
from pipeline.segment import labels as L
from pipeline.segment.atlas import (ATLAS_VERTEBRAE, AtlasOptions, AtlasSubject, register_subject, subject_levels_z,
                                    z_map_from_levels, z_offset_from_profiles)
from pipeline.segment.atlas_carry import organ_priors
from pipeline.segment.atlas_organs import atlas_organs, carry_all, register_all
from pipeline.segment.atlas_refine import (drop_other_hot_basins, grow_partial_volume, grow_with_uptake,
                                           intensity_model, refine_organs, uptake_veto)


def torso(shape=(60, 44, 70), vs=(5.0, 5.0, 5.0), shift_mm=(0.0, 0.0, 0.0), scale=1.0, noise=0.0, seed=0,
          kidney_dz_mm=0.0, vertebrae=False):
    """(ct Image, labels Image) of a synthetic torso; everything moved by ``shift_mm`` and scaled by
    ``scale``; the kidneys (CT and labels) moved by ``kidney_dz_mm`` more along z. ``vertebrae``:
    the spine's labels are L4, L3, L2 (atlas ids) in three 25 mm bands from 60 mm below the centre."""
    vs = np.asarray(vs)
    c = (np.array(shape) - 1) / 2.0 * vs
    g = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs)], indexing="ij")
    x, y, z = (g[i] - c[i] - shift_mm[i] for i in range(3))
    x, y, z = x / scale, y / scale, z / scale
    ct = np.full(shape, -1000.0, np.float32)
    lab = np.zeros(shape, np.uint8)
    body = (x / 130.0) ** 2 + (y / 95.0) ** 2 < 1.0
    ct[body] = -100.0  # fat
    inner = (x / 115.0) ** 2 + (y / 80.0) ** 2 < 1.0
    ct[inner] = 40.0
    lab[body] = L.BODY
    lungs = inner & (z > 40.0) & (np.abs(x) > 25.0) & ((np.abs(x) - 65.0) ** 2 / 40.0 ** 2 + y ** 2 / 55.0 ** 2 < 1)
    ct[lungs] = -850.0
    fat_pad = inner & (z < 30.0) & (z > -90.0) & (np.abs(x) > 25.0) & (np.abs(x) < 100.0) & (y < -5.0)
    ct[fat_pad] = -100.0
    spine = ((x / 18.0) ** 2 + ((y + 45.0) / 18.0) ** 2 < 1.0)
    ct[spine & body] = 400.0
    if vertebrae:
        for lo, lid in ((-60.0, ATLAS_VERTEBRAE["L4"]), (-30.0, ATLAS_VERTEBRAE["L3"]), (0.0, ATLAS_VERTEBRAE["L2"])):
            lab[spine & body & (z >= lo) & (z < lo + 25.0)] = lid
    for side, lid in ((1.0, L.KIDNEY_LEFT), (-1.0, L.KIDNEY_RIGHT)):
        k = ((x - side * 62.0) / 28.0) ** 2 + ((y + 40.0) / 22.0) ** 2 + ((z + 30.0 - kidney_dz_mm) / 50.0) ** 2 < 1.0
        ct[k] = 30.0
        lab[k] = lid
    liver = inner & ~lungs & (x < -10.0) & (z > -20.0) & (z < 40.0) & (y > -30.0)
    ct[liver] = 60.0
    lab[liver] = L.LIVER
    spleen = ((x - 80.0) / 25.0) ** 2 + ((y + 10.0) / 30.0) ** 2 + ((z - 15.0) / 35.0) ** 2 < 1.0
    ct[spleen & ~lungs] = 50.0
    lab[spleen & ~lungs] = L.SPLEEN
    if noise:
        ct = ct + np.random.default_rng(seed).normal(0, noise, shape).astype(np.float32)
    aff = affine_from_geometry((0.0, 0.0, 0.0), np.eye(3), vs)
    return Image(ct, aff, "HU"), Image(lab, aff, "label")


def dice(a, b):
    return 2.0 * np.sum(a & b) / max(1, a.sum() + b.sum())


def test_profile_match_finds_the_superior_inferior_shift_of_a_cropped_field_of_view():
    ct, _ = torso()
    full = sitk.Cast(sitk.GetImageFromArray(np.transpose(np.asarray(ct.array), (2, 1, 0))), sitk.sitkFloat32)
    full.SetSpacing((5.0, 5.0, 5.0))
    crop = full[:, :, 20:55]  # a shorter field of view, 100 mm above the atlas's first slice
    dz, _ = z_offset_from_profiles(crop, full, 300.0)
    # crop's slice 0 sits at z = 100 mm in both: the shift that maps the crop onto the atlas is 0
    assert abs(dz) <= 5.0
    moved = sitk.Image(crop)
    moved.SetOrigin((0.0, 0.0, crop.GetOrigin()[2] - 60.0))
    dz, _ = z_offset_from_profiles(moved, full, 300.0)
    assert abs(dz - 60.0) <= 5.0


def test_intensity_model_ignores_fat_and_gas_in_a_misplaced_atlas_organ():
    rng = np.random.default_rng(1)
    organ = rng.normal(30.0, 10.0, 3000)
    fat = rng.normal(-100.0, 10.0, 2000)  # 40 % of the training voxels are fat
    gas = np.full(200, -900.0)
    mu, sd = intensity_model(np.concatenate([organ, fat, gas]), min_sd_hu=5.0)
    assert abs(mu - 30.0) < 3.0  # a median of all would be about -5 HU
    assert 7.0 < sd < 14.0


def test_refinement_moves_a_shifted_prior_onto_the_organ_the_ct_shows():
    ct, lab = torso(vs=(3.0, 3.0, 3.0), shape=(96, 72, 110), noise=15.0)
    truth = np.asarray(lab.array) == L.KIDNEY_LEFT
    from scipy import ndimage as ndi

    prior = ndi.shift(truth.astype(np.float32), (3.0, 0.0, 2.0), order=1)  # 9 mm and 6 mm off
    prior = np.clip(ndi.gaussian_filter(prior, 0.7), 0, 1) ** 0.6
    masks, models = refine_organs(np.asarray(ct.array), ct.voxel_size_mm, {"kidney_left": prior})
    assert dice(prior > 0.5, truth) < 0.85
    assert dice(masks["kidney_left"], truth) > 0.9
    assert abs(models["kidney_left"]["median_hu"] - 30.0) < 6.0
    shift = np.array(models["kidney_left"]["shift_mm"])
    assert np.allclose(shift, (-9.0, 0.0, -6.0), atol=3.5)


def test_refinement_leaves_the_fat_of_an_enclosed_renal_sinus_out_of_the_kidney():
    from scipy import ndimage as ndi

    ct, lab = torso(vs=(3.0, 3.0, 3.0), shape=(96, 72, 110), noise=15.0)
    a = np.asarray(ct.array).copy()
    truth = np.asarray(lab.array) == L.KIDNEY_LEFT
    # a sinus of fat (-100 HU) in the middle of the kidney, enclosed by 2 voxels (6 mm) of parenchyma
    sinus = ndi.binary_erosion(truth, iterations=3)
    assert 0.1 < sinus.sum() / truth.sum() < 0.5
    a[sinus] = -100.0 + np.random.default_rng(5).normal(0, 15.0, sinus.sum())
    prior = np.clip(ndi.gaussian_filter(truth.astype(np.float32), 0.7), 0, 1) ** 0.6
    masks, _ = refine_organs(a, ct.voxel_size_mm, {"kidney_left": prior})
    m = masks["kidney_left"]
    core = ndi.binary_erosion(sinus, iterations=1)  # away from the sinus wall's partial volume
    assert m[core].mean() < 0.05  # before: filled as a hole, all of it kidney
    assert m[truth & ~sinus].mean() > 0.85


def _hot_kidney_with_cold_muscle(seed=3):
    """CT (HU), kidney truth and a 12 mm FWHM SPECT of a kidney that touches a muscle block of its own CT number."""
    from scipy import ndimage as ndi

    ct, lab = torso(vs=(3.0, 3.0, 3.0), shape=(96, 72, 110), noise=15.0, seed=seed)
    a = np.asarray(ct.array).copy()
    truth = np.asarray(lab.array) == L.KIDNEY_LEFT
    # a muscle block lateral to the kidney, same CT number, touching it
    i = np.flatnonzero(truth.any(axis=(1, 2)))
    muscle = np.zeros_like(truth)
    muscle[i[-1] + 1:i[-1] + 9, :, :] = ndi.binary_dilation(truth, iterations=2).any(axis=0)[None]
    muscle &= ~truth
    a[muscle] = 30.0 + np.random.default_rng(seed).normal(0, 15.0, muscle.sum())
    activity = np.where(truth, 10.0, 0.3).astype(np.float32)
    spect = ndi.gaussian_filter(activity, 12.0 / 2.3548 / 3.0)
    return a, truth, muscle, spect


def test_uptake_veto_is_low_far_from_a_hot_organ_and_unused_for_a_cold_one():
    _, truth, muscle, spect = _hot_kidney_with_cold_muscle()
    veto, rec = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0))
    assert rec["used"] and rec["uptake_ratio"] > 5.0
    assert np.median(veto[truth]) > 0.9  # the organ itself is kept
    from scipy import ndimage as ndi

    far = ndi.distance_transform_edt(~truth, sampling=3.0) > 15.0
    assert veto[far].max() < 0.2  # 15 mm outside a 12 mm FWHM image of the organ
    flat, rec = uptake_veto(np.ones_like(spect), truth.astype(np.float32), (3.0, 3.0, 3.0))
    assert flat is None and not rec["used"]  # not hot: the SPECT says nothing about where it is


def test_uptake_veto_at_an_early_session_contrast_still_cuts_the_muscle_beside_the_organ():
    # early session: organ 2.5 against 1.0 in the rest of the body (liver of a peptide at 1-4 h)
    from scipy import ndimage as ndi

    _, truth, muscle, _ = _hot_kidney_with_cold_muscle()
    spect = ndi.gaussian_filter(np.where(truth, 2.5, 1.0).astype(np.float32), 12.0 / 2.3548 / 3.0)
    dist = ndi.distance_transform_edt(~truth, sampling=3.0)
    beyond = muscle & (dist > 7.0)  # muscle more than 7 mm (0.6 FWHM) from the organ
    veto, rec = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0), above_surroundings=True)
    assert rec["used"] and rec["baseline"] > 0.9  # measured against the surroundings' uptake
    assert np.median(veto[truth]) > 0.9
    assert np.median(veto[beyond]) < 0.2
    # as a fraction of the organ's own uptake (baseline 0) that muscle sat at the veto's midpoint
    # (0.4 x 2.5 = 1.0 is the body's own level): half its prior kept, and no veto against the growth
    absolute, _ = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0))
    assert np.median(absolute[beyond]) > 0.45


def test_the_growth_veto_of_a_kidney_only_twice_its_surroundings_cuts_the_muscle_beside_it():
    # a radiolabelled antibody: kidney 3.2 against 1.5 in the body (it only sees blood). The veto that
    # decides where the kidney may grow by its uptake measures above the surroundings; from zero,
    # the muscle beside it (the body's own level) sat above the growth's cut
    from dataclasses import replace

    from scipy import ndimage as ndi

    from pipeline.segment.atlas_organs import _own_uptake_veto
    from pipeline.segment.fusion_options import FusionOptions

    ct, truth, muscle, _ = _hot_kidney_with_cold_muscle()
    activity = np.where(truth, 3.2, np.where(ct > -400.0, 1.5, 0.0)).astype(np.float32)
    spect = ndi.gaussian_filter(activity, 12.0 / 2.3548 / 3.0)
    beyond = muscle & (ndi.distance_transform_edt(~truth, sampling=3.0) > 7.0)
    organs = {"kidney_left": {"intensity_model": {"median_hu": 30.0, "sd_hu": 15.0}}}
    args = ("kidney_left", {"kidney_left": truth}, organs, spect, None, (3.0, 3.0, 3.0))
    _, grow = _own_uptake_veto(*args)
    assert np.median(grow[truth]) > 0.9 and np.mean(grow[beyond] >= 0.7) < 0.01  # growth needs a veto of 0.7
    _, from_zero = _own_uptake_veto(*args, fusion=replace(FusionOptions(), grow_above_surroundings=False))
    assert np.mean(from_zero[beyond] >= 0.7) > 0.05  # measured 0.097 (above the surroundings: 0)


def _organ_with_hot_top(share_percentile: float, rest: float):
    """The test organ with hot metastases (+18 on its 2) in its slices above ``share_percentile``
    of its voxels' slice index, in a body at ``rest``, blurred 12 mm: (truth, spect, normal part
    more than 12 mm from the metastases)."""
    from scipy import ndimage as ndi

    _, truth, _, _ = _hot_kidney_with_cold_muscle()
    idx = np.argwhere(truth)
    hot = np.zeros_like(truth)
    hot[tuple(idx[idx[:, 2] >= np.percentile(idx[:, 2], share_percentile)].T)] = True
    act = np.where(truth, 2.0, rest) + np.where(hot, 18.0, 0.0)
    spect = ndi.gaussian_filter(act.astype(np.float32), 12.0 / 2.3548 / 3.0)
    normal = ndi.binary_erosion(truth & ~ndi.binary_dilation(hot, iterations=4), iterations=1)
    return truth, spect, normal


def test_uptake_veto_from_the_median_keeps_an_organ_whose_quarter_is_hot_metastases():
    # a liver with hot metastases (10 x its uptake) in a fifth of it: its 75th percentile is the
    # metastases' level, so 0.4 of it vetoes the normal liver; the median is the liver's own
    truth, spect, normal = _organ_with_hot_top(80, rest=0.3)
    at75, _ = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0), above_surroundings=True)
    at50, _ = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0), above_surroundings=True,
                          percentile=50.0)
    assert np.median(at75[normal]) < 0.5
    assert np.median(at50[normal]) > 0.9


def test_uptake_veto_from_the_bulk_level_keeps_an_organ_that_is_nearly_half_hot_metastases():
    # metastases at 10 x the liver in 48 % of it, an early session's warm body: the median is
    # raised to their spill and vetoes normal liver; the bulk level (median without the hot
    # values) does not. (With 58 % it fails too: the parenchyma must be most of the organ.)
    truth, spect, normal = _organ_with_hot_top(55, rest=1.0)
    at50, _ = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0), above_surroundings=True,
                          percentile=50.0, min_contrast=1.5)
    bulk, rec = uptake_veto(spect, truth.astype(np.float32), (3.0, 3.0, 3.0), above_surroundings=True,
                            percentile="bulk", min_contrast=1.5)
    assert rec["used"]
    assert np.median(at50[normal]) < 0.5
    assert np.median(bulk[normal]) > 0.9


def test_uptake_veto_leaves_the_part_of_an_organ_outside_the_spect_field_of_view_to_the_ct():
    _, truth, _, spect = _hot_kidney_with_cold_muscle()
    ks = np.flatnonzero(truth.any(axis=(0, 1)))
    fov = np.zeros(truth.shape, bool)
    fov[:, :, : (ks[0] + ks[-1]) // 2] = True  # the SPECT's axial field of view ends mid-organ
    cut = np.where(fov, spect, 0.0)  # no counts beyond it
    blind, _ = uptake_veto(cut, truth.astype(np.float32), (3.0, 3.0, 3.0))
    assert np.median(blind[truth & ~fov]) < 0.1  # without the field of view: half the organ vetoed
    veto, rec = uptake_veto(cut, truth.astype(np.float32), (3.0, 3.0, 3.0), valid=fov)
    assert rec["used"] and 0.3 < rec["in_spect_field_of_view"] < 0.7
    assert np.all(veto[~fov] == 1.0) and np.median(veto[truth & fov]) > 0.9


def test_spect_on_the_working_grid_marks_its_field_of_view():
    from pipeline.image import affine_from_geometry
    from pipeline.segment.builtin import _spect_on_working_grid
    from pipeline.segment.orient import to_ras_order

    ct = Image(np.zeros((20, 20, 30), np.float32), affine_from_geometry((0.0, 0.0, 0.0), np.eye(3), (2.0,) * 3), "HU")
    spect = Image(np.full((12, 12, 8), 5.0, np.float32), affine_from_geometry((0.0, 0.0, 0.0), np.eye(3), (4.0,) * 3),
                  "Bq/mL")  # z 0..28 mm of the CT's 0..58 mm
    _, tr, _ = to_ras_order(ct)
    s, fov = _spect_on_working_grid(ct, spect, tr, (1, 1, 1), ct.shape)
    z_in = np.flatnonzero(fov.all(axis=(0, 1)))
    assert z_in[0] == 0 and z_in[-1] == 14 and not fov[:, :, 15:].any()  # z 28 mm is the last SPECT centre
    assert np.all(s[fov] == 5.0) and np.all(s[~fov] == 0.0)


def test_spect_on_the_working_grid_is_the_block_mean_of_the_spect_on_the_ct_grid():
    # a flipped, anisotropic CT grid and 2 x 2 blocks: the SPECT sampled at each block's centre
    # equals the mean of the SPECT resampled onto the CT's own voxels (the multilinear
    # interpolant averages to its centre value over a symmetric block), to rounding where a
    # block lies within one SPECT voxel; where it straddles two, the interpolant's kink makes a
    # difference of the slope change times a quarter of the block (here up to 1.5 % of the peak of
    # a 23 mm FWHM blob, which is not resolved any better by either sampling)
    from nibabel.orientations import apply_orientation

    from pipeline.grid import resample_to
    from pipeline.image import affine_from_geometry
    from pipeline.segment.builtin import _spect_on_working_grid
    from pipeline.segment.orient import block_mean, ras_order_affine, to_ras_order

    # 41 columns: the last, partial block is dropped; the SPECT (voxel centres z -2..31.6 mm) ends inside the
    # CT (0..35 mm)
    ct = Image(np.zeros((41, 36, 15), np.float32),
               affine_from_geometry((60.0, 50.0, 0.0), np.diag([-1.0, -1.0, 1.0]), (1.0, 1.0, 2.5)), "HU")
    z, y, x = np.meshgrid(*(np.arange(n, dtype=float) for n in (8, 16, 16)), indexing="ij")
    blob = np.exp(-((x - 7.0) ** 2 + (y - 6.0) ** 2 + (z - 3.0) ** 2) / 8.0).transpose(2, 1, 0)
    spect = Image((100.0 * blob).astype(np.float32),
                  affine_from_geometry((0.0, 0.0, -2.0), np.eye(3), (4.8, 4.8, 4.8)), "Bq/mL")
    _, tr, _ = to_ras_order(ct)
    f = (2, 2, 1)
    shape = tuple(n // g for n, g in zip(ct.shape, f))
    got, fov = _spect_on_working_grid(ct, spect, tr, f, shape)
    on_ct = apply_orientation(resample_to(spect, ct, "linear", default_value=np.nan).array, tr)
    want = block_mean(on_ct, f)[: shape[0], : shape[1], : shape[2]]
    assert got.shape == fov.shape == (20, 18, 15)
    z_mm = (ras_order_affine(ct, tr, f) @ np.c_[np.zeros((15, 2)), np.arange(15), np.ones(15)].T)[2]
    # a block counts where its centre lies in the SPECT's voxels (to the outer face of the last, 34 mm)
    assert np.array_equal(fov.all(axis=(0, 1)), z_mm <= -2.0 + 7.5 * 4.8)
    assert fov.any(axis=(0, 1)).sum() < 15 and np.all(got[~fov] == 0.0)
    both = fov & np.isfinite(want)
    diff = np.abs(got[both] - want[both])
    assert np.max(diff) < 0.02 * 100.0 and np.median(diff) < 1e-3 * 100.0


def test_spect_veto_keeps_a_hot_kidney_out_of_a_touching_muscle_of_the_same_ct_number():
    from scipy import ndimage as ndi

    a, truth, muscle, spect = _hot_kidney_with_cold_muscle()
    # a prior that a registration of another person left 12 mm towards the muscle, widened
    prior = ndi.shift(truth.astype(np.float32), (4.0, 0.0, 0.0), order=1)
    prior = np.clip(ndi.gaussian_filter(prior, 1.0), 0, 1) ** 0.6
    plain, _ = refine_organs(a, (3.0, 3.0, 3.0), {"kidney_left": prior})
    veto, _ = uptake_veto(spect, prior, (3.0, 3.0, 3.0))
    helped, _ = refine_organs(a, (3.0, 3.0, 3.0), {"kidney_left": prior}, veto={"kidney_left": veto})
    leak_plain = (plain["kidney_left"] & muscle).sum()
    leak_helped = (helped["kidney_left"] & muscle).sum()
    assert leak_plain > 50  # the CT alone cannot tell the kidney from the muscle
    assert leak_helped < 0.3 * leak_plain
    assert dice(helped["kidney_left"], truth) > dice(plain["kidney_left"], truth) + 0.03


def test_partial_volume_rim_restores_an_organ_against_fat_but_not_into_brighter_muscle():
    from scipy import ndimage as ndi

    # a 30 HU ball in fat (-100 HU) touching a 55 HU muscle slab, imaged at 3 mm with blur
    vs = 3.0
    g = np.mgrid[:40, :40, :40].astype(float)
    ball = ((g - 20.0) ** 2).sum(axis=0) <= 10.0 ** 2
    muscle = g[0] >= 31
    fine = np.where(ball, 30.0, np.where(muscle, 55.0, -100.0))
    ct = ndi.gaussian_filter(fine, 0.6)  # CT blur of about 4 mm FWHM
    eroded = ndi.binary_erosion(ball)  # what the voxelwise MAP leaves: one voxel short all round
    grown = grow_partial_volume(eroded, ct, (vs,) * 3, organ_hu=30.0)
    assert dice(eroded, ball) < 0.9
    assert dice(grown, ball) > 0.95
    assert not (grown & muscle).any()  # the brighter neighbour is not a rim
    blocked = np.zeros_like(ball)
    blocked[:, :, 25:] = True
    assert not (grow_partial_volume(eroded, ct, (vs,) * 3, 30.0, blocked) & ~eroded)[:, :, 25:].any()


def test_partial_volume_rim_of_a_blurred_ct_is_grown_layer_by_layer_to_the_organs_edge():
    """A 45 HU ball (a spleen) in fat at 2 mm voxels, blurred as a 4.4 mm acquisition rebinned to
    2 mm (Gaussian SD 2 voxels): the MAP leaves it two voxels short all round. One layer of rim
    (``rim_mm`` of one voxel) leaves it short; layers up to 4 mm reach the half-way edge and stop
    there: the fat beyond it is below the midpoint."""
    from scipy import ndimage as ndi

    vs = 2.0
    g = np.mgrid[:40, :40, :40].astype(float)
    ball = ((g - 20.0) ** 2).sum(axis=0) <= 12.0 ** 2
    ct = ndi.gaussian_filter(np.where(ball, 45.0, -100.0), 2.0)
    core = ndi.binary_erosion(ball, iterations=2)
    one = grow_partial_volume(core, ct, (vs,) * 3, organ_hu=45.0, rim_mm=2.0)
    layers = grow_partial_volume(core, ct, (vs,) * 3, organ_hu=45.0, rim_mm=4.0)
    assert dice(one, ball) < 0.90  # measured 0.89 (the core alone 0.77)
    assert dice(layers, ball) > 0.94  # measured 0.95; the smoothing rounds the edge a little inward
    far = ~ndi.binary_dilation(ball)
    assert not (layers & far).any()  # nothing beyond one voxel outside the true edge
    wider = grow_partial_volume(core, ct, (vs,) * 3, organ_hu=45.0, rim_mm=8.0)
    assert np.array_equal(wider, layers)  # it stops at the edge, however far it may reach


def test_partial_volume_rim_of_a_dome_against_the_lung_is_measured_against_lung():
    """A 60 HU organ whose top lies against -800 HU lung (a liver's dome): its rim voxels there
    are half organ, half lung (about -370 HU), far below the fat midpoint (-20 HU). With the
    lungs given they are added; without, not. Nothing of the lung itself is added."""
    from scipy import ndimage as ndi

    vs = 3.0
    g = np.mgrid[:40, :40, :40].astype(float)
    organ = (((g - 20.0) ** 2).sum(axis=0) <= 12.0 ** 2) & (g[2] <= 24)
    lung = g[2] >= 25
    fine = np.where(organ, 60.0, np.where(lung, -800.0, -100.0))
    ct = ndi.gaussian_filter(fine, 0.6)
    eroded = ndi.binary_erosion(organ)
    top = np.zeros_like(organ)
    top[:, :, 24] = organ[:, :, 24]  # the dome's surface layer against the lung
    without = grow_partial_volume(eroded, ct, (vs,) * 3, organ_hu=60.0)
    with_lungs = grow_partial_volume(eroded, ct, (vs,) * 3, organ_hu=60.0, lungs=ct < -500)
    assert (without & top).sum() < 0.5 * top.sum()
    assert (with_lungs & top).sum() > 0.8 * top.sum()
    assert not (with_lungs & lung).any()
    assert dice(with_lungs, organ) > dice(without, organ)
    # fat next to the lung is not a rim, though brighter than lung's midpoint: a mask that already
    # reaches 2 voxels into a fat pocket beside the dome gains none of the fat around it
    side = (g[0] < 20) & (g[2] <= 24)
    fat_ct = ndi.gaussian_filter(np.where(side, 60.0, np.where(lung, -800.0, -100.0)), 0.6)
    reach = (g[0] < 22) & (g[2] <= 24)
    grown = grow_partial_volume(reach, fat_ct, (vs,) * 3, organ_hu=60.0, lungs=fat_ct < -500)
    assert not (grown & ~reach).any()


def test_uptake_growth_adds_the_missed_lobe_of_a_hot_organ_but_not_a_cold_neighbour_of_its_ct_number():
    from scipy import ndimage as ndi

    vs = 3.0
    g = np.mgrid[:70, :50, :40].astype(float)
    slab = (np.abs(g[1] - 25) < 8) & (np.abs(g[2] - 20) < 7)
    organ = (((g[0] - 25) / 14) ** 2 + ((g[1] - 25) / 12) ** 2 + ((g[2] - 20) / 10) ** 2 <= 1) | (
        (g[0] >= 25) & (g[0] < 48) & slab)  # a body and a lobe
    cold = (g[0] >= 48) & (g[0] < 66) & slab  # the same CT number, touching the lobe's end, no uptake
    rng = np.random.default_rng(4)
    ct = np.where(organ | cold, 60.0, -100.0) + rng.normal(0, 15.0, organ.shape)
    spect = ndi.gaussian_filter(np.where(organ, 2.0, 0.3), 12.0 / 2.3548 / vs)
    known = organ & (g[0] < 36)  # the atlas left out the lobe
    veto, _ = uptake_veto(spect, known.astype(np.float32), (vs,) * 3)
    grown = grow_with_uptake(known, ct, (vs,) * 3, 60.0, 10.0, veto, max_mm=20.0)
    near_lobe = organ & ~known & (g[0] < 36 + 20.0 / vs)  # within the 20 mm the growth may go
    assert (grown & near_lobe).sum() > 0.6 * near_lobe.sum()  # edge voxels mix with fat in the smoothed CT
    assert not (grown & cold).any()
    assert not (grown & ~organ).sum() > 0.02 * organ.sum()
    assert dice(grown, organ) > dice(known, organ) + 0.05


def _organ_and_node(noise=0.0, node=True, seed=0):
    """Organ (sphere 18 mm, uptake 10) whose mask misses a 12 mm cap, and a node (sphere 10 mm,
    uptake 15) 8 mm beside it; SPECT 12 mm FWHM on a 2 mm grid; the growth's result = the organ
    and the node's side within 20 mm of the mask (what the CT and the uptake alone allow)."""
    from scipy import ndimage as ndi

    vs = 2.0
    g = np.mgrid[:80, :50, :50].astype(float)
    r_org = np.sqrt((g[0] - 25) ** 2 + (g[1] - 25) ** 2 + (g[2] - 25) ** 2) * vs
    r_node = np.sqrt((g[0] - 43) ** 2 + (g[1] - 25) ** 2 + (g[2] - 25) ** 2) * vs
    organ, nd = r_org <= 18.0, (r_node <= 10.0) & node
    act = np.where(organ, 10.0, 0.3)
    act[nd] = 15.0
    spect = ndi.gaussian_filter(act, 12.0 / 2.3548 / vs)
    spect = spect * (1.0 + noise * np.random.default_rng(seed).standard_normal(spect.shape))
    mask = organ & (g[0] > 25 - 12.0 / vs)  # the atlas missed the cap on the far side from the node
    near = ndi.distance_transform_edt(~mask, sampling=vs) <= 20.0
    grown = mask | ((organ | nd) & near)
    return spect, mask, grown, organ, nd, (vs,) * 3


def test_growth_into_another_hot_structure_basin_is_dropped_and_the_organ_own_missed_part_kept():
    spect, mask, grown, organ, node, vs = _organ_and_node()
    assert (grown & node).sum() > 0.3 * node.sum()  # the growth took a good part of the node
    out = drop_other_hot_basins(spect, mask, grown, vs)
    assert not (out & node).any()
    assert np.array_equal(out & organ, grown & organ)  # the missed cap and the rest stay


def test_a_cold_organ_keeps_its_edge_on_a_hot_neighbour_organ_slope():
    # the "node" is now a segmented hot organ (a kidney) and the organ a cold one (liver, uptake 2)
    from scipy import ndimage as ndi

    _, _, _, organ, _, vs = _organ_and_node()
    g = np.mgrid[:80, :50, :50]
    kidney = np.sqrt((g[0] - 40) ** 2 + (g[1] - 25) ** 2 + (g[2] - 25) ** 2) * vs[0] <= 10.0  # touching
    act = np.where(organ, 2.0, 0.3)
    act[kidney] = 10.0
    spect = ndi.gaussian_filter(act, 12.0 / 2.3548 / vs[0])
    mask = organ & (g[0] < 30)  # the atlas missed the liver's side next to the kidney
    grown = organ.copy()
    assert np.array_equal(drop_other_hot_basins(spect, mask, grown, vs, others=kidney), grown)
    assert not np.array_equal(drop_other_hot_basins(spect, mask, grown, vs), grown)  # without knowing the kidney


def test_noise_bumps_in_the_organ_missed_part_do_not_split_it_off():
    spect, mask, grown, organ, _, vs = _organ_and_node(noise=0.05, node=False, seed=3)
    out = drop_other_hot_basins(spect, mask, grown, vs)
    assert np.array_equal(out, grown)


@pytest.fixture(scope="module")
def moved_atlas():
    target_ct, target_lab = torso(noise=10.0, seed=2)
    atlas_ct, atlas_lab = torso(shape=(60, 44, 90), shift_mm=(6.0, -4.0, 45.0), scale=1.06)
    return target_ct, target_lab, AtlasSubject("moved", atlas_ct, atlas_lab, "synthetic")


def test_registration_carries_the_atlas_organs_onto_the_target(moved_atlas):
    target_ct, target_lab, subject = moved_atlas
    tr, info = register_subject(target_ct, subject, AtlasOptions(working_mm=5.0, demons_iterations=30))
    # the profile match: the atlas grid is 100 mm longer (its centre 50 mm higher) and its organs
    # sit 45 mm above that centre, so a target point is 95 mm lower than its atlas twin
    assert abs(info["dz_mm"] - 95.0) <= 15.0
    pri = organ_priors(target_ct, [subject], [tr], AtlasOptions(prior_sigma_mm=0.5))
    lab = np.asarray(target_lab.array)
    for name, lid in (("kidney_left", L.KIDNEY_LEFT), ("kidney_right", L.KIDNEY_RIGHT), ("liver", L.LIVER)):
        assert dice(pri[name] > 0.5, lab == lid) > 0.8, name


def test_registering_twice_gives_the_same_transform_to_the_bit(moved_atlas):
    # the affine's mutual information runs single-threaded (multi-threaded, its joint histogram is
    # summed in whatever order the threads finish: the TotalSegmentator CT's left kidney came out
    # 5248 or 5622 voxels from run to run); ITK's default thread count is restored after it
    import SimpleITK as sitk

    target_ct, _, subject = moved_atlas
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    opts = AtlasOptions(working_mm=5.0, demons_iterations=10)
    (tr1, info1), (tr2, info2) = (register_subject(target_ct, subject, opts) for _ in range(2))
    assert info1["affine_metric"] == info2["affine_metric"]
    assert tr1.GetNthTransform(0).GetParameters() == tr2.GetNthTransform(0).GetParameters()
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads


def test_subjects_registered_side_by_side_match_those_registered_one_by_one(moved_atlas):
    target_ct, _, subject = moved_atlas
    other_ct, other_lab = torso(shape=(60, 44, 90), shift_mm=(-4.0, 3.0, 40.0), scale=0.95)
    other = AtlasSubject("other", other_ct, other_lab, "synthetic")
    opts = AtlasOptions(working_mm=5.0, demons_iterations=10)
    transforms, infos = register_all(target_ct, [subject, other], opts)
    for s, tr, info in zip((subject, other), transforms, infos):
        tr1, info1 = register_subject(target_ct, s, opts)
        assert info["subject"] == s.name and info["affine_metric"] == info1["affine_metric"]
        assert tr.GetNthTransform(0).GetParameters() == tr1.GetNthTransform(0).GetParameters()


def test_z_map_from_levels_is_the_median_offset_of_the_l2_l4_centres():
    atlas_ct, atlas_lab = torso(shape=(60, 44, 90), shift_mm=(0.0, 0.0, 45.0), scale=1.1, vertebrae=True)
    subject = AtlasSubject("a", atlas_ct, atlas_lab)
    za = subject_levels_z(subject)
    # the atlas bands: centres at 45 + 1.1 * (-47.5, -17.5, 12.5) mm from the grid centre (222.5 mm)
    for n, zc in (("L4", -47.5), ("L3", -17.5), ("L2", 12.5)):
        assert za[n] == pytest.approx(222.5 + 45.0 + 1.1 * zc, abs=3.0), n  # 5 mm voxels: half a voxel and more
    zm = z_map_from_levels({"L4": 100.0, "L3": 130.0, "L2": 160.0}, subject)
    assert zm["per_level_offset_mm"]["L3"] == pytest.approx(za["L3"] - 130.0, abs=0.01)
    assert zm["offset_mm"] == pytest.approx(za["L3"] - 130.0, abs=0.01)  # the atlas is taller: L3's is the median
    # one misplaced body (L2 40 mm too high) moves the offset only to L4's (3 mm away), not by 40 / 3 mm
    moved = z_map_from_levels({"L4": 100.0, "L3": 130.0, "L2": 200.0}, subject)["offset_mm"]
    assert moved == pytest.approx(za["L4"] - 100.0, abs=0.01) and abs(moved - zm["offset_mm"]) < 4.0
    assert z_map_from_levels({"L4": 160.0, "L3": 130.0, "L2": 100.0}, subject) is None  # not in order
    # an operator's anchor alone: that level's offset
    assert z_map_from_levels({"L2": 160.0}, subject)["offset_mm"] == pytest.approx(za["L2"] - 160.0, abs=0.01)
    assert z_map_from_levels({"L4": 100.0, "L3": 130.0, "L2": 160.0}, AtlasSubject("b", *torso())) is None


def test_registration_with_the_patient_levels_puts_their_l3_on_the_atlas_l3():
    # target: the torso; atlas: moved 45 mm up and 6 % larger. With the target's L2-L4 the affine
    # maps the target's L3 centre onto the atlas's (exactly: that translation is not optimised),
    # z does not depend on x or y, and the organs still land on the target's
    target_ct, target_lab = torso(noise=10.0, seed=2, vertebrae=True)
    atlas_ct, atlas_lab = torso(shape=(60, 44, 90), shift_mm=(6.0, -4.0, 45.0), scale=1.06, vertebrae=True)
    subject = AtlasSubject("moved", atlas_ct, atlas_lab)
    levels = subject_levels_z(AtlasSubject("target", target_ct, target_lab))
    tr, info = register_subject(target_ct, subject, AtlasOptions(working_mm=5.0, demons_iterations=30), levels)
    za = subject_levels_z(subject)
    affine = tr.GetNthTransform(0)
    for x, y in ((10.0, -20.0), (-60.0, 40.0)):
        assert affine.TransformPoint((x, y, levels["L3"]))[2] == pytest.approx(za["L3"], abs=1.5)
    assert 0.9 <= info["z_map"]["z_scale"] <= 1.2  # optimised about L3; the truth is 1.06
    pri = organ_priors(target_ct, [subject], [tr], AtlasOptions(prior_sigma_mm=0.5))
    lab = np.asarray(target_lab.array)
    for name, lid in (("kidney_left", L.KIDNEY_LEFT), ("kidney_right", L.KIDNEY_RIGHT), ("liver", L.LIVER)):
        assert dice(pri[name] > 0.5, lab == lid) > 0.8, name


def test_histogram_matching_lets_the_demons_step_follow_a_ct_with_other_ct_numbers():
    # the same anatomy (kidneys 10 mm lower) from a scanner whose soft tissue and fat read 30 HU lower
    # (a real CT against the atlas's textbook table: the TotalSegmentator example's liver 45, spleen 32
    # HU). Without matching, the demons force pulls every organ edge towards the atlas's brighter
    # numbers (measured: liver 0.89, spleen 0.91, kidneys 0.83 / 0.81); matched through the fat and
    # soft-tissue peaks 1.00 / 0.99 / 0.92 / 0.92
    atlas_ct, atlas_lab = torso(shape=(60, 44, 90))
    target_ct, target_lab = torso(shape=(60, 44, 70), kidney_dz_mm=10.0, noise=10.0)
    a = np.asarray(target_ct.array).copy()
    a[(a > -300.0) & (a < 200.0)] -= 30.0
    target_ct = target_ct.with_array(a)
    subject = AtlasSubject("s", atlas_ct, atlas_lab)
    lab = np.asarray(target_lab.array)
    got = {}
    for matched in (False, True):
        tr, info = register_subject(target_ct, subject, AtlasOptions(working_mm=5.0, demons_iterations=30,
                                                                     match_histogram=matched))
        pri = organ_priors(target_ct, [subject], [tr], AtlasOptions(prior_sigma_mm=0.5))
        rec = info["ct_number_matching"]
        assert (rec is None) if not matched else (rec["applied"] and rec["patient_peaks_hu"][1] < rec["atlas_peaks_hu"][1] - 20.0)
        got[matched] = {n: dice(pri[n] > 0.5, lab == lid) for n, lid in (
            ("kidney_left", L.KIDNEY_LEFT), ("kidney_right", L.KIDNEY_RIGHT), ("liver", L.LIVER), ("spleen", L.SPLEEN))}
    assert got[True]["liver"] > 0.97 and got[True]["spleen"] > 0.95, got
    assert min(got[True]["kidney_left"], got[True]["kidney_right"]) > 0.88, got
    assert got[False]["liver"] < 0.93, got  # the mismatch this guards against


def test_tissue_peaks_do_not_move_with_the_share_of_fat():
    from pipeline.segment.atlas import tissue_peaks_hu

    rng = np.random.default_rng(1)

    def image(fat_share):
        n = 200_000
        soft = 0.9 - fat_share  # two soft tissues, 2:1, whatever the fat
        tissue = rng.choice([-100.0, 40.0, 60.0, 300.0], n, p=[fat_share, 2.0 * soft / 3.0, soft / 3.0, 0.1])
        return tissue + rng.normal(0.0, 8.0, n)

    lean, fat = tissue_peaks_hu(image(0.15)), tissue_peaks_hu(image(0.45))
    assert abs(lean[0] - fat[0]) <= 5.0 and abs(lean[1] - fat[1]) <= 5.0
    assert abs(lean[0] + 100.0) <= 5.0 and abs(lean[1] - 40.0) <= 5.0
    assert tissue_peaks_hu(np.full(500, 40.0)) is None  # too few voxels: no peaks, no matching


def test_fusion_prefers_the_subject_whose_anatomy_matches(moved_atlas):
    target_ct, target_lab, good = moved_atlas
    # a person whose kidneys lie 35 mm lower (relative to lungs and spine) than the target's
    bad_ct, bad_lab = torso(shape=(60, 44, 90), shift_mm=(0.0, 0.0, 45.0), kidney_dz_mm=-35.0)
    bad = AtlasSubject("bad", bad_ct, bad_lab, "synthetic")
    transforms, regs = register_all(target_ct, [good, bad], AtlasOptions(working_mm=5.0, demons_iterations=30))
    masks, record = atlas_organs(target_ct, [good, bad], carry_all(target_ct, [good, bad], transforms),
                                 registrations=regs)
    assert [r["subject"] for r in record["subjects"]] == ["moved", "bad"]
    kl = record["organs"]["kidney_left"]
    assert kl["mad_hu"]["moved"] < kl["mad_hu"]["bad"]
    assert kl["weights"]["moved"] > 0.5
    lab = np.asarray(target_lab.array)
    assert dice(masks["kidney_left"], lab == L.KIDNEY_LEFT) > 0.8
    owners = sum(m.astype(int) for m in masks.values())
    assert owners.max() <= 1  # no voxel in two organs


def _ball(shape, vs, centre_mm, radius_mm):
    g = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs)], indexing="ij")
    return sum((gi - c) ** 2 for gi, c in zip(g, centre_mm)) <= radius_mm ** 2


def test_prior_tail_lets_the_ct_take_an_organ_larger_than_the_atlas_one_but_not_a_neighbour():
    """A 'liver' (ball of radius 28 mm) with a lobe the atlas person lacks (radius 18 mm, 30 mm
    off its centre), and a 'kidney' of the same CT number touching it, each with its own prior.
    Without the tail the refined liver stays near the atlas outline; with it the liver takes
    its lobe, and the kidney keeps its ground."""
    from scipy import ndimage as ndi

    from pipeline.segment.atlas_organs import prior_with_tail

    vs = (3.0, 3.0, 3.0)
    shape = (60, 60, 60)
    liver = _ball(shape, vs, (80.0, 90.0, 90.0), 28.0) | _ball(shape, vs, (80.0, 60.0, 90.0), 18.0)
    kidney = _ball(shape, vs, (126.0, 90.0, 90.0), 15.0)  # 3 mm from the liver's edge
    rng = np.random.default_rng(0)
    ct = np.where(liver | kidney, 45.0, -100.0) + rng.normal(0.0, 10.0, shape)
    fused = {"liver": ndi.gaussian_filter(_ball(shape, vs, (80.0, 90.0, 90.0), 28.0).astype(np.float32), 1.0),
             "kidney": ndi.gaussian_filter(kidney.astype(np.float32), 1.0)}
    soft = {n: np.clip(ndi.gaussian_filter(p, 0.67), 0, 1) ** 0.6 for n, p in fused.items()}
    plain, _ = refine_organs(ct, vs, soft)
    tailed = dict(soft)
    tailed["liver"] = prior_with_tail(soft["liver"], fused["liver"], fused["kidney"], vs, tail_mm=10.0)
    total = sum(soft.values())
    masks, _ = refine_organs(ct, vs, tailed, other_region=(total > 0.01) & (total < 0.5))
    lobe = liver & ~_ball(shape, vs, (80.0, 90.0, 90.0), 28.0)
    # measured: 52 % of the lobe without the tail, 63 % with it; nothing outside the liver either way
    assert masks["liver"][lobe].mean() > plain["liver"][lobe].mean() + 0.08
    assert (masks["liver"] & ~liver).sum() <= (plain["liver"] & ~liver).sum() + 5
    assert (masks["liver"] & kidney).sum() == 0
    assert abs(dice(masks["kidney"], kidney) - dice(plain["kidney"], kidney)) < 0.01
    # the tail is never above its height, and zero on the neighbour's ground
    t = prior_with_tail(np.zeros(shape, np.float32), fused["liver"], fused["kidney"], vs, tail_mm=10.0)
    assert t.max() <= 0.5 + 1e-6 and np.all(t[fused["kidney"] > 0.05] == 0.0)


def test_caudal_tail_lets_the_ct_take_a_lower_pole_the_atlas_lacks_but_nothing_above_or_beside():
    """A 'spleen' (ball of radius 25 mm) whose lower pole reaches 25 mm further down than the atlas
    person's, a 'diaphragm' slab of the spleen's CT number above it, and a touching 'kidney' with its
    own prior. With the caudal tail the refined spleen takes its lower pole; it takes no more of
    the diaphragm than without, and none of the kidney."""
    from scipy import ndimage as ndi

    from pipeline.segment.atlas_organs import prior_with_caudal_tail

    vs = (3.0, 3.0, 3.0)
    shape = (60, 60, 70)
    atlas_spleen = _ball(shape, vs, (90.0, 90.0, 120.0), 25.0)
    spleen = atlas_spleen | _ball(shape, vs, (90.0, 90.0, 90.0), 20.0)  # reaches z 70 against 95 mm
    diaphragm = np.zeros(shape, bool)
    diaphragm[:, :, 50:53] = True  # z 150-156 mm, 5 mm above the spleen's dome
    kidney = _ball(shape, vs, (130.0, 90.0, 85.0), 15.0) & ~spleen
    rng = np.random.default_rng(0)
    ct = np.where(spleen | diaphragm, 45.0, np.where(kidney, 30.0, -100.0)) + rng.normal(0.0, 10.0, shape)
    fused = {"spleen": ndi.gaussian_filter(atlas_spleen.astype(np.float32), 1.0),
             "kidney": ndi.gaussian_filter(kidney.astype(np.float32), 1.0)}
    soft = {n: np.clip(ndi.gaussian_filter(p, 0.67), 0, 1) ** 0.6 for n, p in fused.items()}
    total = sum(soft.values())
    region = (total > 0.01) & (total < 0.5)
    plain, _ = refine_organs(ct, vs, soft, other_region=region)
    tailed = dict(soft)
    tailed["spleen"] = prior_with_caudal_tail(soft["spleen"], fused["spleen"], fused["kidney"], vs, tail_mm=20.0)
    masks, _ = refine_organs(ct, vs, tailed, other_region=region)
    pole = spleen & ~atlas_spleen
    # measured: 44 % of the lower pole without the tail (the refinement's re-centring moves the whole
    # prior by up to 15 mm), 64 % with it
    assert masks["spleen"][pole].mean() > plain["spleen"][pole].mean() + 0.15
    assert (masks["spleen"] & diaphragm).sum() <= (plain["spleen"] & diaphragm).sum()
    assert (masks["spleen"] & kidney).sum() == 0
    # the tail lies only below the outline, is never above its height, and is zero on the neighbour's ground
    t = prior_with_caudal_tail(np.zeros(shape, np.float32), fused["spleen"], fused["kidney"], vs, tail_mm=20.0)
    assert t.max() <= 0.5 + 1e-6 and np.all(t[fused["kidney"] > 0.05] == 0.0)
    top = np.flatnonzero((fused["spleen"] > 0.5).any(axis=(0, 1)))[-1]
    assert not t[:, :, top + 1:].any()


def test_without_a_spect_the_refined_kidney_gets_its_partial_volume_rim(moved_atlas):
    """A CT with a 1.5-voxel blur: the voxelwise MAP leaves the half-fat outline of each kidney to
    "other"; ``rim_without_spect`` adds it back (only voxels at least half kidney by CT number)."""
    from scipy import ndimage as ndi

    from pipeline.segment.atlas_organs import FusionOptions

    target_ct, target_lab, subject = moved_atlas
    blurred = target_ct.with_array(ndi.gaussian_filter(np.asarray(target_ct.array, np.float32), 1.5))
    transforms, regs = register_all(blurred, [subject], AtlasOptions(working_mm=5.0, demons_iterations=30))
    carried = carry_all(blurred, [subject], transforms)
    lab = np.asarray(target_lab.array)
    out = {}
    for rim in (False, True):
        masks, record = atlas_organs(blurred, [subject], carried, FusionOptions(trust_mad_hu=0.0, rim_without_spect=rim))
        assert record["organs"]["kidney_left"]["method"] == "atlas+CT"
        out[rim] = masks["kidney_left"]
    truth = lab == L.KIDNEY_LEFT
    added = out[True] & ~out[False]
    assert np.all(out[True] >= out[False])
    assert added.sum() > 0.1 * out[False].sum()
    assert truth[added].mean() > 0.7
    assert dice(out[True], truth) > dice(out[False], truth) + 0.02


def test_a_ct_number_mapping_of_more_than_10_hu_is_noted_and_a_small_one_is_not():
    from pipeline.segment.builtin import _ct_number_note

    big = [{"ct_number_matching": {"atlas_peaks_hu": [-97.5, 47.5], "patient_peaks_hu": [-102.5, 17.5], "applied": True}}]
    note = _ct_number_note(big)
    assert "soft-tissue peak 18 against 48 HU" in note
    small = [{"ct_number_matching": {"atlas_peaks_hu": [-97.5, 47.5], "patient_peaks_hu": [-97.5, 42.5], "applied": True}}]
    assert _ct_number_note(small) is None
    assert _ct_number_note([{"ct_number_matching": None}]) is None


def test_a_declared_absent_organ_gets_no_mask_and_its_place_is_left_to_the_tissue_there(moved_atlas):
    # the target without a spleen (splenectomy: its place soft tissue like the rest); the atlas
    # person has one. Undeclared, the refinement finds a "spleen" in that tissue; declared absent,
    # the spleen's prior is dropped and the other organs come out as they do undeclared
    target_ct, target_lab, subject = moved_atlas
    lab = np.asarray(target_lab.array).copy()
    ct = np.asarray(target_ct.array).copy()
    spleen = lab == L.SPLEEN
    ct[spleen], lab[spleen] = 40.0, L.BODY
    target_ct = target_ct.with_array(ct)
    transforms, regs = register_all(target_ct, [subject], AtlasOptions(working_mm=5.0, demons_iterations=30))
    carried = carry_all(target_ct, [subject], transforms)
    from pipeline.segment.fusion_options import FusionOptions

    fusion = FusionOptions(trust_mad_hu=0.0)  # every organ refined on the CT
    undeclared, _ = atlas_organs(target_ct, [subject], carried, fusion)
    declared, record = atlas_organs(target_ct, [subject], carried, fusion, absent=("spleen",))
    assert undeclared["spleen"].sum() * 125.0 / 1000.0 > 20.0  # mL found where there is none
    assert not declared["spleen"].any() and record["organs"]["spleen"]["method"] == "absent (declared)"
    for name, lid in (("kidney_left", L.KIDNEY_LEFT), ("kidney_right", L.KIDNEY_RIGHT), ("liver", L.LIVER)):
        assert dice(declared[name], lab == lid) > 0.8, name
        assert dice(declared[name], lab == lid) >= dice(undeclared[name], lab == lid) - 0.03, name
