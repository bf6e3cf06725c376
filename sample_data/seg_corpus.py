"""Corrupted segmentations for testing the QC gate (:mod:`pipeline.segment.gate`).

Each function takes a correct label map (DESIGN ids, on its CT grid) and
returns a wrong one of a kind that happens in practice: a kidney label on
bowel, kidneys swapped, L2-L4 one level off, half a liver, a missing spleen, a
1 mL marrow VOI, another patient's masks, masks shifted by 30 mm. Removed
labels become ``body`` (7), as an editor's eraser would leave them.

All shifts are in world millimetres (RAS+), converted to whole voxels of the
grid, so that the corruptions mean the same on any orientation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from pipeline.image import Image
from pipeline.segment import labels as L

__all__ = ["CORRUPTIONS", "corrupt", "shift_labels", "kidney_on_bowel"]

_ORGAN_IDS = (L.KIDNEY_LEFT, L.KIDNEY_RIGHT, L.LIVER, L.SPLEEN, L.MARROW_L2L4, L.VERTEBRAE_L2L4)


def _voxel_shift(image: Image, shift_mm) -> np.ndarray:
    """Whole-voxel index shift of a world (RAS+ mm) translation."""
    m = image.affine[:3, :3]
    return np.round(np.linalg.solve(m, np.asarray(shift_mm, float))).astype(int)


def _translate(mask: np.ndarray, shift_vox) -> np.ndarray:
    out = np.zeros_like(mask)
    src = tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(shift_vox, mask.shape))
    dst = tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(shift_vox, mask.shape))
    out[dst] = mask[src]
    return out


def _erase(arr: np.ndarray, ids) -> np.ndarray:
    out = arr.copy()
    out[np.isin(out, ids)] = L.BODY
    return out


def shift_labels(labels: Image, shift_mm, ids=_ORGAN_IDS) -> Image:
    """Move the structures ``ids`` by ``shift_mm`` (RAS+ mm); the body stays."""
    arr = np.asarray(labels.array)
    out = _erase(arr, ids)
    s = _voxel_shift(labels, shift_mm)
    for i in ids:
        moved = _translate(arr == i, s)
        out[moved] = i
    return labels.with_array(out)


def _centroid_mm(image: Image, mask) -> np.ndarray:
    return image.index_to_world(np.array(ndi.center_of_mass(mask)))


def kidney_on_bowel(labels: Image, bowel: np.ndarray | None = None, side: int = L.KIDNEY_LEFT) -> Image:
    """The kidney label replaced by bowel of about the kidney's volume.

    With a bowel mask (same grid), the kidney becomes the bowel voxels nearest
    to a point 60 mm anterior of the kidney's centroid, as many as the kidney
    had; without one, the kidney is moved 60 mm anteriorly.
    """
    arr = np.asarray(labels.array)
    kid = arr == side
    n = int(kid.sum())
    if bowel is None or not bowel.any():
        return shift_labels(labels, (0.0, 60.0, 0.0), ids=(side,))
    target = _centroid_mm(labels, kid) + np.array([0.0, 60.0, 0.0])
    idx = np.argwhere(bowel & ~np.isin(arr, (L.LIVER, L.SPLEEN, L.KIDNEY_LEFT, L.KIDNEY_RIGHT)))
    d = np.linalg.norm(labels.index_to_world(idx) - target, axis=1)
    take = idx[np.argsort(d)[:n]]
    out = _erase(arr, (side,))
    out[tuple(take.T)] = side
    return labels.with_array(out)


def _swap_kidneys(labels: Image) -> Image:
    arr = np.asarray(labels.array)
    out = arr.copy()
    out[arr == L.KIDNEY_LEFT] = L.KIDNEY_RIGHT
    out[arr == L.KIDNEY_RIGHT] = L.KIDNEY_LEFT
    return labels.with_array(out)


def _levels_down_one(labels: Image) -> Image:
    """L2-L4 (labels 5, 6) moved inferiorly by one vertebra (a third of their extent)."""
    arr = np.asarray(labels.array)
    whole = np.isin(arr, (L.MARROW_L2L4, L.VERTEBRAE_L2L4))
    k = np.argwhere(whole)
    z = labels.index_to_world(k)[:, 2]
    pitch = (z.max() - z.min()) / 3.0 + 4.0  # body height + disc, about
    return shift_labels(labels, (0.0, 0.0, -pitch), ids=(L.MARROW_L2L4, L.VERTEBRAE_L2L4))


def _half_liver(labels: Image) -> Image:
    """The superior half of the liver erased (above its centroid)."""
    arr = np.asarray(labels.array)
    liver = arr == L.LIVER
    zc = _centroid_mm(labels, liver)[2]
    z = labels.world_grid()[..., 2]
    out = arr.copy()
    out[liver & (z > zc)] = L.BODY
    return labels.with_array(out)


def _no_spleen(labels: Image) -> Image:
    return labels.with_array(_erase(np.asarray(labels.array), (L.SPLEEN,)))


def _marrow_1ml(labels: Image) -> Image:
    """The marrow VOI cut to the 1 mL nearest its centroid (rest of it back to vertebra)."""
    arr = np.asarray(labels.array)
    marrow = arr == L.MARROW_L2L4
    idx = np.argwhere(marrow)
    c = _centroid_mm(labels, marrow)
    d = np.linalg.norm(labels.index_to_world(idx) - c, axis=1)
    n = max(1, int(round(1.0 / labels.voxel_volume_ml)))
    out = arr.copy()
    out[marrow] = L.VERTEBRAE_L2L4
    keep = idx[np.argsort(d)[:n]]
    out[tuple(keep.T)] = L.MARROW_L2L4
    return labels.with_array(out)


def _shift_30_inferior(labels: Image) -> Image:
    return shift_labels(labels, (0.0, 0.0, -30.0))


def _shift_30_anterior(labels: Image) -> Image:
    return shift_labels(labels, (0.0, 30.0, 0.0))


def other_patient(labels: Image, other: Image) -> Image:
    """Another patient's organ labels placed on this grid, their body centroids aligned.

    What happens when masks exported for one patient are imported for another
    with a similar field of view: the organ labels of ``other`` (any grid) are
    moved so that the two body centroids coincide, then sampled (nearest
    neighbour) onto this grid; this patient's body outline is kept.
    """
    arr = np.asarray(labels.array)
    oarr = np.asarray(other.array)
    c_this = _centroid_mm(labels, arr > 0)
    c_other = _centroid_mm(other, oarr > 0)
    world = labels.world_grid() - c_this + c_other
    idx = np.rint(other.world_to_index(world)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(other.shape)), axis=-1)
    vals = np.zeros(arr.shape, oarr.dtype)
    vals[inside] = oarr[tuple(idx[inside].T)]
    out = np.where(arr > 0, L.BODY, 0).astype(arr.dtype)
    organ = np.isin(vals, _ORGAN_IDS) & (arr > 0)
    out[organ] = vals[organ]
    return labels.with_array(out)


#: case name -> (function of (labels, context) -> labels, checks of which at least one must fail).
CORRUPTIONS = {
    "kidney_on_bowel": (lambda lab, ctx: kidney_on_bowel(lab, ctx.get("bowel")),
                        {"gas_ml", "fat_fraction", "anterior_mm", "median_hu", "uptake_ratio",
                         "largest_component_fraction", "lateral_mm"}),
    "kidneys_swapped": (lambda lab, ctx: _swap_kidneys(lab), {"side_mm"}),
    "levels_down_one": (lambda lab, ctx: _levels_down_one(lab), {"level_offset"}),
    "half_liver": (lambda lab, ctx: _half_liver(lab), {"dome_gap_mm", "volume_ml"}),
    "missing_spleen": (lambda lab, ctx: _no_spleen(lab), {"present"}),
    "marrow_1ml": (lambda lab, ctx: _marrow_1ml(lab), {"volume_ml", "volume_per_vertebra_ml"}),
    "other_patient": (lambda lab, ctx: other_patient(lab, ctx["other"]),
                      {"median_hu", "gas_ml", "fat_fraction", "bone_fraction", "level_offset",
                       "dome_gap_mm", "side_mm", "volume_ml", "anterior_mm", "uptake_ratio"}),
    "shift_30mm_inferior": (lambda lab, ctx: _shift_30_inferior(lab),
                            {"level_offset", "dome_gap_mm", "bone_fraction"}),
    "shift_30mm_anterior": (lambda lab, ctx: _shift_30_anterior(lab),
                            {"bone_fraction", "fat_fraction", "gas_ml", "median_hu", "uptake_ratio"}),
}


def corrupt(name: str, labels: Image, context: dict | None = None) -> Image:
    """Apply the corruption ``name`` of :data:`CORRUPTIONS` to ``labels``.

    ``context`` may hold ``bowel`` (bool mask on the grid) and ``other``
    (another patient's label Image) for the cases that need them.
    """
    return CORRUPTIONS[name][0](labels, context or {})


def with_marrow(ct: Image, reference: Image, levels_z_mm: dict) -> Image:
    """A reference label map completed as the segment stage would: L2, L3, L4 bodies apart
    (split at the given level ranges, RAS+ z mm) and the marrow VOI derived inside them by
    :func:`pipeline.segment.assemble.assemble_labels` (default 4 mm margin)."""
    from pipeline.segment.assemble import assemble_labels

    arr = np.asarray(reference.array)
    z = reference.world_grid()[..., 2]
    st = {name: arr == lid for lid, name in L.FIXED_LABELS.items()
          if lid not in (L.MARROW_L2L4, L.VERTEBRAE_L2L4)}
    body = np.isin(arr, (L.MARROW_L2L4, L.VERTEBRAE_L2L4))
    for n in ("L2", "L3", "L4"):
        lo, hi = levels_z_mm[n]
        st[f"vertebrae_{n}"] = body & (z >= lo) & (z <= hi)
    return assemble_labels(ct, st, "reference", [])


def icrp_context(phantom, ct: Image) -> dict:
    """Bowel mask (stomach, small intestine, colon and contents) of an ICRP-110 phantom on ``ct``'s grid."""
    from pipeline.segment.evaluate import resample_nearest
    from sample_data.icrp110 import IDS

    ids = IDS["stomach"] + IDS["small_intestine"] + IDS["colon"]
    bowel = phantom.labels.with_array(np.isin(np.asarray(phantom.labels.array), ids).astype(np.uint8))
    return {"bowel": resample_nearest(bowel, ct).astype(bool)}
