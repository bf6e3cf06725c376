"""L2-L4 bodies and their marrow VOI on the CT's own in-plane grid.

The segmenter finds the vertebral bodies on a working grid of about 2 mm in-plane (block mean
of the CT). A marrow VOI made there loses a working voxel to the outline's blur and rounds the
4 mm margin up to whole working voxels: 7.2 mm of each side of a body on the 2.4 mm working
grid of a 1.2 mm CT. A female lumbar body of 25-30 mm then keeps a fraction of its trabecular
core (ICRP-110 AF at 1.2 x 1.2 x 5 mm, its reference L2 body: 3.0 mL on the working grid
against 7.4 mL on the CT's grid), and with 5 mm slices, which take a slice off each endplate,
the VOI falls below the QC gate's limits although the body is right.

Here each body found on the working grid is drawn again on the CT's grid, slice by slice:
within one working voxel of the body's working outline on any of its slices (so that a slice
whose working outline is a fragment, the shell broken by noise on the working grid, is drawn
whole), the cortical shell thresholded on the lightly smoothed CT (Gaussian of one CT voxel
in-plane) together with the working outline's interior, holes filled, the pieces that overlap
the working outline. Where that outline is not whole (thin cortex: less than half the working
outline's area on the slice), the slice keeps the working outline. On a CT whose voxels are
the working voxels (2-4 mm) the bodies are those of the working grid.

Each body is then cut at the front of the spinal canal (the hole of the bone behind it, below
the CSF threshold, median over its slices; where the canal is no such hole, as with 4 mm voxels,
the first dip of the CT behind the body's front on the midline with a lamina behind it): the
working outline, an opening of the filled bone, keeps the pedicles' roots beside the canal,
where a VOI of exact margin would reach (real GE CT), and at 4 mm it took in the arch and the
canal (ICRP-110 AF: half the marrow VOI in the canal). Where the outline lies mostly behind the
canal's front, it is the arch (an eroded piece of it stood for a body broken at the bone
threshold), and the body is drawn again in front of the canal. The marrow VOI is made on the CT's grid from the outline eroded by one CT voxel
(the smoothing spreads the cortex by about that much into the fat).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .marrow import marrow_voi

__all__ = ["upsample_mask", "bodies_on_ct_grid", "marrow_on_ct_grid", "canal_holes"]


def upsample_mask(mask: np.ndarray, factors, shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a working-grid array by whole ``factors`` to ``shape``.

    The partial block dropped by the block mean at the far end of an axis takes the value of
    the last working voxel.
    """
    out = mask
    for ax, g in enumerate(factors):
        if g > 1:
            out = np.repeat(out, g, axis=ax)
    pad = [(0, s - o) for s, o in zip(shape, out.shape)]
    return np.pad(out, pad, mode="edge")


