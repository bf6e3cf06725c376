"""Structure names in users' files matched to the spectdose vocabulary (``kidney_left``, ``lesion_2``, ...)."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["canonical_name", "add_structure"]

_ALIASES = {
    "kidneyleft": "kidney_left", "leftkidney": "kidney_left", "kidneyl": "kidney_left", "lkidney": "kidney_left",
    "kidneyright": "kidney_right", "rightkidney": "kidney_right", "kidneyr": "kidney_right",
    "rkidney": "kidney_right",
    "liver": "liver", "spleen": "spleen", "body": "body", "external": "body", "skin": "body",
    "bodyoutline": "body",
    "marrowl2l4": "marrow_L2L4", "redmarrow": "marrow_L2L4", "marrow": "marrow_L2L4",
    "vertebrael2l4": "vertebrae_L2L4",
    "vertebrael2": "vertebrae_L2", "vertebrael3": "vertebrae_L3", "vertebrael4": "vertebrae_L4",
    "l2": "vertebrae_L2", "l3": "vertebrae_L3", "l4": "vertebrae_L4",
    "l2vertebra": "vertebrae_L2", "l3vertebra": "vertebrae_L3", "l4vertebra": "vertebrae_L4",
}


def canonical_name(name: str) -> str | None:
    """The spectdose structure name of a user's structure name, or None when not used."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key in _ALIASES:
        return _ALIASES[key]
    m = re.fullmatch(r"(lesion|tumou?r|gtv|met|metastasis)(\d*)", key)
    if m:
        return f"lesion_{int(m.group(2)) if m.group(2) else 1}"
    return None


def add_structure(structures: dict, name: str, mask: np.ndarray):
    """Put ``mask`` into ``structures[name]``, united with what is already there."""
    if name in structures:
        structures[name] = structures[name] | mask
    else:
        structures[name] = mask
