"""Voxel-wise cumulative absorbed dose of a course on the course's reference CT, and its DVHs.

Each cycle's dose on its own reference CT grid (``dose/dose_ct.nii.gz``, Gy) is brought onto
the course reference CT (the first cycle's) by a rigid CT-to-CT registration of the two reference
CTs (:func:`pipeline.register.rigid.register_rigid`: Mattes mutual information, Euler 3-D) and
pulled with linear interpolation (absorbed dose is a point quantity, Gy, not an amount: no
conservation step). The course map is the sum. Organ deformation between cycles is not modelled
(rigid only), which blurs the sum at organ edges by the residual misalignment.
"""

from __future__ import annotations

import numpy as np

from ..image import Image

__all__ = ["align_cycle_dose", "cumulative_dose_gy", "dose_volume_histograms"]


def align_cycle_dose(reference_ct: Image, cycle_ct: Image, cycle_dose: Image, *, register: bool = True):
    """A cycle's dose on the grid of ``reference_ct`` and what the registration found.

    Parameters
    ----------
    reference_ct : Image
        Course reference CT, HU.
    cycle_ct : Image
        The cycle's reference CT, HU, on the grid of ``cycle_dose``.
    cycle_dose : Image
        The cycle's absorbed dose, Gy.
    register : bool
        Rigid registration (True) or scanner coordinates as they are (False).

    Returns
    -------
    dose : Image
        Gy on the reference CT grid (0 outside the cycle's dose grid).
    record : dict
        ``translation_mm``, ``rotation_deg``, metric at identity and after, ``affine_ras``.
    """
    from ..register.resample import resample_image

    if not cycle_dose.same_grid(cycle_ct):
        raise ValueError("the cycle's dose and CT are not on one grid")
    transform, record = None, {"registered": False}
    if register:
        from ..register.rigid import register_rigid

        res = register_rigid(reference_ct, cycle_ct)
        transform = res.transform
        record = {"registered": True, "translation_mm": float(res.translation_mm),
                  "rotation_deg": float(res.rotation_deg), "metric_identity": float(res.metric_identity),
                  "metric_final": float(res.metric_final), "affine_ras": np.asarray(res.affine_ras).tolist()}
    moved = resample_image(cycle_dose, reference_ct, transform, default_value=0.0, interpolator="linear")
    return moved.with_array(np.maximum(np.asarray(moved.array, np.float64), 0.0), unit="Gy"), record


def cumulative_dose_gy(doses) -> np.ndarray:
    """Sum of aligned dose arrays (Gy), all on one grid."""
    doses = [np.asarray(d, np.float64) for d in doses]
    if not doses:
        raise ValueError("no cycle doses to sum")
    total = np.zeros_like(doses[0])
    for d in doses:
        if d.shape != total.shape:
            raise ValueError("cycle doses are not on one grid")
        total += d
    return total


def dose_volume_histograms(dose_gy: np.ndarray, labels: np.ndarray, names: dict, n_bins: int = 400):
    """Cumulative DVHs and statistics of every named structure.

    Returns
    -------
    edges_gy : ndarray, shape (n_bins,)
        Dose levels, Gy.
    volume_fraction : dict
        Name -> fraction of the structure's voxels receiving at least each dose level.
    stats : dict
        Name -> mean, D2, D50, D98 (Gy) and voxel count.
    """
    dose = np.asarray(dose_gy, np.float64)
    lab = np.asarray(labels)
    top = float(dose.max()) if dose.size else 0.0
    edges = np.linspace(0.0, top * 1.0001 if top > 0 else 1.0, n_bins)
    vf, stats = {}, {}
    for lid, name in sorted(names.items()):
        v = dose[lab == lid]
        if v.size == 0:
            continue
        s = np.sort(v)
        vf[name] = 1.0 - np.searchsorted(s, edges, side="left") / s.size
        stats[name] = {"mean_gy": float(v.mean()), "d2_gy": float(np.percentile(v, 98)),
                       "d50_gy": float(np.percentile(v, 50)), "d98_gy": float(np.percentile(v, 2)),
                       "n_voxels": int(v.size)}
    return edges, vf, stats
