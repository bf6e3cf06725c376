"""Agreement of a segmentation with a reference: per-organ overlap and vertebral levels.

Pure functions, arrays in and numbers out: nothing is read or written.

:func:`compare_labels` compares two label images (DESIGN ids) organ by organ:
Dice, volumes, volume error and centroid distance. The comparison is made on
the *reference* grid: the test labels are resampled onto it by nearest
neighbour (voxel centre of the reference looked up in the test grid), so the
reference may be on any grid and may cover a smaller field of view than the
test. Volumes are therefore counted inside the reference field of view.

:func:`compare_levels` checks the vertebral levels of a segmenter (name ->
centroid z, RAS+ mm) against reference vertebrae (name -> superior-inferior
range, RAS+ mm): a level matches when the test centroid lies inside the
reference vertebra's range (widened by ``tolerance_mm`` on each side).
"""

from __future__ import annotations

import numpy as np

from ..image import Image
from . import labels as L

__all__ = ["resample_nearest", "compare_labels", "compare_levels", "format_label_table",
           "format_level_table", "levels_from_labels"]

#: Organs compared by default: id -> name (the marrow VOI is a derived region, not an organ).
DEFAULT_NAMES = {k: v for k, v in L.FIXED_LABELS.items() if k != L.MARROW_L2L4}
_VERTEBRA_IDS = (L.VERTEBRAE_L2L4, L.MARROW_L2L4)


def resample_nearest(labels: Image, target: Image, fill: int = 0) -> np.ndarray:
    """Labels of ``labels`` at the voxel centres of ``target`` (nearest neighbour).

    Parameters
    ----------
    labels : Image
        Integer label image, any grid.
    target : Image
        Grid to sample on (its values are not used).
    fill : int
        Value of target voxels whose centre lies outside ``labels``' grid.

    Returns
    -------
    numpy.ndarray, shape ``target.shape``
        Labels on the target grid, dtype of ``labels.array``.
    """
    src = np.asarray(labels.array)
    if labels.same_grid(target):
        return src.copy()
    out = np.full(target.shape, fill, dtype=src.dtype)
    # slice by slice along the target's last axis: bounded memory on large grids
    ii, jj = np.meshgrid(np.arange(target.shape[0]), np.arange(target.shape[1]), indexing="ij")
    for k in range(target.shape[2]):
        ijk = np.stack([ii, jj, np.full_like(ii, k)], axis=-1)
        idx = np.rint(labels.world_to_index(target.index_to_world(ijk))).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.array(src.shape)), axis=-1)
        sl = out[:, :, k]
        sl[inside] = src[tuple(idx[inside].T)]
    return out


def _centroid_mm(mask: np.ndarray, image: Image) -> np.ndarray:
    return image.index_to_world(np.argwhere(mask).mean(axis=0))


def _touches_border(mask: np.ndarray) -> bool:
    """True when the mask reaches any face of its array (organ cut by the field of view)."""
    for ax in range(3):
        first = np.take(mask, 0, axis=ax)
        last = np.take(mask, mask.shape[ax] - 1, axis=ax)
        if first.any() or last.any():
            return True
    return False


