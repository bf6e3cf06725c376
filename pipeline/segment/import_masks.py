"""Import user masks: NIfTI label maps, DICOM SEG, DICOM RTSTRUCT, TotalSegmentator folders.

Every reader returns ``{structure name: Image (bool mask on the CT grid)}``
with names of the spectdose vocabulary (``kidney_left``, ``liver``, ...,
``vertebrae_L2``, ``vertebrae_L3``, ``vertebrae_L4`` or ``vertebrae_L2L4``,
``marrow_L2L4``, ``body``, ``lesion_<n>``). Names in the files are matched
through :func:`canonical_name` (case, spaces, "left kidney", "Kidney L" ...).
Masks on another grid go through :func:`pipeline.segment.conform.conform_to_ct`.

Exporters (:func:`write_dicom_seg`, :func:`write_rtstruct`) write a label map
on a CT geometry; they serve round-trip tests and users who want DICOM
objects of the spectdose labels. The DICOM readers and writers live in
:mod:`pipeline.segment.dicom_masks`, the name matching in
:mod:`pipeline.segment.structure_names`; both are re-exported here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import read_json
from ..errors import InputError
from ..image import Image
from ..imageio import read_image
from . import labels as L
from .conform import conform_to_ct
from .dicom_masks import read_dicom_seg, read_rtstruct, rasterise_contours, write_dicom_seg, write_rtstruct
from .structure_names import add_structure, canonical_name

__all__ = [
    "canonical_name", "read_nifti_labels", "read_totalsegmentator_folder", "read_dicom_seg",
    "read_rtstruct", "write_dicom_seg", "write_rtstruct", "rasterise_contours", "read_mapping",
    "TOTALSEGMENTATOR_FILES",
]

#: TotalSegmentator per-structure file stems used by spectdose.
TOTALSEGMENTATOR_FILES = ("kidney_left", "kidney_right", "liver", "spleen",
                          "vertebrae_L2", "vertebrae_L3", "vertebrae_L4", "body")


# --------------------------------------------------------------------------- NIfTI
def read_nifti_labels(path, ct: Image, mapping: dict | None = None, notes: list | None = None) -> dict:
    """Masks from one NIfTI label map.

    Parameters
    ----------
    path : str or os.PathLike
        Integer label map (``.nii`` / ``.nii.gz``).
    ct : Image
        The CT (target grid).
    mapping : dict, optional
        Structure name -> label value in the file (e.g. ``{"liver": 5}``).
        Default: the vocabulary in ``labels.json`` beside the file, else the
        DESIGN.md ids.
    """
    path = Path(path)
    image, _ = read_image(path, unit="label")
    if not np.issubdtype(np.asarray(image.array).dtype, np.integer):
        arr = np.asarray(image.array)
        if not np.allclose(arr, np.round(arr)):
            raise InputError(path, "label map has non-integer values")
        image = image.with_array(np.round(arr).astype(np.int32))
    if mapping is None:
        vocab_file = path.with_name("labels.json")
        if vocab_file.exists():
            mapping = {name: k for k, name in L.read_vocabulary(vocab_file).items()}
        else:
            mapping = {name: k for k, name in L.FIXED_LABELS.items()}
            for v in np.unique(image.array):
                if v >= L.LESION_FIRST:
                    mapping[L.lesion_name(int(v))] = int(v)
    image = conform_to_ct(image, ct, path, notes)
    arr = np.asarray(image.array)
    structures = {}
    for name, value in mapping.items():
        canon = canonical_name(name)
        if canon is None:
            continue
        add_structure(structures, canon, arr == int(value))
    return structures


def read_totalsegmentator_folder(folder, ct: Image, notes: list | None = None) -> dict:
    """Masks from a TotalSegmentator output folder (one ``<structure>.nii.gz`` per structure).

    The folder itself or its ``segmentations/`` subfolder is searched for
    :data:`TOTALSEGMENTATOR_FILES`; the organs and L2-L4 are required.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "TotalSegmentator output folder not found")
    if not (folder / "liver.nii.gz").exists() and (folder / "segmentations").is_dir():
        folder = folder / "segmentations"
    structures = {}
    missing = []
    for stem in TOTALSEGMENTATOR_FILES:
        f = folder / f"{stem}.nii.gz"
        if not f.exists():
            f = folder / f"{stem}.nii"
        if not f.exists():
            if stem != "body":
                missing.append(stem)
            continue
        image, _ = read_image(f, unit="label")
        image = conform_to_ct(image.with_array(np.asarray(image.array) > 0), ct, f, notes)
        structures[stem] = np.asarray(image.array) > 0
    if missing:
        raise InputError(folder, f"TotalSegmentator output lacks {', '.join(s + '.nii.gz' for s in missing)}")
    return structures


def read_mapping(path) -> dict:
    """A name -> label value mapping from a JSON file (``{"liver": 5, ...}`` or a labels.json)."""
    path = Path(path)
    data = read_json(path, "mapping file")
    if isinstance(data, dict) and "labels" in data:
        return {v: int(k) for k, v in data["labels"].items()}
    if not isinstance(data, dict):
        raise InputError(path, "mapping must be a JSON object name -> label value")
    try:
        return {str(k): int(v) for k, v in data.items()}
    except (TypeError, ValueError):
        raise InputError(path, "mapping values must be integer label values") from None
