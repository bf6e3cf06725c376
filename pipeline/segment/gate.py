"""QC gate after segmentation: anatomy and physics checks on any label map.

Runs on the label map of every backend (built-in and imported masks alike)
with the CT it belongs to, and optionally the reference SPECT and vertebral
levels found independently on the CT. Each check gives pass, warn or fail
against a range of :mod:`pipeline.segment.gate_ranges` (with its source).

The CT: its subcutaneous fat peak (its numbers' calibration, :mod:`pipeline.segment.ct_numbers`);
beyond the tolerance the tissue checks read the CT shifted to the reference, as the built-in
segmenter does.

Checks, per solid organ (kidneys, liver, spleen): present (unless declared
absent), volume, median HU, gas volume and fat fraction inside, largest
connected piece, side of the midline; kidneys: distance from the midline,
antero-posterior position against the vertebral bodies, level against L2-L4,
volume ratio of the two and, with a SPECT, the colder one's concentration over the
hotter one's; liver: gap between its top and the right lung base;
SPECT uptake against a shell 10-25 mm around the organ; kidneys, with a SPECT: the shift that
fits the SPECT best (:mod:`pipeline.segment.gate_alignment`: SPECT/CT misregistration, warn
only); liver and spleen, with a SPECT:
the share of the interior (more than 6 mm inside; where the organ is cut by the field of view
the cut face does not count as surface) hotter than twice the parenchyma's bulk level
(hot lesions inside the mask: warn, never fail); when the built-in segmenter labelled such
lesions apart, the checks run on the organs' outlines, ``hot_lesion_fraction`` on what is left,
and ``lesion_share`` (lesions and spill zone over the outline) says how far the spill of the
lesions may still raise the parenchyma. Spine (:mod:`pipeline.segment.gate_spine`): extent of
L2-L4, three bodies and their heights, the L2-L4 mask against the levels found
on the CT, marrow VOI volume per vertebra and its median HU, the step between adjacent VOIs
from front to back and where they lie against the spinal canal. The record of a check, its
grading and the working grid are in :mod:`pipeline.segment.gate_grid`.

An organ cut by the field of view (touching a face of the CT array) gets warn
instead of fail on its lower volume limit and on its position checks.

Everything except the volumes (exact, on the CT grid) runs on a working grid
of about 2 mm (block mean of the CT, labels sampled at the block centres).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..image import Image
from . import labels as L
from .gate_grid import (Check, _centroid_world, _graded, _Grid, _labels_on_working_grid, _skip, _touches_fov,
                        _working_grid)
from .gate_ranges import RANGES, Limits
from .gate_alignment import uptake_offset_check
from .gate_spine import _spine_checks, level_evidence_check
from .components import component_sizes, fill_holes, select_labels
from .ct_numbers import fat_correction_hu, fat_peak_hu

__all__ = ["Check", "GateResult", "check_segmentation", "ORGANS"]

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")
_SIDE = {"kidney_left": -1.0, "kidney_right": 1.0, "liver": 1.0, "spleen": -1.0}  # RAS+ x sign


@dataclass
class GateResult:
    """All checks of one label map."""

    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Worst status: fail > warn > pass."""
        s = {c.status for c in self.checks}
        return "fail" if "fail" in s else "warn" if "warn" in s else "pass"

    def by_status(self, status: str) -> list[Check]:
        return [c for c in self.checks if c.status == status]

    def find(self, structure: str, check: str) -> Check | None:
        for c in self.checks:
            if c.structure == structure and c.check == check:
                return c
        return None

    def as_dict(self) -> dict:
        counts = {s: len(self.by_status(s)) for s in ("pass", "warn", "fail", "skip")}
        return {"status": self.status, "counts": counts, "checks": [c.as_dict() for c in self.checks]}


# --------------------------------------------------------------------------- helpers
def _kind(organ: str) -> str:
    return "kidney" if organ.startswith("kidney") else organ