def compare_labels(test: Image, reference: Image, names: dict | None = None) -> dict:
    """Per-organ agreement of a test label image with a reference label image.

    Parameters
    ----------
    test : Image
        Test labels (integer ids), any grid.
    reference : Image
        Reference labels (integer ids), any grid; the comparison is made on it.
    names : dict, optional
        Label id -> organ name to compare. Default: the DESIGN labels
        1 kidney_left, 2 kidney_right, 3 liver, 4 spleen, 6 vertebrae_L2L4,
        7 body.

    Returns
    -------
    dict
        Organ name -> dict with

        - ``status``: ``"ok"``; ``"absent"`` when the organ has no voxel in the
          reference (outside its field of view); ``"missing"`` when the
          reference has it and the test has none;
        - ``truncated`` (bool): the reference organ touches a face of the
          reference grid, i.e. it is only partly inside the field of view;
        - ``dice`` (0-1, NaN when absent);
        - ``volume_test_ml``, ``volume_reference_ml`` (mL, counted on the
          reference grid);
        - ``volume_error_percent``: 100 (test - reference) / reference (NaN when absent);
        - ``centroid_distance_mm``: distance of the centroids, RAS+ mm (NaN
          when either is empty).

    Notes
    -----
    The body label (7) is the outline: for it every non-zero voxel counts
    (organs lie inside the body). The vertebral bodies (6) include the marrow
    VOI (5) drawn inside them. Every other id counts only its own voxels.
    """
    names = DEFAULT_NAMES if names is None else names
    ref = np.asarray(reference.array)
    tst = resample_nearest(test, reference)
    vml = reference.voxel_volume_ml
    out = {}
    for lid, name in names.items():
        if lid == L.BODY:
            r, t = ref > 0, tst > 0
        elif lid == L.VERTEBRAE_L2L4:
            r, t = np.isin(ref, _VERTEBRA_IDS), np.isin(tst, _VERTEBRA_IDS)
        else:
            r, t = ref == lid, tst == lid
        nr, nt = int(r.sum()), int(t.sum())
        row = {"status": "ok", "truncated": False, "dice": float("nan"),
               "volume_test_ml": nt * vml, "volume_reference_ml": nr * vml,
               "volume_error_percent": float("nan"), "centroid_distance_mm": float("nan")}
        if nr == 0:
            row["status"] = "absent"
            out[name] = row
            continue
        row["truncated"] = bool(lid != L.BODY and _touches_border(r))
        inter = int(np.count_nonzero(r & t))
        row["dice"] = 2.0 * inter / (nr + nt)
        row["volume_error_percent"] = 100.0 * (nt - nr) / nr
        if nt == 0:
            row["status"] = "missing"
        else:
            row["centroid_distance_mm"] = float(np.linalg.norm(_centroid_mm(t, reference)
                                                               - _centroid_mm(r, reference)))
        out[name] = row
    return out


def _z_range(value) -> tuple[float, float]:
    """(lo, hi) RAS z of a reference level given as a pair or a dict with ``z_range_mm``."""
    if isinstance(value, dict):
        for key in ("z_range_mm", "z_range_ras_mm"):
            if key in value:
                value = value[key]
                break
        else:
            raise KeyError("reference level needs 'z_range_mm'")
    lo, hi = (float(v) for v in value)
    return (min(lo, hi), max(lo, hi))


def _z_value(value) -> float:
    """RAS z of a test level given as a number, an (x, y, z) centroid or a dict."""
    if isinstance(value, dict):
        for key in ("centroid_z_mm", "centre_ras_mm", "centroid_ras_mm"):
            if key in value:
                value = value[key]
                break
        else:
            if "z_range_ras_mm" in value or "z_range_mm" in value:
                return float(np.mean(_z_range(value)))
            raise KeyError("test level needs a centroid")
    arr = np.atleast_1d(np.asarray(value, float))
    return float(arr[2] if arr.size == 3 else arr[0])


