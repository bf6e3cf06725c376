"""Where two touching organs meet, the boundary from their uptake on the reference SPECT.

On an unenhanced CT a kidney, the spleen and the liver have nearly the same CT numbers
(30-60 HU), so where two of them touch without fat between them the CT cannot say where
one ends; the atlas prior of another person places that boundary only to within a
centimetre. The SPECT can, when the two organs take up the radiopharmaceutical at
clearly different levels (kidneys against liver for peptides and PSMA ligands): a step
between plateaux ``u_hot`` and ``u_cold`` blurred by any symmetric point-spread function
crosses ``(u_hot + u_cold) / 2`` at the edge itself (the 50 % threshold of a step, exact for
a plane boundary, a fair approximation where the boundary's curvature radius is large
against the FWHM). In a band on both sides of the two masks' interface, each voxel of the
pair goes to the hotter organ where the SPECT is above that midpoint and to the colder one
where it is below. Nothing outside the two masks is ever taken, so the SPECT moves the
boundary but never makes an organ.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .components import keep_largest_of_pair
from .uptake_growth import uptake_bulk_level

__all__ = ["organ_uptake_level", "split_by_uptake"]


def organ_uptake_level(spect: np.ndarray, mask: np.ndarray, away: np.ndarray | None = None,
                       percentile: float = 75.0, lesions_possible: bool = False) -> float | None:
    """The uptake plateau of an organ: a high percentile of the SPECT inside it.

    Parameters
    ----------
    spect : numpy.ndarray, shape (I, J, K)
        SPECT on the mask's grid (any activity unit).
    mask : numpy.ndarray of bool, shape (I, J, K)
    away : numpy.ndarray of bool, optional
        Voxels allowed in the estimate (for example away from a hotter neighbour, whose
        spill-over would raise the level); ignored when fewer than 10 of the organ's
        voxels remain.
    percentile : float
        75 by default: above the partial-volume edge of the organ against fat, below a
        hot renal pelvis (the same choice as :func:`pipeline.segment.uptake_growth.uptake_veto`).
    lesions_possible : bool
        An organ that may hold hot lesions (the liver: metastases): when the percentile is
        more than 1.5 times its bulk level (the median without the hot values,
        :func:`pipeline.segment.uptake_growth.uptake_bulk_level`), the lesions set it, and
        the bulk level is returned instead. (A liver without lesions: 1.0-1.1 times.) The
        switch is hard: a liver whose percentile is just under 1.5 times its bulk keeps the
        percentile, a level up to 1.5 times its parenchyma's.

    Returns
    -------
    float or None
        None when the organ has fewer than 10 voxels.
    """
    use = mask & away if away is not None and np.count_nonzero(mask & away) >= 10 else mask
    if np.count_nonzero(use) < 10:
        return None
    level = float(np.percentile(spect[use], percentile))
    if lesions_possible:
        bulk = uptake_bulk_level(spect[use])
        if level > 1.5 * bulk:
            return bulk
    return level


def split_by_uptake(spect: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, voxel_size_mm,
                    band_mm: float = 10.0, fwhm_mm: float = 12.0, min_ratio: float = 1.5, min_contact_voxels: int = 10,
                    valid: np.ndarray | None = None, lesions_possible_a: bool = False,
                    lesions_possible_b: bool = False,
                    lesion_factor: float = 2.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Two touching organs' common boundary at the midpoint of their uptakes.

    Parameters
    ----------
    spect : numpy.ndarray, shape (I, J, K)
        SPECT on the masks' grid.
    mask_a, mask_b : numpy.ndarray of bool, shape (I, J, K)
        The two organs (not overlapping).
    voxel_size_mm : sequence of 3 float
    band_mm : float
        Only voxels of either organ within this distance of the other organ may change
        hands, mm (about one SPECT FWHM: farther away the SPECT has no more to say about
        this boundary than the CT).
    fwhm_mm : float
        The SPECT's resolution (Gaussian FWHM), mm, only to correct the fall-off of its values at
        the pair's outer surface (12 mm: Lu-177 with a medium-energy collimator and resolution
        recovery). On a 12 mm FWHM test SPECT, 8 and 18 mm here still put the edge within a
        voxel and give none of the hot organ's outer surface to the cold one
        (``tests/pipeline/segment/test_uptake_boundary.py``).
    min_ratio : float
        The hotter organ's level must be at least this many times the colder one's, else
        the SPECT cannot place the boundary and nothing changes.
    min_contact_voxels : int
        Fewer voxels of ``mask_a`` touching ``mask_b`` (6-connectivity): not touching, nothing changes.
    valid : numpy.ndarray of bool, optional
        Where the SPECT has data; voxels outside keep their organ.
    lesions_possible_a, lesions_possible_b : bool
        The organ may hold hot lesions (:func:`organ_uptake_level`): the liver. With its
        level at the 75th percentile, metastases in 30 % of a liver made it the hot organ of
        the pair, and the split gave its cold parenchyma beside the kidney to the kidney
        (ICRP-110 AF_3mm at an early session, with the liver's bulk level already in the veto:
        37 mL, right kidney Dice 0.79; 0.85 before the bulk level, when the veto had cut the
        liver's parenchyma beside the kidney instead).
    lesion_factor : float
        Voxels of an organ that may hold lesions (``lesions_possible_a`` or ``_b``) above this
        many times the hotter organ's level are not parenchyma (a liver metastasis beside the
        kidney): they, and the voxels within ``fwhm_mm`` of them (whose values the lesion's
        spill raises), keep their organ. Only inside such an organ: a hot renal pelvis, bladder
        or node elsewhere must not freeze the boundary.

    Returns
    -------
    new_a, new_b : numpy.ndarray of bool
        The two organs; each keeps its largest connected piece (what the split cut off goes
        to the other organ of the pair when it touches it, else to neither).
    record : dict
        ``used``, the two levels, their ratio, the threshold and the voxels moved each way.
    """
    vs = np.asarray(voxel_size_mm, float)
    rec = {"used": False}
    contact = mask_a & ndi.binary_dilation(mask_b)
    rec["contact_voxels"] = int(np.count_nonzero(contact))
    if rec["contact_voxels"] < min_contact_voxels:
        return mask_a, mask_b, rec
    dist_a = ndi.distance_transform_edt(~mask_a, sampling=vs)
    dist_b = ndi.distance_transform_edt(~mask_b, sampling=vs)
    band = (mask_a & (dist_b <= band_mm)) | (mask_b & (dist_a <= band_mm))
    if valid is not None:
        band &= valid
    u_a = organ_uptake_level(spect, mask_a, away=dist_b > band_mm, lesions_possible=lesions_possible_a)
    u_b = organ_uptake_level(spect, mask_b, away=dist_a > band_mm, lesions_possible=lesions_possible_b)
    if u_a is None or u_b is None or min(u_a, u_b) <= 0:
        return mask_a, mask_b, rec
    ratio = max(u_a, u_b) / min(u_a, u_b)
    rec.update(level_a=round(u_a, 6), level_b=round(u_b, 6), ratio=round(ratio, 2))
    if ratio < min_ratio:
        return mask_a, mask_b, rec
    threshold = 0.5 * (u_a + u_b)
    hot_is_a = u_a > u_b
    # at the pair's outer surface the SPECT falls towards the surroundings' (nearly zero) uptake,
    # which alone would put the hot organ's outer edge below the midpoint: divide by the share of
    # the pair in a Gaussian of the SPECT's resolution (normalised convolution, never by less than 0.5)
    share = ndi.gaussian_filter((mask_a | mask_b).astype(np.float32), fwhm_mm / 2.3548 / vs)
    above = spect >= threshold * np.clip(share, 0.5, 1.0)
    may_hold = (mask_a if lesions_possible_a else False) | (mask_b if lesions_possible_b else False)
    hot = (spect > lesion_factor * max(u_a, u_b)) & may_hold
    lesion = band & (ndi.distance_transform_edt(~hot, sampling=vs) <= fwhm_mm if hot.any() else hot)
    band &= ~lesion
    to_a = band & (above if hot_is_a else ~above)
    new_a = (mask_a & ~band) | to_a
    new_b = (mask_b & ~band) | (band & ~to_a)
    new_a, new_b = keep_largest_of_pair(new_a, new_b)
    rec.update(used=True, threshold=round(threshold, 6), hot="a" if hot_is_a else "b",
               moved_a_to_b=int(np.count_nonzero(mask_a & new_b)),
               moved_b_to_a=int(np.count_nonzero(mask_b & new_a)),
               lesion_voxels_kept=int(np.count_nonzero(lesion)))
    return new_a, new_b, rec
