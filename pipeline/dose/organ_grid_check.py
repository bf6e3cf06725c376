"""Organ self-doses on SPECT-sized dose grids against a ~1 mm reference, on ICRP-110 anatomy.

A uniform source (1 MBq*h/mL) fills one organ of the ICRP-110 adult female phantom (kidney,
spleen, liver; its own label map, 1.775 x 1.775 x 4.84 mm, densities of its materials). The
organ's mean self-dose is computed two ways:

Reference
    The source and the near electron dose on the phantom grid subdivided 2 x 2 x 5
    (0.8875 x 0.8875 x 0.968 mm: the same organ shape, every phantom voxel cut into 20):
    the electron point kernel truncated at 20 mm integrated into S-values of that voxel size.
    Everything beyond 20 mm (photons, bremsstrahlung tail) on the phantom grid itself, where
    the organ is a union of voxels and voxel S-values give its exact mean. Density
    correction by the phantom's densities.
Dose stage
    The same source binned into a dose grid of 4.8, 4.42 or 3.9 mm (a SPECT grid shifted by
    a fraction of a voxel from the phantom; activity of each 1 mm sub-voxel put in the
    dose voxel holding its centre), then :func:`pipeline.dose.stage.compute_dose` with the
    phantom as the CT grid, ``organ_grid`` "ct" (the organ-grid dose) or "dose" (the
    dose-grid map resampled onto the CT).

``python -m pipeline.dose.organ_grid_check`` prints the table (a few minutes on 2 cores);
with ``--sample DIR`` it checks a generated sample patient instead (:func:`sample_patient_check`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["PhantomOrgan", "phantom_organ", "phantom_density_crop", "reference_self_dose_gy", "stage_self_dose_gy", "binned_tia",
           "bin_to_grid", "sample_patient_check", "ORGANS", "SUBDIVISION", "main"]

#: spectdose label, ICRP-110 ids, of the organs checked.
ORGANS = {"kidney_left": (1, (89, 90, 91)), "spleen": (4, (127,)), "liver": (3, (95,))}
#: Subdivision of each phantom voxel for the reference (AF: 1.775/2, 1.775/2, 4.84/5 mm).
SUBDIVISION = (2, 2, 5)
#: Reach of the reference's near electron part, mm.
REFERENCE_NEAR_MM = 20.0
#: Margin of the cropped phantom around the organ, mm (the 100 mm photon kernel plus a dose voxel).
CROP_MARGIN_MM = 110.0
BODY = 7


@dataclass(frozen=True, eq=False)
class PhantomOrgan:
    """One organ of the ICRP-110 AF phantom as a label map on the phantom grid (cropped around it).

    Attributes
    ----------
    name : str
    label : int
        spectdose label id of the organ (body is 7).
    labels : pipeline.image.Image
        spectdose labels on the cropped phantom grid (organ, body 7, outside 0).
    density_g_per_ml : numpy.ndarray
        Phantom density of each voxel, g/mL (air 0.0012).
    """

    name: str
    label: int
    labels: object
    density_g_per_ml: np.ndarray

    @property
    def organ(self) -> np.ndarray:
        """Voxels of the organ, bool."""
        return self.labels.array == self.label


def phantom_organ(zip_path, organ: str, phantom=None) -> PhantomOrgan:
    """The ICRP-110 AF organ ``organ`` (a key of :data:`ORGANS`) with the body around it."""
    from sample_data.icrp110 import load_phantom

    from ..grid import bounding_box
    from ..image import Image

    ph = phantom if phantom is not None else load_phantom(zip_path, "AF")
    arr = ph.labels.array
    label, ids = ORGANS[organ]
    mask = np.isin(arr, ids)
    vs = ph.labels.voxel_size_mm
    box = bounding_box(mask, np.ceil(CROP_MARGIN_MM / vs).astype(int))
    sub = arr[box]
    body = (sub > 0) & (sub != 140)  # 0: air outside, 140: internal air
    lab = np.where(np.isin(sub, ids), label, np.where(body, BODY, 0)).astype(np.uint8)
    rho, affine = phantom_density_crop(ph, box)
    return PhantomOrgan(organ, label, Image(lab, affine, "label"), rho)


def phantom_density_crop(ph, box) -> tuple[np.ndarray, np.ndarray]:
    """Density (g/mL; air and unassigned labels 0.0012) of the phantom inside the index ``box``,
    and the affine of that crop (RAS+ mm)."""
    arr = ph.labels.array
    table = np.zeros(int(arr.max()) + 1)
    for k, d in ph.density_g_per_ml.items():
        if k <= arr.max():
            table[k] = d
    sub = arr[box]
    rho = np.where(sub > 0, table[sub], 0.0012)
    rho = np.where(rho > 0, rho, 0.0012)
    affine = np.array(ph.labels.affine)
    affine[:3, 3] = ph.labels.index_to_world([b.start for b in box])
    return rho, affine


def _fine_grid(case: PhantomOrgan):
    from ..image import Image

    n = np.asarray(SUBDIVISION)
    lin = case.labels.affine[:3, :3] / n[None, :]
    affine = np.eye(4)
    affine[:3, :3] = lin
    # centre of fine voxel (0,0,0): phantom voxel (0,0,0) centre minus (n-1)/2 fine steps
    affine[:3, 3] = case.labels.affine[:3, 3] - lin @ ((n - 1) / 2.0)
    shape = tuple(int(s * k) for s, k in zip(case.labels.shape, n))
    return Image(np.zeros((1, 1, 1), np.uint8), affine, "1"), shape


def _upsample(a: np.ndarray) -> np.ndarray:
    for axis, k in enumerate(SUBDIVISION):
        a = np.repeat(a, k, axis=axis)
    return a


def _organ_mean(dose: np.ndarray, case: PhantomOrgan) -> float:
    m = case.organ
    w = case.density_g_per_ml[m]
    return float(np.sum(dose[m] * w) / np.sum(w))


def reference_self_dose_gy(case: PhantomOrgan, nuclide: str, conc_mbq_h_per_ml: float = 1.0) -> dict:
    """Reference organ self-dose (Gy) of a uniform source (module docstring).

    Returns
    -------
    dict
        ``reference_gy`` (near part on the ~1 mm grid), ``phantom_grid_gy`` (everything on the
        phantom grid), ``near_fine_gy``, ``near_phantom_gy``, ``far_gy``.
    """
    from kernels.cache import cached_svalues_for_kernel, point_kernel_hash
    from kernels.convolve import convolve_dose_gy
    from kernels.kernel_data import load_point_kernel
    from kernels.select import svalues_for_voxel_size

    from ..grid import bounding_box
    from .organgrid import near_electron_point_kernel

    kernel = load_point_kernel(nuclide, "water")
    edges = np.asarray(kernel.r_edges_mm)
    reach = float(edges[np.searchsorted(edges, REFERENCE_NEAR_MM)])
    near_k = near_electron_point_kernel(kernel, reach)
    key = f"{point_kernel_hash(nuclide, 'water')}|electrons-within-{reach:.4f}mm"
    vs = case.labels.voxel_size_mm
    fine_vs = vs / np.asarray(SUBDIVISION)
    near_fine = cached_svalues_for_kernel(near_k, fine_vs, kernel_hash=key, photons=False, extent_mm=reach)
    near_ph = cached_svalues_for_kernel(near_k, vs, kernel_hash=key, photons=False, extent_mm=reach)
    full = svalues_for_voxel_size(nuclide, vs, "water")
    organ = case.organ
    v_ml = case.labels.voxel_volume_ml
    tia_s = organ * (conc_mbq_h_per_ml * v_ml * 3600.0)
    total = full.total_mgy_per_mbq_s
    far = convolve_dose_gy(tia_s, total, method="fft")
    near_p = convolve_dose_gy(tia_s, near_ph.electron_mgy_per_mbq_s, mask=organ)
    far -= convolve_dose_gy(tia_s, near_ph.electron_mgy_per_mbq_s, method="fft")
    # near part on the subdivided grid, in the organ's box plus the reach
    box = bounding_box(organ, np.ceil(reach / vs).astype(int) + 1)
    sub = organ[box]
    fine_src = _upsample(sub.astype(np.float64)) * (conc_mbq_h_per_ml * v_ml / np.prod(SUBDIVISION) * 3600.0)
    fine_mask = _upsample(sub)
    d_fine = convolve_dose_gy(fine_src, near_fine.electron_mgy_per_mbq_s, mask=fine_mask)
    # back to phantom voxels: mean over each voxel's 20 sub-voxels (same density inside)
    shp = sub.shape
    d_fine_ph = d_fine.reshape(shp[0], SUBDIVISION[0], shp[1], SUBDIVISION[1], shp[2], SUBDIVISION[2]).mean(
        axis=(1, 3, 5))
    near_f = np.zeros_like(far)
    near_f[box] = d_fine_ph
    rho_med = 1.0
    corr = rho_med / np.maximum(case.density_g_per_ml, 0.1)
    return {
        "reference_gy": _organ_mean((near_f + far) * corr, case),
        "phantom_grid_gy": _organ_mean((near_p + far) * corr, case),
        "near_fine_gy": _organ_mean(near_f * corr, case),
        "near_phantom_gy": _organ_mean(near_p * corr, case),
        "far_gy": _organ_mean(far * corr, case),
        "reach_mm": reach,
    }


def _dose_grid(case: PhantomOrgan, voxel_mm: float):
    """A head-first axial dose grid of ``voxel_mm`` covering the cropped phantom, shifted 0.37 voxel."""
    from ..image import Image, affine_from_geometry

    lab = case.labels
    corners = np.array([lab.index_to_world(np.array(c, float) * (np.asarray(lab.shape) - 1))
                        for c in np.ndindex(2, 2, 2)])
    lo = corners.min(axis=0) - voxel_mm
    hi = corners.max(axis=0) + voxel_mm
    shape = tuple(int(np.ceil((h - l) / voxel_mm)) + 1 for l, h in zip(lo, hi))
    origin = lo + 0.37 * voxel_mm
    return Image(np.zeros(shape, np.float32), affine_from_geometry(origin, np.eye(3), (voxel_mm,) * 3), "MBq*h/mL")


def binned_tia(case: PhantomOrgan, voxel_mm: float, conc_mbq_h_per_ml: float = 1.0):
    """The uniform organ source binned into a dose grid of ``voxel_mm`` (MBq*h/mL), from 1 mm sub-voxels."""
    grid = _dose_grid(case, voxel_mm)
    fine, _ = _fine_grid(case)
    idx = np.argwhere(case.organ)
    sub_ml = case.labels.voxel_volume_ml / np.prod(SUBDIVISION)
    acc = np.zeros(int(np.prod(grid.shape)))
    inv = np.linalg.inv(grid.affine) @ fine.affine
    for off in np.ndindex(*SUBDIVISION):
        f = idx * np.asarray(SUBDIVISION) + np.asarray(off)
        c = np.floor(f @ inv[:3, :3].T + inv[:3, 3] + 0.5).astype(np.int64)
        flat = np.ravel_multi_index(c.T, grid.shape)
        acc += np.bincount(flat, minlength=acc.size) * (conc_mbq_h_per_ml * sub_ml)
    return grid.with_array((acc.reshape(grid.shape) / grid.voxel_volume_ml).astype(np.float32))


def stage_self_dose_gy(case: PhantomOrgan, nuclide: str, voxel_mm: float, organ_grid: str,
                       method: str = "convolution", include_photons: bool = True, tia=None) -> float:
    """The dose stage's mean self-dose (Gy) of the organ for a uniform 1 MBq*h/mL source binned to ``voxel_mm``."""
    from kernels.decay import load_decay
    from kernels.select import svalues_for_voxel_size

    from .organgrid import near_electron_kernels
    from .stage import DoseSettings, compute_dose

    tia = binned_tia(case, voxel_mm) if tia is None else tia
    d = load_decay(nuclide)
    k = svalues_for_voxel_size(nuclide, tia.voxel_size_mm, "water")
    near = (near_electron_kernels(nuclide, tia.voxel_size_mm, case.labels.voxel_size_mm)
            if organ_grid == "ct" else None)
    ct = case.labels.with_array(np.zeros(case.labels.shape, np.int16), unit="HU")
    # photons from the kernels, as in the reference (part b validates the electron grids)
    settings = DoseSettings(method=method, include_photons=include_photons, organ_grid=organ_grid,
                            photon_method="kernel")
    cube = k.total_mgy_per_mbq_s if include_photons else k.electron_mgy_per_mbq_s
    out = compute_dose(tia, ct, case.labels, {case.label: case.name}, electron_energy_mev=d.electron_energy_mev,
                       photon_energy_mev=d.photon_energy_mev, injected_activity_mbq=None,
                       svalues_mgy_per_mbq_s=cube if method == "convolution" else None,
                       photon_svalues_mgy_per_mbq_s=k.photon_mgy_per_mbq_s if method == "local" else None,
                       kernel_density_g_per_ml=k.density_g_per_ml, density_ct=case.density_g_per_ml,
                       settings=settings, near_electron=near)
    return next(o.mean_gy for o in out.organs if o.label == case.label)


