"""Reconstructed SPECT series to stored-quantity volumes with their geometry.

Two layouts are read:

- NM multi-frame RECON TOMO (one file): geometry from the first item of
  DetectorInformationSequence (ImagePositionPatient, ImageOrientationPatient),
  PixelSpacing, and SpacingBetweenSlices for the stacking (negative values
  stack along ``-(r x c)``; SliceThickness is never a spacing);
- one slice per file (PET-like layout, NM or PT modality), sorted along the
  slice normal as a CT, with a rescale per file.

Projections, planar images and secondary captures never reach this module:
:func:`pipeline.ingest.dicom_scan.classify` names and skips them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import InputError

from .ct_series import stacked_slices
from .geometry import affine_from_dicom, slice_normal
from .pixels import read_pixels
from .units import value_scale

__all__ = ["EmissionVolume", "read_nm_multiframe", "read_emission_slices", "multiframe_geometry"]


@dataclass(frozen=True, eq=False)
class EmissionVolume:
    """A SPECT volume in the quantity it was stored in.

    Attributes
    ----------
    values : numpy.ndarray, float64, shape (I, J, K)
        Stored values after the value scale: Bq/mL or counts per voxel.
    affine : numpy.ndarray, shape (4, 4)
        RAS+ affine.
    unit : str
        ``"Bq/mL"`` or ``"counts"``.
    scale_source : str
        How stored values were scaled.
    header : pydicom.Dataset
        Header of the (first) file, for durations and decay correction.
    path : pathlib.Path
        That file.
    """

    values: np.ndarray
    affine: np.ndarray
    unit: str
    scale_source: str
    header: object
    path: object


def multiframe_geometry(ds, path):
    """Affine and frame count of an NM multi-frame tomogram (see module docstring).

    Returns
    -------
    affine : numpy.ndarray, shape (4, 4)
    nframes : int
    """
    det = ds.get("DetectorInformationSequence")
    item = det[0] if det else None
    if item is not None and "ImagePositionPatient" in item and "ImageOrientationPatient" in item:
        ipp, iop = item.ImagePositionPatient, item.ImageOrientationPatient
    elif "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        ipp, iop = ds.ImagePositionPatient, ds.ImageOrientationPatient
    else:
        raise InputError(path, "NM tomogram without ImagePositionPatient/ImageOrientationPatient in its "
                         "DetectorInformationSequence; cannot place it in the patient")
    if "PixelSpacing" not in ds:
        raise InputError(path, "NM tomogram without PixelSpacing")
    sbs = ds.get("SpacingBetweenSlices")
    if sbs in (None, "") or float(sbs) == 0.0:
        raise InputError(path, "NM tomogram without SpacingBetweenSlices (SliceThickness is not a "
                         "spacing and is not used)")
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    nslices = ds.get("NumberOfSlices")
    if nslices not in (None, "") and int(nslices) != nframes:
        raise InputError(path, f"{nframes} frames but NumberOfSlices {int(nslices)}: several volumes "
                         "(energy windows, gates or heads) in one series are not supported")
    windows = ds.get("EnergyWindowVector")
    if windows is not None and len(set(int(v) for v in np.atleast_1d(windows))) > 1:
        raise InputError(path, "frames from several energy windows in one series; export one window")
    _, _, normal = slice_normal(iop)
    s = float(sbs)
    affine = affine_from_dicom([float(v) for v in ipp], iop, ds.PixelSpacing, np.sign(s) * normal, abs(s))
    return affine, nframes


def read_nm_multiframe(path, header) -> EmissionVolume:
    """Read an NM multi-frame reconstructed tomogram.

    Parameters
    ----------
    path : pathlib.Path
    header : pydicom.Dataset
        Its header (pixel data not needed).
    """
    affine, nframes = multiframe_geometry(header, path)
    scale = value_scale(header, path)
    stored, _ = read_pixels(path)
    if stored.ndim == 2:
        stored = stored[None]
    if stored.shape[0] != nframes:
        raise InputError(path, f"pixel data hold {stored.shape[0]} frames, header says {nframes}")
    values = np.transpose(stored, (2, 1, 0)).astype(np.float64) * scale.slope + scale.intercept
    return EmissionVolume(values, affine, scale.unit, scale.source, header, path)


def read_emission_slices(files, headers) -> EmissionVolume:
    """Read a reconstructed SPECT stored one slice per file (PET-like layout).

    Each file's own rescale is applied before stacking.
    """
    order, affine, shape = stacked_slices(files, headers)
    values = np.empty(shape, np.float64)
    unit = None
    source = None
    for k, n in enumerate(order):
        scale = value_scale(headers[n], files[n])
        if unit is None:
            unit, source = scale.unit, scale.source
        elif scale.unit != unit:
            raise InputError(files[n], f"slice in {scale.unit} while other slices are in {unit}")
        stored, _ = read_pixels(files[n])
        if stored.ndim != 2:
            raise InputError(files[n], "expected one slice per file")
        values[:, :, k] = stored.T.astype(np.float64) * scale.slope + scale.intercept
    source = f"{source} (per-slice rescale, {len(files)} files)"
    return EmissionVolume(values, affine, unit, source, headers[order[0]], files[order[0]])