def _limits(organ: str, check: str) -> Limits:
    for key in (f"{organ}.{check}", f"{_kind(organ)}.{check}", f"organ.{check}", check):
        if key in RANGES:
            return RANGES[key]
    raise KeyError(check)


def _interior(mask: np.ndarray) -> np.ndarray:
    core = ndi.binary_erosion(mask)
    return core if core.sum() >= 20 else mask


def _largest_fraction(mask: np.ndarray) -> float:
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return 1.0
    sizes = np.bincount(lab.ravel())[1:]
    return float(sizes.max() / sizes.sum())


def _lungs(g: _Grid) -> np.ndarray:
    """Air inside the patient (below -500 HU), the large components (> 100 mL)."""
    body = fill_holes(g.ct > -400, per_slice=True)
    air = (g.ct < -500) & body
    lab, n = ndi.label(air)
    if n == 0:
        return air
    sizes = component_sizes(lab, n) * g.voxel_ml
    return select_labels(lab, np.flatnonzero(sizes > 100.0) + 1)


# --------------------------------------------------------------------------- checks
def _organ_checks(g: _Grid, organ: str, mask: np.ndarray, volume_ml: float, cut: bool) -> list[Check]:
    out = [_graded(organ, "volume_ml", volume_ml, _limits(organ, "volume_ml"),
                   note="cut by the field of view: lower limit not enforced" if cut else "",
                   soften=cut and volume_ml < _limits(organ, "volume_ml").pass_lo)]
    inner = _interior(mask)
    hu = g.ct[inner]
    out.append(_graded(organ, "median_hu", float(np.median(hu)), _limits(organ, "median_hu")))
    out.append(_graded(organ, "gas_ml", float(np.count_nonzero(hu < -400.0)) * g.voxel_ml,
                       _limits(organ, "gas_ml")))
    out.append(_graded(organ, "fat_fraction", float(np.mean(hu < -30.0)), _limits(organ, "fat_fraction")))
    out.append(_graded(organ, "largest_component_fraction", _largest_fraction(mask),
                       _limits(organ, "largest_component_fraction")))
    out.append(_graded(organ, "solidity", _solidity(mask, g.vs), _limits(organ, "solidity"), soften=cut))
    return out


def _solidity(mask: np.ndarray, vs) -> float:
    """Volume of ``mask`` over the volume of its convex hull (voxel centres' hull grown by half a
    voxel over its surface), in [0, 1]."""
    from scipy.spatial import ConvexHull, QhullError

    surf = mask & ~ndi.binary_erosion(mask)
    pts = np.argwhere(surf) * np.asarray(vs)
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):
        return 1.0  # flat or tiny: nothing to say about its shape
    return float(min(1.0, mask.sum() * np.prod(vs) / (hull.volume + hull.area * np.mean(vs) / 2.0)))


def _midline_x(g: _Grid) -> tuple[float, str]:
    vert = np.isin(g.labels, (L.MARROW_L2L4, L.VERTEBRAE_L2L4))
    if vert.sum() > 50:
        return float(_centroid_world(g, vert)[0]), "L2-L4 vertebral bodies"
    body = g.labels == L.BODY
    if not body.any():
        body = g.ct > -400
    return float(_centroid_world(g, body)[0]), "body outline"