def _box(mask: np.ndarray, margin) -> tuple:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def bodies_on_ct_grid(bodies_w: dict[str, np.ndarray], ct: np.ndarray, factors, voxel_size_mm,
                      bone_hu: float = 150.0, soft_hu: float = 60.0, whole_fraction: float = 0.5,
                      canal_depth_mm: float = 50.0) -> tuple[dict[str, np.ndarray], tuple]:
    """The vertebral bodies of the working grid drawn on the CT's grid.

    Parameters
    ----------
    bodies_w : dict name -> numpy.ndarray (I, J, K) bool
        Bodies on the working grid (block of ``factors`` CT voxels per working voxel).
    ct : numpy.ndarray, shape (I * fi + ri, J * fj + rj, K * fk + rk), HU
        The CT on its own grid, same axis order as the working grid.
    factors : tuple of 3 int
        CT voxels per working voxel along each axis (1 along z). The smoothing (one CT
        voxel) and the reach (one working voxel) are counted in voxels.
    voxel_size_mm : sequence of 3 float
        CT voxel size, mm (same axis order).
    bone_hu : float
        Cortical-shell threshold on the smoothed CT, HU (the spine analysis's).
    soft_hu : float
        Lowest CT number of the body's interior, HU (the spinal canal's CSF stays out).
    whole_fraction : float
        A slice keeps the working outline when the CT-grid outline covers less than this
        fraction of it (shell not closed).
    canal_depth_mm : float
        How far behind the bodies the CT is read for the spinal canal, mm.

    Returns
    -------
    bodies : dict name -> numpy.ndarray, bool, shape of ``box``
        The bodies on the CT grid inside ``box``; no voxel in two bodies.
    box : tuple of 3 slices
        Part of the CT grid that holds all bodies.
    """
    f = tuple(int(g) for g in factors)
    vs = np.asarray(voxel_size_mm, float)
    ups = {n: upsample_mask(m, f, ct.shape) for n, m in bodies_w.items()}
    union = np.zeros(ct.shape, bool)
    for m in ups.values():
        union |= m
    if not union.any():
        return {n: np.zeros((0, 0, 0), bool) for n in ups}, (slice(0, 0),) * 3
    box = _box(union, np.array([3 * f[0], 3 * f[1], 1]))
    # the canal and the arch lie behind the bodies (RAS order: j grows anteriorly)
    box = (box[0], slice(max(0, box[1].start - int(np.ceil(canal_depth_mm / vs[1]))), box[1].stop), box[2])
    sm = ndi.gaussian_filter(ct[box].astype(np.float32), sigma=(1.0, 1.0, 0.0))
    if f == (1, 1, 1):
        drawn = {n: m[box] for n, m in ups.items()}
    else:
        drawn = _draw_on_ct_grid({n: m[box] for n, m in ups.items()}, sm, f, bone_hu, soft_hu, whole_fraction)
    out = {}
    fronts = _canal_fronts(drawn, sm, vs, bone_hu, soft_hu)
    for n, body in drawn.items():
        front = fronts[n]
        if front is not None:
            trimmed = body.copy()
            trimmed[:, : front + 1, :] = False
            if trimmed.sum() >= 0.6 * body.sum():
                body = trimmed
            else:  # the outline lies mostly behind the canal's front: the arch, not the body
                redrawn = _body_in_front_of_canal(body, sm, vs, front)
                if redrawn.sum() > trimmed.sum():
                    body = redrawn
        out[n] = body
    return out, box


def _canal_fronts(bodies, sm, vs, bone_hu, soft_hu, max_shift_mm: float = 10.0) -> dict:
    """The spinal canal's anterior edge (index along axis 1, RAS order) behind each body, or None.

    Behind a body where the canal is a hole below the CSF threshold (:func:`_canal_front_j`), that
    hole's front. Behind one where it is not, the midline profile's front
    (:func:`_canal_front_from_profile`), unless it lies more than ``max_shift_mm`` (mm) from the
    hole front behind the nearest body (along z) that has one, or is not found: then that
    neighbour's front. The canal runs on, its front moving a few millimetres from one lumbar
    vertebra to the next; on a blurred CT a body's trabecular core reads darker than its cortex
    and, with the posterior cortex behind it, looks like a canal to the profile (the GE CT
    smoothed to 4.4 mm and resampled to 2.2 mm: L2 and L3 without a hole were cut 31 mm in
    front of L4's canal, their marrow VOIs 1.0-1.5 mL, a QC fail). Within ``max_shift_mm`` the
    profile's own front is kept: it reads this body (on ICRP-110 AM at 4 mm, L4's outline is
    mostly arch, and the 8 mm between its profile front and L3's hole front decided whether the
    body was drawn again in front of the canal).
    """
    fronts = {n: (_canal_front_j(b, sm, vs, bone_hu, soft_hu) if b.any() else None) for n, b in bodies.items()}
    with_hole = {n: f for n, f in fronts.items() if f is not None}
    z_centre = {n: float(np.argwhere(b.any(axis=(0, 1))).mean()) for n, b in bodies.items() if b.any()}
    out = {}
    for n, b in bodies.items():
        if fronts[n] is not None or not b.any():
            out[n] = fronts[n]
        else:
            own = _canal_front_from_profile(b, sm, vs)
            if with_hole:
                near = with_hole[min(with_hole, key=lambda o: abs(z_centre[o] - z_centre[n]))]
                if own is None or abs(own - near) * vs[1] > max_shift_mm:
                    own = near
            out[n] = own
    return out


