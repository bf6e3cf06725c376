"""Quality control of a registration: failure checks and the overlay picture.

Failure (each is a *problem*; any problem fails the time point unless the
user allows a fallback, and the QC record keeps it either way):

- the final metric is worse than the starting one (the better of scanner coordinates and
  the initial alignment) and the optimiser ended more than 1 mm or 0.5 degrees from it: the
  optimiser made things worse. Closer, the start is kept instead
  (:func:`pipeline.register.rigid.register_rigid`, ``kept_start``: a patient who did not move);
- the transform is beyond plausible limits for a patient lying down again on
  the same couch (default more than 50 mm translation of the body centre or
  more than 15 degrees rotation);
- after registration the CTs still do not look alike: the correlation of the
  HU values inside the reference body is below a floor (another patient,
  another body region, an empty or corrupt image);
- deformable stage only: folding (Jacobian determinant at or below a floor)
  or the optimiser ending with a worse metric than it started from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import SpectdoseError
from ..image import Image
from .resample import resample_image

__all__ = ["QCLimits", "RegistrationFailed", "rigid_problems", "deformable_problems",
           "ct_correlation", "overlay_png"]


@dataclass(frozen=True)
class QCLimits:
    """Plausibility limits of a registration.

    Attributes
    ----------
    max_translation_mm : float
        Largest accepted displacement of the reference body centre (mm).
    max_rotation_deg : float
        Largest accepted rotation angle (degrees).
    min_correlation : float
        Smallest accepted Pearson correlation of reference and moved CT (HU,
        inside the metric mask) after registration. The same patient gives
        0.9 or more at the working resolution; a different body 0.6 or less
        (measured on the sample patient and the real CT, see the tests).
    min_jacobian : float
        Smallest accepted Jacobian determinant of the deformable stage (folding below 0).
    """

    max_translation_mm: float = 50.0
    max_rotation_deg: float = 15.0
    min_correlation: float = 0.75
    min_jacobian: float = 0.2

    def as_dict(self) -> dict:
        return asdict(self)


class RegistrationFailed(SpectdoseError):
    """A registration failed its QC checks (and no fallback was allowed).

    Attributes
    ----------
    time_point : str
    problems : list of str
    """

    def __init__(self, time_point: str, problems: list[str], qc_path=None):
        self.time_point = time_point
        self.problems = list(problems)
        where = f"; QC record: {qc_path}" if qc_path else ""
        super().__init__(
            f"registration of time point {time_point} failed: " + "; ".join(self.problems)
            + where + " (use --allow-fallback to continue without it)")


def ct_correlation(pair, transform) -> float:
    """Pearson correlation of reference and moved CT inside the metric mask.

    Parameters
    ----------
    pair : pipeline.register.rigid.WorkingPair
        Working-resolution images and metric mask.
    transform : SimpleITK.Transform
        Reference -> moving.
    """
    moved = resample_image(pair.moving, pair.fixed, transform, default_value=-1000.0)
    m = np.asarray(pair.metric_mask.array, bool)
    a = np.asarray(pair.fixed.array, float)[m]
    b = np.asarray(moved.array, float)[m]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def rigid_problems(metric_start: float, metric_final: float, translation_mm: float,
                   rotation_deg: float, correlation: float, limits: QCLimits) -> list[str]:
    """Reasons to reject a rigid registration (empty when it passes).

    Parameters
    ----------
    metric_start, metric_final : float
        Mattes MI, ITK sign (lower is better).
    translation_mm : float
        Displacement of the reference body centre (mm).
    rotation_deg : float
        Rotation angle (degrees).
    correlation : float
        CT correlation after registration.
    limits : QCLimits
    """
    problems = []
    if not np.isfinite(metric_final) or metric_final > metric_start:
        problems.append(f"final metric {metric_final:.4f} is worse than the start {metric_start:.4f}")
    if translation_mm > limits.max_translation_mm:
        problems.append(f"translation {translation_mm:.1f} mm exceeds {limits.max_translation_mm:g} mm")
    if rotation_deg > limits.max_rotation_deg:
        problems.append(f"rotation {rotation_deg:.1f} deg exceeds {limits.max_rotation_deg:g} deg")
    if correlation < limits.min_correlation:
        problems.append(f"CTs do not match after registration (correlation {correlation:.2f} < "
                        f"{limits.min_correlation:g}): another patient, another body region or a "
                        f"corrupt image?")
    return problems


def deformable_problems(metric_start: float, metric_final: float, min_jacobian: float,
                        limits: QCLimits) -> list[str]:
    """Reasons to reject the deformable stage (empty when it passes).

    Parameters
    ----------
    metric_start, metric_final : float
        The optimiser's metric at its first and last iteration (lower is better).
    min_jacobian : float
        Smallest Jacobian determinant of the deformation.
    """
    problems = []
    if not np.isfinite(metric_final) or metric_final > metric_start:
        problems.append(f"deformable metric {metric_final:.4f} is worse than at its start "
                        f"{metric_start:.4f}")
    if min_jacobian <= limits.min_jacobian:
        problems.append(f"deformation folds or compresses implausibly (min Jacobian "
                        f"{min_jacobian:.2f} <= {limits.min_jacobian:g})")
    return problems


# -- overlay ---------------------------------------------------------------------------

def _display_grid(reference: Image, centre_ras_mm, plane: str, pixel_mm: float) -> Image:
    """A one-slice grid through ``centre_ras_mm`` in radiological display orientation.

    Axial: columns run towards the patient's left (patient right on the image left), rows
    towards posterior. Coronal: columns towards the patient's left, rows towards inferior.
    """
    corners = reference.index_to_world(
        np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in reference.shape], indexing="ij")).reshape(3, -1).T)
    lo, hi = corners.min(0), corners.max(0)
    c = np.asarray(centre_ras_mm, float)
    if plane == "axial":
        cols, rows = np.array([-1.0, 0, 0]), np.array([0, -1.0, 0])
        start = np.array([hi[0], hi[1], c[2]])
        n_col, n_row = (hi[0] - lo[0]) / pixel_mm, (hi[1] - lo[1]) / pixel_mm
    elif plane == "coronal":
        cols, rows = np.array([-1.0, 0, 0]), np.array([0, 0, -1.0])
        start = np.array([hi[0], c[1], hi[2]])
        n_col, n_row = (hi[0] - lo[0]) / pixel_mm, (hi[2] - lo[2]) / pixel_mm
    else:
        raise ValueError(plane)
    third = np.cross(cols, rows)
    direction = np.stack([cols, rows, third], 1)
    affine = np.eye(4)
    affine[:3, :3] = direction * pixel_mm
    affine[:3, 3] = start + (cols + rows) * pixel_mm / 2
    return Image(np.zeros((int(n_col), int(n_row), 1), np.uint8), affine, "none")


def _slice(image: Image, grid: Image, transform=None, default=0.0) -> np.ndarray:
    return resample_image(image, grid, transform, default_value=default).array[:, :, 0].T


def overlay_png(path, reference_ct: Image, moving_ct: Image, spect_after: Image,
                transform=None, spect_before: Image | None = None, centre_ras_mm=None,
                title: str = "", notes: str = "", pixel_mm: float = 2.0):
    """Write the QC overlay: reference CT with moved-CT edges and SPECT contours.

    Two rows when ``transform`` is given (before: scanner coordinates; after:
    registered), one otherwise; two columns (axial, coronal) through
    ``centre_ras_mm`` (default: the hottest point of ``spect_after``).

    Parameters
    ----------
    path : path-like
        Output PNG (written atomically).
    reference_ct : Image
        Reference CT (HU), grey background.
    moving_ct : Image
        The time point's CT in its own space (HU).
    spect_after : Image
        Registered SPECT on the dose grid (Bq/mL, reference space).
    transform : SimpleITK.Transform, optional
        Reference -> moving.
    spect_before : Image, optional
        The time point's SPECT in its own space (for the "before" row).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from scipy import ndimage

    from ..atomic import atomic_path

    spect_arr = np.asarray(spect_after.array, float)
    peak = float(spect_arr.max()) if spect_arr.size else 0.0
    if centre_ras_mm is None:
        sm = ndimage.gaussian_filter(spect_arr, 1.0)
        centre_ras_mm = spect_after.index_to_world(np.unravel_index(int(np.argmax(sm)), sm.shape))
    rows = [("after registration", transform, spect_after)]
    if transform is not None:
        rows.insert(0, ("before (scanner coordinates)", None, spect_before))
    fig = Figure(figsize=(10, 4.6 * len(rows)), dpi=90)
    levels = [f * peak for f in (0.1, 0.3, 0.6)] if peak > 0 else []
    for r, (label, tx, spect) in enumerate(rows):
        for c, plane in enumerate(("axial", "coronal")):
            ax = fig.add_subplot(len(rows), 2, 2 * r + c + 1)
            grid = _display_grid(reference_ct, centre_ras_mm, plane, pixel_mm)
            ref = _slice(reference_ct, grid, None, -1000.0)
            moved = ndimage.gaussian_filter(_slice(moving_ct, grid, tx, -1000.0), 1.0)
            ax.imshow(ref, cmap="gray", vmin=-350, vmax=450, interpolation="bilinear")
            ax.contour(moved, levels=[-400.0], colors=["cyan"], linewidths=0.7)
            ax.contour(moved, levels=[200.0], colors=["yellow"], linewidths=0.7)
            if spect is not None and levels:
                sp = _slice(spect, grid, tx if spect is not spect_after else None, 0.0)
                if sp.max() > levels[0]:
                    ax.contour(sp, levels=levels, colors=["orange", "red", "magenta"], linewidths=0.9)
            ax.set_title(f"{plane}, {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.01, 0.5, "R", color="w", transform=ax.transAxes, fontsize=8)
            ax.text(0.97, 0.5, "L", color="w", transform=ax.transAxes, fontsize=8)
    handles = [Line2D([], [], color="cyan", label="moved CT -400 HU (skin, lung)"),
               Line2D([], [], color="yellow", label="moved CT 200 HU (bone)"),
               Line2D([], [], color="orange", label="SPECT 10 % of max"),
               Line2D([], [], color="red", label="SPECT 30 %"),
               Line2D([], [], color="magenta", label="SPECT 60 %")]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    if notes:
        fig.text(0.01, 0.955, notes, fontsize=7, va="top", family="monospace")
    fig.tight_layout(rect=(0, 0.04, 1, 0.93))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
