"""The QC gate's common parts: a check's record, its grading, and the working grid it runs on.

Split from :mod:`pipeline.segment.gate` (the organ checks and the gate itself) with
:mod:`pipeline.segment.gate_spine` (the L2-L4 checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..image import Image
from .gate_ranges import Limits
from .orient import block_factors, block_mean, ras_order_affine, to_ras_order

__all__ = ["Check"]


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


def _centroid_world(g: _Grid, mask: np.ndarray) -> np.ndarray:
    """World centroid (mm) of a boolean mask (NaN when empty); the mean of its voxel indices
    (``ndi.center_of_mass`` weighs the whole array: 0.2 s per organ at full resolution)."""
    idx = np.argwhere(mask)
    return g.world(idx.mean(axis=0) if idx.size else np.full(3, np.nan))
