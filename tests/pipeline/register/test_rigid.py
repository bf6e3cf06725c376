"""Rigid registration recovers known transforms (target registration error, TRE).

Tolerance: the issue's 2 mm TRE, well below the SPECT voxel (4.8 mm) and the
SPECT resolution (10-12 mm FWHM), so that misregistration does not bias
voxel-wise kinetics.
"""

import dataclasses

import numpy as np
import pytest
from register_phantom import (
    KIDNEY_CENTRES,
    LIVER_CENTRE,
    VERTEBRA_Z_MM,
    move,
    rigid_ras,
    transform_points,
)

from pipeline.register.masks import slab_mask
from pipeline.register.rigid import RigidSettings, register_rigid

#: fast settings for the tests: 4 mm working grid, fewer samples
FAST = RigidSettings(working_spacing_mm=4.0, metric_samples=25000)
TRE_LIMIT_MM = 2.0
TARGETS = np.array([KIDNEY_CENTRES[1], KIDNEY_CENTRES[2], LIVER_CENTRE] + [(0.0, -60.0, z) for z in VERTEBRA_Z_MM])


def _tre(result, truth, points):
    return np.linalg.norm(transform_points(result.affine_ras, points) - transform_points(truth, points), axis=1)


@pytest.fixture(scope="module")
def moved_torso(torso):
    ct, labels, _ = torso
    truth = rigid_ras((3.0, -2.0, 2.5), (10.0, -7.0, 12.0), centre_ras_mm=(0.0, -20.0, 0.0))
    return ct, move(ct, truth), truth


def test_phantom_10mm_3deg_recovered_at_organ_and_vertebra_centroids(moved_torso):
    ct, moving, truth = moved_torso
    result = register_rigid(ct, moving, FAST)
    tre = _tre(result, truth, TARGETS)
    assert tre.max() < TRE_LIMIT_MM, tre
    assert result.metric_final < result.metric_identity
    assert abs(result.rotation_deg - 4.35) < 0.3  # the combined angle of (3, -2, 2.5) degrees


def test_bone_weighting_and_a_region_still_recover_the_transform(moved_torso):
    ct, moving, truth = moved_torso
    region = slab_mask(ct, -60.0, 90.0)  # an "abdomen" slab around the kidneys
    result = register_rigid(ct, moving, FAST, region=region, bone_weighting=True)
    assert np.count_nonzero(result.pair.metric_mask.array) < np.count_nonzero(result.pair.fixed_body.array)
    tre = _tre(result, truth, TARGETS)
    assert tre.max() < TRE_LIMIT_MM, tre


@pytest.mark.slow
def test_geometry_initialisation_also_converges(moved_torso):
    ct, moving, truth = moved_torso
    result = register_rigid(ct, moving, dataclasses.replace(FAST, init="geometry"))
    assert _tre(result, truth, TARGETS).max() < TRE_LIMIT_MM


def test_real_ct_known_transform_recovered(real_ct_4mm):
    ct = real_ct_4mm
    truth = rigid_ras((-2.0, 3.0, 1.0), (-8.0, 10.0, 6.0), centre_ras_mm=ct.index_to_world(np.array(ct.shape) / 2))
    rng = np.random.default_rng(3)
    moving = move(ct, truth)
    moving = moving.with_array(moving.array + rng.normal(0, 20, moving.shape).astype(np.float32))
    result = register_rigid(ct, moving, FAST)
    # targets: a 5 x 5 x 5 lattice of points inside the body
    body = result.pair.fixed_body
    idx = np.argwhere(body.array)
    pick = idx[np.linspace(0, len(idx) - 1, 125).astype(int)]
    tre = _tre(result, truth, body.index_to_world(pick))
    assert tre.max() < TRE_LIMIT_MM, tre.max()


def test_empty_moving_ct_is_refused(torso):
    ct, _, _ = torso
    with pytest.raises(ValueError, match="no body"):
        register_rigid(ct, ct.with_array(np.full(ct.shape, -1000.0, np.float32)), FAST)


def test_a_patient_who_did_not_move_keeps_the_start_when_the_optimiser_ends_worse_near_it(torso):
    """No motion between the sessions, only new CT noise: the start is the optimum. An optimiser
    that ends a little off it with a worse metric (here forced: one step of 0.6 mm) must not fail
    the registration: the start is kept and said so (an ICRP-110 patient scanned four times
    without motion failed its 24 h registration at -1.5105 against -1.5133). One that ends far
    off (one step of 60 mm) is not rescued: its worse metric reaches the QC check."""
    ct, _, _ = torso
    rng = np.random.default_rng(3)
    moving = ct.with_array((np.asarray(ct.array, np.float32) + rng.normal(0.0, 20.0, ct.shape)).astype(np.float32))
    near = register_rigid(ct, moving, dataclasses.replace(FAST, max_step_mm=0.6, min_step_mm=0.59, iterations=1))
    assert near.optimiser_metric_final > min(near.metric_identity, near.metric_initial)
    assert near.kept_start in ("scanner coordinates", "initial alignment")
    assert near.metric_final == min(near.metric_identity, near.metric_initial)
    assert _tre(near, np.eye(4), TARGETS).max() < TRE_LIMIT_MM
    far = register_rigid(ct, moving, dataclasses.replace(FAST, max_step_mm=60.0, min_step_mm=59.0, iterations=1))
    assert far.kept_start is None
    assert far.metric_final > min(far.metric_identity, far.metric_initial)
    good = register_rigid(ct, moving, FAST)
    assert good.metric_final <= min(good.metric_identity, good.metric_initial)
    assert _tre(good, np.eye(4), TARGETS).max() < TRE_LIMIT_MM
