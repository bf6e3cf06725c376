"""Pieces of masks: connected components (from :func:`scipy.ndimage.label`) and an organ's thin appendages."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..grid import bounding_box
from .marrow import ellipsoid_structure

__all__ = ["select_labels", "component_sizes", "largest_component", "keep_largest_of_pair",
           "without_thin_appendages", "fill_holes"]


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


def fill_holes(mask: np.ndarray, per_slice: bool = False) -> np.ndarray:
    """``mask`` with its holes filled: the background pieces that do not reach the array's border.

    The same result as :func:`scipy.ndimage.binary_fill_holes` (background connected
    through faces), found by labelling the background once inside the mask's bounding box
    grown by one voxel, instead of dilating from the border until nothing changes: on the
    GE CT's 512 x 512 x 303 body, slice by slice, 0.2 s instead of 0.6 s.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (I, J, K)
    per_slice : bool
        Fill each axial slice (last axis) on its own, as ``binary_fill_holes(mask[:, :, k])``
        for every ``k``: a hole is then background enclosed within its slice.

    Returns
    -------
    numpy.ndarray of bool, same shape
    """
    mask = np.asarray(mask, bool)
    out = mask.copy()
    if mask.ndim != 3:
        raise ValueError(f"fill_holes takes a 3-D mask, got {mask.ndim}-D")
    box = bounding_box(mask, (1, 1, 0) if per_slice else 1)
    if box is None:
        return out
    bg = ~mask[box]
    structure = ndi.generate_binary_structure(3, 1)
    if per_slice:
        structure[:, :, 0] = structure[:, :, 2] = False  # in-plane neighbours only
    lab, n = ndi.label(bg, structure)
    if n == 0:
        return out
    edge = np.zeros(n + 1, bool)
    faces = [lab[0], lab[-1], lab[:, 0], lab[:, -1]]
    if not per_slice:
        faces += [lab[:, :, 0], lab[:, :, -1]]
    for face in faces:
        edge[np.unique(face)] = True
    edge[0] = True  # label 0 is the mask itself
    out[box] |= ~edge[lab]
    return out


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


def keep_largest_of_pair(mask_a: np.ndarray, mask_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two organs after their common boundary moved, each as one piece.

    Each keeps its largest 26-connected piece; a smaller piece cut off goes to the other organ
    when it touches it, else to neither (first for ``mask_a``, then for ``mask_b``).

    Parameters
    ----------
    mask_a, mask_b : numpy.ndarray of bool, same shape, not overlapping

    Returns
    -------
    new_a, new_b : numpy.ndarray of bool
    """
    mask_a, mask_b = _largest_giving_rest(mask_a, mask_b)
    mask_b, mask_a = _largest_giving_rest(mask_b, mask_a)
    return mask_a, mask_b


def _largest_giving_rest(mask: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mask``'s largest 26-connected piece, and ``other`` with the removed pieces that touch it."""
    lab, n = ndi.label(mask, np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask, other
    keep = lab == int(np.argmax(component_sizes(lab, n))) + 1
    dropped = np.where(keep, 0, lab)
    touching = np.unique(dropped[ndi.binary_dilation(other) & (dropped > 0)])
    return keep, other | select_labels(dropped, touching[touching > 0])


def without_thin_appendages(mask: np.ndarray, voxel_size_mm, radius_mm: float) -> np.ndarray:
    """The mask without the parts thinner than ``2 * radius_mm`` that stick out of its body.

    The body is the morphological opening of the mask by a ball of ``radius_mm``; what is kept
    is the mask within ``radius_mm`` of the body (so its own outline, corners and edges stay,
    and a thin sheet or strand reaching out of it is cut where it leaves the body). An organ
    refined on the CT numbers alone continues into neighbours with its CT numbers through such
    sheets (the diaphragm and body-wall muscle along the liver, the crus beside a kidney).

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (I, J, K)
    voxel_size_mm : sequence of 3 float
    radius_mm : float
        Ball radius, mm; 0 returns the mask.

    Returns
    -------
    numpy.ndarray of bool, shape (I, J, K)
        The mask unchanged when nothing of it is thicker than the ball.
    """
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    ball = ellipsoid_structure(radius_mm, voxel_size_mm)
    pad = np.array(ball.shape) // 2 + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    m = mask[box]
    body = ndi.binary_opening(m, ball)
    out = mask.copy()
    if body.any():
        out[box] = m & ndi.binary_dilation(body, ball)
    return out
