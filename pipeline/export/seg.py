"""The label map as a DICOM Segmentation (highdicom), on the frames of the reference CT.

Each label present in the map becomes one segment (BINARY), numbered 1, 2, ... in the order of
the label ids, named by the vocabulary (``kidney_left``, ...) and coded with SNOMED CT from
pydicom's code dictionary (kidney with the laterality modifier, liver, spleen, bone marrow in the
lumbar spine, lumbar spine, entire body, lesion). Frames follow the CT slices one to one, so a
viewer needs no resampling; empty frames are left out.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from pipeline import __version__
from pipeline.image import Image

from .common import MANUFACTURER, copy_patient_and_study

__all__ = ["segment_codes", "build_segmentation"]


def segment_codes(name: str):
    """(category, type, laterality modifier or None, anatomic region or None) for a label name."""
    anatomy = codes.SCT.AnatomicalStructure
    table = {
        "kidney_left": (anatomy, codes.SCT.Kidney, codes.SCT.Left, None),
        "kidney_right": (anatomy, codes.SCT.Kidney, codes.SCT.Right, None),
        "liver": (anatomy, codes.SCT.Liver, None, None),
        "spleen": (anatomy, codes.SCT.Spleen, None, None),
        "marrow_L2L4": (codes.SCT.Tissue, codes.SCT.BoneMarrow, None, codes.SCT.LumbarSpine),
        "vertebrae_L2L4": (anatomy, codes.SCT.LumbarSpine, None, None),
        "body": (anatomy, codes.SCT.EntireBody, None, None),
    }
    if name in table:
        return table[name]
    if name.startswith("lesion"):
        return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion, None, None
    return anatomy, codes.SCT.AnatomicalStructure, None, None


def _frames(labels: Image, n_slices: int) -> np.ndarray:
    """Label map as ``[slice, row, column]`` in the order of the CT slices (``k`` increasing)."""
    array = np.asarray(labels.array)
    if array.shape[2] != n_slices:
        raise ValueError("label map and CT series have different numbers of slices")
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


def build_segmentation(labels: Image, vocabulary: dict, ct_headers, *, sop_instance_uid: str,
                       series_uid: str, series_number: int = 902) -> Dataset:
    """DICOM Segmentation of ``labels`` (on the CT grid) referencing the CT slices ``ct_headers``.

    Parameters
    ----------
    labels : Image
        Integer label map on the reference CT grid (``k`` = slice order of ``ct_headers``).
    vocabulary : dict
        Label id -> name.
    ct_headers : sequence of pydicom.Dataset
        Reference CT slice headers sorted by ``k`` (no pixel data needed).
    """
    import highdicom as hd

    frames = _frames(labels, len(ct_headers))
    present = [int(v) for v in np.unique(frames) if v != 0]
    if not present:
        raise ValueError("the label map is empty")
    lookup = np.zeros(int(max(present)) + 1, np.uint16)
    descriptions = []
    algorithm = hd.AlgorithmIdentificationSequence(name="spectdose segment", version=__version__,
                                                   family=codes.DCM.Segmentation)
    modifiers = {}
    for number, value in enumerate(present, start=1):
        lookup[value] = number
        name = vocabulary.get(value, f"label_{value}")
        category, kind, laterality, region = segment_codes(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, anatomic_regions=[region] if region else None))
        if laterality is not None:
            modifiers[number] = laterality
    segment_numbers = lookup[frames.astype(np.int64, copy=False)]
    dtype = np.uint8 if len(present) < 256 else np.uint16
    with warnings.catch_warnings():
        # highdicom warns about the hospital's own single-component patient names; they are copied as is
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        seg = hd.seg.Segmentation(
            source_images=list(ct_headers), pixel_array=segment_numbers.astype(dtype),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
            series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_instance_uid,
            instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="spectdose",
            software_versions=__version__, device_serial_number="none",
            content_description="organ and lesion label map of the dosimetry", content_label="SPECTDOSE",
            series_description="dosimetry label map")
    for item in seg.SegmentSequence:
        modifier = modifiers.get(int(item.SegmentNumber))
        if modifier is not None:
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
                modifier.value, modifier.scheme_designator, modifier.meaning)
            item.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = Sequence([code])
    copy_patient_and_study(seg, ct_headers[0])
    return seg
