"""Pixel decoding: compressed syntaxes pydicom cannot decode go through GDCM, damage is named."""

from __future__ import annotations

import pydicom
import pytest

import ingest_dicom_factory as fac
from pipeline.errors import InputError
from pipeline.ingest.pixels import read_pixels


def test_gdcm_decoding_returns_the_stored_values_of_a_multiframe_nm_file(synthetic_patient, tmp_path):
    src = next(iter(synthetic_patient.nm_files.values()))
    plain, _ = read_pixels(src)
    compressed = fac.to_jpeg_lossless(src, tmp_path / "nm_jpeg.dcm")
    got, ds = read_pixels(compressed)
    # lossless: the same integers of the same type (GDCM's rescale by the header's slope undone)
    assert got.dtype == plain.dtype and got.shape == plain.shape
    assert (got == plain).all()
    assert float(ds.RescaleSlope) != 1.0  # the undo was really needed


def test_damaged_compressed_pixel_data_is_an_error_naming_the_file(synthetic_patient, tmp_path):
    src = next(iter(synthetic_patient.nm_files.values()))
    path = fac.to_jpeg_lossless(src, tmp_path / "nm_jpeg.dcm")
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]  # truncated fragments
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError) as info:
        read_pixels(path)
    assert str(path) in str(info.value) and "compressed pixel data" in str(info.value)