def compare_levels(test_levels: dict, reference_levels: dict, tolerance_mm: float = 0.0,
                   names=("L2", "L3", "L4")) -> dict:
    """Whether each test vertebra's centroid lies within the reference vertebra.

    Parameters
    ----------
    test_levels : dict
        Name -> centroid z (RAS+ mm); also accepted: an (x, y, z) centroid or
        a dict with ``centroid_z_mm`` / ``centre_ras_mm`` / ``z_range_ras_mm``
        (the form of :class:`pipeline.segment.builtin.BuiltinResult.vertebrae`).
    reference_levels : dict
        Name -> (z_lo, z_hi) RAS+ mm, or a dict with ``z_range_mm``.
    tolerance_mm : float
        Margin added to each end of the reference range, mm.
    names : sequence of str
        Levels to check.

    Returns
    -------
    dict
        Name -> dict with ``test_z_mm`` (NaN when not found), ``reference_range_mm``
        (or None), ``offset_mm`` (test z minus the reference range's centre),
        ``match`` (bool), ``status`` (``"ok"``, ``"mismatch"``,
        ``"not found"`` in the test, ``"no reference"``).
    """
    out = {}
    for n in names:
        row = {"test_z_mm": float("nan"), "reference_range_mm": None, "offset_mm": float("nan"),
               "match": False, "status": "ok"}
        if n not in reference_levels:
            row["status"] = "no reference"
            out[n] = row
            continue
        lo, hi = _z_range(reference_levels[n])
        row["reference_range_mm"] = (lo, hi)
        if n not in test_levels:
            row["status"] = "not found"
            out[n] = row
            continue
        z = _z_value(test_levels[n])
        row["test_z_mm"] = z
        row["offset_mm"] = z - 0.5 * (lo + hi)
        row["match"] = bool(lo - tolerance_mm <= z <= hi + tolerance_mm)
        row["status"] = "ok" if row["match"] else "mismatch"
        out[n] = row
    return out


def format_label_table(result: dict) -> str:
    """Plain-text table of :func:`compare_labels`' result, one organ a line."""
    head = (f"{'organ':<16}{'dice':>7}{'V test mL':>11}{'V ref mL':>10}{'dV %':>8}"
            f"{'d cent mm':>11}  status")
    lines = [head, "-" * len(head)]
    for name, r in result.items():
        status = r["status"] + (" (truncated by FOV)" if r["truncated"] else "")
        lines.append(f"{name:<16}{r['dice']:>7.3f}{r['volume_test_ml']:>11.1f}"
                     f"{r['volume_reference_ml']:>10.1f}{r['volume_error_percent']:>8.1f}"
                     f"{r['centroid_distance_mm']:>11.1f}  {status}")
    return "\n".join(lines)


def format_level_table(result: dict) -> str:
    """Plain-text table of :func:`compare_levels`' result, one level a line."""
    head = f"{'level':<6}{'test z mm':>10}{'ref range mm':>20}{'offset mm':>11}  match"
    lines = [head, "-" * len(head)]
    for name, r in result.items():
        rr = r["reference_range_mm"]
        rng = "-" if rr is None else f"{rr[0]:.1f}..{rr[1]:.1f}"
        lines.append(f"{name:<6}{r['test_z_mm']:>10.1f}{rng:>20}{r['offset_mm']:>11.1f}  "
                     f"{'yes' if r['match'] else 'NO'} ({r['status']})")
    return "\n".join(lines)


def levels_from_labels(labels: Image) -> dict:
    """L2, L3, L4 superior-inferior ranges (RAS+ z, mm) read from an L2-L4 mask (labels 5 + 6).

    The mask's 3-D pieces of at least 2 mL, ordered from inferior up, are L4, L3,
    L2 when there are three (discs separate the bodies); otherwise the mask's
    extent is split in equal thirds. Empty dict without an L2-L4 mask.
    """
    from scipy import ndimage as ndi

    whole = np.isin(np.asarray(labels.array), _VERTEBRA_IDS)
    if not whole.any():
        return {}
    world_z = labels.world_grid()[..., 2]
    lab, n = ndi.label(whole, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.ravel())[1:] * labels.voxel_volume_ml
    big = [i + 1 for i in np.flatnonzero(sizes >= 2.0)]
    half = 0.5 * abs(labels.affine[2, 2]) if abs(labels.affine[2, 2]) > 0 else 0.0
    if len(big) == 3:
        ranges = []
        for i in big:
            z = world_z[lab == i]
            ranges.append((float(z.min()) - half, float(z.max()) + half))
        ranges.sort()
    else:
        z = world_z[whole]
        lo, hi = float(z.min()) - half, float(z.max()) + half
        step = (hi - lo) / 3.0
        ranges = [(lo + i * step, lo + (i + 1) * step) for i in range(3)]
    return dict(zip(("L4", "L3", "L2"), ranges))