def _body_in_front_of_canal(outline, sm, vs, front, low_hu: float = 100.0, half_width_mm: float = 25.0,
                            depth_mm: float = 45.0, open_mm: float = 6.0, seed_mm: float = 10.0):
    """A vertebral body drawn again in front of the spinal canal's front (index ``front``, axis 1).

    For an outline that is mostly arch (an eroded piece of the arch stood for a body broken at
    the bone threshold: ICRP-110 male lumbar spongiosa 160 HU under low-dose noise at 150 HU),
    on each of its slices: the smoothed CT above ``low_hu`` (trabecular bone, above muscle and
    vessels without contrast) in a box ``half_width_mm`` to each side of the outline's midline
    and ``depth_mm`` in front of the canal, holes filled, opened by a disk of ``open_mm`` (a
    vessel touching the body comes apart), the piece with the most voxels in the ``seed_mm``
    just in front of the canal at the midline.
    """
    out = np.zeros_like(outline)
    r = max(1, int(round(open_mm / vs[0])))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (xx * vs[0]) ** 2 + (yy * vs[1]) ** 2 <= open_mm ** 2
    hw, dp = int(round(half_width_mm / vs[0])), int(round(depth_mm / vs[1]))
    sd, sw = max(1, int(round(seed_mm / vs[1]))), max(1, int(round(5.0 / vs[0])))
    for k in np.flatnonzero(outline.any(axis=(0, 1))):
        ci = int(round(np.argwhere(outline[:, :, k])[:, 0].mean()))
        box = np.zeros(outline.shape[:2], bool)
        box[max(0, ci - hw):ci + hw + 1, front + 1:front + 1 + dp] = True
        cand = ndi.binary_fill_holes((sm[:, :, k] > low_hu) & box)
        opened = ndi.binary_opening(cand, disk)
        lab, n = ndi.label(opened)
        if n == 0:
            continue
        seed = lab[max(0, ci - sw):ci + sw + 1, front + 1:front + 1 + sd]
        counts = np.bincount(seed.ravel(), minlength=n + 1)[1:]
        if counts.max() == 0:
            continue
        out[:, :, k] = lab == int(np.argmax(counts)) + 1
    return out


def _draw_on_ct_grid(ups, sm, f, bone_hu, soft_hu, whole_fraction):
    """Each body's slices drawn on the CT grid (see the module docstring); ``ups`` upsampled."""
    reach_el = np.ones((2 * f[0] + 1, 2 * f[1] + 1), bool)
    out, taken = {}, np.zeros(sm.shape, bool)
    for n, up in ups.items():
        # a slice whose working outline is a fragment (the shell broken by noise on the working
        # grid) may reach as far as the body's outline on any of its slices
        wide = ndi.binary_dilation(up.any(axis=2), reach_el)
        body = np.zeros(sm.shape, bool)
        for k in np.flatnonzero(up.any(axis=(0, 1))):
            r = wide & ~taken[:, :, k]
            core = ndi.binary_erosion(up[:, :, k], reach_el)
            cand = ndi.binary_fill_holes(((sm[:, :, k] > bone_hu) & r) | core)
            cand = core | (cand & (sm[:, :, k] > soft_hu))  # the canal's CSF out, though the arch closes it
            lab, npc = ndi.label(cand)
            if npc:
                hit = np.unique(lab[up[:, :, k] & (lab > 0)])
                cand = np.isin(lab, hit[hit > 0])
            area_w = up[:, :, k].sum()
            body[:, :, k] = cand if cand.sum() >= whole_fraction * area_w else up[:, :, k] & ~taken[:, :, k]
        out[n] = body
        taken |= body
    return out


def canal_holes(sl, vs, bone_hu: float = 150.0, soft_hu: float = 60.0, area_mm2=(40.0, 700.0)):
    """Holes of the bone in one axial slice that can be the spinal canal.

    ``sl``: smoothed CT (HU) of the slice, axes (I, J); ``vs``: voxel size (mm, at least 2
    values). A hole of the bone above ``bone_hu`` (closed by the pedicles and the laminae) whose
    voxels are below ``soft_hu`` (CSF, cord and epidural fat) and whose area is within
    ``area_mm2``. Returns a list of (voxel indices (n, 2), centre (i, j)) in label order.
    """
    bone = sl > bone_hu
    lab, n = ndi.label(ndi.binary_fill_holes(bone) & ~bone & (sl < soft_hu))
    out = []
    for i in range(1, n + 1):
        pix = np.argwhere(lab == i)
        if area_mm2[0] <= len(pix) * vs[0] * vs[1] <= area_mm2[1]:
            out.append((pix, pix.mean(axis=0)))
    return out


