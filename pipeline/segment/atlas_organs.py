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
  ``prior ** gamma`` after ``refine_sigma_mm`` smoothing; the liver's prior has a tail
  beyond the atlas outline, :func:`prior_with_tail`, so that a liver larger than the atlas
  person's can be taken whole).

- With the reference SPECT, for every organ refined on the CT that is clearly hot
  (its uptake at least twice that of a shell around it): voxels far below its uptake
  are vetoed, its partial-volume rim against fat is added, and it grows over connected
  tissue that has both its CT numbers and its uptake (:mod:`pipeline.segment.atlas_refine`).
  The SPECT never makes an organ on its own.
- With the reference SPECT, where two organs touch and one of them is clearly hot, their
  common boundary is put at the midpoint of their uptakes
  (:func:`pipeline.segment.uptake_boundary.split_by_uptake`, ``split_touching_by_uptake``).

Measured on the ICRP-110 phantoms (one subject registered to the other, noise-free
4 mm atlas onto the low-dose 3 mm case): ``mad_hu`` 9-11 HU for the same person,
35-68 HU for the other person; see ``sample_data.seg_regression`` for the Dice table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..image import Image
from .atlas import ATLAS_ORGANS, ATLAS_VERTEBRAE, AtlasOptions, carry_subject, register_subject
from .atlas_refine import grow_partial_volume, refine_organs
from .ct_boundary import split_by_ct
from .uptake_growth import (drop_other_hot_basins, grow_together, grow_with_uptake, smoothed_ct,
                            uptake_growth_allowed, uptake_veto)
from .components import without_thin_appendages
from .rib_cage import rib_cage_depth_mm
from .uptake_boundary import split_by_uptake


