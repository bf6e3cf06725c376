"""The reference time point: the pose every other time point is aligned to.

Default rule: the scan closest to 24 h after injection (a late scan has
little blood-pool activity and is usually in the middle of the kinetic
sampling), skipping scans whose CT is not usable (checked lazily, in order
of preference). A user choice (command line, or ``reference_time_point`` of
the ingest manifest) wins.
"""

from __future__ import annotations

import numpy as np

from ..image import Image

__all__ = ["DEFAULT_TARGET_H", "ct_quality_problems", "choose_reference"]

#: Preferred time of the reference scan after injection (h).
DEFAULT_TARGET_H = 24.0
#: Coarsest CT voxel accepted for a reference (mm).
MAX_REFERENCE_VOXEL_MM = 6.0
#: Smallest body volume accepted in a reference CT (mL): a torso field of view holds far more.
MIN_BODY_ML = 2000.0


def ct_quality_problems(ct: Image) -> list[str]:
    """Why a CT is unfit as the registration reference (empty list: fit).

    Checks: voxel size at most :data:`MAX_REFERENCE_VOXEL_MM`, a body of at
    least :data:`MIN_BODY_ML`, and HU values that span air to soft tissue.
    """
    from .masks import body_mask
    from .rigid import working_ct

    problems = []
    vs = ct.voxel_size_mm
    if vs.max() > MAX_REFERENCE_VOXEL_MM:
        problems.append(f"voxels of {vs.max():.1f} mm are coarser than {MAX_REFERENCE_VOXEL_MM:g} mm")
    arr = np.asarray(ct.array)
    lo, hi = float(arr.min()), float(arr.max())
    if lo > -500 or hi < 0:
        problems.append(f"HU range {lo:.0f}..{hi:.0f} does not span air to soft tissue")
    work = working_ct(ct, 6.0)
    body_ml = float(body_mask(work).array.sum()) * work.voxel_volume_ml
    if body_ml < MIN_BODY_ML:
        problems.append(f"body volume {body_ml:.0f} mL is below {MIN_BODY_ML:g} mL (empty or cropped CT?)")
    return problems


def choose_reference(times_h: dict, requested: str | None = None, target_h: float = DEFAULT_TARGET_H,
                     ct_problems=None) -> tuple[str, str, dict]:
    """Pick the reference time point.

    Parameters
    ----------
    times_h : dict
        Time point id -> hours after injection.
    requested : str, optional
        A user choice; it must exist (its CT is not second-guessed).
    target_h : float
        Preferred time (h) for the automatic choice.
    ct_problems : callable, optional
        ``ct_problems(tp) -> list[str]``, called in order of preference until a
        time point has none; default: every CT is fit.

    Returns
    -------
    tp : str
        The reference time point id.
    reason : str
        Why it was chosen (for reference.json).
    rejected : dict
        Time point -> problems of the CTs passed over.

    Raises
    ------
    KeyError
        When ``requested`` is not a time point.
    ValueError
        When no time point has a usable CT.
    """
    if not times_h:
        raise ValueError("no time points")
    if requested is not None:
        if requested not in times_h:
            raise KeyError(requested)
        return requested, "chosen by the user", {}
    order = sorted(times_h, key=lambda tp: (abs(float(times_h[tp]) - target_h), float(times_h[tp])))
    rejected = {}
    for tp in order:
        problems = ct_problems(tp) if ct_problems is not None else []
        if not problems:
            reason = f"closest to {target_h:g} h after injection ({float(times_h[tp]):.2f} h)"
            if rejected:
                reason += " with a usable CT"
            return tp, reason, rejected
        rejected[tp] = problems
    raise ValueError("no time point has a CT usable as reference: "
                     + "; ".join(f"{tp}: {', '.join(p)}" for tp, p in rejected.items()))
