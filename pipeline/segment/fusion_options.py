"""Settings of the multi-atlas fusion and of each organ's refinement on the CT and the SPECT.

:class:`FusionOptions` is used by :func:`pipeline.segment.atlas_organs.atlas_organs`; each field's
entry gives what it does and the regression numbers that chose it (``python -m
sample_data.seg_regression``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FusionOptions"]


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
        (:func:`pipeline.segment.atlas_organs.prior_with_tail`), so that the patient's CT numbers can take an organ
        larger than the atlas person's.
    tail_mm : float
        Decay length of that tail, mm (0: none).
    tail_height : float
        Prior of the tail at the atlas outline.
    caudal_tail_organs : tuple of str
        Organs whose refinement prior goes on below the atlas outline only
        (:func:`pipeline.segment.atlas_organs.prior_with_caudal_tail`). Leave-one-out CT only, spleen
        without / with (20 mm, 0.5): AM 0.79 / 0.81-0.83 at 2-4 mm, AF 0.75-0.78 / 0.76-0.79,
        TotalSegmentator 0.66 / 0.69, sample patient (its SPECT) 0.80 / 0.79; kidneys and livers
        unchanged at two decimals. 30 mm and 0.6 gave AM 0.85-0.87, but the TotalSegmentator
        spleen's tail took its left kidney's upper pole (0.94 -> 0.87).
    caudal_tail_mm : float
        Decay length of that tail, mm (0: none).
    caudal_tail_height : float
        Prior of that tail just below the atlas outline.
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
        Where two touching organs' CT models differ by at least 1.5 SD and no SPECT placed
        their boundary (:attr:`split_touching_by_uptake`), let the brighter
        organ take back what the darker one holds of it (:func:`pipeline.segment.ct_boundary.split_by_ct`,
        at most 15 mm). Leave-one-out with a splenomegaly (spleen 125 -> 307 mL, 144 -> 325 mL) and the
        realistic SPECT, without / with: AF_3mm left kidney 0.80 / 0.84 (181 / 164 mL against 141),
        spleen 0.79 / 0.83; AM_3mm left kidney 0.92 / 0.92, spleen 0.88 / 0.88.
        The six ICRP-110 cases with the uniform, realistic and early SPECT, the sample patient
        and the TotalSegmentator CT with an early SPECT: every Dice and uptake error unchanged
        (the kidney-liver boundaries there are placed by the uptake, and kidneys and spleens
        that do not overlap in the prior do not touch). On the CT alone too (it ran only with a
        SPECT before): leave-one-out trunks, right kidney AF_3mm 0.84 -> 0.85, AF_4mm 0.81 ->
        0.82, TotalSegmentator liver 0.91 -> 0.92, every other Dice of the six ICRP-110 cases,
        TotalSegmentator and the sample patient unchanged; AF 2 mm, lung bases + 20 mm to 10 mm
        into the sacrum, right kidney 0.67 -> 0.71 (24 mL of liver in it).
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
    veto_percentile : tuple of (str, float or "bulk")
        Organs whose uptake level for the veto is not the 75th percentile of the SPECT in the
        prior (:func:`pipeline.segment.uptake_growth.uptake_veto`): the liver's is its bulk level
        (:func:`pipeline.segment.uptake_growth.uptake_bulk_level`, the median without the values
        above twice it, iterated), because hot metastases (neuroendocrine patients treated with
        somatostatin-receptor ligands often have many) raise its 75th percentile, and with many
        its median, toward their own level, and 0.4 of that vetoes the normal liver. An organ
        named here with "bulk" also gets its level from its bulk in the uptake boundary when its
        75th percentile is more than 1.5 times that (``lesions_possible`` of
        :func:`pipeline.segment.uptake_boundary.split_by_uptake`). AF_3mm, realistic SPECT,
        metastases at 10 x the liver's uptake in 15 % of it (``seg_regression --liver-mets
        0.15``): liver 0.76 (838 of 1337 mL) with the 75th percentile from zero, 0.70 from the
        surroundings, 0.93 from the median; without metastases 0.94 either way. 30 % at an early
        session, AF_3mm / AM_3mm: median 0.77 / 0.89 (uptake +35.5 / +14.1 %, half of the normal
        liver vetoed on AF_3mm, and 37 mL of it given to the right kidney by the uptake boundary,
        which took the liver for the hot organ), bulk 0.92 / 0.92 (+0.7 / -0.7 %, right kidney
        0.90 / 0.91); 15 % realistic 0.93 / 0.93. Without metastases (six ICRP-110 cases at the
        uniform, realistic, early and sstr contrasts) within 0.01 of the median's.
    grow_above_surroundings : bool
        The veto that decides where a hot organ may grow by its uptake (after the refinement,
        from the organ's own mask) measures uptake above the surroundings' level for every
        organ, the kidneys too (``above_surroundings`` of
        :func:`pipeline.segment.uptake_growth.uptake_veto`; the refinement's veto keeps
        :attr:`veto_above_surroundings`). Against zero, the growth's cut (0.49 of the organ's
        level) lies at the body's own level when the organ is only about twice as hot as its
        surroundings: a radiolabelled antibody at 1-3 days (``seg_regression --spect antibody``:
        kidneys 3, blood pool 8, liver and spleen 6, rest 1.5) gave the right kidney of AF_4mm 22.8 mL of
        muscle and 161 mL against 114 (Dice 0.78). Leave-one-out, six ICRP-110 cases and
        TotalSegmentator, without / with: antibody AF_4mm right kidney 0.78 / 0.85 (uptake -6.6 /
        +2.2 %), the other cases unchanged; realistic and sstr every Dice within 0.01 (three
        +0.01), kidney uptake errors within 0.7 %, mostly nearer zero; early every Dice within 0.01,
        the female kidneys' uptake errors up by up to 1.6 % (AF_2mm left +3.6 / +4.9 %: the grown
        kidney takes a little less of its blurred edge).
    rim_without_spect : bool
        Add the partial-volume rim against fat
        (:func:`pipeline.segment.atlas_refine.grow_partial_volume`, one voxel, only voxels
        at least half organ by their CT number) also to organs refined without a SPECT veto.
        Leave-one-out CT only (six ICRP-110 cases) and TotalSegmentator, Dice without / with:
        left kidneys 0.82-0.91 / 0.86-0.93 (AF_3mm 0.83 / 0.90), right kidneys 0.79-0.83 /
        0.79-0.85 (TotalSegmentator 0.82 / 0.81, AM_4mm 0.80 / 0.79), spleens 0.59-0.73 /
        0.66-0.77, livers -0.02 (AM_4mm) to +0.02; TotalSegmentator's QC warn (kidney volume
        ratio 1.64) became a pass. With a simulated SPECT the hot organs are unchanged.
    rim_hot_mm : tuple of (str, float)
        How far (mm) the partial-volume rim of these organs may reach when the SPECT vetoes
        them (hot organs; :func:`pipeline.segment.atlas_refine.grow_partial_volume`'s
        ``rim_mm``, 4 mm for the others and without a SPECT). On the ICRP-110 cases at 3 mm the
        refined spleen lay two voxels inside the reference's surface against fat, and the 4 mm
        rim (one voxel) left a second layer of voxels that are at least half spleen by their CT
        numbers (AM_3mm: 319 of 892 missed voxels), so the spleen read its hotter core (uptake
        +1.5 to +6.3 %). Leave-one-out with the realistic SPECT, 4 / 6 mm for the liver and
        spleen: spleens 0.86-0.90 / 0.87-0.92 (TotalSegmentator 0.87 / 0.90, sample patient 0.79
        / 0.81), uptake errors +1.5 to +6.3 / +0.3 to +5.1 %, livers' +0.8 to +1.6 / +0.4 to +0.5
        %. Not for the kidneys: with 6 mm their uptake errors went from -4.5..+1.8 to -4.4..-0.5 %
        (the colder outer layer of their blurred cortex), the dose-limiting organ read low. Not
        without a SPECT: CT only, 6 mm for every organ lost 0.01-0.03 Dice on the female
        phantom's kidneys and livers (leaks into bowel and muscle with no veto to stop them).

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
    caudal_tail_organs: tuple = ("spleen",)
    caudal_tail_mm: float = 20.0
    caudal_tail_height: float = 0.5
    rim_without_spect: bool = True
    rim_hot_mm: tuple = (("liver", 6.0), ("spleen", 6.0))
    split_touching_by_uptake: bool = True
    inside_ribs_organs: tuple = ("liver", "spleen")
    rib_margin_mm: float = -3.0
    rib_margin_hot_mm: float = 0.0
    appendage_radius_mm: float = 6.0
    grow_together: bool = True
    split_touching_by_ct: bool = True
    veto_above_surroundings: tuple = ("liver", "spleen")
    veto_percentile: tuple = (("liver", "bulk"),)
    grow_above_surroundings: bool = True
