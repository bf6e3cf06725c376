"""QC figure: label contours on coronal and axial CT slices (matplotlib, Agg backend).

Radiological display convention: the patient's right on the viewer's left,
anterior up in axial views, superior up in coronal views.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..image import Image
from .orient import to_ras_order

__all__ = ["LABEL_COLOURS", "qc_figure"]

#: Contour colour per label id (lesions: magenta).
LABEL_COLOURS = {1: "tab:orange", 2: "tab:red", 3: "tab:green", 4: "tab:purple",
                 5: "yellow", 6: "tab:cyan", 7: "white"}


def _middle_marrow_voi_centre(lab: np.ndarray, default) -> np.ndarray:
    """Centre (voxel indices) of the middle marrow VOI along z (L3's of three), on a slice that holds it.

    The mean of all marrow voxels (L2, L3 and L4 together) can fall between two vertebrae, on a
    slice without any marrow VOI (an ICRP-110 patient's figure showed L3's first slice, empty).
    """
    from scipy import ndimage as ndi

    from .components import component_sizes

    ks = np.flatnonzero((lab == 5).any(axis=(0, 1)))
    if ks.size == 0:
        return np.asarray(default, float)
    k0, k1 = ks[0], ks[-1] + 1
    voi = lab[:, :, k0:k1] == 5
    comps, n = ndi.label(voi)
    sizes = component_sizes(comps, n)
    keep = [i + 1 for i in range(n) if sizes[i] >= 0.1 * sizes.max()]  # the VOIs, not fragments
    centres = ndi.center_of_mass(voi, comps, keep)
    centre = np.array(sorted(centres, key=lambda c: c[2])[len(centres) // 2], float)
    centre[2] += k0
    with_marrow = ks[np.argmin(np.abs(ks - centre[2]))]  # a slice of the VOI itself
    centre[2] = float(with_marrow)
    return centre


def qc_figure(path, ct: Image, labels: Image, vocabulary: dict[int, str], title: str = "") -> Path:
    """Write a PNG with the label contours on two coronal and two axial CT slices.

    Coronal slices through the kidneys' and the liver's centres, a sagittal
    slice through the L2-L4 bodies, axial slices through the kidneys, the
    liver/spleen and the marrow VOI (zoomed on the spine). Display window
    -160..240 HU (abdomen).

    Parameters
    ----------
    path : str or os.PathLike
        Output PNG (written atomically).
    ct : Image
        CT in HU.
    labels : Image
        Label map on the CT grid.
    vocabulary : dict
        id -> name (legend).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    a, _, vs = to_ras_order(ct)
    lab, _, _ = to_ras_order(labels)

    step = tuple(max(1, int(round(2.0 / v))) for v in vs)  # centres on a ~2 mm subsample (fast)
    sub = lab[::step[0], ::step[1], ::step[2]]

    def centre(ids, default):
        idx = np.argwhere(np.isin(sub, ids))
        return idx.mean(axis=0) * step if idx.size else default

    def extent(mask):
        """(lo, hi) index bounds of a mask along each axis (from projections, no argwhere)."""
        lo, hi = [], []
        for ax in range(3):
            other = tuple(x for x in range(3) if x != ax)
            idx = np.flatnonzero(mask.any(axis=other))
            lo.append(idx[0] if idx.size else 0)
            hi.append(idx[-1] + 1 if idx.size else mask.shape[ax])
        return np.array(lo), np.array(hi)

    mid = np.array(a.shape) / 2
    c_kid = centre([1, 2], mid)
    c_liv = centre([3], mid)
    c_spl = centre([4], c_liv)
    c_mar = _middle_marrow_voi_centre(lab, c_kid)
    c_ver = centre([5, 6], c_mar)
    body = lab != 0
    lo, hi = extent(body) if body.any() else (np.zeros(3, int), np.array(a.shape))
    organs = (lab >= 1) & (lab <= 6)  # ids 1-6 (np.isin on a full-resolution CT's labels: 2 s)
    if organs.any():
        olo, ohi = extent(organs)
        z_lo = max(0, int(olo[2] - 60.0 / vs[2]))
        z_hi = min(a.shape[2], int(ohi[2] + 60.0 / vs[2]))
    else:
        z_lo, z_hi = 0, a.shape[2]
    spine_half = int(60.0 / vs[0])
    views = [
        ("coronal through kidneys", "cor", int(c_kid[1]), (lo[0], hi[0]), (z_lo, z_hi)),
        ("coronal through liver", "cor", int(c_liv[1]), (lo[0], hi[0]), (z_lo, z_hi)),
        ("sagittal through L2-L4", "sag", int(c_ver[0]),
         (max(0, int(c_ver[1] - spine_half)), min(a.shape[1], int(c_ver[1] + spine_half))), (z_lo, z_hi)),
        ("axial through kidneys", "ax", int(c_kid[2]), (lo[0], hi[0]), (lo[1], hi[1])),
        ("axial through liver and spleen", "ax", int(0.5 * (c_liv[2] + c_spl[2])), (lo[0], hi[0]), (lo[1], hi[1])),
        ("axial through L3 marrow VOI", "ax", int(c_mar[2]),
         (max(0, int(c_ver[0] - spine_half)), min(a.shape[0], int(c_ver[0] + spine_half))),
         (max(0, int(c_ver[1] - spine_half)), min(a.shape[1], int(c_ver[1] + spine_half)))),
    ]
    fig = Figure(figsize=(18, 12), dpi=90)
    axes = fig.subplots(2, 3)
    present = [int(v) for v in np.unique(lab) if v != 0]
    # body first, whole vertebrae before the marrow VOI inside them, organs and lesions last
    draw_order = sorted(present, key=lambda v: (v != 7, v != 6, v))
    for ax, (name, kind, idx, r0, r1) in zip(axes.flat, views):
        if kind == "cor":
            img, sl, aspect = a[r0[0]:r0[1], idx, r1[0]:r1[1]], lab[r0[0]:r0[1], idx, r1[0]:r1[1]], vs[2] / vs[0]
        elif kind == "sag":
            img, sl, aspect = a[idx, r0[0]:r0[1], r1[0]:r1[1]], lab[idx, r0[0]:r0[1], r1[0]:r1[1]], vs[2] / vs[1]
        else:
            img, sl, aspect = a[r0[0]:r0[1], r1[0]:r1[1], idx], lab[r0[0]:r0[1], r1[0]:r1[1], idx], vs[1] / vs[0]
        if kind != "sag":
            img, sl = img[::-1], sl[::-1]  # patient right on the viewer's left
        img, sl = img.T, sl.T
        ax.imshow(img, cmap="gray", vmin=-160, vmax=240, origin="lower", aspect=aspect, interpolation="nearest")
        for v in draw_order:
            m = sl == v
            if m.any() and (v != 7 or kind != "sag"):
                ax.contour(m.astype(float), [0.5], colors=[LABEL_COLOURS.get(v, "magenta")],
                           linewidths=1.2 if v != 7 else 0.5)
        ax.set_title(f"{name} (slice {idx})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if kind == "sag":
            ax.text(0.01, 0.98, "P", color="white", transform=ax.transAxes, va="top")
            ax.text(0.98, 0.98, "A", color="white", transform=ax.transAxes, va="top", ha="right")
        else:
            ax.text(0.01, 0.98, "R", color="white", transform=ax.transAxes, va="top")
            ax.text(0.98, 0.98, "L", color="white", transform=ax.transAxes, va="top", ha="right")
    handles = [matplotlib.lines.Line2D([], [], color=LABEL_COLOURS.get(v, "magenta"),
                                       label=f"{v} {vocabulary.get(v, '?')}") for v in present]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=9)
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close("all")
    return path
