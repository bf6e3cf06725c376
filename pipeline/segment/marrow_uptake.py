"""Vertebrae with focal uptake left out of the L2-L4 marrow VOI.

The EANM image-based marrow method (Hindorf et al., EJNMMI 2010;37:1238) takes the
activity concentration of a VOI in the trabecular part of L2-L4 for the red marrow's;
the guideline draws it in vertebrae free of metastases. A vertebral metastasis (common
in the prostate-cancer and neuroendocrine patients of PSMA and somatostatin-receptor
therapy: uptake many times the marrow's) inside the VOI would make the marrow dose
that of the tumour. Red marrow in L2, L3 and L4 is alike, so their VOIs read alike
concentrations on the SPECT; one that reads more than :data:`MAX_RATIO_TO_COLDEST`
times the coldest is left out of the VOI (its voxels keep the vertebra label) and
the marrow dose comes from the other two. Where two read that much above the third, the
three cannot say which is marrow (metastases in two vertebrae, or one cold vertebra:
cement, irradiated or fatty marrow): nothing is left out and the QC gate warns on both.
Three vertebrae all involved look alike and are not found: that needs a look at the
SPECT (or another marrow method).

Array-in, array-out on the label map's (CT) grid; every backend's label map goes through
:func:`exclude_hot_vertebrae` in :func:`pipeline.segment.cli.segment` when a SPECT is given.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..image import Image
from . import labels as L

__all__ = ["MAX_RATIO_TO_COLDEST", "vertebra_vois", "exclude_hot_vertebrae"]

#: A vertebra's marrow VOI whose mean SPECT concentration is above this many times the coldest
#: of L2-L4 holds focal uptake. The built-in VOIs of the development cases (ICRP-110 at 2-4 mm,
#: TotalSegmentator, the sample patient) read 1.00-1.10 of the coldest on their simulated SPECTs
#: (``python -m sample_data.seg_regression --atlas loo --spect realistic``); bone metastases of
#: PSMA and somatostatin-receptor ligands read several times the marrow.
MAX_RATIO_TO_COLDEST = 1.5

_NAMES = ("L4", "L3", "L2")  # inferior first


def vertebra_vois(labels: np.ndarray, affine: np.ndarray, min_ml: float = 1.0,
                  voxel_ml: float = 1.0) -> dict[str, np.ndarray] | None:
    """The marrow VOI (label 5) of each of L2, L3, L4: its three connected pieces.

    The VOIs keep a margin from the endplates, so the discs separate them even where the
    bodies' masks touch (imported masks, the ICRP-110 reference bodies).

    Parameters
    ----------
    labels : numpy.ndarray, shape (I, J, K)
        Label map (DESIGN ids).
    affine : numpy.ndarray, shape (4, 4)
        Voxel to world (RAS+ mm): the pieces are named L4, L3, L2 from inferior to superior.
    min_ml, voxel_ml : float
        Pieces under ``min_ml`` mL (voxel volume ``voxel_ml`` mL) are ignored.

    Returns
    -------
    dict or None
        ``"L2"``, ``"L3"``, ``"L4"`` -> bool mask (shape of ``labels``) of that VOI; None unless
        there are exactly three pieces.
    """
    voi = labels == L.MARROW_L2L4
    if not voi.any():
        return None
    lab, _ = ndi.label(voi, structure=np.ones((3, 3, 3), bool))
    pieces = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        idx = np.argwhere(lab[sl] == i)
        if len(idx) * voxel_ml < min_ml:
            continue
        centre = idx.mean(axis=0) + [s.start for s in sl]
        pieces.append((float((affine @ np.r_[centre, 1.0])[2]), i))
    if len(pieces) != 3:
        return None
    pieces.sort()
    return {name: lab == i for (_, i), name in zip(pieces, _NAMES)}


def exclude_hot_vertebrae(labels: Image, spect: Image,
                          max_ratio: float = MAX_RATIO_TO_COLDEST) -> tuple[Image, dict]:
    """Leave the vertebrae whose marrow VOI holds focal uptake out of the VOI.

    Parameters
    ----------
    labels : Image
        Label map on the CT grid (DESIGN ids).
    spect : Image
        Reference SPECT (any unit of activity concentration, any grid overlapping the CT).
    max_ratio : float
        A VOI whose mean is above this many times the coldest VOI's is left out.

    Returns
    -------
    labels : Image
        The label map with the left-out VOIs relabelled vertebrae (6); the same object when
        nothing is left out.
    record : dict
        ``status`` ("checked", or why not), per vertebra ``mean`` (SPECT unit) and
        ``ratio_to_coldest``, ``excluded`` (names; at most one), ``ambiguous`` (the two above
        the ratio when two are: none left out), ``max_ratio``, ``source``.
    """
    from ..grid import bounding_box, resample_to
    from .builtin_atlas import crop

    arr = np.asarray(labels.array)
    rec = {"max_ratio": max_ratio, "excluded": [],
           "source": "EANM 2010 marrow dosimetry (Hindorf et al.): the L2-L4 VOI in vertebrae free of "
                     "metastases; red marrow in L2-L4 reads alike concentrations"}
    box = bounding_box(np.isin(arr, (L.MARROW_L2L4, L.VERTEBRAE_L2L4)))
    if box is None:
        return labels, {**rec, "status": "no L2-L4 in the label map"}
    spine = crop(labels, box)  # the L2-L4 box, its affine moved: the SPECT is sampled there only
    vois = vertebra_vois(np.asarray(spine.array), np.asarray(spine.affine), voxel_ml=labels.voxel_volume_ml)
    if vois is None:
        return labels, {**rec, "status": "the marrow VOI is not three pieces (L2, L3, L4)"}
    s = np.asarray(resample_to(spect, spine, "linear", default_value=np.nan).array, float)
    means = {n: float(np.nanmean(s[m])) if np.isfinite(s[m]).any() else np.nan for n, m in vois.items()}
    if not all(np.isfinite(v) for v in means.values()) or min(means.values()) <= 0:
        return labels, {**rec, "status": "a marrow VOI outside the SPECT or without counts",
                        "mean": {n: round(v, 6) if np.isfinite(v) else None for n, v in means.items()}}
    coldest = min(means.values())
    rec.update(status="checked", mean={n: round(v, 6) for n, v in means.items()},
               ratio_to_coldest={n: round(v / coldest, 3) for n, v in means.items()})
    hot = [n for n, v in means.items() if v > max_ratio * coldest]
    if len(hot) != 1:
        if hot:  # two above the coldest: metastases in two vertebrae, or one cold (cement, irradiated)
            rec["ambiguous"] = sorted(hot)
        return labels, rec
    rec["excluded"] = hot
    out = arr.copy()
    sub = out[box]
    for n in hot:
        sub[vois[n]] = L.VERTEBRAE_L2L4
    return labels.with_array(out), rec
