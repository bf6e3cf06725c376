"""Regions of the voxel-level partial-volume correction (:mod:`pipeline.kinetics.pvc_voxel`).

Fractions ``f_j(v)`` of every SPECT voxel that sum to one: the labels (some split into two
sub-regions on the label map's grid, :func:`split_by_depth`), the part of the field of view in no
label, and the background split into uptake classes (:func:`build_regions`). The reasons for each
choice are at the constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..grid import bounding_box
from .tac import Occupancy

__all__ = ["BACKGROUND_LABELS", "BACKGROUND_EDGES_REL", "KIDNEY_LABELS", "KIDNEY_CORTEX_MM", "INNER_OFFSET",
           "VERTEBRA_LABEL", "MARROW_LABEL", "MARROW_MARGIN_MM", "NEAR_OFFSET", "Regions", "build_regions",
           "split_by_depth"]

#: Labels treated as background and split by uptake (DESIGN.md: 7 body).
BACKGROUND_LABELS = (7,)
#: Class edges of the background split, in units of the median background concentration of the
#: time point: cold (< 0.5: fat, lung, air-filled bowel), warm (0.5-2: muscle, soft tissue), hot
#: (2-5: blood pool, bowel content), very hot (> 5: bladder, excreting structures).
BACKGROUND_EDGES_REL = (0.5, 2.0, 5.0)
#: Kidney labels split into an outer shell (cortex) and the inside (medulla, pelvis) as two regions.
KIDNEY_LABELS = (1, 2)
#: Depth of the outer shell, mm: the adult renal cortex is about 7-10 mm thick (ultrasound and CT
#: reference values; the sample patient's is 9-10 mm). The cortex holds most of the activity of
#: kidney-seeking radiopharmaceuticals, so a uniform kidney region misplaces it.
KIDNEY_CORTEX_MM = 8.0
#: Region ids of the inner parts: label id + this.
INNER_OFFSET = 10000
#: The vertebrae label (6) next to the marrow VOI (5), split at this distance from the VOI, mm:
#: the EANM VOI is drawn inside the trabecular bone at a margin from the cortex (Hindorf et al.
#: 2010; the built-in segmenter and the sample patient use 4 mm), so the vertebra voxels within
#: the margin are marrow-filled trabecular bone, those beyond are cortex and posterior elements.
#: With one uniform vertebra region the marrow VOI TIA was over-corrected by 18 %.
VERTEBRA_LABEL, MARROW_LABEL, MARROW_MARGIN_MM = 6, 5, 4.0
#: Region id of the vertebra voxels next to the marrow VOI: label id + this.
NEAR_OFFSET = 20000

@dataclass(frozen=True, eq=False)
class Regions:
    """The regions of one time point.

    Attributes
    ----------
    names : tuple of str
    label_ids : tuple
        Label id of each region, or None for a background uptake class.
    fractions : list of numpy.ndarray
        ``f_j``, each shape (I, J, K), float32; they sum to 1 in every voxel.
    """

    names: tuple
    label_ids: tuple
    fractions: list

    def volume_ml(self, voxel_volume_ml: float) -> np.ndarray:
        """Region volumes, mL, shape (R,)."""
        return np.array([float(f.sum(dtype=np.float64)) for f in self.fractions]) * voxel_volume_ml


def build_regions(occupancy: Occupancy, observed: np.ndarray, names: dict, *,
                  background_labels=BACKGROUND_LABELS, edges_rel=BACKGROUND_EDGES_REL) -> Regions:
    """Label regions plus the background split into uptake classes (see the module docstring).

    Parameters
    ----------
    occupancy : Occupancy
    observed : numpy.ndarray, shape (I, J, K)
        Observed activity concentration of this time point, Bq/mL.
    names : dict
        Label id -> name.
    background_labels : sequence of int
        Labels merged into the background before the split.
    edges_rel : sequence of float
        Class edges, multiples of the median background concentration (increasing, > 0).
    """
    from scipy.ndimage import gaussian_filter

    fr, ids, nm = [], [], []
    rest = np.clip(1.0 - occupancy.fractions.sum(axis=0, dtype=np.float32), 0.0, 1.0)
    rest[rest < 1e-6] = 0.0  # float32 round-off of fractions that sum to one
    background = np.zeros_like(rest)
    for lid, f in zip(occupancy.label_ids, occupancy.fractions):
        if lid in background_labels:
            background += f
        elif float(f.sum(dtype=np.float64)) > 0:
            fr.append(f)
            ids.append(int(lid))
            nm.append(names.get(lid, f"label_{lid}"))
    if float(background.sum(dtype=np.float64)) > 0:
        if float(rest.sum(dtype=np.float64)) > 0:  # air / outside the body: one region of its own
            fr.append(rest)
            ids.append(None)
            nm.append("outside_labels")
    else:  # no body label: the unlabelled field of view is the background
        background = rest
    smooth = gaussian_filter(np.asarray(observed, np.float32), 1.0, mode="nearest")
    inside = background > 0.5
    med = float(np.median(smooth[inside])) if inside.any() else 0.0
    if med > 0:
        cls = np.digitize(smooth, np.asarray(edges_rel, float) * med)
        bounds = [0.0, *edges_rel, math.inf]
        for k in range(len(bounds) - 1):
            f = np.where(cls == k, background, 0.0).astype(np.float32)
            if float(f.sum(dtype=np.float64)) > 0:
                fr.append(f)
                ids.append(None)
                nm.append(f"background_{bounds[k]:g}-{bounds[k + 1]:g}x_median")
    elif float(background.sum(dtype=np.float64)) > 0:
        fr.append(background.astype(np.float32))
        ids.append(None)
        nm.append("background")
    return Regions(tuple(nm), tuple(ids), fr)


def split_by_depth(labels, label_ids=KIDNEY_LABELS, depth_mm: float = KIDNEY_CORTEX_MM, split_vertebrae=True):
    """Label map with the inside of each of ``label_ids`` (deeper than ``depth_mm``) relabelled.

    With ``split_vertebrae``, the vertebrae label's voxels within :data:`MARROW_MARGIN_MM` of the
    marrow VOI become the region ``6 +`` :data:`NEAR_OFFSET` (trabecular rim around the VOI).

    Parameters
    ----------
    labels : Image
        Integer label map (its own grid, usually the CT's).
    label_ids : sequence of int
    depth_mm : float
        Thickness of the outer shell kept under the original id, mm (Euclidean distance to the
        label's boundary on the label map's grid).

    Returns
    -------
    Image
        The label map with the inner voxels of label ``L`` set to ``L +`` :data:`INNER_OFFSET`.
    dict
        Sub-region id -> original id (only labels that were split).
    """
    from scipy.ndimage import distance_transform_edt

    arr = np.asarray(labels.array)
    out = arr.astype(np.int32, copy=True)
    parent = {}
    for lid in label_ids:
        mask = arr == lid
        box = bounding_box(mask, 1)
        if box is None:
            continue
        depth = distance_transform_edt(mask[box], sampling=labels.voxel_size_mm)
        inner = np.zeros_like(mask)
        inner[box] = depth > depth_mm
        if inner.any():
            out[inner] = lid + INNER_OFFSET
            parent[lid + INNER_OFFSET] = lid
    vert, marrow = arr == VERTEBRA_LABEL, arr == MARROW_LABEL
    if split_vertebrae and vert.any() and marrow.any():
        margin = np.ceil(MARROW_MARGIN_MM / np.asarray(labels.voxel_size_mm, float)).astype(int) + 1
        box = bounding_box(marrow, margin)
        dist = distance_transform_edt(~marrow[box], sampling=labels.voxel_size_mm)
        near = np.zeros_like(vert)
        near[box] = vert[box] & (dist <= MARROW_MARGIN_MM)
        if near.any() and not np.array_equal(near, vert):
            out[near] = VERTEBRA_LABEL + NEAR_OFFSET
            parent[VERTEBRA_LABEL + NEAR_OFFSET] = VERTEBRA_LABEL
    return labels.with_array(out), parent