def bin_to_grid(image, grid, sub: int = 3):
    """A concentration map (per mL) on a fine grid binned into ``grid``: each voxel split into ``sub**3``
    points, each put (with its share of the activity) in the ``grid`` voxel that holds it."""
    idx = np.argwhere(image.array > 0)
    act = np.asarray(image.array, np.float64)[tuple(idx.T)] * image.voxel_volume_ml / sub**3
    m = np.linalg.inv(grid.affine) @ image.affine
    out = np.zeros(int(np.prod(grid.shape)))
    for off in np.ndindex(sub, sub, sub):
        c = np.floor((idx + (np.asarray(off) + 0.5) / sub - 0.5) @ m[:3, :3].T + m[:3, 3] + 0.5).astype(np.int64)
        ok = np.all((c >= 0) & (c < np.asarray(grid.shape)), axis=1)
        out += np.bincount(np.ravel_multi_index(c[ok].T, grid.shape), weights=act[ok], minlength=out.size)
    return grid.with_array((out.reshape(grid.shape) / grid.voxel_volume_ml).astype(np.float32),
                           unit=image.unit)


def sample_patient_check(sample_dir, nuclide: str) -> dict:
    """Organ doses of the sample patient's true TIA (CT grid) binned to its SPECT grid, against the truth.

    Reference: the true TIA map on the CT grid (1.5 x 1.5 x 3 mm, standard preset) as the source of
    the near electron dose on the CT grid, the far part (photons, bremsstrahlung tail) from the
    dose grid as in the stage. The stage gets the true TIA binned into the SPECT grid (no camera
    blur), so what differs is only where the activity sits inside each SPECT voxel: placed by the
    label map (organ grid) or spread over it (dose grid). Every region holds activity here (organs,
    lesions, marrow, body background). Also reported: the stage on the camera's PSF-blurred TIA
    (``truth/spect_psf_tia.nii.gz``), i.e. the camera's partial-volume loss.

    Returns
    -------
    dict
        Organ name -> ``{"reference_gy", "organ_grid_gy", "dose_grid_gy", "psf_organ_grid_gy"}``.
    """
    from pathlib import Path

    from kernels.decay import load_decay
    from kernels.select import svalues_for_voxel_size

    from ..imageio import read_image, sidecar_path
    from ..segment.labels import read_vocabulary
    from .dosemap import convolution_dose_gy, tia_mbq_s_per_voxel
    from .organgrid import near_electron_kernels, organ_grid_dose
    from .stage import DoseSettings, compute_dose, density_g_per_ml_from_hu

    truth = Path(sample_dir) / "truth"
    tia_ct, _ = read_image(truth / "tia.nii.gz")
    labels, _ = read_image(truth / "labels.nii.gz", unit="label")
    ct, _ = read_image(truth / "ct_noisefree.nii.gz", unit="HU")
    psf, _ = read_image(truth / "spect_psf_tia.nii.gz")
    names = dict(sorted(read_vocabulary(sidecar_path(truth / "labels.nii.gz")).items()))
    binned = bin_to_grid(tia_ct, psf)
    d = load_decay(nuclide)
    k = svalues_for_voxel_size(nuclide, binned.voxel_size_mm, "water")
    near = near_electron_kernels(nuclide, binned.voxel_size_mm, ct.voxel_size_mm)
    rho = density_g_per_ml_from_hu(ct.array)
    kw = dict(electron_energy_mev=d.electron_energy_mev, photon_energy_mev=d.photon_energy_mev,
              injected_activity_mbq=None, svalues_mgy_per_mbq_s=k.total_mgy_per_mbq_s,
              kernel_density_g_per_ml=k.density_g_per_ml, density_ct=rho)
    runs = {"organ_grid_gy": (binned, "ct"), "dose_grid_gy": (binned, "dose"), "psf_organ_grid_gy": (psf, "ct")}
    out = {name: {} for name in names.values()}
    for key, (tia, grid) in runs.items():
        res = compute_dose(tia, ct, labels, names, settings=DoseSettings(organ_grid=grid, photon_method="kernel"),
                           near_electron=near if grid == "ct" else None, **kw)
        for o in res.organs:
            out[o.name][key] = o.mean_gy
    tia_s = tia_mbq_s_per_voxel(binned.array, binned.voxel_volume_ml)
    far = convolution_dose_gy(tia_s, k.total_mgy_per_mbq_s) - convolution_dose_gy(tia_s, near.coarse_mgy_per_mbq_s)
    ref = organ_grid_dose(binned, ct, labels.array, rho, far, near, method="convolution",
                          electron_energy_mev=d.electron_energy_mev, kernel_density_g_per_ml=k.density_g_per_ml,
                          min_density_g_per_ml=0.1,
                          source_mbq_s=np.asarray(tia_ct.array, np.float64) * (ct.voxel_volume_ml * 3600.0))
    lab = labels.array[ref.box]
    for label, name in names.items():
        m = (lab == label) & ref.targets
        if m.sum() == (labels.array == label).sum() and m.any():
            w = rho[ref.box][m]
            out[name]["reference_gy"] = float(np.sum(ref.dose_gy[m] * w) / np.sum(w))
    return out


