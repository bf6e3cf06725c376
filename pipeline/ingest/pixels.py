"""Reading pixel data of one DICOM file, with damaged files named in the error.

Pixel data are decoded by pydicom. Compressed transfer syntaxes that pydicom
cannot decode with what is installed (JPEG Lossless, Process 14 SV1 -- the usual
lossless CT compression of PACS exports -- needs a plugin) are decoded by GDCM
through SimpleITK, which applies the top-level RescaleSlope/RescaleIntercept
while decoding; that is undone here with the header's own values, so both paths
return the stored values (checked to be integers of the header's pixel type).
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError

__all__ = ["read_pixels"]

#: Largest distance (stored-value units) from an integer accepted when undoing GDCM's rescale.
_INTEGER_TOLERANCE = 1e-3


def read_pixels(path):
    """Stored pixel values of ``path`` and its full header.

    Returns
    -------
    array : numpy.ndarray
        ``[row, col]`` for one frame or ``[frame, row, col]``, stored values
        (no rescale applied).
    ds : pydicom.Dataset

    Raises
    ------
    InputError
        Truncated, corrupt or undecodable pixel data.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            raise InputError(path, "DICOM file has no pixel data")
    except InputError:
        raise
    except Exception as exc:  # pydicom raises many kinds for damaged files
        raise InputError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        array = ds.pixel_array
    except Exception as exc:  # pydicom / handlers raise many kinds for damaged data
        if syntax is not None and syntax.is_compressed:
            array = _decode_with_gdcm(path, ds, syntax, exc)
        else:
            raise InputError(path, f"pixel data truncated or unreadable ({type(exc).__name__}: {exc})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = (ds.Rows, ds.Columns) if frames == 1 else (frames, ds.Rows, ds.Columns)
    if tuple(array.shape) != tuple(expected):
        raise InputError(path, f"pixel data of shape {array.shape} do not match the header {expected}")
    return np.asarray(array), ds


def _stored_dtype(ds) -> np.dtype:
    bits = int(ds.get("BitsAllocated", 16))
    if bits not in (8, 16, 32):
        raise ValueError(f"BitsAllocated {bits}")
    return np.dtype(f"{'int' if int(ds.get('PixelRepresentation', 0)) else 'uint'}{bits}")


def _decode_with_gdcm(path, ds, syntax, pydicom_error) -> np.ndarray:
    """Stored values of a compressed file that pydicom cannot decode, through SimpleITK's GDCM."""
    import SimpleITK as sitk

    name = getattr(syntax, "name", str(syntax))
    try:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        values = sitk.GetArrayFromImage(reader.Execute()).astype(np.float64)
        dtype = _stored_dtype(ds)
    except Exception as exc:
        raise InputError(path, f"compressed pixel data ({name}) could not be decoded by pydicom "
                               f"({type(pydicom_error).__name__}) nor by GDCM ({type(exc).__name__}: {exc})") from None
    from .units import rescale_number

    slope = rescale_number(ds, "RescaleSlope", 1.0, path, nonzero=True)
    intercept = rescale_number(ds, "RescaleIntercept", 0.0, path)
    stored = (values - intercept) / slope
    rounded = np.rint(stored)
    info = np.iinfo(dtype)
    if (np.max(np.abs(stored - rounded), initial=0.0) > _INTEGER_TOLERANCE
            or rounded.min(initial=0) < info.min or rounded.max(initial=0) > info.max):
        raise InputError(path, f"compressed pixel data ({name}) decoded by GDCM do not map back to "
                               f"{dtype} stored values with RescaleSlope {slope:g} and RescaleIntercept "
                               f"{intercept:g}")
    out = rounded.astype(dtype)
    return out[0] if int(ds.get("NumberOfFrames", 1) or 1) == 1 and out.ndim == 3 else out