def _canal_front_j(body, sm, vs, bone_hu, soft_hu, behind_mm=(8.0, 45.0), off_midline_mm: float = 12.0):
    """Index (axis 1, RAS order) of the spinal canal's anterior edge behind one vertebral body.

    On each slice of the body, the canal is a :func:`canal_holes` hole centred behind the body's
    centroid and near its midline. The median over the slices where it is found; None where it
    is found on none (the arch open at the foramina on every slice).
    """
    fronts = []
    for k in np.flatnonzero(body.any(axis=(0, 1))):
        ci, cj = np.argwhere(body[:, :, k]).mean(axis=0)
        for pix, (hi, hj) in canal_holes(sm[:, :, k], vs, bone_hu, soft_hu):
            if behind_mm[0] <= (cj - hj) * vs[1] <= behind_mm[1] and abs(hi - ci) * vs[0] <= off_midline_mm:
                fronts.append(int(pix[:, 1].max()))
                break
    return int(np.median(fronts)) if fronts else None


def _canal_front_from_profile(body, sm, vs, reach_mm: float = 45.0, lamina_mm: float = 25.0,
                              dip_hu: float = 40.0):
    """Index (axis 1, RAS order) of the canal's anterior edge read along the midline, or None.

    Where the canal is no hole below the CSF threshold (partial volume at 4 mm voxels: its
    minimum 156-218 HU against 260-290 HU in the body of ICRP-110 AF at 4 x 4 x 5 mm), it is the
    first dip of the CT behind the body's front, in a 3-voxel-wide column through the outline's
    thickest point (the midline): walking back from 3 mm inside the outline's anterior edge, the
    first local minimum more than ``dip_hu`` below the body's level (median 3-15 mm inside that
    edge) with bone again within ``lamina_mm`` behind it (the laminae close the canal: bone, gap,
    bone; above the midpoint of the minimum and the body's level, as a lamina thinner than a voxel
    reads lower than the body); its front is the last voxel, going forward from the minimum, below
    that midpoint. Walking from the front, not from the
    thickest point: an outline that took in the arch may be thickest there. The median over the
    slices where it is found.
    """
    fronts = []
    n_reach, n_lam = int(round(reach_mm / vs[1])), int(round(lamina_mm / vs[1]))
    n3, n15 = (max(1, int(round(mm / vs[1]))) for mm in (3.0, 15.0))
    for k in np.flatnonzero(body.any(axis=(0, 1))):
        dist = ndi.distance_transform_edt(np.pad(body[:, :, k], 1), sampling=vs[:2])[1:-1, 1:-1]
        ci = int(np.unravel_index(int(np.argmax(dist)), dist.shape)[0])
        js = np.flatnonzero(body[ci, :, k])
        if js.size == 0:
            continue
        j_edge = int(js[-1])  # the outline's anterior edge on the midline (j grows anteriorly)
        col = sm[max(0, ci - 1):ci + 2, :, k].mean(axis=0)
        level = float(np.median(col[max(0, j_edge - n15):max(1, j_edge - n3 + 1)]))
        j0 = max(1, j_edge - n_reach)
        for jm in range(j_edge - n3, j0 - 1, -1):
            if not (col[jm] <= col[jm - 1] and col[jm] < col[jm + 1] and col[jm] < level - dip_hu):
                continue
            mid, front = 0.5 * (col[jm] + level), jm
            if not np.any(col[max(0, jm - n_lam):jm] > mid):  # no lamina behind: not the canal
                continue
            while front + 1 <= j_edge and col[front + 1] < mid:
                front += 1
            fronts.append(front)
            break
    return int(np.median(fronts)) if fronts else None


def marrow_on_ct_grid(bodies: dict[str, np.ndarray], voxel_size_mm, method: str = "eroded",
                      margin_mm: float = 4.0, sphere_radius_mm: float = 8.0,
                      lesions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Marrow VOI of bodies drawn on the CT grid (:func:`bodies_on_ct_grid`).

    The outline is eroded by one CT voxel in-plane first (the smoothed or thresholded cortex
    lies up to one voxel outside the true one), then :func:`.marrow.marrow_voi` keeps
    ``margin_mm`` from it with the CT's voxel sizes. Same parameters as ``marrow_voi``.
    """
    inner = {n: ndi.binary_erosion(m, np.ones((3, 3, 1), bool)) for n, m in bodies.items()}
    return marrow_voi(inner, voxel_size_mm, method, margin_mm, sphere_radius_mm, lesions)
