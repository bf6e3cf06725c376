"""Completion of a vertebral body whose per-slice outline is missing on some of its slices.

The per-slice body outline of :func:`.spine.analyse_spine` fills the cortical shell thresholded
at the bone level. On an osteopenic spine with a thin cortex (trabecular bone at 80-150 HU,
common in the elderly and on contrast-enhanced CT read at a soft-tissue kernel), the shell is
closed only near the endplates: the outline is whole on those slices and a cortical fragment
on the others (TotalSegmentator example, L4: 1746 mm^2 on one slice, 150-380 mm^2 on five),
and the marrow VOI eroded from it is empty. Where a named vertebra's outline is whole on too
few of its slices, each deficient slice takes the outline of the nearest whole slice of the
same vertebra, restricted to tissue above ``soft_hu`` (trabecular bone; the spinal canal, CSF
near 10 HU, and the fat around the body stay out), holes filled, the piece that overlaps the
reference outline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["complete_body_slices"]


def complete_body_slices(mask: np.ndarray, sm: np.ndarray, k_lo: int, k_hi: int, soft_hu: float = 60.0,
                         whole_fraction: float = 0.5, min_whole_cover: float = 0.8) -> tuple[np.ndarray, int]:
    """The body of one vertebra with its deficient slices completed.

    Parameters
    ----------
    mask : numpy.ndarray, shape (I, J, K), bool
        The vertebra's body outline (only slices ``k_lo..k_hi`` are read).
    sm : numpy.ndarray, shape (I, J, K)
        Smoothed CT, HU.
    k_lo, k_hi : int
        The vertebra's slices (inclusive), between its two discs.
    soft_hu : float
        Lowest CT number (HU) of the body's interior (above fat, CSF and most muscle).
    whole_fraction : float
        A slice is whole when its outline area is at least this fraction of the vertebra's
        largest slice area (on a thin-cortex spine most slices are fragments, so a percentile
        would take a fragment for the norm).
    min_whole_cover : float
        The vertebra is completed only when fewer than this fraction of its slices are whole
        (a normal spine, whole on nearly every slice, is left as it is).

    Returns
    -------
    body : numpy.ndarray, shape (I, J, K), bool
    completed : int
        Number of slices completed (0: unchanged).
    """
    out = mask.copy()
    ks = np.arange(k_lo, k_hi + 1)
    area = mask[:, :, k_lo:k_hi + 1].sum(axis=(0, 1)).astype(float)
    if not np.any(area > 0):
        return out, 0
    whole = area >= whole_fraction * area.max()
    if np.mean(whole) >= min_whole_cover:
        return out, 0
    ref_ks = ks[whole]
    done = 0
    for k in ks[~whole]:
        r = int(ref_ks[np.argmin(np.abs(ref_ks - k))])
        ref = mask[:, :, r]
        cand = ndi.binary_fill_holes(ref & (sm[:, :, k] > soft_hu))
        lab, n = ndi.label(cand)
        if n == 0:
            continue
        overlap = ndi.sum(mask[:, :, r], lab, np.arange(1, n + 1))
        piece = lab == int(np.argmax(overlap)) + 1
        if piece.sum() > mask[:, :, k].sum():
            out[:, :, k] = piece | mask[:, :, k]
            done += 1
    return out, done
