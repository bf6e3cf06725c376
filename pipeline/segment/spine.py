"""Weights-free spine analysis on CT: vertebral bodies, discs and vertebra levels.

Works on a CT array in RAS order (axis 0 towards the patient's right, axis 1
anterior, axis 2 superior) with voxel sizes in mm. Steps:

1. vertebral-body centreline: in every axial slice, the thickest bone blob
   near the posterior midline (bone filled, then eroded by a disk so that only
   the body survives);
2. discs: minima of the eroded body area along the spine (a disc has no bone);
   a candidate closer than ``min_pitch_mm`` to a deeper one is dropped;
3. levels: the sacrum is the highest of the three lowest segments that is wide
   (sacral alae: more than half of its slices wider than ``sacrum_width_mm``), else the lowest segment when it is long
   (fused S1-S5, >= 1.6 times the median segment); L5 is the vertebra above it, then L4,
   ... (``lumbar_count`` lumbar vertebrae); independently, rib heads (bone
   components that leave the spine laterally and reach far from it) mark the
   rib-bearing vertebrae; the lowest rib-bearing vertebra should be the one
   above L1 (T12). Disagreement is reported, and the sacrum count wins.
   Without a sacrum in the field of view, levels are counted down from the
   lowest rib-bearing vertebra (T12). A top segment cut by the field of view is
   left unnamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

__all__ = ["Vertebra", "SpineResult", "analyse_spine", "level_names"]


@dataclass(frozen=True)
class Vertebra:
    """One vertebra between two discs (slice indices on the working grid, inclusive)."""

    name: str
    k_lo: int
    k_hi: int
    centre_xy: tuple[float, float]
    rib_bearing: bool


@dataclass
class SpineResult:
    """Outcome of :func:`analyse_spine`."""

    vertebrae: list[Vertebra]
    disc_k: list[int]
    centre: np.ndarray  # (K, 2) per-slice body centre (voxel indices), NaN where none
    body_mask: np.ndarray  # (I, J, K) vertebral bodies (all levels), bool
    sacrum_found: bool
    lowest_rib_bearing: str | None
    notes: list[str] = field(default_factory=list)

    def by_name(self, name: str) -> Vertebra | None:
        for v in self.vertebrae:
            if v.name == name:
                return v
        return None


def level_names(n_above_sacrum: int, lumbar_count: int = 5) -> list[str]:
    """Names of the vertebrae above the sacrum, from the lowest up: L5 (or L6), ..., L1, T12, ..."""
    names = [f"L{i}" for i in range(lumbar_count, 0, -1)]
    names += [f"T{i}" for i in range(12, 0, -1)]
    names += [f"C{i}" for i in range(7, 0, -1)]
    return names[:n_above_sacrum]


def _disk(radius_vox: float) -> np.ndarray:
    r = max(1, int(np.floor(radius_vox)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx ** 2 + yy ** 2) <= radius_vox ** 2 + 1e-9


def _running_median(v: np.ndarray, half: int) -> np.ndarray:
    out = np.full_like(v, np.nan, dtype=float)
    for k in range(len(v)):
        s = v[max(0, k - half): k + half + 1]
        s = s[~np.isnan(s)]
        if s.size:
            out[k] = np.median(s)
    return out


def _largest(mask: np.ndarray):
    lab, n = ndi.label(mask)
    if n == 0:
        return None, 0
    sizes = ndi.sum_labels(mask, lab, np.arange(1, n + 1))
    i = int(np.argmax(sizes)) + 1
    return lab == i, float(sizes[i - 1])


def analyse_spine(ct: np.ndarray, body: np.ndarray, voxel_size_mm, lumbar_count: int = 5,
                  bone_hu: float = 150.0, min_pitch_mm: float = 21.0,
                  sacrum_width_mm: float = 95.0) -> SpineResult:
    """Find the vertebral bodies and name them.

    Parameters
    ----------
    ct : numpy.ndarray, shape (I, J, K)
        CT in HU, RAS axis order (see module docstring).
    body : numpy.ndarray, shape (I, J, K), bool
        The patient (skin outline, holes filled).
    voxel_size_mm : sequence of 3 float
        Voxel size along the axes, mm.
    lumbar_count : int
        Number of lumbar vertebrae (5 normally; 6 or 4 for transitional anatomy).
    bone_hu : float
        Bone threshold in HU on the (3x3 in-plane mean) smoothed CT.
    min_pitch_mm : float
        Smallest distance between two discs (a vertebra plus a disc is 25-40 mm
        in the thoraco-lumbar spine).
    sacrum_width_mm : float
        Lateral width of the spine's bone blob above which a segment is the sacrum.
    """
    vs = np.asarray(voxel_size_mm, float)
    nx, ny, nz = ct.shape
    notes: list[str] = []
    sm = ndi.uniform_filter(ct.astype(np.float32), size=(3, 3, 1))
    bone = (sm > bone_hu) & body

    # 1. coarse centreline: thick bone near the posterior midline
    xs = [ndi.center_of_mass(body[:, :, k])[0] for k in range(nz) if body[:, :, k].any()]
    x_mid = float(np.median(xs)) if xs else nx / 2
    half_x = 30.0 / vs[0]
    disk6 = _disk(6.0 / vs[0])
    cent0 = np.full((nz, 2), np.nan)
    for k in range(nz):
        b = body[:, :, k]
        if b.sum() < 50:
            continue
        ys = np.flatnonzero(b.any(axis=0))
        y_mid = 0.5 * (ys[0] + ys[-1])
        m = bone[:, :, k].copy()
        m[: max(0, int(x_mid - half_x))] = False
        m[int(x_mid + half_x) + 1:] = False
        m[:, int(y_mid) + 1:] = False  # posterior half (axis 1 runs anterior)
        m = ndi.binary_fill_holes(m)
        e, size = _largest(ndi.binary_erosion(m, disk6))
        if e is not None and size * vs[0] * vs[1] > 40.0:
            cent0[k] = ndi.center_of_mass(e)
    half = max(2, int(round(15.0 / vs[2])))
    cx = _running_median(cent0[:, 0], half)
    cy = _running_median(cent0[:, 1], half)

    # 2. body area profile along the centreline (disk erosion: only bodies survive)
    disk8 = _disk(8.0 / vs[0])
    X, Y = np.mgrid[0:nx, 0:ny]
    area = np.zeros(nz)
    centre = np.full((nz, 2), np.nan)
    width = np.zeros(nz)
    body_mask = np.zeros(ct.shape, bool)
    for k in range(nz):
        if np.isnan(cx[k]):
            continue
        near = ((X - cx[k]) * vs[0]) ** 2 + ((Y - cy[k]) * vs[1]) ** 2 <= 35.0 ** 2
        # fill the cortical shell; the spinal canal (CSF < 60 HU) stays out although the arch closes it
        filled = ndi.binary_fill_holes(bone[:, :, k] & near) & (sm[:, :, k] > 60.0)
        e = ndi.binary_erosion(filled, disk8)
        if not e.any():
            continue
        lab, n = ndi.label(e)
        # the blob nearest to the centreline
        coms = ndi.center_of_mass(e, lab, np.arange(1, n + 1))
        d = [((c[0] - cx[k]) * vs[0]) ** 2 + ((c[1] - cy[k]) * vs[1]) ** 2 for c in coms]
        i = int(np.argmin(d)) + 1
        blob = lab == i
        area[k] = blob.sum() * vs[0] * vs[1]
        centre[k] = coms[i - 1]
        # vertebral body = opening of the filled bone that contains the blob
        # its outline from the unsmoothed CT (the 3x3 mean spreads the cortex into the fat around it)
        raw = ndi.binary_fill_holes((ct[:, :, k] > bone_hu) & near) & (sm[:, :, k] > 60.0)
        opened = ndi.binary_dilation(blob, disk8) & filled & raw
        body_mask[:, :, k] = ndi.binary_fill_holes(opened)
        # lateral width of the whole spine bone blob (for the sacral alae)
        full = ndi.binary_fill_holes(bone[:, :, k])
        flab, _ = ndi.label(full)
        cidx = flab[int(round(centre[k][0])), int(round(centre[k][1]))]
        if cidx:
            cols = np.flatnonzero((flab == cidx).any(axis=1))
            width[k] = (cols[-1] - cols[0] + 1) * vs[0]

    prof = ndi.uniform_filter1d(area, 3)
    cand, _ = find_peaks(-prof, prominence=0.25 * max(np.percentile(prof[prof > 0], 50), 1.0)
                         if np.any(prof > 0) else 1.0)
    # keep the deepest minima at least min_pitch_mm apart
    order = sorted(cand, key=lambda k: prof[k])
    discs: list[int] = []
    for k in order:
        if all(abs(k - d) * vs[2] >= min_pitch_mm for d in discs):
            discs.append(int(k))
    discs.sort()
    # a disc must have spine bone above and below it
    valid = np.flatnonzero(area > 0)
    if valid.size:
        discs = [d for d in discs if valid[0] < d < valid[-1]]

    segments = []  # (k_lo, k_hi) of bone between discs, from inferior up
    edges = [int(valid[0]) - 1 if valid.size else -1] + discs + [int(valid[-1]) + 1 if valid.size else nz]
    for lo, hi in zip(edges[:-1], edges[1:]):
        k_lo, k_hi = lo + 1, hi - 1
        if k_hi - k_lo + 1 >= max(2, int(round(8.0 / vs[2]))) and np.any(area[k_lo:k_hi + 1] > 0):
            segments.append((k_lo, k_hi))
    # the top segment, when it reaches the last slices of the volume, is cut by the field of view
    # (and may hide a disc): it is not named
    if segments and segments[-1][1] >= nz - 1 - max(1, int(round(5.0 / vs[2]))):
        notes.append("the top vertebra is cut by the field of view and is left unnamed")
        segments.pop()

    # 3. rib heads -> rib-bearing segments
    rib_bearing = _rib_bearing_segments(bone, centre, segments, vs)

    # sacrum: the highest of the lowest three segments that is wide (alae; a narrowing of the
    # lower sacrum can look like a disc), else the lowest segment when it is long (fused S1-S5)
    sacrum_idx = None
    lengths = [hi - lo + 1 for lo, hi in segments]
    median_len = float(np.median(lengths)) if lengths else 0.0
    for s, (k_lo, k_hi) in enumerate(segments[:3]):
        w = width[k_lo:k_hi + 1]
        w = w[w > 0]
        if w.size and np.mean(w > sacrum_width_mm) >= 0.55:
            sacrum_idx = s
    if sacrum_idx is None and segments and lengths[0] >= 1.6 * median_len and len(segments) >= 4:
        sacrum_idx = 0
    names = ["?"] * len(segments)
    ribs_idx = [s for s, r in enumerate(rib_bearing) if r]
    lowest_rib = min(ribs_idx) if ribs_idx else None
    if sacrum_idx is not None:
        names[sacrum_idx] = "S1"
        above = level_names(len(segments) - sacrum_idx - 1, lumbar_count)
        for j, nm in enumerate(above):
            names[sacrum_idx + 1 + j] = nm
        if lowest_rib is not None:
            expected = sacrum_idx + lumbar_count + 1
            if lowest_rib != expected:
                notes.append(
                    f"level cross-check failed: the lowest rib-bearing vertebra is {names[lowest_rib]} "
                    f"counting {lumbar_count} lumbar vertebrae up from the sacrum (expected T12); "
                    "check the anatomy and set --lumbar-count if it is transitional")
            else:
                notes.append("levels: counted up from the sacrum; the lowest rib-bearing vertebra is T12 (agrees)")
        else:
            notes.append("levels: counted up from the sacrum; no rib-bearing vertebra in the field of view to cross-check")
    elif lowest_rib is not None:
        names[lowest_rib] = "T12"
        below = [f"L{i}" for i in range(1, lumbar_count + 1)]
        for j in range(lowest_rib - 1, -1, -1):
            n = lowest_rib - 1 - j
            names[j] = below[n] if n < len(below) else "S1"
        for j in range(lowest_rib + 1, len(segments)):
            t = 12 - (j - lowest_rib)
            names[j] = f"T{t}" if t >= 1 else "?"
        notes.append("levels: no sacrum found; counted down from the lowest rib-bearing vertebra (T12)")
    else:
        notes.append("levels: neither the sacrum nor a rib-bearing vertebra was found; levels unknown")

    vertebrae = []
    for (k_lo, k_hi), nm, rb in zip(segments, names, rib_bearing):
        c = np.nanmedian(centre[k_lo:k_hi + 1], axis=0)
        vertebrae.append(Vertebra(nm, int(k_lo), int(k_hi), (float(c[0]), float(c[1])), bool(rb)))
    lowest_name = names[lowest_rib] if lowest_rib is not None else None
    return SpineResult(vertebrae, discs, centre, body_mask, sacrum_idx is not None, lowest_name, notes)


def _rib_bearing_segments(bone, centre, segments, vs) -> list[bool]:
    """For each segment, whether a rib head (rib component starting at the spine) lies in it.

    Ribs are cut from the spine by removing a cylinder of 22 mm radius around
    the body centre and a posterior box behind it; a remaining bone component
    is a rib when it starts within 60 mm of the body centre (its head, at the
    body or the transverse process), reaches more than 70 mm from the spine,
    is longer than 60 mm and holds 0.3-60 mL of bone.
    """
    nx, ny, nz = bone.shape
    cutmask = np.zeros(bone.shape, bool)
    X, Y = np.mgrid[0:nx, 0:ny]
    dist_xy = np.full(bone.shape, np.inf, dtype=np.float32)
    for k in range(nz):
        if np.isnan(centre[k, 0]):
            continue
        dx = (X - centre[k, 0]) * vs[0]
        dy = (Y - centre[k, 1]) * vs[1]
        d = np.sqrt(dx ** 2 + dy ** 2)
        dist_xy[:, :, k] = d
        # vertebral body and the posterior arch (transverse and spinous processes) up to 40 mm behind
        cutmask[:, :, k] = (d < 22.0) | ((np.abs(dx) < 28.0) & (dy < 0) & (dy > -70.0))
    rest = bone & ~cutmask
    lab, n = ndi.label(rest)
    result = [False] * len(segments)
    if n == 0:
        return result
    objs = ndi.find_objects(lab)
    for i, sl in enumerate(objs, start=1):
        comp = lab[sl] == i
        vol_ml = comp.sum() * np.prod(vs) / 1000.0
        if vol_ml < 0.3 or vol_ml > 60.0:  # fragments; pelvis, scapula and arm bones are bigger
            continue
        d = dist_xy[sl][comp]
        if not np.isfinite(d).any() or d.min() > 60.0 or d.max() < 70.0:
            continue
        ext = [(s.stop - s.start) * v for s, v in zip(sl, vs)]
        if max(ext) < 60.0:
            continue
        # the rib head: the component's voxels nearest the spine
        idx = np.argwhere(comp)
        near = idx[d <= d.min() + 5.0]
        k_head = float(np.median(near[:, 2])) + sl[2].start
        # the pelvis (iliac wings) also touches the sacrum: a rib is thin in z near its head
        if ext[2] > 150.0:
            continue
        best, best_d = None, np.inf
        for s, (k_lo, k_hi) in enumerate(segments):
            if k_lo <= k_head <= k_hi:
                best, best_d = s, 0
                break
            dd = min(abs(k_head - k_lo), abs(k_head - k_hi))
            if dd < best_d:
                best, best_d = s, dd
        if best is not None and best_d * vs[2] <= 10.0:
            result[best] = True
    return result
