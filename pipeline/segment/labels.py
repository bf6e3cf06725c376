"""The label vocabulary of DESIGN.md and its JSON form.

Fixed ids: 1 kidney_left, 2 kidney_right, 3 liver, 4 spleen, 5 marrow_L2L4
(the red-marrow VOI), 6 vertebrae_L2L4 (whole bodies), 7 body; lesions from
100 up (``lesion_1`` = 100, ``lesion_2`` = 101, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import read_json, write_json
from ..errors import InputError

__all__ = [
    "KIDNEY_LEFT", "KIDNEY_RIGHT", "LIVER", "SPLEEN", "MARROW_L2L4", "VERTEBRAE_L2L4", "BODY",
    "LESION_FIRST", "FIXED_LABELS", "ORGAN_NAMES", "lesion_name", "vocabulary_for",
    "write_vocabulary", "read_vocabulary", "name_to_id",
]

KIDNEY_LEFT = 1
KIDNEY_RIGHT = 2
LIVER = 3
SPLEEN = 4
MARROW_L2L4 = 5
VERTEBRAE_L2L4 = 6
BODY = 7
LESION_FIRST = 100

#: id -> name of the fixed labels (DESIGN.md).
FIXED_LABELS = {
    KIDNEY_LEFT: "kidney_left",
    KIDNEY_RIGHT: "kidney_right",
    LIVER: "liver",
    SPLEEN: "spleen",
    MARROW_L2L4: "marrow_L2L4",
    VERTEBRAE_L2L4: "vertebrae_L2L4",
    BODY: "body",
}

#: The organs a complete segmentation must contain (an empty one is an error).
ORGAN_NAMES = ("kidney_left", "kidney_right", "liver", "spleen")


def lesion_name(label_id: int) -> str:
    """Name of a lesion label: ``lesion_1`` for id 100, ``lesion_2`` for 101, ..."""
    if label_id < LESION_FIRST:
        raise ValueError(f"lesion ids start at {LESION_FIRST}, got {label_id}")
    return f"lesion_{label_id - LESION_FIRST + 1}"


def name_to_id(name: str) -> int:
    """Label id of a vocabulary name (fixed names or ``lesion_<n>``)."""
    for k, v in FIXED_LABELS.items():
        if v == name:
            return k
    if name.startswith("lesion_") and name[7:].isdigit() and int(name[7:]) >= 1:
        return LESION_FIRST + int(name[7:]) - 1
    raise KeyError(f"unknown structure name {name!r}; known: {', '.join(FIXED_LABELS.values())}, lesion_<n>")


def vocabulary_for(labels: np.ndarray) -> dict[int, str]:
    """Vocabulary (id -> name) of the labels present in an integer label array (0 excluded)."""
    vocab = {}
    for value in np.unique(labels):
        value = int(value)
        if value == 0:
            continue
        if value in FIXED_LABELS:
            vocab[value] = FIXED_LABELS[value]
        elif value >= LESION_FIRST:
            vocab[value] = lesion_name(value)
        else:
            raise ValueError(f"label id {value} is not in the DESIGN.md vocabulary")
    return vocab


def write_vocabulary(path, vocabulary: dict[int, str], **extra) -> Path:
    """Write ``labels.json``: ``{"labels": {"1": "kidney_left", ...}, ...extra}`` atomically."""
    data = {"labels": {str(int(k)): v for k, v in sorted(vocabulary.items())}, **extra}
    return write_json(path, data)


def read_vocabulary(path) -> dict[int, str]:
    """Read a vocabulary written by :func:`write_vocabulary` (or a plain ``{"id": "name"}`` map)."""
    path = Path(path)
    data = read_json(path, "label vocabulary")
    table = data.get("labels", data) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise InputError(path, "label vocabulary must be a JSON object id -> name")
    try:
        return {int(k): str(v) for k, v in table.items()}
    except (TypeError, ValueError):
        raise InputError(path, "label vocabulary keys must be integer ids") from None