def main(argv=None) -> int:
    from sample_data.icrp110 import default_zip_path, load_phantom

    p = argparse.ArgumentParser(prog="python -m pipeline.dose.organ_grid_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zip", default=str(default_zip_path()))
    p.add_argument("--nuclides", nargs="+", default=["Lu-177", "Cu-67", "Y-90"])
    p.add_argument("--organs", nargs="+", default=list(ORGANS))
    p.add_argument("--voxels-mm", nargs="+", type=float, default=[4.8, 4.42, 3.9])
    p.add_argument("--sample", help="a generated sample patient folder (with truth/): run sample_patient_check")
    args = p.parse_args(argv)
    if args.sample:
        nuclide = args.nuclides[0]
        print(f"{'organ':18s} {'reference Gy':>12s} {'organ grid':>11s} {'dose grid':>10s} {'PSF, organ grid':>16s}")
        for name, r in sample_patient_check(args.sample, nuclide).items():
            if "reference_gy" not in r:
                continue
            ref = r["reference_gy"]
            print(f"{name:18s} {ref:12.4g} {100 * (r['organ_grid_gy'] / ref - 1):+10.2f}% "
                  f"{100 * (r['dose_grid_gy'] / ref - 1):+9.2f}% {100 * (r['psf_organ_grid_gy'] / ref - 1):+15.2f}%")
        return 0
    ph = load_phantom(args.zip, "AF")
    print("organ         nuclide  mL     ref Gy     phantom-grid  grid mm  organ_grid=ct  organ_grid=dose  s")
    for organ in args.organs:
        case = phantom_organ(None, organ, ph)
        vol = float(case.organ.sum() * case.labels.voxel_volume_ml)
        for nuc in args.nuclides:
            ref = reference_self_dose_gy(case, nuc)
            r = ref["reference_gy"]
            for vmm in args.voxels_mm:
                t = time.perf_counter()
                tia = binned_tia(case, vmm)
                fine = stage_self_dose_gy(case, nuc, vmm, "ct", tia=tia)
                coarse = stage_self_dose_gy(case, nuc, vmm, "dose", tia=tia)
                print(f"{organ:13s} {nuc:7s} {vol:6.0f} {r:9.5f} {100 * (ref['phantom_grid_gy'] / r - 1):+8.2f} %"
                      f" {vmm:6.2f} {100 * (fine / r - 1):+11.2f} % {100 * (coarse / r - 1):+13.2f} %"
                      f" {time.perf_counter() - t:5.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
