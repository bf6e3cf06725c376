"""Organ masks and the reference SPECT: where a hot organ cannot be, and where it grows.

- :func:`uptake_veto`: voxels far below a hot organ's uptake are not that organ;
- :func:`grow_with_uptake` / :func:`grow_together`: an organ (or several hot organs at once)
  grown over connected tissue with its CT numbers and its uptake
  (:func:`uptake_growth_allowed`), where the atlas gave it less room than the patient's organ takes;
- :func:`drop_other_hot_basins`: what the growth took from another hot structure's uptake basin
  (a lymph node, a lesion) is dropped again.

Split from :mod:`pipeline.segment.atlas_refine` (the CT-based maximum a posteriori refinement),
which re-exports these names.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..grid import bounding_box
from .marrow import ellipsoid_structure

__all__ = ["uptake_veto", "uptake_bulk_level", "grow_with_uptake", "uptake_growth_allowed", "smoothed_ct", "grow_together", "drop_other_hot_basins"]


def uptake_veto(spect: np.ndarray, prior: np.ndarray, voxel_size_mm, fraction: float = 0.4,
                width: float = 0.1, min_contrast: float = 2.0, shell_mm=(10.0, 30.0),
                percentile: float | str = 75.0, valid: np.ndarray | None = None,
                above_surroundings: bool = False) -> tuple[np.ndarray | None, dict]:
    """Where an organ that takes up the radiopharmaceutical cannot be: far below its uptake.

    For an organ that is hot on the SPECT (kidneys of peptides, PSMA ligands, antibodies),
    a voxel whose SPECT value is well below the organ's own uptake is not organ, whatever
    its CT number: ``veto = 1 / (1 + exp(-(s / s_organ - fraction) / width))``, where
    ``s_organ`` is the ``percentile`` (75th) of the SPECT where the prior is above 0.5. The veto
    only removes voxels (it multiplies the prior); a hot spot alone never makes an organ.
    It is used only when the organ is clearly hot: ``s_organ`` at least ``min_contrast``
    times the median SPECT in a shell ``shell_mm`` (inner, outer) around the prior.

    With a 12 mm FWHM SPECT the true boundary of an organ lies near half its uptake;
    ``fraction`` 0.4 keeps it and cuts the leaks into neighbours that take up less (liver
    and muscle next to a kidney, body-wall muscle next to the spleen). Leave-one-out on the
    ICRP-110 phantoms (2-4 mm, 12 mm FWHM), with the rim of :func:`grow_partial_volume`
    (``sample_data.seg_regression --spect [realistic]``), the largest organ uptake error over the
    six cases and both simulated SPECTs (uniform organs; non-uniform kidneys with a hot pelvis,
    lesions): 8.0 % at 0.3 (right kidneys -2 to -8 %, too large), 5.7 % at 0.4, 7.8 % at 0.5
    (organs too small, errors positive).
    The 75th percentile rather than the 90th: with a hot renal pelvis (urine, 5 times the
    parenchyma in the innermost 8 % of the kidney) the 90th percentile vetoed the cortex
    (kidney uptake error +21 % on AF_3mm, 75th: +8 %), at the cost of a looser veto
    without it (male right kidney -5.7 % instead of -3.9 %). The liver's level is better its
    bulk level (``FusionOptions.veto_percentile``, :func:`uptake_bulk_level`): hot metastases in
    a sixth of it raise the 75th percentile to their own level, in a third of it the median.

    Parameters
    ----------
    spect : numpy.ndarray, shape (I, J, K)
        SPECT on the prior's grid (any activity unit; only ratios matter).
    prior : numpy.ndarray, shape (I, J, K)
        The organ's prior in [0, 1].
    voxel_size_mm : sequence of 3 float
    percentile : float or "bulk"
        Which value of the SPECT inside the prior is the organ's level: a percentile, or
        ``"bulk"``, the median without the hot lesions (:func:`uptake_bulk_level`).
    above_surroundings : bool
        Measure a voxel's uptake above the surroundings' level (``s_shell``, the median of the
        shell) rather than above zero: ``(s - s_shell) / (s_organ - s_shell)`` in place of
        ``s / s_organ``. A blurred step between an organ and the rest of the body crosses the
        midpoint of the two plateaus at the edge, so against a warm body (an early session: liver
        2.5, spleen 3 against 1.0 elsewhere) ``fraction * s_organ`` is the body's own level and
        vetoes nothing, and the liver and spleen grew into the diaphragm and body-wall muscle
        (AF_3mm: liver took 72 mL of muscle). Not for the kidneys (their medulla is at half the
        cortex's uptake, so a cut at 40 % of the contrast runs through it: early-session kidneys
        lost 0.01 Dice and their uptake errors rose by up to 4 %).
    valid : numpy.ndarray of bool, optional
        Where the SPECT has data (its field of view). Outside it the veto is 1 (no
        information: the CT decides) and nothing there enters the organ's uptake or the shell's.
        Without it a SPECT whose axial field of view ends inside an organ would veto the rest
        of it (ICRP-110 AF_3mm, SPECT ending at mid-liver: liver Dice 0.93 -> 0.62).

    Returns
    -------
    veto : numpy.ndarray or None
        float32 in (0, 1), None when the organ is not hot enough to use the SPECT.
    record : dict
        ``uptake_ratio`` (organ against shell), ``used``, ``fraction``, ``baseline`` (the level
        the fraction is measured from: ``s_shell`` or 0).
    """
    vs = np.asarray(voxel_size_mm, float)
    inside = prior > 0.5
    rec = {"used": False, "fraction": fraction, "min_contrast": min_contrast, "uptake_ratio": None}
    shell = np.zeros(inside.shape, bool)
    box = bounding_box(inside, np.ceil(shell_mm[1] / vs).astype(int) + 1)
    if box is not None:  # the distance only where the shell can be (the same shell, a fraction of the time)
        dist = ndi.distance_transform_edt(~inside[box], sampling=vs)
        shell[box] = (dist > shell_mm[0]) & (dist <= shell_mm[1])
    if valid is not None:
        rec["in_spect_field_of_view"] = round(float(np.mean(valid[inside])), 3) if inside.any() else None
        inside = inside & valid
        shell &= valid
    if inside.sum() < 10 or not np.isfinite(spect[inside]).all():
        return None, rec
    s_organ = (uptake_bulk_level(spect[inside]) if percentile == "bulk"
               else float(np.percentile(spect[inside], percentile)))
    s_shell = float(np.median(spect[shell])) if shell.any() else 0.0
    ratio = s_organ / s_shell if s_shell > 0 else float("inf")
    rec["uptake_ratio"] = round(ratio, 2) if np.isfinite(ratio) else None
    if s_organ <= 0 or ratio < min_contrast:
        return None, rec
    rec["used"] = True
    base = s_shell if above_surroundings else 0.0
    rec["baseline"] = round(base, 6)
    z = np.clip(((spect - base) / (s_organ - base) - fraction) / width, -50.0, 50.0)
    veto = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    if valid is not None:
        veto[~valid] = 1.0
    return veto, rec


def uptake_bulk_level(values: np.ndarray, clip: float = 2.0, max_iterations: int = 20) -> float:
    """The uptake of an organ's bulk: the median of ``values`` without the hot ones, iterated.

    Start from the median; drop the values above ``clip`` times it; take the median of the
    rest; repeat until it no longer changes. A parenchyma's voxels are most of the organ and lie
    within a factor of two of each other; hot lesions inside it (metastases at several times
    its uptake) raise the plain median toward their own level, and each step sheds them. Without
    such lesions nothing lies above twice the median, and the result is the median. Used for
    the liver's level (``FusionOptions.veto_percentile``).

    Parameters
    ----------
    values : numpy.ndarray
        SPECT values (any activity unit).
    clip : float
        Values above ``clip`` times the current level are left out of the next step.
    max_iterations : int

    Returns
    -------
    float
        In the unit of ``values``.
    """
    v = np.asarray(values, float).ravel()
    level = float(np.median(v))
    if not np.isfinite(level) or level <= 0:  # no uptake to shed lesions from
        return level
    for _ in range(max_iterations):
        kept = v[v <= clip * level]
        if kept.size == 0:
            break
        new = float(np.median(kept))
        if new == level:
            break
        level = new
    return level


def grow_with_uptake(mask: np.ndarray, ct_hu: np.ndarray, voxel_size_mm, organ_hu: float, organ_sd_hu: float,
                     veto: np.ndarray, blocked: np.ndarray | None = None, k_sd: float = 2.0,
                     min_veto: float = 0.7, max_mm: float = 20.0, smooth_mm: float = 2.0,
                     spect: np.ndarray | None = None) -> np.ndarray:
    """The organ's mask grown over connected tissue that has both its CT number and its uptake.

    Where the atlas of another person gave an organ less room than the patient's organ
    takes (a larger left liver lobe, a longer spleen), the voxelwise MAP leaves the rest
    to "other". This step adds, by geodesic dilation from the mask (at most ``max_mm``),
    the voxels whose smoothed CT lies within ``k_sd`` of the organ's intensity model and
    whose SPECT is clearly the organ's (``veto`` above ``min_veto``, :func:`uptake_veto`):
    neither the CT (stomach wall, muscle, other organs share its CT numbers) nor the
    uptake (a 12 mm FWHM image spreads it over the neighbours) alone.

    Leave-one-out on the ICRP-110 phantoms with a simulated SPECT (``sample_data.seg_regression
    --spect``): female liver Dice 0.87-0.88 -> 0.91-0.92, spleen 0.79-0.80 -> 0.83-0.84,
    kidneys 0.86-0.90 -> 0.90-0.93; uptake errors unchanged within 2 %.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape (I, J, K)
    ct_hu : numpy.ndarray, shape (I, J, K)
        CT numbers, HU.
    voxel_size_mm : sequence of 3 float
    organ_hu, organ_sd_hu : float
        The organ's intensity model (centre and SD of the smoothed CT), HU.
    veto : numpy.ndarray, shape (I, J, K)
        :func:`uptake_veto` of the organ, values in (0, 1).
    blocked : numpy.ndarray of bool, optional
        Voxels that may not be added (other organs).
    k_sd, min_veto, max_mm, smooth_mm : float
        CT window (SDs), uptake condition, largest growth (mm), CT smoothing (SD, mm).
    spect : numpy.ndarray, optional
        The SPECT the veto came from: what the growth took from another hot structure's
        uptake basin is dropped again (:func:`drop_other_hot_basins`).

    Returns
    -------
    numpy.ndarray of bool
    """
    vs = np.asarray(voxel_size_mm, float)
    ok = uptake_growth_allowed(smoothed_ct(ct_hu, vs, smooth_mm), organ_hu, organ_sd_hu, veto, blocked, k_sd, min_veto)
    m = mask.copy()
    for _ in range(int(round(max_mm / vs.min()))):
        new = ndi.binary_dilation(m) & ok & ~m
        if not new.any():
            break
        m |= new
    if spect is not None and (m & ~mask).any():
        m = drop_other_hot_basins(spect, mask, m, vs, others=blocked)
    return m


def uptake_growth_allowed(smoothed_hu: np.ndarray, organ_hu: float, organ_sd_hu: float, veto: np.ndarray,
                          blocked: np.ndarray | None = None, k_sd: float = 2.0,
                          min_veto: float = 0.7) -> np.ndarray:
    """Where :func:`grow_with_uptake` may add voxels to an organ (bool, the CT's shape): the smoothed
    CT (HU, :func:`smoothed_ct`) within ``k_sd`` SDs of the organ's intensity model, the veto above
    ``min_veto``, not ``blocked``."""
    ok = (np.abs(smoothed_hu - organ_hu) < k_sd * organ_sd_hu) & (veto > min_veto)
    if blocked is not None:
        ok &= ~blocked
    return ok


def smoothed_ct(ct_hu: np.ndarray, voxel_size_mm, smooth_mm: float = 2.0) -> np.ndarray:
    """The CT (HU) smoothed by a Gaussian of SD ``smooth_mm`` against low-dose noise, float32."""
    return ndi.gaussian_filter(ct_hu.astype(np.float32), smooth_mm / np.asarray(voxel_size_mm, float))


def grow_together(masks: dict, allowed: dict, voxel_size_mm, max_mm: float = 20.0,
                  closeness: dict | None = None) -> dict:
    """Several organs grown at once, one voxel layer per step, each over its ``allowed`` voxels.

    Grown one after the other (:func:`grow_with_uptake`), the first organ takes up to ``max_mm``
    of whatever tissue it may, also the part of a neighbour that the atlas left out: on the
    female ICRP-110 phantom with a splenomegaly (spleen 125 -> 307 mL) and a spleen about as hot
    as the renal cortex, the left kidney, grown first, took 54 mL of spleen above its upper pole.
    Grown in lockstep, each organ reaches a voxel only where it is the nearer one (geodesically);
    a voxel two organs reach in the same step goes to the one for which it is the smaller
    ``closeness`` (for example its CT number's distance to the organ's model in SDs), else
    to neither.

    Parameters
    ----------
    masks : dict
        Organ name -> bool array (I, J, K), the organs before the growth (not overlapping).
    allowed : dict
        Organ name -> bool array, where it may grow (:func:`uptake_growth_allowed`); organs
        missing from it do not grow but still block the others.
    voxel_size_mm : sequence of 3 float
    max_mm : float
        Largest growth, mm (steps of the smallest voxel size).
    closeness : dict, optional
        Organ name -> float array (I, J, K), lower is more likely the organ's.

    Returns
    -------
    dict
        Organ name -> grown bool array (the organs not in ``allowed`` unchanged).
    """
    vs = np.asarray(voxel_size_mm, float)
    out = {n: m.copy() for n, m in masks.items()}
    growing = [n for n in allowed if n in out]
    taken = np.zeros_like(next(iter(out.values())), dtype=bool)
    for m in out.values():
        taken |= m
    for _ in range(int(round(max_mm / vs.min()))):
        claims = {n: ndi.binary_dilation(out[n]) & allowed[n] & ~taken for n in growing}
        claims = {n: c for n, c in claims.items() if c.any()}
        if not claims:
            break
        count = sum(c.astype(np.uint8) for c in claims.values())
        contested = count > 1
        best = None
        if contested.any() and closeness is not None:
            names = list(claims)
            score = np.stack([np.where(claims[n] & contested, closeness[n], np.inf) for n in names])
            best = np.argmin(score, axis=0)
            tie = np.sum(score == score.min(axis=0), axis=0) > 1
        for i, (n, c) in enumerate(claims.items()):
            add = c & ~contested
            if best is not None:
                add |= c & contested & (best == i) & ~tie
            out[n] |= add
            taken |= add
    return out


def drop_other_hot_basins(spect: np.ndarray, mask: np.ndarray, grown: np.ndarray, voxel_size_mm,
                          min_dynamic: float = 0.1, clearance_mm: float = 6.0, smooth_mm: float = 1.5,
                          peak_radius_mm: float = 8.0, others: np.ndarray | None = None) -> np.ndarray:
    """The grown organ without what it took from another hot structure's uptake basin.

    Growth over tissue with the organ's CT number and uptake (:func:`grow_with_uptake`) cannot
    tell a hot lymph node or lesion beside a kidney on unenhanced CT (similar CT numbers, hot
    as the organ) from a part of the kidney the atlas missed. What tells them apart is the
    SPECT's shape: a missed part of the organ continues the organ's uptake, a separate
    structure has its own peak with a valley between. Every voxel of the smoothed SPECT
    belongs to the uptake basin where its steepest ascent ends: the organ's mask, or a local
    maximum. A maximum at least half the organ's uptake, more than ``clearance_mm`` outside it,
    whose peak stands above the saddle to the organ's basin by at least
    ``min_dynamic`` of the organ's uptake (75th percentile in the mask) is another structure,
    and the voxels the growth added in it are dropped. Lower bumps (noise, the organ's own
    non-uniformity) stay with the organ, and so do basins whose peak lies in another segmented
    organ (``others``): a cold organ's edge next to a hot kidney lies on the kidney's slope,
    and the growth never enters the kidney itself (it is blocked).

    Realistic simulated SPECT (``sample_data.seg_regression --spect realistic``: a lymph node
    of 12 mm radius at 1.5 x the renal cortex uptake, 8 mm medial to the left kidney): the
    growth took 23-45 % of the node on 4 of 6 ICRP-110 cases without this step.

    Parameters
    ----------
    spect : numpy.ndarray, shape (I, J, K)
        SPECT on the mask's grid (any activity unit).
    mask, grown : numpy.ndarray of bool, shape (I, J, K)
        The organ before and after the growth.
    voxel_size_mm : sequence of 3 float
    min_dynamic : float
        Smallest height of a separate peak above its saddle to the organ, relative to the
        organ's uptake.
    clearance_mm, smooth_mm, peak_radius_mm : float
        Distance outside the mask beyond which a maximum can be another structure's; Gaussian
        smoothing (SD) of the SPECT against noise maxima; radius of the maximum filter.
    others : numpy.ndarray of bool, optional
        The other organs' masks: peaks within ``clearance_mm`` of them are theirs, not lesions.

    Returns
    -------
    numpy.ndarray of bool
    """
    vs = np.asarray(voxel_size_mm, float)
    added = grown & ~mask
    # a box around the growth, wide enough to hold the peaks of what it reached
    margin = np.ceil((2 * peak_radius_mm + clearance_mm) / vs).astype(int)
    idx = np.argwhere(grown)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, grown.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    s = ndi.gaussian_filter(np.asarray(spect[box], np.float32), smooth_mm / vs)
    m = mask[box]
    if not m.any():
        return grown
    s_organ = float(np.percentile(s[m], 75))
    if s_organ <= 0:
        return grown
    ball = ellipsoid_structure(peak_radius_mm, vs)
    far = ndi.distance_transform_edt(~m, sampling=vs) > clearance_mm
    if others is not None and others[box].any():
        far &= ndi.distance_transform_edt(~others[box], sampling=vs) > clearance_mm
    peaks = (s >= ndi.maximum_filter(s, footprint=ball)) & (s >= 0.5 * s_organ) & far
    target = _ascent_target(s, m)
    flat_s = s.ravel()
    is_peak = peaks.ravel()
    organ_basin = m.ravel()[target]  # voxels whose steepest ascent runs into the organ
    touch = (ndi.binary_dilation(organ_basin.reshape(s.shape)) & ~organ_basin.reshape(s.shape)).ravel()
    add = added[box].ravel()
    drop = np.zeros(s.size, bool)
    for t in np.unique(target[add & ~organ_basin]):
        if not is_peak[t]:
            continue  # a low bump or a maximum near the organ: stays with the organ
        b = target == t
        border = b & touch
        saddle = float(flat_s[border].max()) if border.any() else 0.0
        if flat_s[t] - saddle >= min_dynamic * s_organ:
            drop |= b & add
    out = grown.copy()
    out[box] &= ~drop.reshape(s.shape)
    return out


def _ascent_target(s: np.ndarray, absorb: np.ndarray) -> np.ndarray:
    """Flat index where steepest ascent on ``s`` (26 neighbours) ends for every voxel (flat array);
    the voxels of ``absorb`` end where they are (an ascent that enters them stops there)."""
    shape = s.shape
    pad = np.pad(s, 1, constant_values=-np.inf)
    idx = np.pad(np.arange(s.size).reshape(shape), 1, constant_values=-1)
    best = s.copy()
    parent = np.arange(s.size).reshape(shape)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            for dk in (-1, 0, 1):
                if di == dj == dk == 0:
                    continue
                sl = tuple(slice(1 + d, 1 + d + n) for d, n in zip((di, dj, dk), shape))
                nb = pad[sl]
                better = nb > best
                best[better] = nb[better]
                parent[better] = idx[sl][better]
    parent[absorb] = np.flatnonzero(absorb.ravel())
    flat = parent.ravel()
    for _ in range(int(np.ceil(np.log2(max(s.size, 2)))) + 1):  # pointer jumping: paths of any length
        nxt = flat[flat]
        if np.array_equal(nxt, flat):
            break
        flat = nxt
    return flat
