"""DICOM SEG and RTSTRUCT: reading user masks onto the CT grid, and writing the spectdose labels.

Readers return ``{structure name: bool mask on the CT grid}`` (names through
:func:`pipeline.segment.structure_names.canonical_name`); :mod:`pipeline.segment.import_masks`
gathers them with the NIfTI and TotalSegmentator readers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..image import Image
from ..imageio import LPS_FROM_RAS
from .conform import conform_to_ct
from .structure_names import add_structure, canonical_name

__all__ = ["read_dicom_seg", "read_rtstruct", "write_dicom_seg", "write_rtstruct", "rasterise_contours"]


# --------------------------------------------------------------------------- DICOM helpers
def _ct_dicom_geometry(ct: Image):
    """(IOP row dir LPS, IOP column dir LPS, pixel spacing (row, col) mm, slice positions LPS (K, 3))."""
    vs = ct.voxel_size_mm
    d = ct.direction_ras
    row_dir = LPS_FROM_RAS @ d[:, 0]  # along i (columns of a DICOM frame)
    col_dir = LPS_FROM_RAS @ d[:, 1]  # along j (rows)
    pos = np.array([LPS_FROM_RAS @ ct.index_to_world([0, 0, k]) for k in range(ct.shape[2])])
    return row_dir, col_dir, (float(vs[1]), float(vs[0])), pos


def _new_uid():
    from pydicom.uid import generate_uid

    return generate_uid()


def _base_dataset(sop_class_uid: str, modality: str, filename, frame_of_reference_uid: str | None):
    import datetime as dt

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = _new_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(filename), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "spectdose"
    ds.PatientID = "spectdose"
    ds.StudyInstanceUID = _new_uid()
    ds.SeriesInstanceUID = _new_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or _new_uid()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    now = dt.datetime.now(dt.timezone.utc)
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.Manufacturer = "spectdose"
    return ds


def _save(ds, path):
    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return Path(path)


def _read_dicom(path, kind: str):
    import pydicom

    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{kind} file not found")
    try:
        return pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises several types for bad files
        raise InputError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- DICOM SEG
_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def write_dicom_seg(path, labels: Image, vocabulary: dict[int, str], frame_of_reference_uid: str | None = None):
    """Write a label map as a BINARY DICOM Segmentation (one segment per label, non-empty frames only).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.dcm``.
    labels : Image
        Integer label map; its grid is the SEG frame geometry (axial or oblique).
    vocabulary : dict
        id -> segment label (name).
    """
    from pydicom.dataset import Dataset
    from pydicom.pixels import pack_bits
    from pydicom.sequence import Sequence

    ds = _base_dataset(_SEG_SOP_CLASS, "SEG", path, frame_of_reference_uid)
    row_dir, col_dir, spacing, pos = _ct_dicom_geometry(labels)
    arr = np.asarray(labels.array)
    ds.SegmentationType = "BINARY"
    ds.ContentLabel = "SPECTDOSE"
    ds.ContentCreatorName = "spectdose"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 1
    ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.Rows = labels.shape[1]
    ds.Columns = labels.shape[0]
    segs, frames, per_frame = [], [], []
    for number, (value, name) in enumerate(sorted(vocabulary.items()), start=1):
        s = Dataset()
        s.SegmentNumber = number
        s.SegmentLabel = name
        s.SegmentAlgorithmType = "AUTOMATIC"
        s.SegmentAlgorithmName = "spectdose"
        segs.append(s)
        m = arr == value
        for k in np.flatnonzero(m.any(axis=(0, 1))):
            frames.append(m[:, :, k].T)  # DICOM frame is [row = j, column = i]
            f = Dataset()
            sid = Dataset()
            sid.ReferencedSegmentNumber = number
            f.SegmentIdentificationSequence = Sequence([sid])
            pp = Dataset()
            pp.ImagePositionPatient = [f"{v:.6f}" for v in pos[k]]
            f.PlanePositionSequence = Sequence([pp])
            fc = Dataset()
            fc.DimensionIndexValues = [number, int(k) + 1]
            f.FrameContentSequence = Sequence([fc])
            per_frame.append(f)
    if not frames:
        raise ValueError("label map is empty: nothing to write as DICOM SEG")
    ds.SegmentSequence = Sequence(segs)
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:.8f}" for v in list(row_dir) + list(col_dir)]
    shared.PlaneOrientationSequence = Sequence([po])
    pm = Dataset()
    pm.PixelSpacing = [f"{spacing[0]:.6f}", f"{spacing[1]:.6f}"]
    pm.SliceThickness = f"{labels.voxel_size_mm[2]:.6f}"
    pm.SpacingBetweenSlices = f"{labels.voxel_size_mm[2]:.6f}"
    shared.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = pack_bits(np.stack(frames).astype(np.uint8))
    return _save(ds, path)


def read_dicom_seg(path, ct: Image, notes: list | None = None) -> dict:
    """Masks from a DICOM Segmentation (BINARY or FRACTIONAL > 50%) placed on the CT grid.

    Every segment's frames are stacked along the normal of their orientation
    on a grid built from the SEG's own geometry, then brought to the CT grid
    (exact when the geometries agree, nearest-neighbour resampling with a note
    otherwise).
    """
    ds = _read_dicom(path, "DICOM SEG")
    if getattr(ds, "SOPClassUID", None) != _SEG_SOP_CLASS:
        raise InputError(path, "not a DICOM Segmentation Storage object")
    try:
        shared = ds.SharedFunctionalGroupsSequence[0]
        per_frame = ds.PerFrameFunctionalGroupsSequence
        pixels = ds.pixel_array
    except (AttributeError, IndexError, KeyError) as exc:
        raise InputError(path, f"DICOM SEG lacks functional groups or pixel data ({exc})") from None
    if pixels.ndim == 2:
        pixels = pixels[None]
    if ds.SegmentationType == "FRACTIONAL":
        pixels = pixels.astype(float) / float(getattr(ds, "MaximumFractionalValue", 255)) > 0.5
    else:
        pixels = pixels > 0

    def frame_attr(f, seq):
        return getattr(f, seq, None) or getattr(shared, seq, None)

    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    by_segment: dict[int, list] = {}
    for n, f in enumerate(per_frame):
        seg_no = int(frame_attr(f, "SegmentIdentificationSequence")[0].ReferencedSegmentNumber)
        iop = np.asarray(frame_attr(f, "PlaneOrientationSequence")[0].ImageOrientationPatient, float)
        ipp = np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, float)
        ps = np.asarray(frame_attr(f, "PixelMeasuresSequence")[0].PixelSpacing, float)
        by_segment.setdefault(seg_no, []).append((ipp, iop, ps, pixels[n]))
    structures = {}
    for seg_no, frames in by_segment.items():
        canon = canonical_name(names.get(seg_no, ""))
        if canon is None:
            if notes is not None:
                notes.append(f"{Path(path).name}: segment {names.get(seg_no)!r} not used")
            continue
        image = _stack_frames(frames, path)
        mask = conform_to_ct(image, ct, path, notes)
        add_structure(structures, canon, np.asarray(mask.array) > 0)
    return structures


def _stack_frames(frames, path) -> Image:
    """Build a 3-D mask Image from (IPP, IOP, pixel spacing, 2-D frame) tuples of one segment."""
    iop = frames[0][1]
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    ps = frames[0][2]
    d = np.array([np.dot(f[0], normal) for f in frames])
    order = np.argsort(d)
    d = d[order]
    steps = np.diff(np.unique(np.round(d, 3)))
    dz = float(np.min(steps)) if steps.size else 1.0
    origin = frames[order[0]][0]
    nk = int(round((d[-1] - d[0]) / dz)) + 1
    rows, cols = frames[0][3].shape
    arr = np.zeros((cols, rows, nk), np.uint8)
    for o in order:
        ipp = frames[o][0]
        off = ipp - origin
        k = int(round(np.dot(off, normal) / dz))
        if abs(np.dot(off, row_dir)) > 1e-2 or abs(np.dot(off, col_dir)) > 1e-2:
            raise InputError(path, "SEG frames of one segment are not on one stack of parallel planes")
        arr[:, :, k] |= frames[o][3].T.astype(np.uint8)
    direction_lps = np.stack([row_dir, col_dir, normal], axis=1)
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ direction_lps @ np.diag([ps[1], ps[0], dz])
    affine[:3, 3] = LPS_FROM_RAS @ origin
    return Image(arr, affine, "label")


# --------------------------------------------------------------------------- RTSTRUCT
_RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def _mask_contours(mask2d: np.ndarray):
    """Closed iso-0.5 contours of a 2-D mask in (i, j) index coordinates (holes included)."""
    import contourpy

    padded = np.pad(mask2d.astype(np.float64), 1)
    gen = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    lines = gen.lines(0.5)
    # contourpy uses x = column (second axis) = i of mask2d[j? no]: z[y, x]
    out = []
    for ln in lines:
        if len(ln) < 4:
            continue
        xy = np.asarray(ln) - 1.0  # undo padding
        out.append(np.stack([xy[:, 1], xy[:, 0]], axis=1))  # (row index, column index) = (i, j)
    return out


def write_rtstruct(path, labels: Image, vocabulary: dict[int, str], frame_of_reference_uid: str | None = None):
    """Write a label map as a DICOM RT Structure Set (closed planar contours on the label grid's slices)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = _base_dataset(_RTSTRUCT_SOP_CLASS, "RTSTRUCT", path, frame_of_reference_uid)
    ds.StructureSetLabel = "spectdose"
    ds.StructureSetDate = ds.ContentDate
    ds.StructureSetTime = ds.ContentTime
    arr = np.asarray(labels.array)
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = ds.FrameOfReferenceUID
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref_for])
    rois, contours, obs = [], [], []
    for number, (value, name) in enumerate(sorted(vocabulary.items()), start=1):
        r = Dataset()
        r.ROINumber = number
        r.ReferencedFrameOfReferenceUID = ds.FrameOfReferenceUID
        r.ROIName = name
        r.ROIGenerationAlgorithm = "AUTOMATIC"
        rois.append(r)
        c = Dataset()
        c.ReferencedROINumber = number
        c.ROIDisplayColor = [255, 0, 0]
        items = []
        m = arr == value
        for k in np.flatnonzero(m.any(axis=(0, 1))):
            for ij in _mask_contours(m[:, :, k]):
                ijk = np.column_stack([ij, np.full(len(ij), float(k))])
                lps = (labels.index_to_world(ijk)) @ LPS_FROM_RAS.T
                it = Dataset()
                it.ContourGeometricType = "CLOSED_PLANAR"
                it.NumberOfContourPoints = len(lps)
                it.ContourData = [f"{v:.4f}" for v in lps.ravel()]
                items.append(it)
        c.ContourSequence = Sequence(items)
        contours.append(c)
        o = Dataset()
        o.ObservationNumber = number
        o.ReferencedROINumber = number
        o.RTROIInterpretedType = "ORGAN"
        o.ROIInterpreter = ""
        obs.append(o)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(obs)
    return _save(ds, path)


