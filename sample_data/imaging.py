"""Imaging model: patient poses, CT and SPECT of one session, activity maps.

Conventions (RAS+ mm throughout):

- A session pose maps a point ``x_ref`` of the reference frame (the frame of the
  phantom and of every truth volume) to the point ``x_tp`` of the session's scanner
  frame: ``x_tp = M @ (x_ref + u(x_ref))`` with ``M`` a rigid 4x4 matrix and ``u`` an
  optional smooth displacement (:class:`Deformation`).
- CT: pull-sampling of the noise-free phantom HU (trilinear) at ``x_ref`` for every
  session voxel, then low-dose noise. The displacement is inverted by fixed-point iteration
  on an 8 mm lattice and interpolated trilinearly (error < 0.05 mm for these smooth fields).
- SPECT: every phantom voxel's activity (Bq) is split over sub-voxel points (<= 1.75 mm apart)
  and each is pushed to the SPECT voxel that holds its moved position (activity is conserved
  exactly), the binned image is blurred by an isotropic
  Gaussian PSF on a grid extended beyond the FOV (activity outside the FOV blurs in, inside
  activity blurs out), cropped to the FOV, and optionally given Poisson noise from the
  expected counts (activity x sensitivity x acquisition time), then calibrated back to Bq/mL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numba import njit

from pipeline.image import affine_from_geometry

from .presets import CT_Z_RANGE_MM, Preset
from .shapes import rotation_matrix

__all__ = ["Pose", "Deformation", "random_pose", "random_deformation", "spect_geometry",
           "simulate_ct", "splat", "blur_and_crop", "add_poisson_noise"]

#: Centre of rotation of the patient poses (RAS+ mm): the middle of the CT scan range.
POSE_CENTRE_RAS_MM = (0.0, 0.0, 0.5 * (CT_Z_RANGE_MM[0] + CT_Z_RANGE_MM[1]))


@dataclass(frozen=True)
class Deformation:
    """Smooth displacement u(x) = sum_k amp_k exp(-|x - c_k|^2 / (2 s_k^2)), RAS+ mm.

    Parameters
    ----------
    centres_mm : ndarray, shape (K, 3)
    sigmas_mm : ndarray, shape (K,)
    amplitudes_mm : ndarray, shape (K, 3)
    """

    centres_mm: np.ndarray
    sigmas_mm: np.ndarray
    amplitudes_mm: np.ndarray

    def displacement(self, points_mm: np.ndarray) -> np.ndarray:
        """u at ``points_mm`` (N, 3), returns (N, 3) mm."""
        pts = np.asarray(points_mm, float)
        out = np.zeros_like(pts)
        for c, s, a in zip(self.centres_mm, self.sigmas_mm, self.amplitudes_mm):
            d2 = np.sum((pts - c) ** 2, axis=-1)
            out += np.exp(-d2 / (2.0 * s * s))[..., None] * a
        return out

    def to_dict(self) -> dict:
        return {"form": "u(x) = sum_k amplitude_k * exp(-|x - centre_k|^2 / (2 sigma_k^2)), RAS+ mm",
                "centres_ras_mm": self.centres_mm.tolist(), "sigmas_mm": self.sigmas_mm.tolist(),
                "amplitudes_ras_mm": self.amplitudes_mm.tolist()}


@dataclass(frozen=True)
class Pose:
    """Rigid pose of one session plus optional deformation (see module docstring)."""

    rotation_deg: tuple
    translation_mm: tuple
    centre_ras_mm: tuple = POSE_CENTRE_RAS_MM
    deformation: Deformation | None = None

    @property
    def matrix_ras(self) -> np.ndarray:
        """4x4 RAS+ matrix M with x_tp = M @ x_ref (rigid part)."""
        r = rotation_matrix(*self.rotation_deg)
        c = np.asarray(self.centre_ras_mm, float)
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = c - r @ c + np.asarray(self.translation_mm, float)
        return m

    @property
    def matrix_lps(self) -> np.ndarray:
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        return flip @ self.matrix_ras @ flip

    def forward(self, x_ref: np.ndarray) -> np.ndarray:
        """x_tp for reference points (N, 3)."""
        x = np.asarray(x_ref, float)
        if self.deformation is not None:
            x = x + self.deformation.displacement(x)
        m = self.matrix_ras
        return x @ m[:3, :3].T + m[:3, 3]

    def to_dict(self) -> dict:
        return {
            "matrix_ras": self.matrix_ras.tolist(),
            "matrix_lps": self.matrix_lps.tolist(),
            "rotation_deg": list(self.rotation_deg),
            "rotation_order": "about RAS x, then y, then z, around centre_ras_mm",
            "translation_mm": list(self.translation_mm),
            "centre_ras_mm": list(self.centre_ras_mm),
            "direction": "x_tp = matrix_ras @ x_ref (reference frame -> session scanner frame)",
        }


def random_pose(rng, max_translation_mm=15.0, max_rotation_deg=3.0, deformed=False) -> Pose:
    """A random session pose: rotations uniform in +-max_rotation_deg about each axis,
    translation uniform in a ball of radius ``max_translation_mm``."""
    rot = tuple(float(v) for v in rng.uniform(-max_rotation_deg, max_rotation_deg, 3))
    while True:
        t = rng.uniform(-max_translation_mm, max_translation_mm, 3)
        if np.linalg.norm(t) <= max_translation_mm:
            break
    deformation = random_deformation(rng) if deformed else None
    return Pose(rot, tuple(float(v) for v in t), POSE_CENTRE_RAS_MM, deformation)


def random_deformation(rng, max_amplitude_mm=6.0) -> Deformation:
    """A small smooth deformation of the abdomen with random amplitudes (each bump up to
    ``max_amplitude_mm``): a mostly cranio-caudal shift of the upper abdominal organs
    (breathing state, sigma 70 mm), a shift of the bowel (sigma 50 mm) and of the bladder
    (filling, sigma 40 mm)."""
    centres = np.array([[0.0, 0.0, 40.0], [0.0, 40.0, -90.0], [0.0, 35.0, -232.0]])
    sigmas = np.array([70.0, 50.0, 40.0])
    breathing = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.choice([-1.0, 1.0])])
    other = rng.standard_normal((2, 3))
    direction = np.vstack([breathing, other])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    amps = direction * rng.uniform(0.6, 1.0, (3, 1)) * max_amplitude_mm
    return Deformation(centres, sigmas, amps)


def _inverse_displacement_lattice(deformation: Deformation, lo, hi, spacing_mm=8.0, iterations=10):
    """w on a lattice such that x = y + w(y) solves y = x + u(x); returns (w, origin, spacing)."""
    lo = np.asarray(lo, float) - 2 * spacing_mm
    hi = np.asarray(hi, float) + 2 * spacing_mm
    axes = [np.arange(a, b + spacing_mm, spacing_mm) for a, b in zip(lo, hi)]
    y = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    x = y.copy()
    for _ in range(iterations):
        x = y - deformation.displacement(x)
    w = (x - y).reshape(*[len(a) for a in axes], 3)
    return w, lo, spacing_mm


def spect_geometry(preset: Preset, extra_slices: int = 0):
    """(shape, affine) of the SPECT grid (HFS axes), optionally extended by ``extra_slices``
    at both ends. In-plane centred on the body axis, axially on the CT scan range."""
    n = preset.spect_matrix
    v = preset.spect_voxel_mm
    k = preset.spect_slices + 2 * extra_slices
    half = (n - 1) / 2.0 * v
    zc = 0.5 * (CT_Z_RANGE_MM[0] + CT_Z_RANGE_MM[1])
    z0 = zc - (preset.spect_slices - 1) / 2.0 * v - extra_slices * v
    affine = affine_from_geometry([half, half, z0], np.diag([-1.0, -1.0, 1.0]), [v, v, v])
    return (n, n, k), affine


@njit(cache=True)
def _trilinear(vol, fi, fj, fk, clamp, outside):  # pragma: no cover - numba
    ni, nj, nk = vol.shape
    if clamp:
        fi = min(max(fi, 0.0), ni - 1.0)
        fj = min(max(fj, 0.0), nj - 1.0)
        fk = min(max(fk, 0.0), nk - 1.0)
    elif fi < 0.0 or fj < 0.0 or fk < 0.0 or fi > ni - 1.0 or fj > nj - 1.0 or fk > nk - 1.0:
        return outside
    i0 = min(int(np.floor(fi)), ni - 2) if ni > 1 else 0
    j0 = min(int(np.floor(fj)), nj - 2) if nj > 1 else 0
    k0 = min(int(np.floor(fk)), nk - 2) if nk > 1 else 0
    a, b, c = fi - i0, fj - j0, fk - k0
    acc = 0.0
    for di in range(2):
        wi = a if di else 1.0 - a
        for dj in range(2):
            wj = b if dj else 1.0 - b
            for dk in range(2):
                wk = c if dk else 1.0 - c
                acc += wi * wj * wk * vol[i0 + di, j0 + dj, k0 + dk]
    return acc


@njit(cache=True)
def _pull_kernel(hu, inv_ext, ct_aff, m_inv, w, w_lo, w_h, out):  # pragma: no cover - numba
    ni, nj, nk = out.shape
    for i in range(ni):
        for j in range(nj):
            for k in range(nk):
                px = ct_aff[0, 0] * i + ct_aff[0, 1] * j + ct_aff[0, 2] * k + ct_aff[0, 3]
                py = ct_aff[1, 0] * i + ct_aff[1, 1] * j + ct_aff[1, 2] * k + ct_aff[1, 3]
                pz = ct_aff[2, 0] * i + ct_aff[2, 1] * j + ct_aff[2, 2] * k + ct_aff[2, 3]
                yx = m_inv[0, 0] * px + m_inv[0, 1] * py + m_inv[0, 2] * pz + m_inv[0, 3]
                yy = m_inv[1, 0] * px + m_inv[1, 1] * py + m_inv[1, 2] * pz + m_inv[1, 3]
                yz = m_inv[2, 0] * px + m_inv[2, 1] * py + m_inv[2, 2] * pz + m_inv[2, 3]
                li = (yx - w_lo[0]) / w_h
                lj = (yy - w_lo[1]) / w_h
                lk = (yz - w_lo[2]) / w_h
                xx = yx + _trilinear(w[:, :, :, 0], li, lj, lk, True, 0.0)
                xy = yy + _trilinear(w[:, :, :, 1], li, lj, lk, True, 0.0)
                xz = yz + _trilinear(w[:, :, :, 2], li, lj, lk, True, 0.0)
                fi = inv_ext[0, 0] * xx + inv_ext[0, 1] * xy + inv_ext[0, 2] * xz + inv_ext[0, 3]
                fj = inv_ext[1, 0] * xx + inv_ext[1, 1] * xy + inv_ext[1, 2] * xz + inv_ext[1, 3]
                fk = inv_ext[2, 0] * xx + inv_ext[2, 1] * xy + inv_ext[2, 2] * xz + inv_ext[2, 3]
                out[i, j, k] = _trilinear(hu, fi, fj, fk, False, -1000.0)


def simulate_ct(model, pose: Pose, rng, noise: bool = True) -> np.ndarray:
    """CT of one session on the reference CT grid (scanner frame), HU float32.

    Parameters
    ----------
    model : sample_data.anatomy.PhantomModel
    pose : Pose
    rng : numpy.random.Generator
        Used for the noise only.
    """
    from scipy import ndimage

    shape = model.ct_shape
    inv_ext = np.linalg.inv(model.affine)
    if pose.deformation is None:
        mat = inv_ext @ np.linalg.inv(pose.matrix_ras) @ model.ct_affine
        ct = ndimage.affine_transform(model.hu, mat[:3, :3], offset=mat[:3, 3], output_shape=shape,
                                      order=1, mode="constant", cval=-1000.0, prefilter=False)
    else:
        m_inv = np.linalg.inv(pose.matrix_ras)
        corners = np.array([[a, b, c] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1)
                            for c in (0, shape[2] - 1)], float)
        y_corners = (corners @ model.ct_affine[:3, :3].T + model.ct_affine[:3, 3]) @ m_inv[:3, :3].T + m_inv[:3, 3]
        w, w_lo, w_h = _inverse_displacement_lattice(pose.deformation, y_corners.min(0), y_corners.max(0))
        ct = np.empty(shape, np.float32)
        _pull_kernel(np.ascontiguousarray(model.hu, dtype=np.float32), np.ascontiguousarray(inv_ext[:3]),
                     np.ascontiguousarray(model.ct_affine[:3]), np.ascontiguousarray(m_inv[:3]),
                     np.ascontiguousarray(w), np.asarray(w_lo, float), float(w_h), ct)
    ct = ct.astype(np.float32)
    if noise and model.preset.ct_noise_hu > 0:
        white = rng.standard_normal(shape, dtype=np.float32)
        corr = ndimage.gaussian_filter(white, (0.7, 0.7, 0.0))
        corr *= model.preset.ct_noise_hu / float(corr.std())
        ct += corr
    return ct


@njit(cache=True)
def _splat_kernel(tissues, lut, a_ext, m_pose, inv_out, centres, sigmas, amps, nsub, out):  # pragma: no cover
    ni, nj, nk = tissues.shape
    oi, oj, ok = out.shape
    nb = centres.shape[0]
    weight = 1.0 / (nsub[0] * nsub[1] * nsub[2])
    for i in range(ni):
        for j in range(nj):
            for k in range(nk):
                v = lut[tissues[i, j, k]]
                if v == 0.0:
                    continue
                v *= weight
                for si in range(nsub[0]):
                    fi0 = i + (si + 0.5) / nsub[0] - 0.5
                    for sj in range(nsub[1]):
                        fj0 = j + (sj + 0.5) / nsub[1] - 0.5
                        for sk in range(nsub[2]):
                            fk0 = k + (sk + 0.5) / nsub[2] - 0.5
                            x = a_ext[0, 0] * fi0 + a_ext[0, 1] * fj0 + a_ext[0, 2] * fk0 + a_ext[0, 3]
                            y = a_ext[1, 0] * fi0 + a_ext[1, 1] * fj0 + a_ext[1, 2] * fk0 + a_ext[1, 3]
                            z = a_ext[2, 0] * fi0 + a_ext[2, 1] * fj0 + a_ext[2, 2] * fk0 + a_ext[2, 3]
                            ux = 0.0
                            uy = 0.0
                            uz = 0.0
                            for b in range(nb):
                                d2 = (x - centres[b, 0]) ** 2 + (y - centres[b, 1]) ** 2 + (z - centres[b, 2]) ** 2
                                g = np.exp(-d2 / (2.0 * sigmas[b] * sigmas[b]))
                                ux += g * amps[b, 0]
                                uy += g * amps[b, 1]
                                uz += g * amps[b, 2]
                            x += ux
                            y += uy
                            z += uz
                            px = m_pose[0, 0] * x + m_pose[0, 1] * y + m_pose[0, 2] * z + m_pose[0, 3]
                            py = m_pose[1, 0] * x + m_pose[1, 1] * y + m_pose[1, 2] * z + m_pose[1, 3]
                            pz = m_pose[2, 0] * x + m_pose[2, 1] * y + m_pose[2, 2] * z + m_pose[2, 3]
                            ti = int(np.floor(inv_out[0, 0] * px + inv_out[0, 1] * py + inv_out[0, 2] * pz
                                              + inv_out[0, 3] + 0.5))
                            tj = int(np.floor(inv_out[1, 0] * px + inv_out[1, 1] * py + inv_out[1, 2] * pz
                                              + inv_out[1, 3] + 0.5))
                            tk = int(np.floor(inv_out[2, 0] * px + inv_out[2, 1] * py + inv_out[2, 2] * pz
                                              + inv_out[2, 3] + 0.5))
                            if 0 <= ti < oi and 0 <= tj < oj and 0 <= tk < ok:
                                out[ti, tj, tk] += v


#: Largest spacing (mm) of the sub-voxel points pushed by :func:`splat`; finer than a third
#: of the 4.8 mm SPECT voxel so that binning does not alias (stripes where a SPECT slice
#: receives one phantom slice more or less than its neighbours).
SPLAT_SUBSPACING_MM = 1.75


def splat(model, pose: Pose, shape, affine, value_lut: np.ndarray, voxel_volume_ml: float) -> np.ndarray:
    """Push every phantom voxel's value x volume to the output voxels holding its moved sub-points.

    Each phantom voxel is split into sub-voxels of at most :data:`SPLAT_SUBSPACING_MM` along each
    axis; each sub-voxel centre is moved by the pose and its share of value x volume is added to
    the output voxel that contains it (activity is conserved exactly).

    Parameters
    ----------
    model : PhantomModel
    pose : Pose
        Reference frame -> session frame.
    shape, affine :
        The output grid (e.g. the extended SPECT grid), RAS+.
    value_lut : ndarray, shape (256,)
        Value per tissue id (e.g. Bq/mL).
    voxel_volume_ml : float
        Volume of one phantom voxel.

    Returns
    -------
    ndarray, shape ``shape``
        Sum of value x volume per output voxel (e.g. Bq). Values that land outside are dropped.
    """
    d = pose.deformation
    if d is None:
        centres, sigmas, amps = np.zeros((0, 3)), np.ones(0), np.zeros((0, 3))
    else:
        centres, sigmas, amps = (np.asarray(d.centres_mm, float), np.asarray(d.sigmas_mm, float),
                                 np.asarray(d.amplitudes_mm, float))
    out = np.zeros(tuple(shape), np.float64)
    lut = np.asarray(value_lut, np.float64) * voxel_volume_ml
    spacing = np.linalg.norm(model.affine[:3, :3], axis=0)
    nsub = np.ceil(spacing / SPLAT_SUBSPACING_MM - 1e-9).astype(np.int64)
    _splat_kernel(np.ascontiguousarray(model.tissues), lut, np.ascontiguousarray(model.affine[:3]),
                  np.ascontiguousarray(pose.matrix_ras[:3]), np.ascontiguousarray(np.linalg.inv(affine)[:3]),
                  centres, sigmas, amps, nsub, out)
    return out


def blur_and_crop(binned: np.ndarray, fwhm_mm: float, voxel_mm: float, extra_slices: int) -> np.ndarray:
    """Gaussian PSF blur (FWHM in mm) of a binned image, then crop ``extra_slices`` at each end."""
    from scipy import ndimage

    sigma = fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / voxel_mm
    out = ndimage.gaussian_filter(binned, sigma, mode="constant", cval=0.0, truncate=4.0)
    return out[:, :, extra_slices:binned.shape[2] - extra_slices]


def add_poisson_noise(activity_bq: np.ndarray, sensitivity_cps_per_mbq: float, acquisition_s: float,
                      rng) -> np.ndarray:
    """Poisson counts from activity per voxel (Bq) and back to Bq.

    Expected counts = activity (MBq) x sensitivity (cps/MBq) x acquisition time (s); the
    noisy counts divided by the same factor give the calibrated activity.
    """
    factor = 1e-6 * sensitivity_cps_per_mbq * acquisition_s
    counts = rng.poisson(np.clip(activity_bq, 0.0, None) * factor)
    return counts / factor


def margin_slices(fwhm_mm: float, voxel_mm: float) -> int:
    """SPECT slices added at each end so that the PSF (4 sigma) is complete."""
    sigma = fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return int(np.ceil(4.0 * sigma / voxel_mm)) + 1
