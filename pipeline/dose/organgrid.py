"""Organ doses that do not depend on the dose-grid (SPECT) voxel size: the electron dose on the CT grid.

Why. On a 4.8 mm dose grid a voxel that straddles an organ's edge holds the organ's
activity smeared over the whole voxel, and its dose is the mean over the whole voxel;
sampled back onto the organ, the edge loses what it shares with the outside. The
organ's mean dose then depends on the camera's voxel size (issue 20: kidneys -10 %,
spleen -12 % at 4.8 mm for Lu-177). A voxel S-value gives the exact mean dose in a
target voxel from a uniform source in a source voxel, so an organ that is a union of
voxels of the grid the dose is computed on gets its exact mean dose. The label map is
on the CT grid: the electron dose is computed there, around the organs.

How (all linear in the TIA map):

1. Source on the CT grid. Each dose voxel's TIA is shared among the CT voxels that overlap
   it (exact volume overlaps: the grids must be axis-aligned, any axis order and direction),
   in proportion to overlap volume times a concentration per labelled region (organ, lesion,
   body, outside), estimated by least squares from the dose-grid map and the regions'
   occupancy of each dose voxel. Every dose voxel keeps exactly its activity; only its
   placement inside the voxel changes, and a dose voxel inside one region stays uniform. A
   source that is uniform in each region is recovered exactly.
2. Near electron dose on the CT grid: the electron point kernel truncated at the reach
   ``R`` (radius beyond which at most 0.5 % of the electron energy goes: betas and
   conversion electrons; 3.05 mm for Cu-67 and Lu-177, 9 mm for Y-90), integrated into
   voxel S-values at the CT voxel size (:func:`kernels.vsv.svalues_from_point_kernel`,
   cached), convolved with the CT-grid source. Method "local": the electron energy of
   each CT voxel's decays on the spot.
3. Far dose on the dose grid: the full dose-grid result minus the same truncated kernel
   on the dose grid (its S-values at the dose voxel size), i.e. the photons and the
   bremsstrahlung tail beyond ``R``, smooth on the scale of a dose voxel; sampled
   trilinearly at the CT voxel centres.
4. Density correction on the CT grid, ``D = (D_near + D_far) rho_medium / rho_CT``.
   With the photon transport (:mod:`pipeline.dose.photon_transport`) the photons are not in
   the far part (the kernel is the electron one): their dose, already in the real media (Gy),
   is sampled trilinearly at the CT voxel centres and added after the density correction.

Only the CT voxels inside the box of the organs (every label other than 0 and body 7)
get this dose; the source box adds the reach plus one dose-voxel diagonal, so that a
dose voxel cut by the box edge cannot put activity within reach of a target.

Limits. The placement assumes the activity uniform within each label inside a dose voxel:
a kidney with a hot cortex, or a vertebra with an inactive cortical shell, gets its edge
voxels' activity at the label's mean (sample patient: kidneys -1.5 %, marrow VOI voxel mean
+7 %, against its true CT-grid TIA). Camera blur (partial volume) is not undone: activity
the PSF moved out of an organ stays in the dose voxels it was moved to. Grids oblique to
each other (no axis of one along an axis of the other) fall back to the dose-grid map.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numba import njit

from ..grid import bounding_box

__all__ = ["NearElectronKernels", "OrganGridDose", "electron_reach_mm", "near_electron_point_kernel",
           "near_electron_kernels", "organ_grid_dose", "place_tia_on_ct", "region_concentrations", "BODY_LABEL"]

BODY_LABEL = 7
#: Largest fraction of the electron energy left beyond the reach (it goes to the far part).
REACH_TAIL_FRACTION = 0.005
#: Smallest reach, mm (a few CT voxels around every source).
MIN_REACH_MM = 3.0
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class NearElectronKernels:
    """The electron point kernel truncated at ``reach_mm``, as voxel S-values on both grids.

    Attributes
    ----------
    reach_mm : float
        Truncation radius of the electron point kernel, mm.
    coarse_mgy_per_mbq_s : numpy.ndarray
        S-values at the dose-grid voxel size, mGy/(MBq*s), kernel medium.
    fine_mgy_per_mbq_s : numpy.ndarray
        S-values at the CT voxel size, mGy/(MBq*s), kernel medium.
    fraction_beyond_reach : float
        Fraction of the emitted electron energy deposited beyond ``reach_mm`` (far part).
    provenance : dict
    """

    reach_mm: float
    coarse_mgy_per_mbq_s: np.ndarray
    fine_mgy_per_mbq_s: np.ndarray
    fraction_beyond_reach: float
    provenance: dict


def electron_reach_mm(kernel, tail_fraction: float = REACH_TAIL_FRACTION, min_reach_mm: float = MIN_REACH_MM) -> float:
    """Smallest shell edge beyond which at most ``tail_fraction`` of the electron energy is deposited (mm).

    Parameters
    ----------
    kernel : kernels.kernel_data.PointKernel
    tail_fraction : float
        Allowed fraction of the emitted electron energy beyond the reach.
    min_reach_mm : float
    """
    edges = np.asarray(kernel.r_edges_mm, float)
    frac = np.asarray(kernel.electron_fraction, float)
    beyond = frac.sum() - np.cumsum(frac)  # beyond edges[1:]
    ok = np.flatnonzero(beyond <= tail_fraction)
    reach = float(edges[1 + ok[0]]) if ok.size else float(edges[-1])
    if reach < min_reach_mm:
        reach = float(edges[np.searchsorted(edges, min_reach_mm)]) if min_reach_mm <= edges[-1] else float(edges[-1])
    return reach


def near_electron_point_kernel(kernel, reach_mm: float):
    """The point kernel with its electron shells beyond ``reach_mm`` and all photons set to zero.

    ``reach_mm`` must be a shell edge (see :func:`electron_reach_mm`): no shell is cut.
    """
    edges = np.asarray(kernel.r_edges_mm, float)
    keep = edges[1:] <= reach_mm + 1e-9
    zero = np.zeros_like(np.asarray(kernel.photon_fraction, float))
    return replace(kernel, electron_fraction=np.where(keep, kernel.electron_fraction, 0.0),
                   electron_rel_unc=np.where(keep, kernel.electron_rel_unc, 0.0), photon_fraction=zero,
                   photon_rel_unc=zero, photon_energy_mev=0.0)


def near_electron_kernels(nuclide: str, dose_voxel_mm, ct_voxel_mm, medium: str = "water", *,
                          use_cache: bool = True) -> NearElectronKernels:
    """Truncated electron S-values of ``nuclide`` at the dose-grid and CT voxel sizes (cached).

    Parameters
    ----------
    nuclide : str
    dose_voxel_mm, ct_voxel_mm : sequence of 3 float
        Voxel sides, mm.
    medium : {"water", "tissue"}
        The medium of the dose-grid S-values, so that the near and far parts match.
    use_cache : bool
    """
    from kernels.cache import cached_svalues_for_kernel, point_kernel_hash
    from kernels.kernel_data import load_point_kernel

    kernel = load_point_kernel(nuclide, medium)
    reach = electron_reach_mm(kernel)
    near = near_electron_point_kernel(kernel, reach)
    key = f"{point_kernel_hash(nuclide, medium)}|electrons-within-{reach:.4f}mm"
    cubes = [cached_svalues_for_kernel(near, size, kernel_hash=key, photons=False, extent_mm=reach,
                                       use_cache=use_cache).electron_mgy_per_mbq_s
             for size in (dose_voxel_mm, ct_voxel_mm)]
    total = float(np.sum(kernel.electron_fraction))
    beyond = float(total - np.sum(near.electron_fraction))
    prov = {"point_kernel": f"{kernel.nuclide} in {kernel.medium}", "reach_mm": reach,
            "electron_fraction_beyond_reach": beyond,
            "dose_voxel_mm": [float(x) for x in np.broadcast_to(dose_voxel_mm, (3,))],
            "ct_voxel_mm": [float(x) for x in np.broadcast_to(ct_voxel_mm, (3,))]}
    return NearElectronKernels(reach, cubes[0], cubes[1], beyond, prov)


@dataclass(frozen=True, eq=False)
class OrganGridDose:
    """The CT-grid dose around the organs.

    Attributes
    ----------
    box : tuple of slice
        Box of the CT grid that holds every target voxel.
    targets : numpy.ndarray of bool, shape of the box
        CT voxels that get this dose (labelled, inside the organs' box).
    dose_gy : numpy.ndarray, shape of the box
        Absorbed dose at the targets (0 elsewhere), Gy.
    info : dict
        Reach, boxes, voxel counts, region concentrations (MBq*h/mL), activity kept (MBq*h).
    photon_gy : numpy.ndarray or None, shape of the box
        The photon transport's dose sampled at the box's voxels (part of ``dose_gy``), Gy.
    """

    box: tuple
    targets: np.ndarray
    dose_gy: np.ndarray
    info: dict
    photon_gy: np.ndarray | None = None


@njit(cache=True)
def _walk(shape, perm, idx0, fr0, idx1, fr1, idx2, fr2, sub_shape, region, weight, activity, n_regions, mode):
    """One pass over the CT voxels of the box and the dose voxels each one overlaps.

    ``idxA[i, m]`` / ``frA[i, m]``: the ``m``-th dose-voxel index (in the coarse sub-box; -1 for
    none) along dose axis ``perm[A]`` overlapped by CT index ``i`` along CT axis ``A``, and the
    fraction of the CT voxel's length inside it; the volume fraction is their product (exact for
    axis-aligned grids). mode 0: occupancy, ``out[c * n_regions + r]`` = CT-voxel volume of region
    ``r`` in dose voxel ``c`` (in CT voxels); mode 1: ``out[c]`` = sum of region weights times
    volume over dose voxel ``c``; mode 2: the activity of each CT voxel, ``sum_c f_vc a_c w_r / W_c``
    (``weight`` holds ``[w, W]`` concatenated).
    """
    ni, nj, nk = shape
    n_c = sub_shape[0] * sub_shape[1] * sub_shape[2]
    if mode == 0:
        out = np.zeros(n_c * n_regions)
    elif mode == 1:
        out = np.zeros(n_c)
    else:
        out = np.zeros(ni * nj * nk)
    c = np.zeros(3, np.int64)
    v = 0
    for i in range(ni):
        for j in range(nj):
            for k in range(nk):
                r = region[v]
                for m0 in range(idx0.shape[1]):
                    if idx0[i, m0] < 0:
                        continue
                    c[perm[0]] = idx0[i, m0]
                    for m1 in range(idx1.shape[1]):
                        if idx1[j, m1] < 0:
                            continue
                        c[perm[1]] = idx1[j, m1]
                        for m2 in range(idx2.shape[1]):
                            if idx2[k, m2] < 0:
                                continue
                            c[perm[2]] = idx2[k, m2]
                            f = fr0[i, m0] * fr1[j, m1] * fr2[k, m2]
                            flat = (c[0] * sub_shape[1] + c[1]) * sub_shape[2] + c[2]
                            if mode == 0:
                                out[flat * n_regions + r] += f
                            elif mode == 1:
                                out[flat] += weight[r] * f
                            else:
                                wsum = weight[n_regions + flat]
                                if wsum > 0:
                                    out[v] += activity[flat] * weight[r] * f / wsum
                                else:
                                    vol = weight[n_regions + n_c + flat]
                                    if vol > 0:
                                        out[v] += activity[flat] * f / vol
                v += 1
    return out


def _axis_tables(lin: np.ndarray, start, shape, lo, sub_shape):
    """Per CT axis: the dose axis it runs along and the overlap tables of :func:`_walk`.

    Returns None when the grids are not axis-aligned (a CT axis oblique to the dose axes).
    """
    m = lin[:, :3]
    perm = np.argmax(np.abs(m), axis=0)
    scale = m[perm, np.arange(3)]
    off_axis = np.abs(m).sum(axis=0) - np.abs(scale)
    if len(set(perm.tolist())) != 3 or np.any(off_axis > 1e-6 * np.abs(scale)):
        return None
    tables = []
    for a in range(3):
        b = int(perm[a])
        # centre of CT voxel i along dose axis b (other CT axes at the box start contribute a constant)
        base = lin[b, 3] + sum(lin[b, q] * start[q] for q in range(3) if q != a)
        i = np.arange(shape[a]) + start[a]
        centre = base + scale[a] * i
        half = abs(scale[a]) / 2.0
        lo_e, hi_e = centre - half, centre + half
        first = np.floor(lo_e + 0.5).astype(np.int64)
        n = int(np.ceil(2 * half)) + 1
        cand = first[:, None] + np.arange(n)[None, :]
        overlap = np.minimum(hi_e[:, None], cand + 0.5) - np.maximum(lo_e[:, None], cand - 0.5)
        frac = np.clip(overlap, 0.0, None) / (2 * half)
        local = cand - lo[b]
        bad = (frac <= 0) | (local < 0) | (local >= sub_shape[b])
        tables.append((np.where(bad, -1, local).astype(np.int64), np.where(bad, 0.0, frac)))
    return perm.astype(np.int64), tables


def region_concentrations(occupancy: np.ndarray, coarse_conc: np.ndarray) -> np.ndarray:
    """Least-squares concentration of each region from the coarse map and the regions' occupancy.

    Solves ``min_c sum_v (sum_r F[v, r] c_r - y_v)^2`` over the coarse voxels ``v`` that hold
    CT voxels, with ``F[v, r]`` the share of ``v``'s CT volume in region ``r`` and ``y`` the
    coarse map (any unit; the result has it), then clips at zero. Exact for a map that is
    constant in each region.

    Parameters
    ----------
    occupancy : numpy.ndarray, shape (M, R)
        Volume of each region in each coarse voxel (any unit).
    coarse_conc : numpy.ndarray, shape (M,)
        Coarse map.
    """
    n = occupancy.sum(axis=1)
    rows = n > 0
    frac = occupancy[rows] / n[rows, None]
    c, *_ = np.linalg.lstsq(frac, np.asarray(coarse_conc, float)[rows], rcond=None)
    return np.maximum(c, 0.0)


def _box_grid(image, box):
    """The grid of ``image`` cropped to ``box`` (a resampling target; values unused)."""
    from ..image import Image

    affine = np.array(image.affine)
    affine[:3, 3] = image.index_to_world([b.start for b in box])
    return Image(np.zeros([b.stop - b.start for b in box], np.uint8), affine, "1")


def _ct_to_dose_index_map(ct, grid) -> np.ndarray:
    """3x4 map from CT voxel indices to dose-grid voxel indices."""
    return (np.linalg.inv(grid.affine) @ ct.affine)[:3, :]


def _coarse_sub_box(lin, box, coarse_shape):
    corners = np.array([[b.start if s == 0 else b.stop - 1 for b, s in zip(box, bits)]
                        for bits in np.ndindex(2, 2, 2)], float)
    c = corners @ lin[:, :3].T + lin[:, 3]
    lo = np.maximum(np.floor(c.min(axis=0) + 0.5).astype(int), 0)
    hi = np.minimum(np.floor(c.max(axis=0) + 0.5).astype(int) + 1, np.asarray(coarse_shape))
    return lo, np.maximum(hi - lo, 0)


def place_tia_on_ct(tia, ct, labels: np.ndarray, box) -> tuple[np.ndarray, dict] | None:
    """The dose-grid TIA placed on the CT voxels of ``box`` by the label map (module docstring, step 1).

    Parameters
    ----------
    tia : pipeline.image.Image
        TIA concentration, MBq*h/mL, on the dose grid.
    ct : pipeline.image.Image
        Provides the CT grid.
    labels : numpy.ndarray of int, shape of the CT
    box : tuple of slice
        Box of the CT grid to fill.

    Returns
    -------
    (numpy.ndarray, dict) or None
        Decays per CT voxel of the box (MBq*s), and the region concentrations (label ->
        MBq*h/mL); None when the grids are not axis-aligned or do not meet.
    """
    lin = _ct_to_dose_index_map(ct, tia)
    lo, sub_shape = _coarse_sub_box(lin, box, tia.shape)
    if np.any(sub_shape <= 0):
        return None
    src_shape = tuple(b.stop - b.start for b in box)
    tables = _axis_tables(lin, [b.start for b in box], src_shape, lo, sub_shape)
    if tables is None:
        return None
    perm, ((i0, f0), (i1, f1), (i2, f2)) = tables
    lab = np.ascontiguousarray(labels[box]).ravel()
    present = np.flatnonzero(np.bincount(lab.astype(np.int64)))
    lut = np.zeros(int(present[-1]) + 1, np.int64)
    lut[present] = np.arange(present.size)
    region = lut[lab]
    csub = tuple(slice(int(a), int(a + n)) for a, n in zip(lo, sub_shape))
    conc = np.asarray(tia.array[csub], np.float64).ravel()
    walk = (np.array(src_shape, np.int64), perm, i0, f0, i1, f1, i2, f2, sub_shape.astype(np.int64), region)
    none = np.zeros(1)
    occupancy = _walk(*walk, none, none, present.size, 0).reshape(conc.size, present.size)
    weight = region_concentrations(occupancy, conc)
    sums = _walk(*walk, weight, none, present.size, 1)
    activity_mbq_s = conc * tia.voxel_volume_ml * SECONDS_PER_HOUR
    # a dose voxel whose regions are all estimated at zero shares its activity by volume
    fine_tia = _walk(*walk, np.concatenate([weight, sums, occupancy.sum(axis=1)]), activity_mbq_s,
                     present.size, 2)
    return fine_tia.reshape(src_shape), {int(lbl): float(w) for lbl, w in zip(present, weight)}


def organ_grid_dose(tia, ct, labels: np.ndarray, rho_ct: np.ndarray, far_medium_gy: np.ndarray,
                    kernels: NearElectronKernels, *, method: str, electron_energy_mev: float,
                    kernel_density_g_per_ml: float, min_density_g_per_ml: float,
                    workers: int | None = None, source_mbq_s: np.ndarray | None = None,
                    photon_gy: np.ndarray | None = None) -> OrganGridDose | None:
    """The dose on the CT grid around the organs (module docstring), or None without organs.

    Parameters
    ----------
    tia : pipeline.image.Image
        TIA concentration, MBq*h/mL, on the dose grid.
    ct : pipeline.image.Image
        Provides the CT grid.
    labels : numpy.ndarray of int, shape of the CT
    rho_ct : numpy.ndarray, shape of the CT
        Mass density, g/mL.
    far_medium_gy : numpy.ndarray, shape of the TIA map
        Dose-grid dose in the kernel's medium minus its near-electron part, Gy.
    kernels : NearElectronKernels
    method : {"convolution", "local"}
    electron_energy_mev : float
        Electron energy per decay, MeV (method "local").
    kernel_density_g_per_ml, min_density_g_per_ml : float
    workers : int, optional
        FFT threads.
    source_mbq_s : numpy.ndarray, shape of the CT, optional
        A known source on the CT grid (decays per voxel, MBq*s) used instead of the dose-grid
        TIA placed by the label map: the reference of the validation (a true source).
    photon_gy : numpy.ndarray, shape of the TIA map, optional
        Photon dose from the photon transport, Gy (already in the real media: no density
        correction), sampled trilinearly at the CT voxel centres and added.
    """
    from kernels.convolve import convolve_dose_gy

    from ..grid import resample_to
    from .dosemap import local_deposition_dose_gy

    organs = (labels > 0) & (labels != BODY_LABEL)
    inner = bounding_box(organs, 1)
    if inner is None:
        return None
    ct_vox = ct.voxel_size_mm
    dose_vox = tia.voxel_size_mm
    margin_mm = kernels.reach_mm + float(np.linalg.norm(dose_vox))
    margin = np.ceil(margin_mm / ct_vox).astype(int)
    src = tuple(slice(max(0, b.start - m), min(n, b.stop + m)) for b, m, n in zip(inner, margin, labels.shape))
    placed = place_tia_on_ct(tia, ct, labels, src)
    if placed is None:
        return None
    fine_tia, weights = placed
    src_shape = fine_tia.shape
    if source_mbq_s is not None:
        fine_tia = np.asarray(source_mbq_s[src], np.float64)

    rel = tuple(slice(b.start - s.start, b.stop - s.start) for b, s in zip(inner, src))
    targets_src = np.zeros(src_shape, bool)
    targets_src[rel] = labels[inner] > 0
    if method == "local":
        near = local_deposition_dose_gy(fine_tia[rel], electron_energy_mev, ct.voxel_volume_ml,
                                        kernel_density_g_per_ml)
    else:
        near = convolve_dose_gy(fine_tia, kernels.fine_mgy_per_mbq_s, workers=workers, mask=targets_src)[rel]
    far = resample_to(tia.with_array(far_medium_gy, unit="Gy"), _box_grid(ct, inner), "linear",
                      default_value=0.0).array
    targets = targets_src[rel]
    rho = np.maximum(np.asarray(rho_ct[inner], np.float64), min_density_g_per_ml)
    dose = (near + far) * (kernel_density_g_per_ml / rho)
    photon = None
    if photon_gy is not None:
        photon = resample_to(tia.with_array(photon_gy, unit="Gy"), _box_grid(ct, inner), "linear",
                             default_value=0.0).array
        dose += photon
    dose = np.where(targets, dose, 0.0)
    info = {
        "grid": "CT",
        "ct_voxel_mm": [float(x) for x in ct_vox],
        "dose_voxel_mm": [float(x) for x in dose_vox],
        "electron_reach_mm": kernels.reach_mm,
        "electron_fraction_beyond_reach": kernels.fraction_beyond_reach,
        "target_box_ct_index": [[b.start, b.stop] for b in inner],
        "source_box_ct_index": [[b.start, b.stop] for b in src],
        "target_voxels": int(targets.sum()),
        "region_concentration_mbq_h_per_ml": weights,
        "tia_in_source_box_mbq_h": float(fine_tia.sum() / SECONDS_PER_HOUR),
    }
    return OrganGridDose(inner, targets, dose, info, photon)
