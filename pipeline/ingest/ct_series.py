"""A CT series (one slice per file) to an :class:`~pipeline.image.Image` in HU."""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputError
from pipeline.image import Image

from .geometry import affine_from_dicom, slice_normal, sort_slices
from .pixels import read_pixels
from .units import rescale_number

__all__ = ["read_ct_series", "common_plane", "stacked_slices"]

_INT16 = np.iinfo(np.int16)


def common_plane(files, headers):
    """ImageOrientationPatient, PixelSpacing and (Rows, Columns) shared by all files.

    Raises
    ------
    InputError
        A file without position/orientation, or one that differs from the first.
    """
    first = headers[0]
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        for path, ds in zip(files, headers):
            if key not in ds or ds.get(key) in (None, ""):
                raise InputError(path, f"no {key}; cannot place the slice in the patient")
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    spacing = np.asarray([float(v) for v in first.PixelSpacing])
    size = (int(first.Rows), int(first.Columns))
    for path, ds in zip(files, headers):
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], iop, atol=1e-4):
            raise InputError(path, "ImageOrientationPatient differs from the other slices of the series")
        if not np.allclose([float(v) for v in ds.PixelSpacing], spacing, rtol=1e-4):
            raise InputError(path, "PixelSpacing differs from the other slices of the series")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise InputError(path, "image size differs from the other slices of the series")
    return iop, spacing, size


def stacked_slices(files, headers):
    """Order and geometry of a one-slice-per-file series.

    Returns
    -------
    order : numpy.ndarray of int
        File indices sorted along the slice normal.
    affine : numpy.ndarray, shape (4, 4)
        RAS+ affine (see :mod:`pipeline.ingest.geometry`).
    shape : tuple of int
        ``(columns, rows, slices)`` = ``(I, J, K)``.
    """
    iop, spacing, (rows, cols) = common_plane(files, headers)
    positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    order, dk = sort_slices(positions, iop, files)
    _, _, normal = slice_normal(iop)
    affine = affine_from_dicom(positions[order[0]], iop, spacing, normal, dk)
    return order, affine, (cols, rows, len(files))


def read_ct_series(files, headers) -> Image:
    """Read a CT series into Hounsfield units.

    Slices are sorted by position along the slice normal (never by
    InstanceNumber), checked for uniform spacing, missing slices and gantry
    tilt, and rescaled (RescaleSlope x stored + RescaleIntercept).

    Parameters
    ----------
    files : sequence of pathlib.Path
    headers : sequence of pydicom.Dataset
        Headers of ``files`` (pixel data not needed).

    Returns
    -------
    Image
        Array ``[i, j, k]`` (int16 when the rescale keeps integers in range,
        else float32), unit ``"HU"``.
    """
    for path, ds in zip(files, headers):
        tilt = float(ds.get("GantryDetectorTilt", 0.0) or 0.0)
        if abs(tilt) > 1e-3:
            raise InputError(path, f"gantry tilt of {tilt:g} degrees; resample the CT to an orthogonal "
                             "grid first")
        rtype = str(ds.get("RescaleType", "HU") or "HU").upper()
        if rtype not in ("HU", "US"):
            raise InputError(path, f"CT RescaleType {rtype!r} is not Hounsfield units")
    order, affine, shape = stacked_slices(files, headers)
    slopes = np.array([rescale_number(headers[n], "RescaleSlope", 1.0, files[n], nonzero=True) for n in order])
    intercepts = np.array([rescale_number(headers[n], "RescaleIntercept", 0.0, files[n]) for n in order])
    integer = bool(np.all(slopes == 1.0) and np.all(intercepts == np.round(intercepts)))
    out = np.empty(shape, np.int16 if integer else np.float32)
    for k, n in enumerate(order):
        stored, _ = read_pixels(files[n])
        if stored.ndim != 2:
            raise InputError(files[n], "multi-frame CT is not supported; export one slice per file")
        hu = stored.T.astype(np.float64) * slopes[k] + intercepts[k]  # [row, col] -> [i, j]
        if integer:
            if hu.min() < _INT16.min or hu.max() > _INT16.max:
                out = out.astype(np.float32)
                integer = False
        out[:, :, k] = hu
    return Image(out, affine, "HU")
