"""The dose stage's shortcuts give the values of the direct computation they replace."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.dose.stage import density_g_per_ml_from_hu, medium_on_dose_grid
from pipeline.grid import resample_to
from pipeline.image import Image, affine_from_geometry
from pipeline.segment.density import hu_to_density_g_per_ml


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
def test_table_density_equals_the_schneider_curve_for_every_integer_hu(dtype):
    info = np.iinfo(dtype)
    hu = np.asfortranarray(np.arange(info.min, info.max + 1).astype(dtype).reshape(-1, 1, 1))
    np.testing.assert_array_equal(density_g_per_ml_from_hu(hu), hu_to_density_g_per_ml(hu))


def test_float_ct_goes_through_the_curve_itself():
    hu = np.array([-3024.0, -1000.0, -98.5, 14.0, 23.5, 100.0, 100.5, 2500.25]).reshape(2, 2, 2)
    np.testing.assert_array_equal(density_g_per_ml_from_hu(hu), hu_to_density_g_per_ml(hu))


def test_medium_from_the_labelled_box_equals_the_full_ct_resampling_next_to_a_dense_couch():
    # Reference: the full CT resampled (anti-aliased) onto the dose grid, as before the crop.
    # A 1.6 g/mL couch slab touches the body's back but is unlabelled: it lies outside the
    # labelled box plus most of the margin, so the crop must still see it (or its tail) the same.
    shape = (160, 150, 70)
    ct = Image(np.full(shape, -1000, np.int16),
               affine_from_geometry((-159.0, 149.0, 69.0), np.diag([1.0, -1.0, -1.0]), (2.0, 2.0, 2.0)), "HU")
    xyz = ct.world_grid()
    body = ((xyz[..., 0] / 90) ** 2 + (xyz[..., 1] / 60) ** 2 < 1) & (np.abs(xyz[..., 2]) < 50)
    hu = np.where(body, 40, -1000)
    hu[body & (np.abs(xyz[..., 0] - 30) < 15)] = 1200  # bone inside
    couch = (xyz[..., 1] < -60) & (xyz[..., 1] > -75)
    hu[couch] = 1000
    labels = np.asfortranarray(np.where(body, 7, 0).astype(np.uint8))
    ct = ct.with_array(np.asfortranarray(hu.astype(np.int16)))
    grid = Image(np.zeros((70, 66, 30), np.float32),
                 affine_from_geometry((-165.6, -156.0, -69.6), np.eye(3), (4.8, 4.8, 4.8)), "MBq*h/mL")
    rho_ct = density_g_per_ml_from_hu(ct.array)
    medium = medium_on_dose_grid(ct, labels > 0, grid, rho_ct)
    rho_ref = resample_to(ct.with_array(rho_ct, unit="g/mL"), grid, "linear", default_value=0.0,
                          antialias=True).array
    body_ref = resample_to(ct.with_array((labels > 0).astype(np.float64), unit="1"), grid, "linear",
                           antialias=True).array >= 0.5
    np.testing.assert_array_equal(medium.body, body_ref)
    assert medium.body.sum() > 1000
    # float32 is the smoother's own precision: 2 ulp of ~1.6 g/mL
    np.testing.assert_allclose(medium.density_g_per_ml[body_ref], rho_ref[body_ref], rtol=2.5e-7, atol=0)
    assert medium.density_g_per_ml[body_ref].max() > 1.5  # the bone is seen
