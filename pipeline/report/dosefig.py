"""Fused CT and dose figures: colour wash with isodose lines, colour bar in Gy, letters, scale bar.

Three figures per patient, written as PNG at print resolution (200 dpi):

- ``dose_kidneys.png``: axial, coronal and sagittal planes through the hottest kidney voxel
  (so the kidney hot spot is in all three planes);
- ``dose_l3.png``: the three planes through the centre of the L3 vertebra (from
  ``segment/labels.json``; else the centre of the L2-L4 vertebrae or marrow labels);
- ``dose_mip.png``: a coronal maximum-intensity projection of the dose over a bone MIP of the CT.

Inputs: ``register/reference_ct.nii.gz`` (HU), ``dose/dose_ct.nii.gz`` (Gy, CT grid) and
``segment/labels.nii.gz``, all on the CT grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .inputs import read_json
from .slices import Panel, Volumes, body_box, mip, plane, to_ras_order

__all__ = ["load_volumes", "kidney_centre", "l3_centre", "isodose_levels", "draw_panels", "make_dose_figures"]

#: CT soft-tissue window (HU): level 40, width 400.
CT_WINDOW_HU = (-160.0, 240.0)
#: CT window of the bone MIP behind the dose MIP (HU).
BONE_WINDOW_HU = (0.0, 1200.0)
#: Dose below this share of the colour-bar maximum is not washed (the CT shows through).
WASH_THRESHOLD = 0.1
DPI = 200


def ct_candidates(patient_dir) -> list:
    """CT files the dose may be on: the registration's reference CT, the reference time point's CT."""
    pdir = Path(patient_dir)
    found = [pdir / "register" / "reference_ct.nii.gz"]
    ref, _ = read_json(pdir / "register" / "reference.json")
    if isinstance(ref, dict) and ref.get("reference_time_point"):
        found.append(pdir / "ingest" / str(ref["reference_time_point"]) / "ct.nii.gz")
    return found


def _on_grid(image, other) -> bool:
    return image.array.shape == other.array.shape and np.allclose(image.affine, other.affine, atol=1e-3)


def load_volumes(patient_dir) -> tuple[Volumes | None, str | None]:
    """CT, dose on the CT grid and labels of ``patient_dir`` in RAS order, or ``(None, why)``.

    The CT is the first of :func:`ct_candidates` on the grid of ``dose/dose_ct.nii.gz``.
    """
    from ..errors import SpectdoseError
    from ..imageio import read_image

    pdir = Path(patient_dir)
    images = {}
    for key, path, unit in (("dose", pdir / "dose" / "dose_ct.nii.gz", "Gy"),
                            ("labels", pdir / "segment" / "labels.nii.gz", "label")):
        if not path.is_file():
            return None, f"{path.parent.name}/{path.name} was not written"
        try:
            images[key] = read_image(path, unit=unit)[0]
        except (SpectdoseError, OSError, ValueError) as exc:
            return None, f"{path.parent.name}/{path.name} is unreadable ({exc})"
    if not _on_grid(images["labels"], images["dose"]):
        return None, "segment/labels.nii.gz is not on the grid of dose/dose_ct.nii.gz"
    candidates = [p for p in ct_candidates(pdir) if p.is_file()]
    if not candidates:
        return None, "register/reference_ct.nii.gz was not written"
    for path in candidates:
        try:
            ct = read_image(path, unit="HU")[0]
        except (SpectdoseError, OSError, ValueError) as exc:
            return None, f"{path.parent.name}/{path.name} is unreadable ({exc})"
        if _on_grid(ct, images["dose"]):
            break
    else:
        return None, "no reference CT on the grid of dose/dose_ct.nii.gz"
    ct_arr, affine = to_ras_order(np.asarray(ct.array, np.float32), ct.affine)
    dose_arr, _ = to_ras_order(np.asarray(images["dose"].array, np.float32), ct.affine)
    lab_arr, _ = to_ras_order(np.asarray(images["labels"].array).astype(np.int32), ct.affine)
    return Volumes(ct_arr, dose_arr, lab_arr, affine), None


def kidney_centre(vol: Volumes) -> tuple[np.ndarray | None, str]:
    """RAS voxel index of the hottest kidney voxel, and which kidney holds it."""
    kidneys = np.isin(vol.labels, (1, 2))
    if not kidneys.any():
        return None, ""
    masked = np.where(kidneys, vol.dose, -np.inf)
    index = np.array(np.unravel_index(int(np.argmax(masked)), masked.shape))
    side = "left" if vol.labels[tuple(index)] == 1 else "right"
    return index, side


def l3_centre(vol: Volumes, labels_json: dict | None) -> np.ndarray | None:
    """RAS voxel index of the centre of L3 (segmentation record), else of the L2-L4 labels."""
    vertebrae = (labels_json or {}).get("vertebrae") if isinstance(labels_json, dict) else None
    centre = (vertebrae or {}).get("L3", {}).get("centre_ras_mm") if isinstance(vertebrae, dict) else None
    if isinstance(centre, list) and len(centre) == 3:
        index = np.linalg.solve(vol.affine, np.r_[np.asarray(centre, float), 1.0])[:3]
        return np.clip(np.rint(index).astype(int), 0, np.array(vol.dose.shape) - 1)
    for label in (6, 5):
        mask = vol.labels == label
        if mask.any():
            return np.rint(np.argwhere(mask).mean(axis=0)).astype(int)
    return None


def isodose_levels(vmax: float) -> list:
    """Isodose levels (Gy) on the 1-2-3-5 series between 10 % and 95 % of ``vmax`` (Gy)."""
    if not np.isfinite(vmax) or vmax <= 0:
        return []
    levels = []
    for exponent in range(int(np.floor(np.log10(vmax))) - 2, int(np.floor(np.log10(vmax))) + 1):
        for mantissa in (1, 2, 3, 5):
            value = mantissa * 10.0 ** exponent
            if 0.1 * vmax <= value <= 0.95 * vmax:
                levels.append(float(f"{value:.3g}"))
    return levels


def _letters(ax, letters):
    import matplotlib.patheffects as pe

    style = dict(color="white", fontsize=9, fontweight="bold",
                 path_effects=[pe.withStroke(linewidth=2, foreground="black")], transform=ax.transAxes)
    for text, x, y, ha, va in zip(letters, (0.02, 0.98, 0.5, 0.5), (0.5, 0.5, 0.98, 0.02),
                                  ("left", "right", "center", "center"), ("center", "center", "top", "bottom")):
        ax.text(x, y, text, ha=ha, va=va, gid=f"orientation-{text}", **style)


def _scale_bar(ax, panel: Panel, length_mm: float = 50.0):
    import matplotlib.patheffects as pe

    width, height = panel.extent[1], panel.extent[2]
    x1 = width * 0.96
    y = height * 0.93
    ax.plot([x1 - length_mm, x1], [y, y], color="white", linewidth=2.5, solid_capstyle="butt",
            path_effects=[pe.withStroke(linewidth=4, foreground="black")])
    ax.text(x1 - length_mm / 2, y - height * 0.015, f"{length_mm:.0f} mm", color="white", fontsize=7,
            ha="center", va="bottom", path_effects=[pe.withStroke(linewidth=2, foreground="black")])


def draw_panels(panels: list, titles: list, path, suptitle: str, vmax: float | None = None,
                ct_window=CT_WINDOW_HU, markers=None, width_in: float = 10.0):
    """Draw ``panels`` side by side (CT grey, dose wash, isodose lines) with one colour bar; save PNG.

    Parameters
    ----------
    panels : list of Panel
    titles : list of str
        One title per panel.
    path : path
        PNG to write (written to a temporary name and renamed).
    suptitle : str
        Title of the figure.
    vmax : float, optional
        Top of the colour bar, Gy (default: the largest dose in the panels).
    ct_window : (float, float)
        Grey-scale range of the CT, HU.
    markers : list of (int, int), optional
        Displayed (row, column) marked with a cross in each panel (default: each panel's maximum).
    width_in : float
        Figure width, inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, still open (the caller closes it; tests inspect its artists).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ..atomic import atomic_path

    top = max(float(np.max(p.dose)) for p in panels)
    vmax = float(vmax or top or 1.0)
    widths = [p.extent[1] for p in panels]
    height = max(p.extent[2] for p in panels)
    fig = Figure(figsize=(width_in, width_in * height / sum(widths) + 0.9), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), gridspec_kw={"width_ratios": widths})
    axes = np.atleast_1d(axes)
    levels = isodose_levels(vmax)
    wash = None
    markers = markers or [np.unravel_index(int(np.argmax(p.dose)), p.dose.shape) for p in panels]
    for ax, panel, title, peak in zip(axes, panels, titles, markers):
        ax.imshow(panel.ct, cmap="gray", vmin=ct_window[0], vmax=ct_window[1], extent=panel.extent,
                  interpolation="bilinear", origin="upper")
        shown = np.ma.masked_less(panel.dose, WASH_THRESHOLD * vmax)
        wash = ax.imshow(shown, cmap="turbo", vmin=0.0, vmax=vmax, alpha=0.55, extent=panel.extent,
                         interpolation="bilinear", origin="upper", gid="dose")
        if levels and float(np.max(panel.dose)) > levels[0]:
            x = (np.arange(panel.dose.shape[1]) + 0.5) * panel.col_mm
            y = (np.arange(panel.dose.shape[0]) + 0.5) * panel.row_mm
            lines = ax.contour(x, y, panel.dose, levels=levels, cmap="turbo", vmin=0.0, vmax=vmax,
                               linewidths=0.8)
            ax.clabel(lines, fontsize=5, fmt=lambda v: f"{v:g} Gy", inline=True)
        ax.plot((peak[1] + 0.5) * panel.col_mm, (peak[0] + 0.5) * panel.row_mm, marker="+", color="white",
                markersize=7, markeredgewidth=1.2, gid="dose-maximum")
        _letters(ax, panel.letters)
        _scale_bar(ax, panel)
        ax.set_xlim(panel.extent[0], panel.extent[1])
        ax.set_ylim(panel.extent[2], panel.extent[3])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    bar = fig.colorbar(wash, ax=list(axes), shrink=0.9, pad=0.01, extend="max" if top > vmax else "neither")
    bar.set_label("Absorbed dose (Gy)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    for level in levels:
        bar.ax.axhline(level, color="black", linewidth=0.6)
    fig.suptitle(suptitle, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return fig


def _mm(vol: Volumes, axis: int, index: int) -> str:
    world = vol.world_mm([index if a == axis else 0 for a in range(3)])
    return f"{'xyz'[axis]} = {world[axis]:+.0f} mm"


def marker_of(panel: Panel, ras_index) -> tuple:
    """Displayed (row, column) of RAS voxel index ``ras_index`` in ``panel``."""
    row = int(np.flatnonzero(panel.row_index == ras_index[panel.row_axis])[0])
    col = int(np.flatnonzero(panel.col_index == ras_index[panel.col_axis])[0])
    return row, col


def three_planes(vol: Volumes, centre, box=None) -> list:
    """Axial, coronal and sagittal panels through RAS voxel index ``centre``."""
    return [plane(vol, "axial", centre[2], box), plane(vol, "coronal", centre[1], box),
            plane(vol, "sagittal", centre[0], box)]


def make_dose_figures(patient_dir, out_dir) -> tuple[list, list]:
    """Write the fused dose figures of ``patient_dir`` into ``out_dir``.

    Returns
    -------
    figures : list of (Path, str)
        Each PNG written and its caption.
    notes : list of str
        Why a figure is not there.
    """
    vol, why = load_volumes(patient_dir)
    if vol is None:
        return [], [f"fused dose figures: {why}"]
    out_dir = Path(out_dir)
    box = body_box(vol)
    figures, notes = [], []
    kidney, side = kidney_centre(vol)
    if kidney is not None:
        panels = three_planes(vol, kidney, box)
        titles = [f"{p.name} ({_mm(vol, p.fixed_axis, p.fixed_index)})" for p in panels]
        peak = float(vol.dose[tuple(kidney)])
        path = out_dir / "dose_kidneys.png"
        draw_panels(panels, titles, path, f"Through the kidney dose maximum (+: {side} kidney, {peak:.3g} Gy); "
                                          "colour scale up to the kidney maximum", vmax=peak,
                    markers=[marker_of(p, kidney) for p in panels]).clear()
        figures.append((path, f"Absorbed dose on the reference CT through the {side} kidney's maximum "
                              "(colour wash and isodose lines in Gy; higher doses elsewhere in red)"))
    else:
        notes.append("fused dose figure through the kidneys: no kidney label in segment/labels.nii.gz")
    labels_json, _ = read_json(Path(patient_dir) / "segment" / "labels.json")
    l3 = l3_centre(vol, labels_json)
    if l3 is not None:
        panels = three_planes(vol, l3, box)
        titles = [f"{p.name} ({_mm(vol, p.fixed_axis, p.fixed_index)})" for p in panels]
        path = out_dir / "dose_l3.png"
        draw_panels(panels, titles, path, "Through the centre of L3").clear()
        figures.append((path, "Absorbed dose through the third lumbar vertebra (marrow VOI level)"))
    else:
        notes.append("fused dose figure through L3: no L3 centre and no L2-L4 label")
    panel = mip(vol, box)
    path = out_dir / "dose_mip.png"
    draw_panels([panel], ["coronal maximum-intensity projection"], path, width_in=6.5,
                suptitle="Dose MIP over a bone MIP of the CT (+: maximum)", ct_window=BONE_WINDOW_HU).clear()
    figures.append((path, "Maximum-intensity projection of the absorbed dose (coronal)"))
    return figures, notes