def rasterise_contours(contours_lps: list, ct: Image, source=None) -> tuple[np.ndarray, int]:
    """Rasterise closed planar contours (LPS mm, shape (N, 3) each) onto the CT grid.

    Each contour is mapped to CT index space and drawn on the CT slice it lies
    in (even-odd rule: a contour inside another is a hole). Voxel centres
    inside the polygon are set.

    Returns
    -------
    mask : numpy.ndarray (I, J, K) bool
    off_plane : int
        Number of contours not lying in a CT slice plane (drawn on the nearest slice).
    """
    from matplotlib.path import Path as MplPath

    mask = np.zeros(ct.shape, bool)
    off_plane = 0
    for pts in contours_lps:
        ijk = ct.world_to_index(np.asarray(pts, float) @ LPS_FROM_RAS.T)
        k = float(np.mean(ijk[:, 2]))
        if np.ptp(ijk[:, 2]) > 0.5 or abs(k - round(k)) > 0.25:
            off_plane += 1
        k = int(round(k))
        if not 0 <= k < ct.shape[2]:
            continue
        poly = MplPath(ijk[:, :2])
        lo = np.maximum(np.floor(ijk[:, :2].min(0)).astype(int), 0)
        hi = np.minimum(np.ceil(ijk[:, :2].max(0)).astype(int), np.array(ct.shape[:2]) - 1)
        if np.any(hi < lo):
            continue
        ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
        inside = poly.contains_points(np.column_stack([ii.ravel(), jj.ravel()])).reshape(ii.shape)
        mask[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, k] ^= inside
    return mask, off_plane


