"""Organ-level partial-volume correction from the label map and the SPECT resolution.

The SPECT point-spread function is modelled as an isotropic 3-D Gaussian of
full width at half maximum ``psf_fwhm_mm`` (given by the user, mm), applied on
the SPECT grid by :func:`scipy.ndimage.gaussian_filter` with
``sigma_axis = FWHM / (2 sqrt(2 ln 2)) / voxel_size_axis`` (voxels),
``mode="constant"`` (nothing beyond the SPECT field of view) and
``truncate=4``. ``f_L(v)`` is the fractional occupancy of SPECT voxel ``v`` by
label ``L`` (:class:`pipeline.kinetics.tac.Occupancy`); the measured activity
of ``L`` is ``sum_v f_L(v) C(v) V_voxel``.

``"rc"``: recovery coefficient per label
    The image of a unit concentration filling exactly label ``L`` is
    ``G * f_L``; its activity measured in the VOI over the true activity::

        RC_L = sum_v f_L(v) (G * f_L)(v) / sum_v f_L(v)

    (the true activity of the unit-concentration object is ``sum_v f_L(v)``
    voxel volumes). The organ activity is divided by ``RC_L``. This corrects the
    spill-OUT of the organ's own activity only: spill-IN from neighbouring
    tissue (e.g. liver activity into the right kidney VOI, blood-pool/body
    background into every organ) is ignored, so organs in a hot surrounding
    are over-corrected.

``"gtm"``: geometric transfer matrix (Rousset, Ma and Evans, J Nucl Med
1998;39:904-911)
    Regions: every label present, plus an implicit region ``"outside_labels"``
    (:data:`REST_REGION`): the part of the SPECT field of view occupied by no
    label, ``f_0 = 1 - sum_L f_L`` (this includes any SPECT voxel outside the
    label map's field of view). With the body label 7 present the implicit
    region is mostly air (concentration ~ 0); without it, it absorbs the
    background activity so that its spill-in into the organs is still
    modelled. Each region is assumed to hold a uniform concentration ``c_j``::

        W_ij = sum_v f_i(v) (G * f_j)(v) / sum_v f_i(v)
        observed mean concentration in VOI i:  t_i = sum_v f_i(v) C(v) / sum_v f_i(v) = sum_j W_ij c_j

    The system ``W c = t`` is solved (:func:`numpy.linalg.solve`) at every time
    point; the corrected activity of label ``i`` is ``c_i V_i`` (``V_i`` its
    volume inside the SPECT field of view). ``W_ii`` is the RC of the ``"rc"``
    method. A singular or numerically singular matrix (condition number above
    :data:`MAX_CONDITION`) raises :class:`~pipeline.errors.InputError`; the
    condition number is reported, since noise in ``t`` is amplified by up to
    that factor.

Neither method corrects the voxel TIA map (that would need deconvolution);
activity outside the SPECT field of view spilling into it is not modelled.
Labels with no voxel inside the SPECT field of view are left out (no RC).

For speed each label is blurred on its bounding box plus the kernel radius
(float32); with the truncated kernel this equals the full-grid filter exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..errors import InputError
from ..grid import bounding_box
from ..image import Image
from .tac import Occupancy

__all__ = ["PVC_METHODS", "REST_REGION", "MAX_CONDITION", "PartialVolumeCorrection", "fwhm_to_sigma_voxels",
           "blur", "recovery_coefficients", "geometric_transfer_matrix", "partial_volume_correction"]

#: Accepted values of ``KineticsOptions.pvc``.
PVC_METHODS = ("none", "rc", "gtm")
#: Region id of the implicit "inside the SPECT field of view but in no label" GTM region.
REST_REGION = 0
#: Largest accepted condition number (2-norm) of the geometric transfer matrix.
MAX_CONDITION = 1e8
#: Gaussian kernel truncation, SDs (scipy's default).
TRUNCATE = 4.0

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def fwhm_to_sigma_voxels(fwhm_mm: float, voxel_size_mm) -> np.ndarray:
    """Gaussian SD per grid axis, voxels, for an isotropic PSF of ``fwhm_mm`` (mm); shape (3,)."""
    return float(fwhm_mm) / _FWHM_PER_SIGMA / np.asarray(voxel_size_mm, dtype=float)


def blur(array: np.ndarray, sigma_voxels) -> np.ndarray:
    """The PSF model: ``gaussian_filter(array, sigma, mode="constant", truncate=4)`` in float32."""
    return gaussian_filter(np.asarray(array, np.float32), sigma_voxels, mode="constant", cval=0.0,
                           truncate=TRUNCATE)


def _radius(sigma_voxels) -> np.ndarray:
    # scipy's kernel half-width: int(truncate * sigma + 0.5)
    return np.array([int(TRUNCATE * float(s) + 0.5) for s in sigma_voxels])


def _blurred_in_box(frac: np.ndarray, sigma, radius):
    """``(box, G * frac restricted to box)``: exact, the blurred map is zero outside the box."""
    box = bounding_box(frac, radius)
    if box is None:
        return None, None
    return box, blur(frac[box], sigma)


def recovery_coefficients(occupancy: Occupancy, psf_fwhm_mm: float) -> dict:
    """Recovery coefficient of every label (spill-out only; see the module docstring).

    Parameters
    ----------
    occupancy : Occupancy
        Fractional occupancy of the SPECT grid, fractions shape (L, I, J, K).
    psf_fwhm_mm : float
        FWHM of the isotropic Gaussian PSF, mm.

    Returns
    -------
    dict
        Label id -> RC (dimensionless, 0..1); labels with no voxel in the SPECT field of view are absent.
    """
    _check_fwhm(psf_fwhm_mm)
    sigma = fwhm_to_sigma_voxels(psf_fwhm_mm, occupancy.grid.voxel_size_mm)
    radius = _radius(sigma)
    out = {}
    for lid, frac in zip(occupancy.label_ids, occupancy.fractions):
        box, g = _blurred_in_box(frac, sigma, radius)
        if box is None:
            continue
        f = frac[box]
        total = float(f.sum(dtype=np.float64))
        if total <= 0:
            continue
        out[lid] = float(np.dot(f.ravel().astype(np.float64), g.ravel().astype(np.float64)) / total)
    return out


def geometric_transfer_matrix(occupancy: Occupancy, psf_fwhm_mm: float, include_rest: bool = True):
    """Geometric transfer matrix over every label present (and the implicit rest region).

    Parameters
    ----------
    occupancy : Occupancy
    psf_fwhm_mm : float
        FWHM of the isotropic Gaussian PSF, mm.
    include_rest : bool
        Add the region :data:`REST_REGION` (``1 - sum_L f_L``, SPECT field of view outside every label).

    Returns
    -------
    region_ids : tuple of int
        Region order (label ids with voxels in the field of view; ``REST_REGION`` last when included
        and non-empty).
    matrix : numpy.ndarray, shape (R, R), float64
        ``W_ij`` (dimensionless): mean concentration seen in VOI i per unit concentration in region j.
    volume_ml : numpy.ndarray, shape (R,)
        ``sum_v f_i(v) V_voxel``, mL.
    """
    _check_fwhm(psf_fwhm_mm)
    grid = occupancy.grid
    sigma = fwhm_to_sigma_voxels(psf_fwhm_mm, grid.voxel_size_mm)
    radius = _radius(sigma)
    fracs = []
    ids = []
    for lid, frac in zip(occupancy.label_ids, occupancy.fractions):
        if float(frac.sum(dtype=np.float64)) > 0:
            ids.append(int(lid))
            fracs.append(frac)
    if include_rest:
        rest = np.clip(1.0 - occupancy.fractions.sum(axis=0, dtype=np.float32), 0.0, 1.0).astype(np.float32)
        rest[rest < 1e-6] = 0.0  # float32 round-off of fractions that sum to one
        if float(rest.sum(dtype=np.float64)) > 0:
            ids.append(REST_REGION)
            fracs.append(rest)
    n = len(ids)
    boxes = [bounding_box(f) for f in fracs]  # tight boxes of the VOIs
    sums = np.array([float(f.sum(dtype=np.float64)) for f in fracs])
    w = np.zeros((n, n))
    for j, fj in enumerate(fracs):
        box, g = _blurred_in_box(fj, sigma, radius)
        for i, fi in enumerate(fracs):
            bi = boxes[i]
            inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(bi, box))
            if any(s.stop <= s.start for s in inter):
                continue
            sub_g = g[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, box))]
            w[i, j] = float(np.dot(fi[inter].ravel().astype(np.float64), sub_g.ravel().astype(np.float64)))
    w /= sums[:, None]
    return tuple(ids), w, sums * grid.voxel_volume_ml


@dataclass(frozen=True, eq=False)
class PartialVolumeCorrection:
    """An organ-level partial-volume correction ready to apply to each time point.

    Attributes
    ----------
    method : {"rc", "gtm"}
    psf_fwhm_mm : float
        FWHM of the isotropic Gaussian PSF model, mm.
    recovery : dict
        Label id -> recovery coefficient (``"rc"``) or GTM diagonal ``W_ii`` (``"gtm"``), dimensionless.
    region_ids : tuple of int
        GTM region order (labels, then :data:`REST_REGION`); empty for ``"rc"``.
    matrix : numpy.ndarray or None
        GTM, shape (R, R), dimensionless.
    volume_ml : numpy.ndarray or None
        Region volumes inside the SPECT field of view, mL, shape (R,).
    condition_number : float or None
        2-norm condition number of the GTM.
    """

    method: str
    psf_fwhm_mm: float
    recovery: dict
    region_ids: tuple = ()
    matrix: np.ndarray | None = None
    volume_ml: np.ndarray | None = None
    condition_number: float | None = None

    def corrected_activity_mbq(self, spect: Image, occupancy: Occupancy, measured_mbq: dict) -> dict:
        """Corrected activity of each label at one time point.

        Parameters
        ----------
        spect : Image
            Activity concentration, Bq/mL, on ``occupancy.grid``.
        occupancy : Occupancy
            The occupancy the correction was built from.
        measured_mbq : dict
            Label id -> measured activity ``sum_v f_L C V_voxel``, MBq (from
            :func:`pipeline.kinetics.tac.organ_activity_mbq` without recovery).

        Returns
        -------
        dict
            Label id -> corrected activity, MBq (labels without a correction keep ``measured_mbq``).
        """
        out = dict(measured_mbq)
        if self.method == "rc":
            for lid, rc in self.recovery.items():
                out[lid] = measured_mbq[lid] / rc
            return out
        t = self.observed_mean_bq_per_ml(spect, occupancy, measured_mbq)
        c = np.linalg.solve(self.matrix, t)
        for n, lid in enumerate(self.region_ids):
            if lid != REST_REGION:
                out[lid] = float(c[n] * self.volume_ml[n] * 1e-6)
        return out

    def observed_mean_bq_per_ml(self, spect: Image, occupancy: Occupancy, measured_mbq: dict) -> np.ndarray:
        """Observed mean concentration in each GTM region, Bq/mL, shape (R,)."""
        t = np.zeros(len(self.region_ids))
        vv = spect.voxel_volume_ml
        for n, lid in enumerate(self.region_ids):
            if lid == REST_REGION:
                c = np.asarray(spect.array, np.float64)
                total = float(c.sum()) * vv * 1e-6
                a = total - sum(measured_mbq[i] for i in occupancy.label_ids)  # sum_v (1 - sum_L f_L) C
            else:
                a = measured_mbq[lid]
            t[n] = a * 1e6 / self.volume_ml[n]
        return t

    def describe(self, names: dict) -> dict:
        """JSON-ready description (names: label id -> name)."""
        nm = {**names, REST_REGION: "outside_labels"}
        d = {"method": self.method, "psf_fwhm_mm": self.psf_fwhm_mm,
             "psf_model": "isotropic 3-D Gaussian on the SPECT grid (scipy.ndimage.gaussian_filter, "
                          "mode='constant', truncate=4)",
             "recovery_coefficients" if self.method == "rc" else "gtm_diagonal":
                 {nm[k]: v for k, v in self.recovery.items()}}
        if self.method == "rc":
            d["note"] = ("RC_L = sum f_L (G*f_L) / sum f_L: spill-out of the organ's own activity only; "
                         "spill-in from neighbouring tissue is ignored")
        else:
            d.update({"reference": "Rousset, Ma, Evans. J Nucl Med 1998;39:904-911",
                      "regions": [nm[k] for k in self.region_ids],
                      "region_volume_ml": [float(v) for v in self.volume_ml],
                      "matrix": [[float(x) for x in row] for row in self.matrix],
                      "condition_number": self.condition_number,
                      "note": ("W_ij = sum f_i (G*f_j) / sum f_i; uniform concentration per region; "
                               "'outside_labels' = SPECT field of view in no label (1 - sum_L f_L); "
                               "activity outside the SPECT field of view is not modelled")})
        return d


def _check_fwhm(psf_fwhm_mm) -> None:
    if psf_fwhm_mm is None or not (math.isfinite(float(psf_fwhm_mm)) and float(psf_fwhm_mm) > 0):
        raise InputError(None, f"PSF FWHM must be a positive number of mm, got {psf_fwhm_mm!r}")


def partial_volume_correction(occupancy: Occupancy, method: str, psf_fwhm_mm: float) -> PartialVolumeCorrection:
    """Build the correction of ``method`` ("rc" or "gtm") for ``occupancy`` and a Gaussian PSF (FWHM, mm).

    Raises
    ------
    InputError
        Bad FWHM, unknown method, or a (numerically) singular transfer matrix.
    """
    if method not in ("rc", "gtm"):
        raise InputError(None, f"partial-volume correction must be one of {PVC_METHODS}, got {method!r}")
    _check_fwhm(psf_fwhm_mm)
    if method == "rc":
        return PartialVolumeCorrection("rc", float(psf_fwhm_mm), recovery_coefficients(occupancy, psf_fwhm_mm))
    ids, w, vol = geometric_transfer_matrix(occupancy, psf_fwhm_mm)
    cond = float(np.linalg.cond(w)) if w.size else math.inf
    if not math.isfinite(cond) or cond > MAX_CONDITION:
        raise InputError(None, f"geometric transfer matrix is singular (condition number {cond:.3g}) for a "
                               f"{psf_fwhm_mm:g} mm PSF: regions too small or indistinguishable at this "
                               "resolution; use --pvc rc or merge labels")
    rec = {lid: float(w[n, n]) for n, lid in enumerate(ids) if lid != REST_REGION}
    return PartialVolumeCorrection("gtm", float(psf_fwhm_mm), rec, ids, w, vol, cond)