def _organ_and_shell_uptake(g: _Grid, spect: Image, mask: np.ndarray
                            ) -> tuple[float | None, float | None, np.ndarray]:
    """Mean SPECT in the organ and in a shell 10-25 mm outside it (working grid, the SPECT's unit),
    and the SPECT values of the organ's interior (more than 6 mm inside its surface, where the
    neighbours' spill is small) in the field of view.

    The organ's mean is None when less than half of it lies in the SPECT's field of view; the
    shell's when fewer than 20 of its voxels do.
    """
    from ..grid import bounding_box

    margin = [int(np.ceil(26.0 / v)) for v in g.vs]
    box = bounding_box(mask, margin)
    m = mask[box]
    d = ndi.distance_transform_edt(~m, sampling=g.vs)
    shell = (d > 10.0) & (d <= 25.0)
    idx = np.argwhere(m | shell) + [s.start for s in box]
    vals = ndi.map_coordinates(np.asarray(spect.array, np.float32), spect.world_to_index(g.world(idx)).T, order=1,
                               mode="constant", cval=np.nan)
    sel_m = m[tuple((idx - [s.start for s in box]).T)]
    inside, around = vals[sel_m], vals[~sel_m]
    deep = ndi.distance_transform_edt(m, sampling=g.vs)[tuple((idx - [s.start for s in box]).T)][sel_m] > 6.0
    interior = inside[deep & np.isfinite(inside)]
    inside, around = inside[np.isfinite(inside)], around[np.isfinite(around)]
    organ = float(np.mean(inside)) if inside.size >= 0.5 * sel_m.sum() else None
    return organ, (float(np.mean(around)) if around.size >= 20 else None), interior


def _hot_lesion_fraction(values: np.ndarray) -> float | None:
    """Share of an organ's interior voxels whose SPECT is above twice its parenchyma's level
    (:func:`pipeline.segment.uptake_growth.uptake_bulk_level`); None for fewer than 50 values."""
    from .uptake_growth import uptake_bulk_level

    if values.size < 50:
        return None
    level = uptake_bulk_level(values)
    return float(np.mean(values > 2.0 * level)) if level > 0 else None


def _liver_dome_gap(g: _Grid, liver: np.ndarray, lungs: np.ndarray) -> float | None:
    """Smallest gap (mm) between the liver's top and the lung base over the liver's columns."""
    cols = liver.any(axis=2) & lungs.any(axis=2)
    if cols.sum() < 10:
        return None
    nz = liver.shape[2]
    top = nz - 1 - np.argmax(liver[:, :, ::-1], axis=2)
    gaps = []
    for i, j in zip(*np.nonzero(cols)):
        above = np.flatnonzero(lungs[i, j, top[i, j] + 1:])
        if above.size:
            gaps.append((above[0]) * g.vs[2])
    if len(gaps) < 10:
        return None
    return float(np.percentile(gaps, 5))


