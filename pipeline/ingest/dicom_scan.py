"""Walk a folder of DICOM files and group them into series.

Files are grouped by SeriesInstanceUID only (never by modality); each series
is then classified by its SOP class, modality and ImageType. Files that are
not DICOM are skipped with a note; a file that starts like DICOM but cannot
be read is an error that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputError

__all__ = ["DicomSeries", "ScanResult", "scan_folder", "classify", "KINDS"]

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE = "1.2.840.10008.5.1.4.1.1.20"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its multi-frame variants 1.2.840.10008.5.1.4.1.1.7.x

#: Series kinds. ``ct`` and the two SPECT layouts are read; the others are skipped with a note.
KINDS = {
    "ct": "CT image series",
    "spect_multiframe": "NM reconstructed tomogram (multi-frame)",
    "spect_slices": "reconstructed SPECT stored one slice per file",
    "projections": "NM tomographic projections (not a reconstruction)",
    "planar": "NM planar image (static, whole body, dynamic or gated)",
    "secondary_capture": "secondary capture (screenshot, not quantitative)",
    "other": "other object",
}


@dataclass(frozen=True)
class DicomSeries:
    """The files of one SeriesInstanceUID and their headers (no pixel data).

    Attributes
    ----------
    series_uid : str
    files : tuple of pathlib.Path
    headers : tuple of pydicom.Dataset
        Read with ``stop_before_pixels=True``, same order as ``files``.
    kind : str
        One of :data:`KINDS`.
    """

    series_uid: str
    files: tuple
    headers: tuple
    kind: str

    @property
    def first(self):
        """Header of the first file."""
        return self.headers[0]

    @property
    def frame_of_reference_uid(self) -> str | None:
        return str(self.first.get("FrameOfReferenceUID", "") or "") or None

    def describe(self) -> str:
        """Short PHI-free description: kind, modality, file count and one file name."""
        return (f"{KINDS[self.kind]} (modality {self.first.get('Modality', '?')}, "
                f"{len(self.files)} file(s), e.g. {self.files[0].name})")


@dataclass
class ScanResult:
    """Series found in a folder and notes about what was skipped."""

    series: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def of_kind(self, *kinds) -> list:
        return [s for s in self.series if s.kind in kinds]


def _looks_like_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_header(path: Path):
    """Header of ``path`` or ``None`` when the file is not DICOM."""
    import pydicom

    if _looks_like_dicom(path):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            ds.get("SeriesInstanceUID")  # force parsing of the elements we need
            ds.get("SOPClassUID")
        except Exception as exc:  # pydicom raises many kinds on a damaged file
            raise InputError(path, f"DICOM file is truncated or corrupt ({type(exc).__name__}: {exc})") from None
        return ds
    # Files without the 128-byte preamble: accept only a plausible raw data set.
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if ds.get("SOPClassUID") and ds.get("SeriesInstanceUID"):
            return ds
    except Exception:  # noqa: BLE001 - anything unreadable without the DICM marker is "not DICOM"
        pass
    return None


def _image_type(ds) -> list[str]:
    value = ds.get("ImageType", [])
    if isinstance(value, str):
        value = value.split("\\")
    return [str(v).upper() for v in value]


def classify(ds) -> str:
    """Kind of series (see :data:`KINDS`) from the header of one of its files."""
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")).upper()
    itype = _image_type(ds)
    if sop == SECONDARY_CAPTURE or sop.startswith(SECONDARY_CAPTURE + "."):
        return "secondary_capture"
    if "PixelSpacing" not in ds and sop != NM_IMAGE:
        return "other"
    if sop == CT_IMAGE:
        return "ct"
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    if sop == NM_IMAGE:
        third = itype[2] if len(itype) > 2 else ""
        if third in ("RECON TOMO", "RECON GATED TOMO"):
            if nframes == 1 and "ImagePositionPatient" in ds:
                return "spect_slices"
            return "spect_multiframe"
        if third in ("TOMO", "GATED TOMO"):
            return "projections"
        if third in ("STATIC", "WHOLE BODY", "DYNAMIC", "GATED"):
            return "planar"
        if nframes == 1 and "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            return "spect_slices"
        return "planar" if third else "other"
    if modality in ("NM", "PT") and nframes == 1 and "ImagePositionPatient" in ds \
            and "ImageOrientationPatient" in ds:
        return "spect_slices"  # PET-like layout: one slice per file
    return "other"


def scan_folder(folder) -> ScanResult:
    """Find every DICOM file under ``folder`` (any nesting) and group by SeriesInstanceUID.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    ScanResult
        Series sorted by their first file name; notes for non-DICOM files and
        for series that are not read (projections, planar, secondary capture, ...).

    Raises
    ------
    InputError
        The folder does not exist, a DICOM file is damaged, or a series mixes
        SOP classes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "DICOM folder not found")
    result = ScanResult()
    groups: dict[str, list] = {}
    skipped = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            ds = _read_header(path)
            if ds is None:
                skipped.append(path)
                continue
            uid = str(ds.get("SeriesInstanceUID", ""))
            if not uid:
                raise InputError(path, "DICOM file has no SeriesInstanceUID")
            groups.setdefault(uid, []).append((path, ds))
    for path in skipped:
        result.notes.append(f"{path}: not a DICOM file; ignored")
    for uid, members in groups.items():
        sops = {str(ds.get("SOPClassUID", "")) for _, ds in members}
        if len(sops) > 1:
            raise InputError(members[0][0], f"series mixes SOP classes {sorted(sops)}; cannot read it as one volume")
        files = tuple(p for p, _ in members)
        headers = tuple(ds for _, ds in members)
        series = DicomSeries(uid, files, headers, classify(headers[0]))
        result.series.append(series)
        if series.kind not in ("ct", "spect_multiframe", "spect_slices"):
            result.notes.append(f"{files[0]}: skipped {series.describe()}")
    result.series.sort(key=lambda s: str(s.files[0]))
    if not result.series:
        raise InputError(folder, "no DICOM files found")
    return result
