"""The dose map as a DICOM RT Dose object on the reference CT's frame of reference.

Geometry: an :class:`~pipeline.image.Image` (RAS+ affine) becomes a multi-frame grid in LPS:
frame ``k`` holds the plane ``array[:, :, k]`` transposed to ``(rows, columns) = (J, I)``;
ImageOrientationPatient is the LPS direction of ``i`` (along a row) then of ``j`` (down a
column); PixelSpacing is ``(spacing j, spacing i)``; ImagePositionPatient is the centre of voxel
``(0, 0, 0)``; GridFrameOffsetVector gives each frame's distance (mm) from the first along
``row x column``. When the image's ``k`` axis runs against ``row x column`` the frames are
reversed so the offsets increase. Only the bounding box of the non-zero dose is written.

Values: unsigned 16-bit integers times DoseGridScaling (Gy); the rounding error is at most
half a step, ``max / 65535 / 2`` = 7.6e-6 of the maximum dose (0.08 % of a dose at 1 % of the
maximum). 16 bits rather than 32: Debian's ``dciodvfy`` (dicom3tools 1.00~20220618) aborts on
32-bit RT Dose pixel data, and 16 bits is what treatment-planning systems read everywhere.
Negative values (none are expected; interpolation can leave -1e-12 Gy) are written as 0.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import DSfloat

from pipeline.image import Image

from .common import new_dataset

__all__ = ["RT_DOSE_STORAGE", "CT_IMAGE_STORAGE", "dose_grid_lps", "build_rt_dose", "DOSE_SUMMATION_TYPE"]

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: DoseSummationType: the absorbed dose of the whole radiopharmaceutical therapy (one administration,
#: integrated over time). The standard's defined terms all describe external-beam or brachytherapy
#: deliveries, and PLAN, BRACHY, FRACTION... require a Referenced RT Plan Sequence (RECORD a treatment
#: record), neither of which exists for a radiopharmaceutical; the term list is "Defined Terms",
#: which the standard lets an implementation extend, so spectdose writes its own term "RPT"
#: (dciodvfy: warning "Unrecognized defined term", accepted).
DOSE_SUMMATION_TYPE = "RPT"
_LPS = np.diag([-1.0, -1.0, 1.0])
_UINT16_MAX = 2**16 - 1


def _nonzero_box(array: np.ndarray) -> tuple[slice, slice, slice]:
    nz = np.nonzero(array > 0)
    if nz[0].size == 0:
        return tuple(slice(0, n) for n in array.shape)
    return tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in nz)


def dose_grid_lps(image: Image, crop: bool = True):
    """The dose values and DICOM geometry of ``image``.

    Returns
    -------
    frames : numpy.ndarray, shape (K, J, I)
        Dose (Gy) as ``[frame, row, column]``.
    position : numpy.ndarray, shape (3,)
        ImagePositionPatient (LPS mm) of the first voxel of the first frame.
    orientation : numpy.ndarray, shape (6,)
        ImageOrientationPatient.
    pixel_spacing : tuple of float
        (between rows, between columns) in mm.
    offsets : numpy.ndarray, shape (K,)
        GridFrameOffsetVector (mm), 0 first, increasing along ``row x column``.
    """
    array = np.asarray(image.array, dtype=np.float64)
    affine = np.asarray(image.affine, float)
    if crop:
        box = _nonzero_box(array)
        start = np.array([s.start for s in box], float)
        array = array[box]
        affine = affine.copy()
        affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    lps = _LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    axes = lps / spacing
    row_cos, col_cos, k_dir = axes[:, 0], axes[:, 1], axes[:, 2]
    normal = np.cross(row_cos, col_cos)
    origin = _LPS @ affine[:3, 3]
    if float(np.dot(k_dir, normal)) < 0:
        origin = origin + (array.shape[2] - 1) * spacing[2] * k_dir
        array = array[:, :, ::-1]
    frames = np.ascontiguousarray(np.transpose(array, (2, 1, 0)))
    offsets = np.arange(frames.shape[0]) * spacing[2]
    return frames, origin, np.concatenate([row_cos, col_cos]), (spacing[1], spacing[0]), offsets


def _ds(value: float) -> DSfloat:
    return DSfloat(value, auto_format=True)


def build_rt_dose(dose: Image, ct, ct_instances, *, sop_instance_uid: str, series_uid: str,
                  when: dt.datetime, series_number: int = 901, description: str = "") -> Dataset:
    """RT Dose dataset of ``dose`` (Gy) on the frame of reference of the CT whose header is ``ct``.

    Parameters
    ----------
    dose : Image
        Absorbed dose, Gy, in the CT's world (same frame of reference).
    ct : pydicom.Dataset
        Header of one reference CT slice: patient, study and frame of reference are taken from it.
    ct_instances : sequence of pydicom.Dataset
        Headers of every slice of the reference CT series (referenced by the dose).
    sop_instance_uid, series_uid : str
    when : datetime.datetime
        Content date and time.
    series_number : int
    description : str
        SeriesDescription (no identifiers: nuclide and method, e.g. ``"Lu-177 absorbed dose"``).
    """
    frames, position, orientation, pixel_spacing, offsets = dose_grid_lps(dose)
    frames = np.where(np.isfinite(frames) & (frames > 0), frames, 0.0)
    peak = float(frames.max())
    scaling = _ds(peak / _UINT16_MAX if peak > 0 else 1.0)
    pixels = np.minimum(np.rint(frames / float(scaling)), _UINT16_MAX).astype("<u2")

    ds = new_dataset(RT_DOSE_STORAGE, sop_instance_uid, ct, modality="RTDOSE", series_uid=series_uid,
                     series_number=series_number, series_description=description or "absorbed dose",
                     when=when)
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = ct.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ct.get("PositionReferenceIndicator", "")
    ds.ImageType = ["DERIVED", "SECONDARY", "DOSE"]
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = [_ds(round(float(v), 10)) for v in orientation]
    ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
    ds.SliceThickness = _ds(offsets[1] - offsets[0]) if len(offsets) > 1 else _ds(float(ct.get("SliceThickness", 0) or 0))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = int(pixels.shape[0])
    ds.FrameIncrementPointer = 0x3004000C  # GridFrameOffsetVector
    ds.GridFrameOffsetVector = [_ds(v) for v in offsets]
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = DOSE_SUMMATION_TYPE
    ds.DoseComment = "radiopharmaceutical therapy, time-integrated"
    ds.DoseGridScaling = scaling
    ds.TissueHeterogeneityCorrection = "IMAGE"
    refs = []
    for header in ct_instances:
        item = Dataset()
        item.ReferencedSOPClassUID = header.SOPClassUID
        item.ReferencedSOPInstanceUID = header.SOPInstanceUID
        refs.append(item)
    ds.ReferencedImageSequence = Sequence(refs)
    series = Dataset()
    series.SeriesInstanceUID = ct.SeriesInstanceUID
    series.ReferencedInstanceSequence = Sequence([_copy(r) for r in refs])
    ds.ReferencedSeriesSequence = Sequence([series])
    ds.PixelData = pixels.tobytes()
    return ds


def _copy(item: Dataset) -> Dataset:
    out = Dataset()
    out.ReferencedSOPClassUID = item.ReferencedSOPClassUID
    out.ReferencedSOPInstanceUID = item.ReferencedSOPInstanceUID
    return out
