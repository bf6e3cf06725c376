"""QC gate, spine: the L2-L4 mask and its marrow VOI (extent, bodies, heights, volumes, HU, metal,
where each VOI lies against its neighbours and the spinal canal, the levels against the CT's own,
each VOI's uptake against the others), and how the levels were named.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import labels as L
from .gate_grid import Check, _centroid_world, _graded, _Grid, _skip, _touches_fov
from .gate_ranges import RANGES
from .native_spine import canal_holes

__all__ = ["level_evidence_check", "LEVEL_EVIDENCE_SOURCE", "METAL_HU"]

#: Above this (HU) a voxel of the working grid (block mean of the CT) is metal or dense cement.
METAL_HU = 2500.0


def _spine_checks(g: _Grid, levels: dict | None, marrow_uptake: dict | None = None) -> tuple[list[Check], dict]:
    """The L2-L4 checks; ``marrow_uptake``: the record of
    :func:`pipeline.segment.marrow_uptake.exclude_hot_vertebrae` (a left-out vertebra's VOI volume is
    skipped, and each vertebra's uptake against the coldest is graded)."""
    out: list[Check] = []
    mu = marrow_uptake or {}
    excluded = set(mu.get("excluded", ()))
    info: dict = {}
    whole = np.isin(g.labels, (L.MARROW_L2L4, L.VERTEBRAE_L2L4))
    if whole.sum() < 20:
        out.append(Check("vertebrae_L2L4", "present", 0.0, "", "fail", "present",
                         "EANM 2010 marrow dosimetry guideline (L2-L4 VOIs)"))
        return out, info
    ks = np.flatnonzero(whole.any(axis=(0, 1)))
    z = g.world(np.stack([np.zeros_like(ks), np.zeros_like(ks), ks], 1).astype(float))[:, 2]
    extent = float(z.max() - z.min() + g.vs[2])
    cut = _touches_fov(whole)
    out.append(_graded("vertebrae_L2L4", "extent_mm", extent, RANGES["vertebrae_L2L4.extent_mm"], soften=cut,
                       note="cut by the field of view" if cut else ""))
    out.append(_graded("vertebrae_L2L4", "bone_fraction", float(np.mean(g.ct[whole] > 100.0)),
                       RANGES["vertebrae_L2L4.bone_fraction"]))
    out.append(_graded("vertebrae_L2L4", "metal_ml", float(np.count_nonzero(g.ct[whole] > METAL_HU)) * g.voxel_ml,
                       RANGES["vertebrae_L2L4.metal_ml"]))
    # the bodies: components along z (discs separate them); tiny fragments ignored
    lab, n = ndi.label(whole, structure=np.ones((3, 3, 3), bool))
    comps = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        size = int(np.count_nonzero(lab[sl] == i))
        if size * g.voxel_ml < 2.0:
            continue
        comps.append((sl[2].start, sl[2].stop, i, size))
    comps.sort()
    out.append(_graded("vertebrae_L2L4", "bodies", float(len(comps)), RANGES["vertebrae_L2L4.bodies"]))
    names = ("L4", "L3", "L2")
    if len(comps) == 3:
        for (k0, k1, i, _), nm in zip(comps, names):
            out.append(_graded(f"vertebra_{nm}", "body_height_mm", (k1 - k0) * g.vs[2],
                               RANGES["vertebrae_L2L4.body_height_mm"]))
        marrow = g.labels == L.MARROW_L2L4
        for (k0, k1, i, _), nm in zip(comps, names):
            if nm in excluded:
                out.append(_skip(f"marrow_{nm}", "volume_ml", "left out of the marrow VOI: focal uptake "
                                 "(uptake_to_coldest)"))
                continue
            m = marrow & (lab == i)
            vol = float(np.count_nonzero(m)) * g.voxel_ml
            out.append(_graded(f"marrow_{nm}", "volume_ml", vol, RANGES["marrow_L2L4.volume_per_vertebra_ml"]))
        out.append(_ap_step_check(g, lab, comps, marrow))
        out.append(_canal_offset_check(g, lab, comps, marrow))
    else:
        marrow = g.labels == L.MARROW_L2L4
        vol = float(np.count_nonzero(marrow)) * g.voxel_ml / 3.0
        out.append(_graded("marrow_L2L4", "volume_per_vertebra_ml", vol,
                           RANGES["marrow_L2L4.volume_per_vertebra_ml"],
                           note="bodies not separable: total over three"))
    ambiguous = set(mu.get("ambiguous", ()))
    for nm, ratio in sorted((mu.get("ratio_to_coldest") or {}).items()):
        note = ("left out of the marrow VOI; the marrow dose from the other vertebrae" if nm in excluded else
                "kept: two vertebrae read above the third (metastases in two, or one cold vertebra: cement, "
                "irradiated marrow); look at the SPECT" if nm in ambiguous else
                "kept: below the ratio at which a vertebra is left out" if ratio > RANGES[
                    "marrow_L2L4.uptake_to_coldest"].pass_hi else "")
        out.append(_graded(f"marrow_{nm}", "uptake_to_coldest", ratio, RANGES["marrow_L2L4.uptake_to_coldest"],
                           note=note))
    marrow = g.labels == L.MARROW_L2L4
    if marrow.any():
        out.append(_graded("marrow_L2L4", "median_hu", float(np.median(g.ct[marrow])),
                           RANGES["marrow_L2L4.median_hu"]))
    pitch = extent / 3.0
    zc = float(_centroid_world(g, whole)[2])
    info.update(pitch_mm=pitch, l3_z_mm=zc, extent_mm=extent)
    # against the levels found independently on the CT
    if levels and "L3" in levels:
        lo, hi = levels["L3"]
        found = 0.5 * (lo + hi)
        off = (zc - found) / max(pitch, 1.0)
        out.append(_graded("vertebrae_L2L4", "level_offset", off, RANGES["vertebrae_L2L4.level_offset"],
                           note=f"L3 centre of the mask at z = {zc:.0f} mm, of the CT's spine analysis "
                                f"at {found:.0f} mm"))
    else:
        out.append(_skip("vertebrae_L2L4", "level_offset", "no independent level found on the CT"))
    return out, info


def _vois(lab: np.ndarray, comps: list, marrow: np.ndarray) -> list:
    """Per body of ``comps`` (L4, L3, L2: components of ``lab``) its marrow VOI, or its whole mask
    where it holds none."""
    out = []
    for _, _, i, _ in comps:
        m = lab == i
        mm = m & marrow
        out.append(mm if mm.any() else m)
    return out


def _ap_step_check(g: _Grid, lab: np.ndarray, comps: list, marrow: np.ndarray) -> Check:
    """Largest antero-posterior distance (mm) between the marrow VOI centroids of adjacent bodies.

    A body drawn on the vertebral arch instead of the body lies 30-45 mm behind its neighbours.
    """
    ys = [float(_centroid_world(g, m)[1]) for m in _vois(lab, comps, marrow)]
    step = max(abs(a - b) for a, b in zip(ys[:-1], ys[1:]))
    return _graded("vertebrae_L2L4", "ap_step_mm", step, RANGES["vertebrae_L2L4.ap_step_mm"])


def _voi_canal_offset_mm(g: _Grid, voi: np.ndarray, reach_mm: float = 45.0) -> float | None:
    """Antero-posterior distance (mm, positive anterior) from the spinal canal's centre to a
    marrow VOI's centroid, the median over the VOI's slices where the canal is found; None where
    it is found on none.

    On each slice the canal is a :func:`pipeline.segment.native_spine.canal_holes` hole (bone
    above 150 HU on the smoothed CT, below 60 HU, 40-700 mm^2) within 15 mm of the VOI's
    centroid from side to side and ``reach_mm`` from front to back; the nearest such hole.
    """
    offs = []
    ri, rj = int(np.ceil(reach_mm / g.vs[0])), int(np.ceil(reach_mm / g.vs[1]))
    for k in np.flatnonzero(voi.any(axis=(0, 1))):
        ci, cj = np.argwhere(voi[:, :, k]).mean(axis=0)
        i0, j0 = max(0, int(ci) - ri), max(0, int(cj) - rj)
        sl = g.ct[i0:int(ci) + ri + 1, j0:int(cj) + rj + 1, k]
        near = [(abs(hj + j0 - cj) * g.vs[1], (cj - hj - j0) * g.vs[1])
                for _, (hi, hj) in canal_holes(sl, g.vs) if abs(hi + i0 - ci) * g.vs[0] <= 15.0]
        if near:
            offs.append(min(near, key=lambda t: t[0])[1])
    return float(np.median(offs)) if offs else None


def _canal_offset_check(g: _Grid, lab: np.ndarray, comps: list, marrow: np.ndarray) -> Check:
    """The most posterior of the L2-L4 marrow VOIs relative to its spinal canal (mm, + anterior)."""
    offs = [o for o in (_voi_canal_offset_mm(g, m) for m in _vois(lab, comps, marrow)) if o is not None]
    if not offs:
        return _skip("vertebrae_L2L4", "canal_offset_mm", "no spinal canal found on the CT (hole below 60 HU)")
    return _graded("vertebrae_L2L4", "canal_offset_mm", min(offs), RANGES["vertebrae_L2L4.canal_offset_mm"])


LEVEL_EVIDENCE_SOURCE = ("levels named by independent landmarks of the CT (sacrum and S1, iliac crests, "
                         "rib-bearing T12, disc spaces, body heights) that agree; an atlas registration names them "
                         "with a warning; one landmark alone, or landmarks that disagree, are refused (issue #14: "
                         "a level off by one moves the marrow VOI to another vertebra)")


def level_evidence_check(level_vote: dict | None) -> Check | None:
    """How the vertebral levels were named, as a check (None without a level vote).

    ``level_vote``: the ``levels`` record of :mod:`pipeline.segment.levels` (``decision``
    pass / warn / fail, ``message``, ``evidence``). Pass: landmarks agree (value: how many).
    Warn: named by the atlas registration where the CT's landmarks do not name them, by
    landmarks whose bodies are of uneven height or inconsistent, or by a manual anchor that a
    landmark contradicts; the message says which and how to override. A vote that named nothing
    (imported masks on a CT whose landmarks disagree or are missing) is a skip: the mask's
    levels are then not checked (``level_offset`` is skipped too).
    """
    if not level_vote:
        return None
    decision = level_vote.get("decision")
    message = str(level_vote.get("message", ""))
    agree = [e.get("name") for e in level_vote.get("evidence", []) if e.get("agrees")]
    if decision == "pass":
        return Check("vertebrae_L2L4", "level_evidence", float(len(agree)), "landmarks", "pass",
                     "landmarks agree", LEVEL_EVIDENCE_SOURCE, message)
    if decision == "warn":
        return Check("vertebrae_L2L4", "level_evidence", float(len(agree)), "landmarks", "warn",
                     "landmarks agree", LEVEL_EVIDENCE_SOURCE, message)
    return _skip("vertebrae_L2L4", "level_evidence", message or "no level vote")
