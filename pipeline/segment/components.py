"""Selecting pieces of a connected-component label array (from :func:`scipy.ndimage.label`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["select_labels", "component_sizes", "largest_component"]


def select_labels(lab: np.ndarray, ids) -> np.ndarray:
    """Where ``lab`` holds one of ``ids``: ``np.isin(lab, ids)`` by a lookup table.

    Parameters
    ----------
    lab : numpy.ndarray of non-negative int
        Component labels, any shape.
    ids : array_like of int
        The labels to keep.

    Returns
    -------
    numpy.ndarray of bool, same shape
        On a 256 x 256 x 303 body label array: 0.1 s instead of ``np.isin``'s 1 s.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    top = int(lab.max()) if lab.size else 0
    keep = np.zeros(top + 1, bool)
    ids = ids[(ids >= 0) & (ids <= top)]
    keep[ids] = True
    return keep[lab]


def component_sizes(lab: np.ndarray, n: int) -> np.ndarray:
    """Voxel counts of the components 1..``n`` of a label array.

    Parameters
    ----------
    lab : numpy.ndarray of non-negative int
        Component labels (0: background), any shape.
    n : int
        Number of components (the second value of :func:`scipy.ndimage.label`).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        The same as ``ndi.sum_labels(lab > 0, lab, range(1, n + 1))``, by ``np.bincount``:
        on the GE CT's 512 x 512 x 303 body labels 0.16 s instead of 9 s.
    """
    return np.bincount(lab.ravel(), minlength=n + 1)[1 : n + 1]


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest connected piece of ``mask`` (face connectivity) and its voxel count.

    Parameters
    ----------
    mask : numpy.ndarray of bool, any shape

    Returns
    -------
    piece : numpy.ndarray of bool, same shape
        All False when ``mask`` is empty; of equal pieces, the first labelled.
    size : int
        Its voxel count (0 when empty).
    """
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool), 0
    sizes = component_sizes(lab, n)
    i = int(np.argmax(sizes))
    return lab == i + 1, int(sizes[i])
