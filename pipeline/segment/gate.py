"""QC gate after segmentation: anatomy and physics checks on any label map.

Runs on the label map of every backend (built-in and imported masks alike)
with the CT it belongs to, and optionally the reference SPECT and vertebral
levels found independently on the CT. Each check gives pass, warn or fail
against a range of :mod:`pipeline.segment.gate_ranges` (with its source).

Checks, per solid organ (kidneys, liver, spleen): present (unless declared
absent), volume, median HU, gas volume and fat fraction inside, largest
connected piece, side of the midline; kidneys: distance from the midline,
antero-posterior position against the vertebral bodies, level against L2-L4,
volume ratio of the two and, with a SPECT, the colder one's concentration over the
hotter one's; liver: gap between its top and the right lung base;
SPECT uptake against a shell 10-25 mm around the organ; liver and spleen, with a SPECT:
the share of the interior (more than 6 mm inside; where the organ is cut by the field of view
the cut face does not count as surface) hotter than twice the parenchyma's bulk level
(hot lesions inside the mask: warn, never fail); when the built-in segmenter labelled such
lesions apart, the checks run on the organs' outlines, ``hot_lesion_fraction`` on what is left,
and ``lesion_share`` (lesions and spill zone over the outline) says how far the spill of the
lesions may still raise the parenchyma. Spine: extent of
L2-L4, three bodies and their heights, the L2-L4 mask against the levels found
on the CT, marrow VOI volume per vertebra and its median HU.

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
from .gate_ranges import RANGES, Limits
from .orient import block_factors, block_mean, ras_order_affine, to_ras_order
from .components import component_sizes, fill_holes, select_labels

__all__ = ["Check", "GateResult", "check_segmentation", "ORGANS"]

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")
_SIDE = {"kidney_left": -1.0, "kidney_right": 1.0, "liver": 1.0, "spleen": -1.0}  # RAS+ x sign


@dataclass(frozen=True)
class Check:
    """One QC check: which structure, what, the value, the verdict and why."""

    structure: str
    check: str
    value: float | None
    unit: str
    status: str  # pass | warn | fail | skip
    expected: str
    source: str
    note: str = ""

    def as_dict(self) -> dict:
        v = self.value
        return {"structure": self.structure, "check": self.check,
                "value": None if v is None or not np.isfinite(v) else round(float(v), 4),
                "unit": self.unit, "status": self.status, "expected": self.expected,
                "source": self.source, "note": self.note}

    def line(self) -> str:
        """``<structure>: <check> (<value> <unit>, expected <range>)``."""
        v = "none" if self.value is None or not np.isfinite(self.value) else f"{self.value:.4g}"
        unit = f" {self.unit}" if self.unit and not self.expected.endswith(self.unit) else ""
        extra = f"; {self.note}" if self.note else ""
        return f"{self.structure}: {self.check} ({v}{unit}, expected {self.expected}{extra})"


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


def _graded(structure, check, value, limits: Limits, note="", soften=False) -> Check:
    status = limits.status(value)
    if soften and status == "fail":
        status = "warn"
    return Check(structure, check, None if value is None else float(value), limits.unit, status,
                 limits.expected(), limits.source, note)


def _skip(structure, check, why) -> Check:
    return Check(structure, check, None, "", "skip", "", "", why)


@dataclass
class _Grid:
    """Working grid in RAS order: CT (smoothed), labels, voxel size, affine, block factors."""

    ct: np.ndarray
    labels: np.ndarray
    vs: np.ndarray
    affine: np.ndarray
    factors: tuple

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.vs)) / 1000.0

    def world(self, ijk) -> np.ndarray:
        ijk = np.asarray(ijk, float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def _labels_on_working_grid(labels: Image, f) -> np.ndarray:
    """The label map (CT grid) sampled at the working voxels' centres, RAS order."""
    lab, _, _ = to_ras_order(labels)
    sh = [s // g * g for s, g in zip(lab.shape, f)]
    return np.ascontiguousarray(lab[f[0] // 2: sh[0]: f[0], f[1] // 2: sh[1]: f[1], f[2] // 2: sh[2]: f[2]])


def _working_grid(ct: Image, labels: Image, working_voxel_mm: float) -> _Grid:
    arr, tr, vs = to_ras_order(ct)
    f = block_factors(vs, working_voxel_mm, slices=bool(vs[2] < 0.75 * working_voxel_mm))
    a = block_mean(np.maximum(arr.astype(np.float32), -1024.0), f)
    lab = _labels_on_working_grid(labels, f)
    vsw = vs * np.array(f)
    # smooth to about 3 mm FWHM: low-dose noise (20-40 HU SD) would otherwise put soft tissue
    # below the fat and gas thresholds voxel by voxel
    sm = ndi.gaussian_filter(a, sigma=tuple(float(np.clip(1.3 / v, 0.4, 1.0)) for v in vsw))
    return _Grid(sm, lab, vsw, ras_order_affine(ct, tr, f), tuple(f))


def _touches_fov(mask: np.ndarray) -> bool:
    for ax in range(3):
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        if idx.size and (idx[0] == 0 or idx[-1] == mask.shape[ax] - 1):
            return True
    return False


def _interior(mask: np.ndarray) -> np.ndarray:
    core = ndi.binary_erosion(mask)
    return core if core.sum() >= 20 else mask


def _centroid_world(g: _Grid, mask: np.ndarray) -> np.ndarray:
    """World centroid (mm) of a boolean mask (NaN when empty); the mean of its voxel indices
    (``ndi.center_of_mass`` weighs the whole array: 0.2 s per organ at full resolution)."""
    idx = np.argwhere(mask)
    return g.world(idx.mean(axis=0) if idx.size else np.full(3, np.nan))


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


def _spine_checks(g: _Grid, levels: dict | None) -> tuple[list[Check], dict]:
    out: list[Check] = []
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


def _ap_step_check(g: _Grid, lab: np.ndarray, comps: list, marrow: np.ndarray) -> Check:
    """Largest antero-posterior distance (mm) between the marrow VOI centroids of adjacent bodies.

    Each of L4, L3, L2 (``comps``, components of ``lab``) by its marrow VOI, or its whole mask
    where it holds none. A body drawn on the vertebral arch instead of the body lies 30-45 mm
    behind its neighbours.
    """
    ys = []
    for _, _, i, _ in comps:
        m = lab == i
        mm = m & marrow
        ys.append(float(_centroid_world(g, mm if mm.any() else m)[1]))
    step = max(abs(a - b) for a, b in zip(ys[:-1], ys[1:]))
    return _graded("vertebrae_L2L4", "ap_step_mm", step, RANGES["vertebrae_L2L4.ap_step_mm"])


def _voi_canal_offset_mm(g: _Grid, voi: np.ndarray, reach_mm: float = 45.0) -> float | None:
    """Antero-posterior distance (mm, positive anterior) from the spinal canal's centre to a
    marrow VOI's centroid, the median over the VOI's slices where the canal is found; None where
    it is found on none.

    On each slice the canal is a hole of the bone (above 150 HU on the smoothed CT) below 60 HU
    (CSF, cord, epidural fat) of 40-700 mm^2, within 15 mm of the VOI's centroid from side to
    side and ``reach_mm`` from front to back; the nearest such hole.
    """
    offs = []
    ri, rj = int(np.ceil(reach_mm / g.vs[0])), int(np.ceil(reach_mm / g.vs[1]))
    for k in np.flatnonzero(voi.any(axis=(0, 1))):
        ci, cj = np.argwhere(voi[:, :, k]).mean(axis=0)
        i0, j0 = max(0, int(ci) - ri), max(0, int(cj) - rj)
        sl = g.ct[i0:int(ci) + ri + 1, j0:int(cj) + rj + 1, k]
        bone = sl > 150.0
        holes = ndi.binary_fill_holes(bone) & ~bone & (sl < 60.0)
        lab, n = ndi.label(holes)
        best = None
        for idx in range(1, n + 1):
            pix = np.argwhere(lab == idx)
            area = len(pix) * g.vs[0] * g.vs[1]
            hi, hj = pix.mean(axis=0) + (i0, j0)
            if not 40.0 <= area <= 700.0 or abs(hi - ci) * g.vs[0] > 15.0:
                continue
            d = abs(hj - cj) * g.vs[1]
            if best is None or d < best[0]:
                best = (d, (cj - hj) * g.vs[1])
        if best is not None:
            offs.append(best[1])
    return float(np.median(offs)) if offs else None


def _canal_offset_check(g: _Grid, lab: np.ndarray, comps: list, marrow: np.ndarray) -> Check:
    """The most posterior of the L2-L4 marrow VOIs relative to its spinal canal (mm, + anterior)."""
    offs = []
    for _, _, i, _ in comps:
        m = (lab == i) & marrow
        off = _voi_canal_offset_mm(g, m if m.any() else lab == i)
        if off is not None:
            offs.append(off)
    if not offs:
        return _skip("vertebrae_L2L4", "canal_offset_mm", "no spinal canal found on the CT (hole below 60 HU)")
    return _graded("vertebrae_L2L4", "canal_offset_mm", min(offs), RANGES["vertebrae_L2L4.canal_offset_mm"])


LEVEL_EVIDENCE_SOURCE = ("levels named by independent landmarks of the CT (sacrum and S1, iliac crests, "
                         "rib-bearing T12, disc spaces, body heights) that agree; an atlas registration or a "
                         "single landmark names them with a warning (issue #14: a level off by one moves the "
                         "marrow VOI to another vertebra)")


def level_evidence_check(level_vote: dict | None) -> Check | None:
    """How the vertebral levels were named, as a check (None without a level vote).

    ``level_vote``: the ``levels`` record of :mod:`pipeline.segment.levels` (``decision``
    pass / warn / fail, ``message``, ``evidence``). Pass: landmarks agree (value: how many).
    Warn: named from one landmark, the atlas registration or a manual anchor that a landmark
    contradicts; the message says which and how to override. A vote that named nothing
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


def check_segmentation(ct: Image, labels: Image, spect: Image | None = None, levels: dict | None = None,
                       absent_organs=(), working_voxel_mm: float = 2.0,
                       level_vote: dict | None = None, parenchyma: Image | None = None) -> GateResult:
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
        absence passes.
    working_voxel_mm : float
        In-plane voxel size of the working grid, mm.
    level_vote : dict, optional
        How those levels were named (:func:`level_evidence_check`).
    parenchyma : Image, optional
        The final label map when hot lesions inside the liver and spleen were labelled apart
        (:func:`pipeline.segment.organ_lesions.label_organ_lesions`); ``labels`` are then the
        organs' outlines, on which every check runs except ``hot_lesion_fraction``, which
        checks what is left of the organ.

    Returns
    -------
    GateResult
    """
    if not ct.same_grid(labels):
        raise ValueError("the label map must be on the CT grid")
    res = GateResult()
    counts = np.bincount(np.asarray(labels.array).ravel().astype(np.int64), minlength=8)
    g = _working_grid(ct, labels, working_voxel_mm)
    mid_x, mid_from = _midline_x(g)
    spine_checks, spine = _spine_checks(g, levels)
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
    res.checks += spine_checks
    for organ in masks:  # several borderline checks together mean a wrong mask
        n = sum(1 for c in res.checks if c.structure == organ and c.status == "warn" and "field of view" not in c.note)
        if n >= 2:
            res.checks.append(_graded(organ, "warn_count", float(n), RANGES["organ.warn_count"],
                                      note=", ".join(c.check for c in res.checks
                                                     if c.structure == organ and c.status == "warn")))
    return res
