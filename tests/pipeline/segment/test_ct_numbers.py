"""The CT's numbers measured on subcutaneous fat (pipeline.segment.ct_numbers)."""

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.segment.ct_numbers import (FAT_REFERENCE_HU, FAT_TOLERANCE_HU, MAX_FAT_OFFSET_HU,
                                         fat_correction_hu, fat_peak_hu)

VS = (2.0, 2.0, 2.0)


def _trunk(subcutaneous_hu=-105.0, visceral_hu=-85.0, noise_sd=50.0, seed=0, layer_mm=20.0):
    """An elliptic trunk (300 x 220 mm, 40 slices of 2 mm): a subcutaneous fat layer of
    ``layer_mm``, soft tissue (40 HU) inside with a visceral fat region, low-dose noise of
    ``noise_sd`` HU."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[:180, :140]
    r = np.hypot((i - 90) * 2.0 / 150.0, (j - 70) * 2.0 / 110.0)
    inner = np.hypot((i - 90) * 2.0 / (150.0 - layer_mm), (j - 70) * 2.0 / (110.0 - layer_mm))
    sl = np.full(r.shape, -1000.0)
    sl[r <= 1.0] = subcutaneous_hu
    sl[inner <= 1.0] = 40.0
    sl[inner <= 0.8] = visceral_hu  # visceral fat, more of it than subcutaneous
    ct = np.repeat(sl[:, :, None], 40, axis=2) + rng.normal(0.0, noise_sd, (180, 140, 40))
    return ct.astype(np.float32), np.repeat((r <= 1.0)[:, :, None], 40, axis=2)


def test_fat_peak_is_the_subcutaneous_fats_despite_low_dose_noise_and_more_visceral_fat():
    ct, body = _trunk()
    assert fat_peak_hu(ct, body, VS) == pytest.approx(-105.0, abs=1.5)
    # the whole body's mode would be the visceral fat's (the band is what makes it subcutaneous)
    assert fat_peak_hu(ct, body, VS, band_mm=(0.0, 1000.0)) > -95.0


def test_fat_peak_follows_a_shift_of_the_body_to_within_one_hu():
    ct, body = _trunk()
    p0 = fat_peak_hu(ct, body, VS)
    p1 = fat_peak_hu(np.where(body, ct + 17.0, ct), body, VS)
    assert p1 - p0 == pytest.approx(17.0, abs=1.0)


def test_a_body_without_fat_has_no_fat_peak():
    ct, body = _trunk(subcutaneous_hu=40.0, visceral_hu=40.0, noise_sd=15.0)
    assert fat_peak_hu(ct, body, VS) is None


def test_a_subcutaneous_layer_too_thin_to_hold_pure_fat_gives_no_fat_peak():
    # 6 mm of fat is all partial volume with skin and muscle at 2 mm: its mode is no fat's, and a
    # correction made from it would move every CT number of a cachectic patient by tens of HU
    ct, body = _trunk(noise_sd=15.0, layer_mm=6.0, visceral_hu=40.0)
    assert fat_peak_hu(ct, body, VS) is None
    ct, body = _trunk(noise_sd=15.0, layer_mm=12.0, visceral_hu=40.0)
    assert fat_peak_hu(ct, body, VS) == pytest.approx(-105.0, abs=3.0)


def test_correction_is_zero_within_the_tolerance_and_the_whole_distance_beyond():
    assert fat_correction_hu(None) == 0.0
    assert fat_correction_hu(FAT_REFERENCE_HU + FAT_TOLERANCE_HU - 0.5) == 0.0
    assert fat_correction_hu(FAT_REFERENCE_HU - FAT_TOLERANCE_HU + 0.5) == 0.0
    assert fat_correction_hu(FAT_REFERENCE_HU + 12.0) == pytest.approx(12.0)
    assert fat_correction_hu(FAT_REFERENCE_HU - 30.0) == pytest.approx(-30.0)


def test_a_fat_peak_far_from_fat_is_refused_naming_the_file():
    with pytest.raises(InputError, match=r"ct\.nii\.gz.*fat peak is at -40 HU"):
        fat_correction_hu(FAT_REFERENCE_HU + MAX_FAT_OFFSET_HU + 12.0, path="ct.nii.gz")