def check_segmentation(ct: Image, labels: Image, spect: Image | None = None, levels: dict | None = None,
                       absent_organs=(), working_voxel_mm: float = 2.0,
                       level_vote: dict | None = None, parenchyma: Image | None = None,
                       marrow_uptake: dict | None = None) -> GateResult:
    """Run the QC gate on a label map.

    Parameters
    ----------
    ct : Image
        CT in HU.
    labels : Image
        Label map on the CT grid (DESIGN ids).
    spect : Image, optional
        Reference SPECT (Bq/mL, any grid overlapping the CT): uptake checks.
    levels : dict, optional
        Vertebral levels found on the CT independently of the label map:
        name -> (z_lo_mm, z_hi_mm) superior-inferior range (RAS+ z, mm).
    absent_organs : iterable of str
        Organs declared absent (e.g. ``spleen`` after splenectomy): their
        absence passes; a declared-absent organ the label map holds fails (``present``). With
        one kidney declared absent, the two kidneys' checks are skipped with that reason.
    working_voxel_mm : float
        In-plane voxel size of the working grid, mm.
    level_vote : dict, optional
        How those levels were named (:func:`level_evidence_check`).
    parenchyma : Image, optional
        The final label map when hot lesions inside the liver and spleen were labelled apart
        (:func:`pipeline.segment.organ_lesions.label_organ_lesions`); ``labels`` are then the
        organs' outlines, on which every check runs except ``hot_lesion_fraction``, which
        checks what is left of the organ.
    marrow_uptake : dict, optional
        :func:`pipeline.segment.marrow_uptake.exclude_hot_vertebrae`'s record: each vertebra's
        marrow VOI uptake against the coldest (``uptake_to_coldest``), and the left-out ones.

    Returns
    -------
    GateResult
    """
    if not ct.same_grid(labels):
        raise ValueError("the label map must be on the CT grid")
    res = GateResult()
    counts = np.bincount(np.asarray(labels.array).ravel().astype(np.int64), minlength=8)
    g = _working_grid(ct, labels, working_voxel_mm)
    fat = fat_peak_hu(g.ct, g.labels != 0, g.vs)
    if fat is None:
        res.checks.append(_skip("ct", "fat_peak_hu", "fewer than 1000 body voxels of fat (-200 to -40 HU)"))
    else:
        # the tissue checks (organs' and marrow's CT numbers, fat and gas inside) judge what a voxel
        # is: on a CT read off as a whole they read it as the built-in segmenter does, against fat
        shift = fat_correction_hu(fat, refuse=False)
        if shift:
            g.ct = g.ct - np.float32(shift)
        res.checks.append(_graded("ct", "fat_peak_hu", fat, RANGES["ct.fat_peak_hu"],
                                  note=f"the tissue checks read the CT {-shift:+.0f} HU" if shift else ""))
    mid_x, mid_from = _midline_x(g)
    spine_checks, spine = _spine_checks(g, levels, marrow_uptake)
    evidence = level_evidence_check(level_vote)
    if evidence is not None:
        spine_checks.append(evidence)
    vert = np.isin(g.labels, (L.MARROW_L2L4, L.VERTEBRAE_L2L4))
    vert_c = _centroid_world(g, vert) if vert.sum() > 20 else None
    lungs = par_lab = None
    masks, cuts, uptake = {}, {}, {}  # uptake: organ -> (organ mean, shell mean) on the SPECT
    for organ in ORGANS:
        lid = L.name_to_id(organ)
        vol = float(counts[lid]) * ct.voxel_volume_ml
        mask = g.labels == lid
        if vol == 0.0 or not mask.any():
            if organ in absent_organs:
                res.checks.append(Check(organ, "present", 0.0, "", "pass", "absent (declared)", "user"))
            else:
                res.checks.append(Check(organ, "present", 0.0, "mL", "fail", "present",
                                        "a complete segmentation holds both kidneys, liver and spleen",
                                        "declare it absent (--absent-organ) after nephrectomy or "
                                        "splenectomy"))
            continue
        if organ in absent_organs:  # imported masks that hold it, or a label map from elsewhere
            res.checks.append(Check(organ, "present", vol, "mL", "fail", "absent (declared)", "user",
                                    "declared absent (--absent-organ), but the label map holds it: "
                                    "which is right?"))
            continue
        cut = _touches_fov(mask)
        masks[organ], cuts[organ] = mask, cut
        res.checks += _organ_checks(g, organ, mask, vol, cut)
        c = _centroid_world(g, mask)
        side = _SIDE[organ] * (c[0] - mid_x)
        res.checks.append(_graded(organ, "side_mm", side, _limits(organ, "side_mm"),
                                  note=f"midline from the {mid_from}"))
        if organ.startswith("kidney"):
            res.checks.append(_graded(organ, "lateral_mm", abs(c[0] - mid_x), _limits(organ, "lateral_mm"),
                                      soften=cut))
            if vert_c is not None:
                res.checks.append(_graded(organ, "anterior_mm", c[1] - vert_c[1], _limits(organ, "anterior_mm"),
                                          soften=cut))
                lv = (c[2] - spine["l3_z_mm"]) / max(spine["pitch_mm"], 1.0) if spine else None
                if lv is not None:
                    res.checks.append(_graded(organ, "level", lv, _limits(organ, "level"), soften=cut))
        if organ == "liver":
            if lungs is None:
                lungs = _lungs(g)
            if cut and mask[:, :, -1].any():
                res.checks.append(_skip(organ, "dome_gap_mm", "liver cut at the top of the field of view"))
            else:
                xi = g.world(np.stack([np.arange(mask.shape[0]), np.zeros(mask.shape[0]),
                                        np.zeros(mask.shape[0])], 1))[:, 0]
                right = (xi > mid_x)[:, None, None]
                gap = _liver_dome_gap(g, mask, lungs & right)
                if gap is None:
                    res.checks.append(_skip(organ, "dome_gap_mm", "no lung base above the liver in the field of view"))
                else:
                    res.checks.append(_graded(organ, "dome_gap_mm", gap, RANGES["liver.dome_gap_mm"]))
        if spect is not None:
            inside, around, values = _organ_and_shell_uptake(g, spect, mask)
            uptake[organ] = (inside, around)
            if inside is None or around is None or around <= 0:
                res.checks.append(_skip(organ, "uptake_ratio", "organ outside the SPECT or no counts around it"))
            else:
                res.checks.append(_graded(organ, "uptake_ratio", inside / around, _limits(organ, "uptake_ratio")))
            if organ.startswith("kidney"):
                res.checks.append(uptake_offset_check(g, spect, organ, mask))
            if organ in ("liver", "spleen") and inside is not None:
                if parenchyma is not None:
                    if par_lab is None:
                        par_lab = _labels_on_working_grid(parenchyma, g.factors)
                    left = par_lab == L.name_to_id(organ)
                    share = 1.0 - np.count_nonzero(left & mask) / max(np.count_nonzero(mask), 1)
                    if share > 0:
                        res.checks.append(_graded(organ, "lesion_share", share, RANGES["organ.lesion_share"],
                                                  note="hot lesions and their spill zone labelled apart"))
                    _, _, values = _organ_and_shell_uptake(g, spect, left)
                hot = _hot_lesion_fraction(values)
                if hot is None:
                    res.checks.append(_skip(organ, "hot_lesion_fraction",
                                            "fewer than 50 interior voxels in the SPECT or no uptake"))
                else:
                    res.checks.append(_graded(organ, "hot_lesion_fraction", hot, RANGES["organ.hot_lesion_fraction"]))
    if "kidney_left" in masks and "kidney_right" in masks:
        vl = float(counts[L.KIDNEY_LEFT]) * ct.voxel_volume_ml
        vr = float(counts[L.KIDNEY_RIGHT]) * ct.voxel_volume_ml
        ratio = max(vl, vr) / max(min(vl, vr), 1e-9)
        res.checks.append(_graded("kidneys", "volume_ratio", ratio, RANGES["kidney.volume_ratio"],
                                  soften=cuts["kidney_left"] or cuts["kidney_right"]))
        if spect is not None:
            u = [uptake[k][0] for k in ("kidney_left", "kidney_right")]
            if None in u or max(u) <= 0:
                res.checks.append(_skip("kidneys", "uptake_symmetry", "a kidney outside the SPECT or no counts"))
            else:
                res.checks.append(_graded("kidneys", "uptake_symmetry", min(u) / max(u),
                                          RANGES["kidney.uptake_symmetry"]))
    solitary = [k for k in ("kidney_left", "kidney_right") if k in absent_organs]
    if len(solitary) == 1:
        for check in ("volume_ratio",) + (("uptake_symmetry",) if spect is not None else ()):
            res.checks.append(_skip("kidneys", check, f"solitary kidney: {solitary[0]} declared absent"))
    res.checks += spine_checks
    for organ in masks:  # several borderline checks together mean a wrong mask
        n = sum(1 for c in res.checks if c.structure == organ and c.status == "warn" and "field of view" not in c.note
                and c.check != "uptake_offset_mm")  # the SPECT's alignment, not the mask's shape
        if n >= 2:
            res.checks.append(_graded(organ, "warn_count", float(n), RANGES["organ.warn_count"],
                                      note=", ".join(c.check for c in res.checks
                                                     if c.structure == organ and c.status == "warn")))
    return res
