"""Kidneys, liver and spleen from several atlas subjects and the patient's CT.

For every atlas subject (:mod:`pipeline.segment.atlas`): register it onto the patient,
carry its organs (priors) and its CT onto the patient's grid, and measure per organ
how well the carried CT matches the patient's around that organ: the mean absolute
difference of the two CTs (HU clipped to [-200, 200], smoothed by 2 mm) in the organ's
region (its prior above 0.5, dilated by three voxels), ``mad_hu``.

- Fusion: per organ, each subject weighs ``exp(-mad_hu / tau_hu)`` (``tau_hu`` 10 HU):
  a subject whose anatomy matches the patient's there dominates.
- Decision per organ: when the best subject's ``mad_hu`` is below ``trust_mad_hu``
  (20 HU: the carried CT matches the patient's to within its noise, as for the same
  person), the fused prior above 0.5 is the organ; otherwise the organ of another
  person is only a guide, and the mask comes from the patient's CT numbers
  (:func:`pipeline.segment.atlas_refine.refine_organs`, the prior sharpened to
  ``prior ** gamma`` after ``refine_sigma_mm`` smoothing).

Measured on the ICRP-110 phantoms (one subject registered to the other, noise-free
4 mm atlas onto the low-dose 3 mm case): ``mad_hu`` 9-11 HU for the same person,
35-68 HU for the other person; see ``sample_data.seg_regression`` for the Dice table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..image import Image
from .atlas import ATLAS_ORGANS, AtlasOptions, organ_priors, register_subject, warped_ct
from .atlas_refine import refine_organs

__all__ = ["FusionOptions", "atlas_organs", "local_mad_hu"]


@dataclass(frozen=True)
class FusionOptions:
    """Settings of the multi-atlas fusion and the per-organ decision.

    Parameters
    ----------
    tau_hu : float
        Weight scale of the subjects: ``w = exp(-mad_hu / tau_hu)``, HU.
    trust_mad_hu : float
        Below this ``mad_hu`` (best subject) the fused prior is taken as the organ, HU.
    refine_sigma_mm : float
        Smoothing of the fused prior before the CT-based refinement (SD), mm.
    refine_gamma : float
        Exponent applied to the smoothed prior before the refinement (< 1 widens it).
    """

    tau_hu: float = 10.0
    trust_mad_hu: float = 20.0
    refine_sigma_mm: float = 2.0
    refine_gamma: float = 0.6


def local_mad_hu(target_hu: np.ndarray, carried_hu: np.ndarray, region: np.ndarray, voxel_size_mm) -> float:
    """Mean absolute difference (HU) of two CTs in ``region`` (clipped to [-200, 200], 2 mm smoothing)."""
    vs = np.asarray(voxel_size_mm, float)
    a = ndi.gaussian_filter(np.clip(target_hu, -200.0, 200.0).astype(np.float32), 2.0 / vs)
    b = ndi.gaussian_filter(np.clip(carried_hu, -200.0, 200.0).astype(np.float32), 2.0 / vs)
    if not region.any():
        return float("inf")
    return float(np.mean(np.abs(a - b)[region]))


def atlas_organs(grid_ct: Image, registration_ct: Image, subjects, options: AtlasOptions = AtlasOptions(),
                 fusion: FusionOptions = FusionOptions()) -> tuple[dict, dict]:
    """Organ masks on the grid of ``grid_ct``.

    Parameters
    ----------
    grid_ct : Image
        The patient's CT (HU) on the grid where the masks are wanted (for example the
        built-in segmenter's 2 mm working grid).
    registration_ct : Image
        The patient's CT used for the registration (the full CT, any grid).
    subjects : sequence of AtlasSubject
    options : AtlasOptions
    fusion : FusionOptions

    Returns
    -------
    masks : dict
        Organ name -> bool array on ``grid_ct``; organs overlap nowhere.
    record : dict
        Per subject the registration summary; per organ ``method`` ("atlas" or
        "atlas+CT"), ``mad_hu`` per subject, ``weights``, and the intensity model.
    """
    hu = np.asarray(grid_ct.array, np.float32)
    vs = grid_ct.voxel_size_mm
    priors, mads, regs = [], [], []
    for s in subjects:
        tr, info = register_subject(registration_ct, s, options)
        pri = organ_priors(grid_ct, [s], [tr], AtlasOptions(prior_sigma_mm=0.5))
        carried = warped_ct(grid_ct, s, tr)
        mad = {}
        for name, p in pri.items():
            region = ndi.binary_dilation(p > 0.5, iterations=3)
            mad[name] = local_mad_hu(hu, carried, region, vs)
        priors.append(pri)
        mads.append(mad)
        regs.append(info)

    fused, record = {}, {"subjects": regs, "organs": {}}
    for name in ATLAS_ORGANS:
        m = np.array([d[name] for d in mads])
        w = np.exp(-(m - m.min()) / fusion.tau_hu)
        w = w / w.sum()
        fused[name] = sum(wi * p[name] for wi, p in zip(w, priors)).astype(np.float32)
        record["organs"][name] = {"mad_hu": {s.name: round(float(v), 1) for s, v in zip(subjects, m)},
                                  "weights": {s.name: round(float(v), 3) for s, v in zip(subjects, w)},
                                  "method": "atlas" if m.min() < fusion.trust_mad_hu else "atlas+CT"}

    refine = [n for n in ATLAS_ORGANS if record["organs"][n]["method"] == "atlas+CT"]
    masks = {n: fused[n] > 0.5 for n in ATLAS_ORGANS if n not in refine}
    if refine:
        soft = {n: np.clip(ndi.gaussian_filter(fused[n], fusion.refine_sigma_mm / np.asarray(vs)), 0.0, 1.0)
                ** fusion.refine_gamma for n in ATLAS_ORGANS}
        # every organ competes in the refinement (a trusted one with its own prior), so neighbours stay apart
        refined, models = refine_organs(hu, vs, soft)
        for n in refine:
            masks[n] = refined[n]
            record["organs"][n]["intensity_model"] = models[n]
    # no overlaps: a voxel claimed twice goes to the organ with the higher fused prior
    names = list(ATLAS_ORGANS)
    stack = np.stack([np.where(masks[n], fused[n] + 1e-3, 0.0) for n in names])
    owner = np.argmax(stack, axis=0)
    claimed = stack.max(axis=0) > 0
    for i, n in enumerate(names):
        masks[n] = claimed & (owner == i)
    return masks, record