def read_rtstruct(path, ct: Image, notes: list | None = None) -> dict:
    """Masks from a DICOM RT Structure Set, rasterised on the CT grid."""
    ds = _read_dicom(path, "RTSTRUCT")
    if getattr(ds, "SOPClassUID", None) != _RTSTRUCT_SOP_CLASS:
        raise InputError(path, "not a DICOM RT Structure Set Storage object")
    names = {int(r.ROINumber): str(r.ROIName) for r in getattr(ds, "StructureSetROISequence", [])}
    structures = {}
    for c in getattr(ds, "ROIContourSequence", []):
        name = names.get(int(c.ReferencedROINumber), "")
        canon = canonical_name(name)
        if canon is None:
            if notes is not None:
                notes.append(f"{Path(path).name}: ROI {name!r} not used")
            continue
        pts = []
        for it in getattr(c, "ContourSequence", []):
            if str(getattr(it, "ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue
            pts.append(np.asarray(it.ContourData, float).reshape(-1, 3))
        if not pts:
            add_structure(structures, canon, np.zeros(ct.shape, bool))
            continue
        allpts = np.concatenate(pts)
        ijk = ct.world_to_index(allpts @ LPS_FROM_RAS.T)
        inside = np.all((ijk > -0.5) & (ijk < np.asarray(ct.shape) - 0.5), axis=1).mean()
        if inside < 0.95:
            raise InputError(path, f"ROI {name!r}: only {100 * inside:.0f}% of its contour points lie inside the "
                                   "CT; the structure set is probably not of this CT; refusing to use it")
        mask, off = rasterise_contours(pts, ct, path)
        if off and notes is not None:
            notes.append(f"{Path(path).name}: ROI {name!r}: {off} contour(s) not in a CT slice plane were "
                         "drawn on the nearest CT slice")
        add_structure(structures, canon, mask)
    return structures