__all__ = ["FusionOptions", "prior_with_tail", "register_all", "carry_all", "atlas_organs", "atlas_vertebrae", "local_mad_hu"]


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
    tail_organs : tuple of str
        Organs whose refinement prior gets a tail beyond the atlas outline
        (:func:`prior_with_tail`), so that the patient's CT numbers can take an organ
        larger than the atlas person's.
    tail_mm : float
        Decay length of that tail, mm (0: none).
    tail_height : float
        Prior of the tail at the atlas outline.
    split_touching_by_uptake : bool
        With a SPECT, put the common boundary of two touching organs, one of them clearly hot,
        at the midpoint of their uptakes (:func:`pipeline.segment.uptake_boundary.split_by_uptake`).
        Leave-one-out with a simulated SPECT, right kidney Dice and uptake error without / with:
        uniform SPECT 0.91-0.92 / 0.92-0.94, -4.0..+0.8 % / -3.0..+1.7 %; realistic SPECT
        0.90-0.91 / 0.91-0.92, -4.2..-1.1 % / -3.9..-0.5 %; other organs within 0.01 and 0.5 %.
        Sample patient (kidneys embedded in liver and spleen, no fat between): kidneys 0.86 / 0.83
        -> 0.90 / 0.89, spleen 0.77 -> 0.83, liver 0.95 -> 0.96.
    inside_ribs_organs : tuple of str
        Organs refined on the CT that may not reach outside the rib cage
        (:func:`pipeline.segment.rib_cage.outside_rib_cage`: farther out than the inner surface
        of a rib seen from the body's centre; their prior is zero there, and neither the rim nor
        the uptake growth may add it). Reference organ voxels it calls outside: livers at most
        0.45 %, spleens 0.33 %, kidneys 0.26 % (ICRP-110 at 2-4 mm), none on TotalSegmentator;
        the sample patient's synthetic ribs cross its liver and spleen.
        Leave-one-out CT only, without / with: male livers 0.84 / 0.86, 0.83 / 0.86,
        0.81 / 0.84 (the body-wall muscle outside the ribs, 50 HU against the liver's 60, was
        taken), male spleens 0.72 / 0.76, 0.71 / 0.74, 0.66 / 0.67; the rest within 0.01
        (TotalSegmentator right kidney 0.81 / 0.80). With a simulated SPECT: Dice within 0.01,
        the male right kidneys' uptake errors smaller by up to 0.5 %; sample patient (atlas and
        its SPECT) spleen 0.83 / 0.81. A tail on the spleen's prior (as the liver's) was tried
        again with this: TotalSegmentator's spleen 0.66 -> 0.82, but the male spleens fell to
        0.56-0.62 (the muscle inside the ribs, diaphragm, has the spleen's CT numbers).
    rib_margin_mm : float
        How far inside the ribs' inner surface the CT-based refinement may put those organs, mm
        (:func:`pipeline.segment.rib_cage.outside_rib_cage`; -3: the innermost intercostal muscle
        and the diaphragm under the ribs, which have the liver's and spleen's CT numbers, are not
        theirs). With intercostal spaces bridged (up to 24 degrees), leave-one-out CT only,
        margin 0 without bridging / -3 with it: male livers 0.86 / 0.88, 0.86 / 0.87, 0.84 / 0.85,
        male spleens 0.76 / 0.77, 0.74 / 0.76, 0.67 / 0.75, female spleens +0.00-0.01, kidneys and
        TotalSegmentator unchanged; sample patient (atlas and its SPECT) left kidney 0.91 / 0.90,
        the rest unchanged.
        At -6 mm the male livers gained 0.01 more, the female livers lost 0.01.
    rib_margin_hot_mm : float
        The same for an organ that is hot on the SPECT (its veto in use): its uptake, not its CT
        numbers, decides under the ribs (0: up to the ribs' inner surface). With -3 here too, the
        male spleens' uptake errors grew by 0.1-0.3 % (simulated SPECT, uniform and realistic);
        with 0 every organ's Dice and uptake error is within 0.01 and 0.2 % of the margin-0,
        unbridged rib cage.
    appendage_radius_mm : float
        Each organ refined on the CT loses the parts thinner than twice this that stick out of
        its body (:func:`pipeline.segment.components.without_thin_appendages`: sheets of muscle
        along the liver and spleen, the crus and vessels beside a kidney, which the voxelwise
        choice on CT numbers follows), before its partial-volume rim; 0: none. Leave-one-out,
        CT only, without / with 6 mm: male right kidneys 0.82 / 0.85, 0.83 / 0.85, 0.82 / 0.86,
        male livers 0.88 / 0.89, 0.87 / 0.88, 0.85 / 0.87, male spleens 0.77 / 0.79, 0.76 / 0.78,
        0.75 / 0.78, female cases within 0.01; TotalSegmentator left kidney 0.87 / 0.93, right
        0.81 / 0.82, liver 0.90 / 0.91, spleen 0.66 / 0.65 (its kidney volume ratio 1.64 now warns:
        its right kidney takes the hilum and a band of liver edge with kidney-like CT numbers);
        sample patient spleen 0.81 / 0.80. With a simulated SPECT (uniform, realistic) every Dice
        within 0.01 and uptake error within 0.4 %. 8 mm was no better (TotalSegmentator left
        kidney 0.88).
    grow_together : bool
        Grow the organs that are hot on the SPECT over tissue with their CT numbers and uptake
        in lockstep (:func:`pipeline.segment.uptake_growth.grow_together`: each takes a voxel
        only where it is the nearer organ), not one after the other (the first, a kidney, took
        what it could reach of a neighbour the atlas left short). Leave-one-out, one after the
        other / in lockstep: AF_3mm with a splenomegaly (``seg_regression --enlarge spleen:15``,
        spleen 125 -> 307 mL) and the realistic SPECT (spleen 8, renal cortex 10): left kidney
        0.76 / 0.80 (194 / 180 mL against 141), spleen 0.75 / 0.79, uptake errors within 0.5 %;
        with the early SPECT left kidney 0.89 / 0.89, spleen 0.80 / 0.81. The six ICRP-110 cases
        with the uniform, realistic and early SPECT: every Dice within 0.01 (AF_2mm / AF_3mm
        realistic spleen +0.01, AF_3mm left kidney +0.01) and every uptake error within 0.2 %;
        sample patient (atlas and its SPECT) left kidney 0.90 / 0.91, spleen 0.80 / 0.81.
    split_touching_by_ct : bool
        With a SPECT, where two touching organs' CT models differ by at least 1.5 SD and the
        SPECT did not place their boundary (:attr:`split_touching_by_uptake`), let the brighter
        organ take back what the darker one holds of it (:func:`pipeline.segment.ct_boundary.split_by_ct`,
        at most 15 mm). Leave-one-out with a splenomegaly (spleen 125 -> 307 mL, 144 -> 325 mL) and the
        realistic SPECT, without / with: AF_3mm left kidney 0.80 / 0.84 (181 / 164 mL against 141),
        spleen 0.79 / 0.83; AM_3mm left kidney 0.92 / 0.92, spleen 0.88 / 0.88.
        The six ICRP-110 cases with the uniform, realistic and early SPECT, the sample patient
        and the TotalSegmentator CT with an early SPECT: every Dice and uptake error unchanged
        (the kidney-liver boundaries there are placed by the uptake, and kidneys and spleens
        that do not overlap in the prior do not touch).
        Not used without a SPECT: there the refinement has already chosen each voxel by its CT
        number, and a second CT competition cost the right kidneys 0.01-0.02 (CT only, six
        ICRP-110 cases) without helping elsewhere.
    veto_above_surroundings : tuple of str
        Organs whose SPECT veto measures uptake above the surroundings' level rather than above
        zero (:func:`pipeline.segment.uptake_growth.uptake_veto`, ``above_surroundings``): against a
        warm body the old cut, 0.4 of the organ's uptake, was the body's own level. Leave-one-out,
        six ICRP-110 cases, without / with (liver and spleen): early SPECT livers 0.89-0.92 /
        0.93-0.94, spleens 0.78-0.87 / 0.84-0.89, kidneys within 0.01 (AF_3mm right kidney 0.90 /
        0.89), uptake errors liver -2.4..+0.4 / +0.6..+2.6 %, spleen -5.5..+1.9 / +1.9..+5.0 %;
        realistic SPECT livers 0.92-0.93 / 0.93-0.94, spleens unchanged within 0.01 (AF_4mm right
        kidney 0.92 / 0.91), uptake errors liver -0.4..+2.0 / +1.0..+2.8 %, spleen +1.0..+5.9 /
        +2.1..+6.3 % (the organ's blurred edge is left out a little more: errors shift positive);
        uniform SPECT livers 0.92-0.94 / 0.93-0.94, spleens 0.84-0.89 / 0.86-0.89 (AM_2mm 0.89 / 0.88),
        uptake errors liver +0.3..+2.3 / +1.7..+3.1 %, spleen -0.4..+5.7 / +2.5..+6.6 %.
        (These numbers were measured with the liver's level at the 75th percentile, before
        ``veto_percentile``.) TotalSegmentator with an early SPECT: liver 0.93 / 0.95, uptake -2.0 / +0.6 %, spleen
        0.86 / 0.86, +2.5 / +4.8 %. The uptake errors shift positive because the muscle left out
        had pulled the organ's mean down, hiding the edge the segmentation misses.
    veto_percentile : tuple of (str, float)
        Organs whose uptake level for the veto is another percentile of the SPECT in the prior
        than the 75th (:func:`pipeline.segment.uptake_growth.uptake_veto`): the liver's median,
        because hot metastases (neuroendocrine patients treated with somatostatin-receptor
        ligands often have many) raise its 75th percentile to their own level, and 0.4 of that
        vetoes the normal liver. AF_3mm, realistic SPECT, metastases at 10 x the liver's uptake
        in 15 % of it (``seg_regression --liver-mets 0.15``): liver 0.76 (838 of 1337 mL) with
        last version's veto (75th percentile, from zero), 0.70 from the surroundings, 0.93 from the
        median; without metastases 0.94 either way. Six ICRP-110 cases: liver Dice within 0.01,
        uptake errors 0.2-0.4 % lower. With the regression's metastases
        (``--liver-mets``): 15 % of the liver, realistic SPECT, AF_3mm / AM_3mm liver 0.92 / 0.94
        (uptake +6.2 / +3.7 %); 30 % at an early session 0.77 / 0.89 (+35.5 / +14.1 %), without a QC
        warn: a liver that is largely metastases is not segmented whole.
    rim_without_spect : bool
        Add the partial-volume rim against fat
        (:func:`pipeline.segment.atlas_refine.grow_partial_volume`, one voxel, only voxels
        at least half organ by their CT number) also to organs refined without a SPECT veto.
        Leave-one-out CT only (six ICRP-110 cases) and TotalSegmentator, Dice without / with:
        left kidneys 0.82-0.91 / 0.86-0.93 (AF_3mm 0.83 / 0.90), right kidneys 0.79-0.83 /
        0.79-0.85 (TotalSegmentator 0.82 / 0.81, AM_4mm 0.80 / 0.79), spleens 0.59-0.73 /
        0.66-0.77, livers -0.02 (AM_4mm) to +0.02; TotalSegmentator's QC warn (kidney volume
        ratio 1.64) became a pass. With a simulated SPECT the hot organs are unchanged.

    Notes
    -----
    The tail is given to the liver only, and "other" learns its CT numbers in the organs'
    neighbourhood without the tail (else the tail moved that neighbourhood outwards and the
    male spleen lost 0.02-0.06 Dice). Leave-one-out, CT only (the other ICRP-110 phantom as
    atlas), liver Dice without / with a 10 mm tail: AF_3mm 0.86 / 0.89, AF_4mm 0.85 / 0.86,
    AM_2mm, AM_3mm 0.84 / 0.84, AM_4mm 0.84 / 0.83; TotalSegmentator 0.84 / 0.88; kidneys and
    spleens within 0.02; with a simulated SPECT (uniform or realistic) Dice within 0.01 and the
    largest kidney uptake error 4.2 % (5.0 % before). A tail for the spleen
    raised TotalSegmentator's spleen (0.58 to 0.79) but let AM_3mm's leak into the body-wall
    muscle (0.66 to 0.53, not cured by a 4.5 or 7 mm opening); tails for every organ let the
    kidneys leak (AM_3mm right kidney 0.80 to 0.72 at 8 mm, 0.63 at 15 mm).
    """

    tau_hu: float = 10.0
    trust_mad_hu: float = 20.0
    refine_sigma_mm: float = 2.0
    refine_gamma: float = 0.6
    tail_organs: tuple = ("liver",)
    tail_mm: float = 10.0
    tail_height: float = 0.5
    rim_without_spect: bool = True
    split_touching_by_uptake: bool = True
    inside_ribs_organs: tuple = ("liver", "spleen")
    rib_margin_mm: float = -3.0
    rib_margin_hot_mm: float = 0.0
    appendage_radius_mm: float = 6.0
    grow_together: bool = True
    split_touching_by_ct: bool = True
    veto_above_surroundings: tuple = ("liver", "spleen")
    veto_percentile: tuple = (("liver", 50.0),)


def prior_with_tail(soft: np.ndarray, fused: np.ndarray, others: np.ndarray, voxel_size_mm,
                    tail_mm: float, height: float = 0.5, others_max: float = 0.05) -> np.ndarray:
    """A refinement prior that does not end at the atlas person's organ outline.

    Outside the fused prior's 0.5 outline the prior is at least
    ``height * exp(-d / tail_mm)`` (``d`` the distance to the outline, mm), except where
    another organ's fused prior exceeds ``others_max`` (the tail never competes with a
    neighbour's own ground). The patient's CT numbers then decide how far the organ
    reaches (:func:`pipeline.segment.atlas_refine.refine_organs`).

    Parameters
    ----------
    soft : numpy.ndarray
        The organ's refinement prior (values in [0, 1]).
    fused : numpy.ndarray
        The organ's fused atlas prior, same shape.
    others : numpy.ndarray
        The largest fused prior of the other organs, same shape.
    voxel_size_mm : sequence of 3 float
    tail_mm : float
        Decay length, mm.

    Returns
    -------
    numpy.ndarray, float32
    """
    d = ndi.distance_transform_edt(fused <= 0.5, sampling=np.asarray(voxel_size_mm, float))
    tail = np.where(others > others_max, 0.0, height * np.exp(-d / tail_mm))
    return np.maximum(soft, tail).astype(np.float32)


def _smoothed_hu(hu: np.ndarray, voxel_size_mm) -> np.ndarray:
    """CT numbers clipped to [-200, 200] HU and smoothed by a 2 mm Gaussian (SD), float32."""
    return ndi.gaussian_filter(np.clip(hu, -200.0, 200.0).astype(np.float32), 2.0 / np.asarray(voxel_size_mm, float))


def local_mad_hu(target_hu: np.ndarray, carried_hu: np.ndarray, region: np.ndarray, voxel_size_mm) -> float:
    """Mean absolute difference (HU) of two CTs in ``region`` (clipped to [-200, 200], 2 mm smoothing)."""
    if not region.any():
        return float("inf")
    return _region_mad(_smoothed_hu(target_hu, voxel_size_mm), _smoothed_hu(carried_hu, voxel_size_mm), region)


def _region_mad(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute difference of two smoothed CTs in ``region`` (inf when it is empty)."""
    return float(np.mean(np.abs(a[region] - b[region]))) if region.any() else float("inf")


def register_all(registration_ct: Image, subjects, options: AtlasOptions = AtlasOptions()) -> tuple[list, list]:
    """Register every atlas subject onto the patient: (transforms, registration summaries)."""
    transforms, infos = [], []
    for s in subjects:
        tr, info = register_subject(registration_ct, s, options)
        transforms.append(tr)
        infos.append(info)
    return transforms, infos


def carry_all(grid_ct: Image, subjects, transforms) -> list:
    """Every subject's organs, vertebrae (when it has them) and CT on ``grid_ct``:
    a list of (priors dict, CT array) per subject (:func:`pipeline.segment.atlas.carry_subject`)."""
    return [carry_subject(grid_ct, s, tr, {**ATLAS_ORGANS, **ATLAS_VERTEBRAE}, AtlasOptions(prior_sigma_mm=0.5),
                          coarse=True) for s, tr in zip(subjects, transforms)]


def _fused(grid_ct: Image, subjects, carried, ids, fusion: FusionOptions):
    """Per structure: fused prior, and a record of each subject's ``mad_hu`` and weight."""
    vs = grid_ct.voxel_size_mm
    target = _smoothed_hu(np.asarray(grid_ct.array, np.float32), vs)  # once, not per subject and structure
    mads = []
    for pri, ct_s in carried:
        other = _smoothed_hu(ct_s, vs)
        mads.append({n: _region_mad(target, other, ndi.binary_dilation(pri[n] > 0.5, iterations=3)) for n in ids})
    fused, record = {}, {}
    for name in ids:
        m = np.array([d[name] for d in mads])
        if np.isfinite(m).any():
            w = np.where(np.isfinite(m), np.exp(-(m - np.min(m[np.isfinite(m)])) / fusion.tau_hu), 0.0)
        else:  # the structure lands outside the field of view for every subject
            w = np.ones(len(m))
        w = w / w.sum()
        fused[name] = sum(wi * c[0][name] for wi, c in zip(w, carried)).astype(np.float32)
        record[name] = {"mad_hu": {s.name: (round(float(v), 1) if np.isfinite(v) else None)
                                   for s, v in zip(subjects, m)},
                        "weights": {s.name: round(float(v), 3) for s, v in zip(subjects, w)},
                        "best_mad_hu": round(float(m.min()), 1) if np.isfinite(m).any() else None}
    return fused, record


def atlas_organs(grid_ct: Image, subjects, carried, fusion: FusionOptions = FusionOptions(),
                 registrations=(), spect: np.ndarray | None = None,
                 spect_fov: np.ndarray | None = None) -> tuple[dict, dict]:
    """Organ masks on the grid of ``grid_ct``.

    Parameters
    ----------
    grid_ct : Image
        The patient's CT (HU) on the grid where the masks are wanted (for example the
        built-in segmenter's 2 mm working grid).
    subjects : sequence of AtlasSubject
    carried : list
        Each subject carried onto ``grid_ct`` (:func:`carry_all`).
    fusion : FusionOptions
    registrations : sequence of dict
        The registration summaries, copied into the record.
    spect : numpy.ndarray, optional
        The reference SPECT on ``grid_ct``'s grid: where an organ refined on the CT is
        clearly hot, voxels far below its uptake are taken out of it
        (:func:`pipeline.segment.uptake_growth.uptake_veto`; recorded as ``spect_veto``),
        and its partial-volume rim against fat is added where the SPECT allows
        (:func:`pipeline.segment.atlas_refine.grow_partial_volume`; ``rim_added_voxels``),
        then connected tissue with its CT numbers and its uptake, the hot organs grown in
        lockstep (:func:`pipeline.segment.uptake_growth.grow_together`, ``FusionOptions.grow_together``;
        ``uptake_added_voxels``).
    spect_fov : numpy.ndarray of bool, optional
        Where ``spect`` has data: outside it the CT alone decides (no veto, no growth);
        the share of each organ inside it is recorded (``spect_veto.in_spect_field_of_view``).

    Returns
    -------
    masks : dict
        Organ name -> bool array on ``grid_ct``; organs overlap nowhere.
    record : dict
        ``subjects`` (registration summaries); per organ ``method`` ("atlas" or
        "atlas+CT"), ``mad_hu`` per subject, ``weights``, and the intensity model.
    """
    hu = np.asarray(grid_ct.array, np.float32)
    vs = grid_ct.voxel_size_mm
    fused, organs = _fused(grid_ct, subjects, carried, ATLAS_ORGANS, fusion)
    for r in organs.values():
        trusted = r["best_mad_hu"] is not None and r["best_mad_hu"] < fusion.trust_mad_hu
        r["method"] = "atlas" if trusted else "atlas+CT"
    record = {"subjects": list(registrations), "organs": organs}

    refine = [n for n in ATLAS_ORGANS if organs[n]["method"] == "atlas+CT"]
    masks = {n: fused[n] > 0.5 for n in ATLAS_ORGANS if n not in refine}
    veto, rib_limit = {}, {}
    outside_ribs = outside_ribs_hot = np.zeros(hu.shape, bool)
    if refine and fusion.inside_ribs_organs:
        depth = rib_cage_depth_mm(hu, vs)
        outside_ribs, outside_ribs_hot = depth > fusion.rib_margin_mm, depth > fusion.rib_margin_hot_mm
        del depth
    if refine:
        soft = {n: np.clip(ndi.gaussian_filter(fused[n], fusion.refine_sigma_mm / np.asarray(vs)), 0.0, 1.0)
                ** fusion.refine_gamma for n in ATLAS_ORGANS}
        # "other" learns its CT numbers in the organs' neighbourhood without the tails
        total = sum(soft.values())
        other_region = (total > 0.01) & (total < 0.5)
        for n in fusion.tail_organs if fusion.tail_mm > 0 else ():
            others = np.max([fused[o] for o in ATLAS_ORGANS if o != n], axis=0)
            soft[n] = prior_with_tail(soft[n], fused[n], others, vs, fusion.tail_mm, fusion.tail_height)
        for n in refine if spect is not None else ():
            v, organs[n]["spect_veto"] = uptake_veto(spect, fused[n], vs, valid=spect_fov,
                                                     above_surroundings=n in fusion.veto_above_surroundings,
                                                     percentile=dict(fusion.veto_percentile).get(n, 75.0))
            if v is not None:
                veto[n] = v
        # where each organ kept inside the ribs may not be: a hot organ's uptake, not the CT, decides under the ribs
        rib_limit = {n: outside_ribs_hot if n in veto else outside_ribs for n in fusion.inside_ribs_organs}
        for n, outside in rib_limit.items():
            soft[n] = np.where(outside, 0.0, soft[n])
        # every organ competes in the refinement (a trusted one with its own prior), so neighbours stay apart
        refined, models = refine_organs(hu, vs, soft, veto=veto, other_region=other_region)
        for n in refine:
            masks[n] = without_thin_appendages(refined[n], vs, fusion.appendage_radius_mm)
            organs[n]["intensity_model"] = models[n]
            organs[n]["thin_appendages_removed_voxels"] = int(refined[n].sum() - masks[n].sum())
    # no overlaps: a voxel claimed twice goes to the organ with the higher fused prior
    names = list(ATLAS_ORGANS)
    stack = np.stack([np.where(masks[n], fused[n] + 1e-3, 0.0) for n in names])
    owner = np.argmax(stack, axis=0)
    claimed = stack.max(axis=0) > 0
    for i, n in enumerate(names):
        masks[n] = claimed & (owner == i)
    # organs refined on the CT: add their partial-volume rim against fat; for an organ hot on
    # the SPECT not where the SPECT vetoes (without the veto the rim also grows the leaks: on the
    # male phantom's right kidney the uptake error went from -16 % to -20 %); for the others
    # (no SPECT, or not hot) with only the other organs blocking (``rim_without_spect``)
    rim_organs = [n for n in refine if n not in veto] if fusion.rim_without_spect else []
    for n in list(veto) + rim_organs:
        mu = organs[n].get("intensity_model", {}).get("median_hu")
        if mu is None:
            continue
        blocked = _blocked_for(n, masks, rib_limit.get(n))
        if n in veto:
            blocked |= veto[n] < 0.5
        before = int(masks[n].sum())
        masks[n] = grow_partial_volume(masks[n], hu, vs, mu, blocked)
        organs[n]["rim_added_voxels"] = int(masks[n].sum()) - before
    # then over connected tissue with the organ's CT numbers and its uptake (the veto now from
    # the organ itself rather than from the atlas prior)
    if fusion.grow_together and veto:
        _grow_hot_organs_together(masks, organs, veto, hu, vs, spect, spect_fov, rib_limit, fusion=fusion)
    elif veto:  # one after the other (the comparison of ``FusionOptions.grow_together``)
        for n in veto:
            model, v = _own_uptake_veto(n, masks, organs, spect, spect_fov, vs, fusion)
            if v is None:
                continue
            blocked = _blocked_for(n, masks, rib_limit.get(n))
            before = int(masks[n].sum())
            masks[n] = grow_with_uptake(masks[n], hu, vs, model["median_hu"], model["sd_hu"], v, blocked,
                                        spect=spect)
            organs[n]["uptake_added_voxels"] = int(masks[n].sum()) - before
    # where two organs touch and one is hot, their common boundary at the midpoint of their uptakes
    if spect is not None and veto and fusion.split_touching_by_uptake:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if a not in veto and b not in veto:
                    continue
                masks[a], masks[b], rec = split_by_uptake(spect, masks[a], masks[b], vs, valid=spect_fov)
                if rec["used"]:
                    organs[a].setdefault("uptake_boundary", {})[b] = rec
    # where two touching organs' CT numbers differ clearly and the SPECT did not place their boundary
    if fusion.split_touching_by_ct and veto:
        sm = smoothed_ct(hu, vs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if b in organs[a].get("uptake_boundary", {}):
                    continue
                ma, mb = organs[a].get("intensity_model", {}), organs[b].get("intensity_model", {})
                masks[a], masks[b], rec = split_by_ct(sm, masks[a], masks[b], ma, mb, vs)
                if rec["used"]:
                    organs[a].setdefault("ct_boundary", {})[b] = rec
    return masks, record


def _own_uptake_veto(n, masks, organs, spect, spect_fov, vs, fusion: FusionOptions = FusionOptions()):
    """Organ ``n``'s intensity model and its veto from its own mask (not the atlas prior), 0 outside
    the SPECT's field of view (no growth on the CT alone there); ``(model, None)`` when it has none."""
    model = organs[n].get("intensity_model", {})
    v, _ = uptake_veto(spect, masks[n].astype(np.float32), vs, valid=spect_fov,
                       above_surroundings=n in fusion.veto_above_surroundings,
                       percentile=dict(fusion.veto_percentile).get(n, 75.0))
    if model.get("median_hu") is None or v is None:
        return model, None
    if spect_fov is not None:
        v = np.where(spect_fov, v, 0.0)
    return model, v


def _grow_hot_organs_together(masks, organs, veto, hu, vs, spect, spect_fov, rib_limit, max_mm: float = 20.0,
                              fusion: FusionOptions = FusionOptions()):
    """The hot organs grown in lockstep over connected tissue with their CT numbers and uptake
    (:func:`pipeline.segment.uptake_growth.grow_together`), then each without what it took from
    another hot structure's uptake basin; ``masks`` and ``organs`` (``uptake_added_voxels``) updated."""
    before = {n: masks[n].copy() for n in veto}
    allowed, closeness, static = {}, {}, {}
    sm = smoothed_ct(hu, vs)  # once for every organ: the CT window of the growth and the closeness
    for n in veto:
        model, v = _own_uptake_veto(n, masks, organs, spect, spect_fov, vs, fusion)
        if v is None:
            continue
        static[n] = _blocked_for(n, masks, rib_limit.get(n))
        allowed[n] = uptake_growth_allowed(sm, model["median_hu"], model["sd_hu"], v, static[n])
        closeness[n] = np.abs(sm - model["median_hu"]) / model["sd_hu"]
    grown = grow_together(masks, allowed, vs, max_mm, closeness)
    for n in allowed:
        others = static[n] | _blocked_for(n, grown)
        m = grown[n]
        if (m & ~before[n]).any():
            m = drop_other_hot_basins(spect, before[n], m, vs, others=others)
        masks[n] = m
        organs[n]["uptake_added_voxels"] = int(m.sum()) - int(before[n].sum())


def _blocked_for(name: str, masks: dict, also: np.ndarray | None = None) -> np.ndarray:
    """Where organ ``name`` may not grow: every other organ's mask, and ``also`` when given."""
    blocked = np.zeros_like(masks[name]) if also is None else also.copy()
    for o, m in masks.items():
        if o != name:
            blocked |= m
    return blocked


def atlas_vertebrae(grid_ct: Image, subjects, carried, fusion: FusionOptions = FusionOptions()):
    """L2, L3 and L4 bodies carried from the subjects that have them (ids :data:`ATLAS_VERTEBRAE`).

    Returns
    -------
    priors : dict
        Level name -> fused prior on ``grid_ct`` (empty when no subject has vertebra labels).
    record : dict
        Per level ``mad_hu``, ``weights``, ``best_mad_hu``.
    """
    have = [i for i, s in enumerate(subjects)
            if all(np.any(np.asarray(s.labels.array) == v) for v in ATLAS_VERTEBRAE.values())]
    if not have:
        return {}, {}
    return _fused(grid_ct, [subjects[i] for i in have], [carried[i] for i in have], ATLAS_VERTEBRAE, fusion)
