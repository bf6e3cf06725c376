"""The boundary of two touching organs from their uptake: a blurred step with a known edge."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.segment.uptake_boundary import organ_uptake_level, split_by_uptake

VS = (2.0, 2.0, 2.0)
FWHM_MM = 12.0


def _two_blocks(edge_i=30, hot=10.0, cold=2.0, shape=(60, 30, 30)):
    """Truth: organ A (x < edge_i) and organ B (x >= edge_i) in a box of zero uptake; the SPECT is
    the uptake blurred by a 12 mm FWHM Gaussian."""
    a = np.zeros(shape, bool)
    b = np.zeros(shape, bool)
    a[5:edge_i, 5:25, 5:25] = True
    b[edge_i:55, 5:25, 5:25] = True
    act = np.where(a, hot, 0.0) + np.where(b, cold, 0.0)
    sigma_vox = FWHM_MM / 2.3548 / np.asarray(VS)
    return a, b, ndi.gaussian_filter(act, sigma_vox)


def _edge(mask_a, k=15):
    """Index of the first x column not in A along the line j = 15, slice ``k``."""
    return int(np.argmin(mask_a[:, 15, k][5:])) + 5


def test_a_boundary_displaced_into_the_cold_organ_returns_to_the_true_edge():
    a, b, spect = _two_blocks()
    # the atlas put the boundary 4 voxels (8 mm) too far into B
    wrong_a = a.copy()
    wrong_a[30:34, 5:25, 5:25] = True
    wrong_b = b & ~wrong_a
    new_a, new_b, rec = split_by_uptake(spect, wrong_a, wrong_b, VS)
    assert rec["used"] and rec["hot"] == "a"
    # the midpoint of a blurred step is the edge itself: within one voxel (2 mm)
    assert abs(_edge(new_a) - 30) <= 1
    assert not (new_a & new_b).any()
    assert ((new_a | new_b) == (wrong_a | wrong_b)).all()  # nothing outside the pair is taken


@pytest.mark.parametrize("fwhm_mm", [8.0, 12.0, 18.0])
def test_a_boundary_displaced_into_the_hot_organ_returns_to_the_true_edge(fwhm_mm):
    # the SPECT's resolution is 12 mm; the split assumes fwhm_mm (only for the fall-off at the
    # pair's outer surface, which must not give the hot organ's outer edge to the cold one)
    a, b, spect = _two_blocks()
    wrong_b = b.copy()
    wrong_b[25:30, 5:25, 5:25] = True
    wrong_a = a & ~wrong_b
    new_a, new_b, rec = split_by_uptake(spect, wrong_a, wrong_b, VS, fwhm_mm=fwhm_mm)
    assert rec["used"]
    assert abs(_edge(new_a) - 30) <= 1
    assert rec["moved_b_to_a"] > 0 and rec["moved_a_to_b"] == 0


def test_similar_uptakes_leave_the_boundary_to_the_ct():
    a, b, spect = _two_blocks(hot=3.0, cold=2.5)
    wrong_a = a.copy()
    wrong_a[30:34, 5:25, 5:25] = True
    new_a, new_b, rec = split_by_uptake(spect, wrong_a, b & ~wrong_a, VS)
    assert not rec["used"] and rec["ratio"] < 1.5
    assert (new_a == wrong_a).all()


def test_organs_that_do_not_touch_are_left_alone():
    a, b, spect = _two_blocks()
    b_apart = b.copy()
    b_apart[30:36] = False
    new_a, new_b, rec = split_by_uptake(spect, a, b_apart, VS)
    assert not rec["used"] and rec["contact_voxels"] == 0
    assert (new_a == a).all() and (new_b == b_apart).all()


def test_outside_the_spect_field_of_view_nothing_changes_hands():
    a, b, spect = _two_blocks()
    wrong_a = a.copy()
    wrong_a[30:34, 5:25, 5:25] = True
    valid = np.ones(a.shape, bool)
    valid[:, :, 15:] = False  # the SPECT covers only half of the blocks
    new_a, _, rec = split_by_uptake(spect, wrong_a, b & ~wrong_a, VS, valid=valid)
    assert rec["used"]
    assert abs(_edge(new_a, k=10) - 30) <= 1  # inside the field of view: moved
    assert (new_a[:, :, 15:] == wrong_a[:, :, 15:]).all()  # outside: as it was


def test_uptake_level_ignores_a_hot_neighbour_spill_over():
    a, b, spect = _two_blocks()
    dist_a = ndi.distance_transform_edt(~a, sampling=VS)
    with_spill = organ_uptake_level(spect, b)
    away = organ_uptake_level(spect, b, away=dist_a > 10.0)
    # B's plateau is 2 (blurred at its other faces a little lower); the spill from A raises
    # the whole-organ estimate, the estimate away from A stays within 5 % of the plateau
    assert with_spill > away
    assert abs(away - 2.0) / 2.0 < 0.05


def test_a_hot_lesion_in_the_cold_organ_at_the_boundary_and_its_spill_keep_their_organ():
    # B (the liver, 2) holds a metastasis at 40 near the common boundary with A (the kidney,
    # 10). Its spill raises the liver around it above the midpoint of the two levels; without
    # the lesion test the metastasis and that liver went to the kidney. (A metastasis whose
    # blurred peak stays below twice the kidney's level, 25 here, is not told from kidney.)
    a, b, _ = _two_blocks()
    met = np.zeros_like(b)
    met[31:37, 11:19, 11:19] = True  # 12 x 16 x 16 mm, 2 mm from the boundary
    act = np.where(a, 10.0, 0.0) + np.where(b & ~met, 2.0, 0.0) + np.where(met, 40.0, 0.0)
    spect = ndi.gaussian_filter(act, FWHM_MM / 2.3548 / np.asarray(VS))
    new_a, new_b, rec = split_by_uptake(spect, a, b, VS, lesions_possible_b=True)
    assert rec["used"] and rec["hot"] == "a" and rec["lesion_voxels_kept"] > 0
    without, _, _ = split_by_uptake(spect, a, b, VS, lesions_possible_b=True, lesion_factor=np.inf)
    assert (without & met).any() and (without & b).sum() > 500  # without it: 976 voxels of B
    assert (new_a & b).sum() < 0.1 * (without & b).sum()  # with it: 68, beside the lesion zone
    assert (new_b & met).sum() == met.sum()


def test_a_hot_spot_in_an_organ_that_cannot_hold_lesions_does_not_freeze_the_boundary():
    # the same geometry, the hot spot now in the kidney (A, 10), at 40 beside the boundary (a hot
    # renal pelvis or calyx): the boundary is placed by the uptakes as without it, the atlas's
    # displacement into B is undone
    a, b, _ = _two_blocks()
    spot = np.zeros_like(a)
    spot[23:29, 11:19, 11:19] = True
    act = np.where(a & ~spot, 10.0, 0.0) + np.where(b, 2.0, 0.0) + np.where(spot, 40.0, 0.0)
    spect = ndi.gaussian_filter(act, FWHM_MM / 2.3548 / np.asarray(VS))
    wrong_a = a.copy()
    wrong_a[30:34, 5:25, 5:25] = True
    new_a, new_b, rec = split_by_uptake(spect, wrong_a, b & ~wrong_a, VS, lesions_possible_b=True)
    assert rec["used"] and rec["lesion_voxels_kept"] == 0
    frozen, _, rec_frozen = split_by_uptake(spect, wrong_a, b & ~wrong_a, VS, lesions_possible_a=True)
    assert rec_frozen["lesion_voxels_kept"] > 0  # the same spot counted as a lesion freezes the band
    assert (new_a & b).sum() < (frozen & b).sum()


def test_the_level_of_an_organ_that_may_hold_lesions_is_its_parenchyma_when_they_are_many():
    # a liver (2) with metastases (20) in its last third: its 75th percentile is theirs, which
    # would make it the hot organ of a pair with a kidney at 10
    _, b, _ = _two_blocks()
    met = b.copy()
    met[:47] = False
    sigma = FWHM_MM / 2.3548 / np.asarray(VS)
    spect = ndi.gaussian_filter(np.where(b, 2.0, 0.0) + np.where(met, 18.0, 0.0), sigma)
    parenchyma = np.median(ndi.gaussian_filter(np.where(b, 2.0, 0.0), sigma)[b])  # the same organ without lesions
    assert organ_uptake_level(spect, b) > 4.0 * parenchyma
    assert abs(organ_uptake_level(spect, b, lesions_possible=True) - parenchyma) / parenchyma < 0.1
    _, clean, spect_clean = _two_blocks(hot=0.0)
    assert organ_uptake_level(spect_clean, clean, lesions_possible=True) == organ_uptake_level(spect_clean, clean)
