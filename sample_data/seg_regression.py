"""Regression table of the built-in segmenter on the labelled development cases.

``python -m sample_data.seg_regression [--shared ../shared] [--cases AF_3mm,...]`` runs
:func:`pipeline.segment.cli.segment` (built-in backend) and the QC gate on

- the ICRP-110 cases of :func:`sample_data.icrp110.development_cases` (real anatomy),
- the TotalSegmentator example CT (reference labels on its top 30 slices: kidneys, liver,
  spleen; its levels L2, L1, T12 are used for the level check),
- the sample patient (small preset, seed 0),

and prints one line per case: Dice per organ, whether L2, L3, L4 are at the right level,
the QC verdict (with the failing checks) and the time. A case where the segmenter refuses
(one line) is reported as refused, never as a success. ``--anchor`` gives the
segmenter the reference L3 centre (``--vertebra-level``), to judge the organs
apart from the level count. ``--atlas loo|all`` finds the organs by atlas
registration (:mod:`pipeline.segment.atlas_organs`) with the ICRP-110 phantoms:
``loo`` leaves a case's own phantom out of the atlas (the honest test of a new
patient), ``all`` keeps it (what a held-back case made from these phantoms would see).
``--spect`` gives the ICRP-110 cases (and the TotalSegmentator CT, :func:`_totalseg_spect`) a simulated reference SPECT (:func:`simulated_spect`:
kidney:spleen:liver:rest uptake 10:3:2:0.3, 12 mm FWHM, 4.8 mm voxels, 5 % noise) and adds
the uptake error per organ: the mean of that SPECT in the segmented organ against the mean
in the reference organ (%), the part of the organ-dose error that the segmentation makes.
``--spect realistic`` uses the non-uniform SPECT of :mod:`sample_data.seg_spect` instead
(renal cortex, medulla and a hot pelvis, a hot spleen, bowel, a lymph node beside the left
kidney and a liver metastasis near the right one, the node also in the CT) and reports the
share of each lesion that a segmented organ took; ``--spect early`` the same with the lower
contrast of an early session (:data:`sample_data.seg_spect.EARLY_UPTAKE`). ``--scale XY,Z``
stretches the ICRP-110 phantom (in-plane, axial) before the CT is made: a broader, slimmer,
taller or shorter person than the atlas persons. ``--enlarge ORGAN:MM`` grows one organ of the
phantom over the fat and bowel around it (:func:`_enlarged`): a hepatomegaly or splenomegaly
larger than the atlas persons' organs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["run_case", "main", "ORGANS"]

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")


#: Relative uptake (activity concentration) per DESIGN label of :func:`simulated_spect`.
SIMULATED_UPTAKE = {1: 10.0, 2: 10.0, 3: 2.0, 4: 3.0}


def simulated_spect(ct, ref, fwhm_mm: float = 12.0, voxel_mm: float = 4.8, noise: float = 0.05, seed: int = 0):
    """A reference SPECT (Bq/mL, arbitrary scale) made from reference labels on the CT grid.

    Uptake :data:`SIMULATED_UPTAKE` (kidneys, liver, spleen; 0.3 elsewhere in the body,
    0 in air), Gaussian blur of ``fwhm_mm``, block-averaged onto an isotropic ``voxel_mm``
    grid, multiplicative Gaussian noise of relative SD ``noise``.
    """
    from sample_data.seg_spect import camera

    lab = np.asarray(ref.array)
    act = np.where(np.asarray(ct.array) > -400.0, 0.3, 0.0).astype(np.float32)
    for lid, v in SIMULATED_UPTAKE.items():
        act[lab == lid] = v
    return camera(ct, act, fwhm_mm, voxel_mm, noise, np.random.default_rng(seed))


def _uptake_errors(ct, spect, labels, ref) -> dict:
    """Per organ: mean SPECT in the segmented organ against the mean in the reference organ, %."""
    from pipeline.grid import resample_to

    s = np.asarray(resample_to(spect, ct, "linear").array)
    ours, truth = np.asarray(labels.array), np.asarray(ref.array)
    out = {}
    for o, lid in zip(ORGANS, (1, 2, 3, 4)):
        a, b = ours == lid, truth == lid
        out[o] = round(100.0 * (s[a].mean() / s[b].mean() - 1.0), 1) if a.any() and b.any() else None
    return out


def _row(name, ct, ref, ref_levels, spect=None, evaluate_levels=("L2", "L3", "L4"), anchor=False,
         atlas=(), labelled=None, judge_uptake=False, lesions=None, clean_spect=None, hu_offset: float = 0.0,
         spect_shift_mm=None, absent=()) -> dict:
    """Segment one case and compare it with its reference.

    The organs' Dice and uptake errors are those of the organ outlines, before ``spectdose
    segment`` labels the hot lesions inside liver and spleen apart (``info["outline_labels"]``,
    :func:`pipeline.segment.organ_lesions.label_organ_lesions`); the QC gate and the lesions'
    shares run on the final map, as ``spectdose segment`` does. ``clean_spect``: the same SPECT without the liver's lesions; the liver's mean
    SPECT, outline and parenchyma, is compared with that SPECT's mean in the reference liver
    without its lesions (the parenchyma as imaged). ``hu_offset``: the segmenter sees the CT with
    every voxel of the body (above -500 HU) read this many HU off (calibration, beam hardening,
    tube voltage); reference and SPECT unchanged. ``spect_shift_mm`` (RAS x, y, z, mm): the SPECT
    the segmenter sees lies that far from its CT (breathing, patient motion between the CT and
    the SPECT acquisition); the uptake error then compares the shifted SPECT in the segmented
    organ with the same shifted SPECT in the reference organ (the segmentation's share), and
    ``misaligned_uptake_pct`` the shifted SPECT in the reference organ with the aligned one (the
    misalignment's own share, which no segmentation removes). ``absent``: organs declared absent
    to the segmenter and the gate (``--absent-organ``).
    """
    from pipeline.errors import SpectdoseError
    from pipeline.segment.cli import run_gate, segment
    from pipeline.segment.evaluate import compare_labels, compare_levels

    if hu_offset:
        a = np.asarray(ct.array, np.float32)
        ct = ct.with_array(np.where(a > -500.0, a + np.float32(hu_offset), a))
        name = f"{name} {hu_offset:+g}HU"
    aligned = spect
    if spect is not None and spect_shift_mm is not None and any(spect_shift_mm):
        from pipeline.image import Image

        aff = np.array(spect.affine)
        aff[:3, 3] += np.asarray(spect_shift_mm, float)
        spect = Image(np.asarray(spect.array), aff, spect.unit, dict(spect.meta))
        name = f"{name} SPECT {','.join(f'{v:+g}' for v in spect_shift_mm)}mm"
    t = time.perf_counter()
    row = {"case": name + (" (anchor)" if anchor else ""),
           "atlas": ",".join(a.name.replace("ICRP110_", "") for a in atlas) or "rules"}
    level = None
    if anchor and "L3" in ref_levels:
        level = f"L3@{0.5 * sum(ref_levels['L3']):.1f}"  # the reference L3 centre, as a physicist would give it
    try:
        labels, info = segment(ct, spect=spect, vertebra_level=level, atlas=atlas, absent_organs=absent)
        outline = info.get("outline_labels", labels)
        rec = info.get("organ_method", {}).get("organ_lesions", {})
        row["organ_lesions"] = {o: (len(r.get("labels", [])), round(sum(r.get("volumes_ml", [])), 1),
                                    round(sum(r.get("spill_zone_ml", [])), 1)) for o, r in rec.items()}
    except SpectdoseError as exc:
        row.update(refused=str(exc), seconds=time.perf_counter() - t)
        return row
    row["seconds"] = time.perf_counter() - t
    judged = outline if labelled is None else outline.with_array(np.where(labelled, np.asarray(outline.array), 0))
    organs = compare_labels(judged, ref)  # only where the reference was labelled
    row["dice"] = {o: organs[o]["dice"] if organs[o]["status"] != "absent" else None for o in ORGANS}
    row["volume_ml"] = {o: round(float(np.count_nonzero(np.asarray(outline.array) == lid)) * outline.voxel_volume_ml, 1)
                        for o, lid in zip(ORGANS, (1, 2, 3, 4))}
    if judge_uptake:
        row["uptake_error_pct"] = _uptake_errors(ct, spect, judged, ref)
        if aligned is not spect:
            from pipeline.grid import resample_to

            a = np.asarray(resample_to(aligned, ct, "linear").array)
            b = np.asarray(resample_to(spect, ct, "linear", default_value=0.0).array)
            r = np.asarray(ref.array) if labelled is None else np.where(labelled, np.asarray(ref.array), 0)
            row["misaligned_uptake_pct"] = {o: round(100.0 * (float(b[r == lid].mean()) / float(a[r == lid].mean()) - 1.0), 1)
                                            for o, lid in zip(ORGANS, (1, 2, 3, 4)) if np.any(r == lid)}
    row["marrow_in_bodies_pct"] = _marrow_in_bodies_pct(labels, ref)
    mu = info.get("marrow_uptake") or {}
    row["marrow_uptake_to_coldest"] = mu.get("ratio_to_coldest")
    row["marrow_excluded"] = mu.get("excluded", [])
    if lesions:
        # share of each lesion (not an organ) that a segmented organ took, %
        ours = np.asarray(labels.array)
        row["lesion_taken_pct"] = {
            n: {o: round(100.0 * float(np.mean(ours[m] == lid)), 1) for o, lid in zip(ORGANS, (1, 2, 3, 4))
                if np.any(ours[m] == lid)} for n, m in lesions.items()}
    if clean_spect is not None:
        from pipeline.grid import resample_to

        s = np.asarray(resample_to(spect, ct, "linear").array)
        c = np.asarray(resample_to(clean_spect, ct, "linear").array)
        in_liver = [m for n, m in (lesions or {}).items() if n.startswith("liver_met")]
        true_parenchyma = (np.asarray(ref.array) == 3) & ~np.logical_or.reduce(in_liver)
        level = float(c[true_parenchyma].mean())
        row["parenchyma_error_pct"] = {
            k: round(100.0 * (float(s[np.asarray(img.array) == 3].mean()) / level - 1.0), 1)
            for k, img in (("outline", outline), ("parenchyma", labels))}
    test_levels = {n: float(np.mean(v)) for n, v in info.get("levels_z_mm", {}).items()}
    lv = compare_levels(test_levels, ref_levels, names=evaluate_levels)
    row["levels"] = {n: r["match"] if r["status"] != "no reference" else None for n, r in lv.items()}
    row["level_offset_mm"] = {n: r["offset_mm"] for n, r in lv.items()}
    qc = run_gate(ct, labels, info, spect, absent_organs=absent, mode="warn")
    row["qc"] = qc["status"]
    row["qc_failing"] = [f"{c['structure']}:{c['check']}" for c in qc["checks"] if c["status"] == "fail"]
    row["qc_warn"] = [f"{c['structure']}:{c['check']}" for c in qc["checks"] if c["status"] == "warn"]
    return row


def _atlas_for(case: str, mode: str, subjects) -> tuple:
    """Atlas subjects for a case: ``none``; ``all``; ``loo`` (an ICRP-110 case without its own phantom)."""
    if mode == "none":
        return ()
    if mode == "loo" and case[:2] in ("AF", "AM"):
        return tuple(s for s in subjects if not s.name.endswith("_" + case[:2]))
    return tuple(subjects)


def run_case(name: str, shared: Path, anchor: bool = False, atlas=(), spect: bool | str = False,
             scale: tuple[float, float] | None = None, enlarge: tuple[str, float] | None = None,
             liver_mets: float = 0.0, spect_noise: float = 0.05, cyst_mm: float = 0.0,
             spect_fwhm_mm: float = 12.0, fov: str | None = None, rebin_mm: float | None = None,
             hu_offset: float = 0.0, spect_shift_mm=None, remove: str | None = None,
             declare_removed: bool = True) -> dict:
    """One row of the table (see the module docstring); ``spect_noise`` (relative SD) and
    ``spect_fwhm_mm`` (mm) are the simulated SPECT's; ``fov``: an ICRP-110 case's field of view
    instead of its own (:func:`sample_data.icrp110.fov_z_range`); ``rebin_mm``: the ICRP-110
    case's CT, taken as the acquisition, rebinned to isotropic voxels of this size (mm; linear
    interpolation, :func:`sample_data.ct_variants.resampled_ct`), the reference labels made again
    on that grid; ``hu_offset``: the CT's body read this many HU off, ``spect_shift_mm``: the
    SPECT moved against its CT (:func:`_row`); ``remove``: an ICRP-110 phantom without that organ
    (:func:`_without`: nephrectomy, splenectomy), declared absent to the segmenter unless
    ``declare_removed`` is False."""
    from functools import partial

    from pipeline.imageio import read_image

    row = partial(_row, hu_offset=hu_offset, spect_shift_mm=spect_shift_mm,
                  absent=(remove,) if remove and declare_removed else ())

    if name == "totalseg":
        d = shared / "data" / "totalseg_example"
        ct, _ = read_image(d / "example_ct.nii.gz", unit="HU")
        seg, _ = read_image(d / "example_seg.nii.gz", unit="label")
        s = np.zeros(ct.shape, np.int16)
        s[:, :, 82:] = np.asarray(seg.array)  # the 30-slice part is the full CT's slices 82-111
        ref = np.zeros(ct.shape, np.uint16)
        for tid, lid in ((3, 1), (2, 2), (5, 3), (1, 4)):
            ref[s == tid] = lid
        z = ct.world_grid()[..., 2]
        levels = {}
        for tid, n in ((30, "L2"), (31, "L1"), (32, "T12")):
            zz = z[s == tid]
            levels[n] = (float(zz.min()), float(zz.max()))
        labelled = np.zeros(ct.shape, bool)
        labelled[:, :, 82:] = True  # organs below the labelled part are not judged
        sp = None
        if spect:
            sp = _totalseg_spect(ct, ref, labelled, atlas, spect, noise=spect_noise, fwhm_mm=spect_fwhm_mm)
            name = f"{name} ({spect} SPECT{_camera_suffix(spect_noise, spect_fwhm_mm)})"
        return row(name, ct, ct.with_array(ref, unit="label"), levels, evaluate_levels=("L2", "L1", "T12"),
                    anchor=anchor, atlas=atlas, labelled=labelled, spect=sp, judge_uptake=sp is not None)
    if name.startswith("sample"):
        import tempfile

        from sample_data.anatomy import vertebra_z_ranges
        from sample_data.generator import generate

        with tempfile.TemporaryDirectory() as tmp:
            out = generate(Path(tmp), preset="small", nuclide="Lu-177", seed=0, fmt="nifti", time_points_h=(24,))
            ct, _ = read_image(out / "nifti" / "t24h_ct.nii.gz")
            spect, _ = read_image(out / "nifti" / "t24h_spect.nii.gz")
            ref, _ = read_image(out / "truth" / "labels.nii.gz")
            levels = {n: tuple(v) for n, v in vertebra_z_ranges().items()}
            return row(name, ct, ref, levels, spect=spect, anchor=anchor, atlas=atlas)
    from sample_data.icrp110 import development_cases, load_case, load_phantom

    zip_path = shared / "data" / "icrp110" / "Input_GateLab_2019-04-02.zip"
    case = development_cases()[name]
    ph = load_phantom(zip_path, case.phantom)
    if fov is not None:
        from dataclasses import replace

        case = replace(case, fov=fov)
        name = f"{name} {fov}"
    if scale is not None:
        ph = _scaled(ph, *scale)
        name = f"{name} x{scale[0]:g},{scale[1]:g}"
    if remove is not None:
        ph = _without(ph, remove)
        name = f"{name} no {remove}" + ("" if declare_removed else " (undeclared)")
    if enlarge is not None:
        ph, (before, after) = _enlarged(ph, *enlarge)
        name = f"{name} {enlarge[0]} {after:.0f}mL"  # before: the phantom's own volume
        print(f"{name}: {enlarge[0]} {before:.0f} -> {after:.0f} mL", flush=True)
    ct, ref, levels = load_case(zip_path, case, phantom=ph, rebin_mm=rebin_mm)
    if rebin_mm is not None:
        name = f"{name} rebin {rebin_mm:g}mm"
    ref_levels = {n: v["z_range_mm"] for n, v in levels.items() if not n.startswith("_")}
    from pipeline.segment.evaluate import resample_nearest

    native = resample_nearest(ph.labels, ct)
    if cyst_mm > 0:
        ct, ref, native = _with_renal_cyst(ct, ref, native, cyst_mm)
        name = f"{name} cyst {cyst_mm:g}mm"
    if spect in ("realistic", "early", "sstr", "antibody"):
        from sample_data import seg_spect

        uptake, rest = {"early": (seg_spect.EARLY_UPTAKE, seg_spect.EARLY_REST),
                        "sstr": (seg_spect.SSTR_UPTAKE, seg_spect.SSTR_REST),
                        "antibody": (seg_spect.ANTIBODY_UPTAKE, seg_spect.ANTIBODY_REST)}.get(
            spect, (seg_spect.REALISTIC_UPTAKE, seg_spect.REALISTIC_REST))
        kw = dict(uptake=uptake, rest=rest, liver_mets_fraction=liver_mets, noise=spect_noise, fwhm_mm=spect_fwhm_mm)
        sp, ct_out, lesions = seg_spect.realistic_spect(ct, native, **kw)
        clean, _, _ = seg_spect.realistic_spect(ct, native, liver_lesions=False, **kw)
        ct = ct_out
        if liver_mets:
            name = f"{name} mets {100 * liver_mets:.0f}%"
        name += _camera_suffix(spect_noise, spect_fwhm_mm)
        return row(name, ct, ref, ref_levels, anchor=anchor, atlas=atlas, spect=sp, judge_uptake=True,
                    lesions=lesions, clean_spect=clean)
    if spect:
        name += _camera_suffix(spect_noise, spect_fwhm_mm)
    return row(name, ct, ref, ref_levels, anchor=anchor, atlas=atlas,
                spect=simulated_spect(ct, ref, fwhm_mm=spect_fwhm_mm, noise=spect_noise) if spect else None,
                judge_uptake=bool(spect))


def _camera_suffix(noise: float, fwhm_mm: float) -> str:
    """The row name's note of a simulated SPECT's noise (relative SD) and FWHM (mm) when they are
    not the defaults (0.05, 12 mm)."""
    out = f" noise {100 * noise:.0f}%" if noise != 0.05 else ""
    return out + (f" fwhm {fwhm_mm:g}mm" if fwhm_mm != 12.0 else "")


#: Relative uptake kidneys, liver, spleen (our label ids 1-4) and rest of the body for the
#: TotalSegmentator case's simulated SPECT (:func:`_totalseg_spect`): the ICRP-110 cases' uniform
#: (:data:`SIMULATED_UPTAKE`), realistic (spleen 8), early (kidney 5, spleen 3, liver 2.5, rest 1) and sstr (spleen 16 above kidney 8.5)
#: contrasts, with one uptake for the whole kidney (the reference has no cortex or medulla).
TOTALSEG_UPTAKE = {"uniform": (SIMULATED_UPTAKE, 0.3),
                   "realistic": ({1: 10.0, 2: 10.0, 3: 2.0, 4: 8.0}, 0.3),
                   "early": ({1: 5.0, 2: 5.0, 3: 2.5, 4: 3.0}, 1.0),
                   "sstr": ({1: 8.5, 2: 8.5, 3: 5.0, 4: 16.0}, 0.3),
                   "antibody": ({1: 3.0, 2: 3.0, 3: 6.0, 4: 6.0}, 1.5)}


def _totalseg_spect(ct, ref: np.ndarray, labelled: np.ndarray, atlas, mode, noise: float = 0.05,
                    fwhm_mm: float = 12.0):
    """A simulated SPECT for the TotalSegmentator CT (``fwhm_mm`` FWHM, 4.8 mm voxels, relative
    noise SD ``noise``).

    The activity follows the reference organs on the labelled slices. Below them the organs
    are not labelled, so there it follows spectdose's own CT-only segmentation (never judged:
    the Dice and uptake errors count the labelled slices only; without it the kidneys' and the
    liver's lower parts would be cold and cut the organs at the slab's edge).
    """
    from pipeline.segment.cli import segment
    from sample_data.seg_spect import camera

    uptake, rest = TOTALSEG_UPTAKE["uniform" if mode is True else mode]
    own, _ = segment(ct, atlas=atlas)
    organs = np.where(labelled, ref, np.where(np.isin(np.asarray(own.array), (1, 2, 3, 4)), own.array, 0))
    act = np.where(np.asarray(ct.array) > -400.0, rest, 0.0).astype(np.float32)
    for lid, v in uptake.items():
        act[organs == lid] = v
    return camera(ct, act, fwhm_mm, 4.8, noise, np.random.default_rng(0))


#: ICRP-110 id given to a simulated renal cyst's voxels (:func:`_with_renal_cyst`): one that the
#: phantoms do not use (their ids end at 141, skin) and no uptake table names, so the cyst takes the
#: rest of the body's uptake.
CYST_ID = 250


def _with_renal_cyst(ct, ref, native: np.ndarray, radius_mm: float, seed: int = 5):
    """An exophytic simple renal cyst on the right kidney: a ball of ``radius_mm`` centred on the
    kidney's lateral surface in its centroid slice, 5 HU plus the CT's noise (its SD in the interior
    of fat), no uptake of its own. Simple cysts are common in the older patients treated with
    radiopharmaceuticals; they are water on CT and cold on SPECT, and not kidney parenchyma: the
    reference kidney leaves the cyst out, and so does the reference liver where the cyst indents
    it (in both ICRP-110 phantoms the liver lies against the right kidney's lateral surface: at
    20 mm: AF_3mm 28 mL, 13 of kidney and 15 of liver; AM_3mm 24 mL, 14 and 10). Returns (ct, ref, native) with
    the cyst written in."""
    from scipy import ndimage as ndi

    lab = np.asarray(native)
    kid = np.isin(lab, (92, 93, 94))
    vs = np.asarray(ct.voxel_size_mm, float)
    c = np.argwhere(kid).mean(axis=0)
    k = int(round(c[2]))
    pts = np.argwhere(kid[:, :, k])
    spine_x = float(np.argwhere(np.isin(lab, (51, 52)))[:, 0].mean())
    lateral = pts[np.argmax(np.abs(pts[:, 0] - spine_x))]
    idx = np.indices(lab.shape, dtype=np.float32)
    centre = (lateral[0], lateral[1], k)
    hu = np.asarray(ct.array, np.float32).copy()
    out_ref = np.asarray(ref.array).copy()
    # it replaces the kidney's lateral part and indents what lies beside it (in the phantoms the
    # liver: the reference liver loses those voxels too), never bone
    free = np.isin(out_ref, (0, 2, 3)) & (hu < 150.0)
    ball = (sum(((idx[a] - centre[a]) * vs[a]) ** 2 for a in range(3)) <= radius_mm ** 2) & (hu > -400.0) & free
    fat = ndi.binary_erosion((hu > -200) & (hu < 0), iterations=2)
    noise_sd = float(np.std(hu[fat])) if fat.any() else 0.0
    hu[ball] = 5.0 + noise_sd * np.random.default_rng(seed).standard_normal(int(ball.sum())).astype(np.float32)
    out_ref[ball] = 0
    out_native = lab.copy()
    out_native[ball] = CYST_ID
    return ct.with_array(hu, unit="HU"), ref.with_array(out_ref), out_native


def _scaled(ph, in_plane: float, axial: float):
    """The phantom with its voxels stretched by ``in_plane`` (x, y) and ``axial`` (z)."""
    from dataclasses import replace

    a = np.array(ph.labels.affine, float)
    a[:3, 0] *= in_plane
    a[:3, 1] *= in_plane
    a[:3, 2] *= axial
    return replace(ph, labels=replace(ph.labels, affine=a), _cache={})  # the cached reference is the unstretched one


#: Tissues of ``*_LabelsToMaterials.txt`` an enlarged organ may take over (:func:`_enlarged`): the soft
#: tissue it pushes aside, never bone, lung, muscle, skin or another of the four organs.
_DISPLACEABLE = ("Adipose", "intestine", "Stomach", "contents", "Pancreas", "Gallbladder", "Lymph", "Blood")


def _displaceable(ph, lab: np.ndarray) -> np.ndarray:
    """Per label id of ``lab`` (bool, indexed by id): a tissue of :data:`_DISPLACEABLE`."""
    out = np.zeros(int(lab.max()) + 1, bool)
    for i, t in ph.tissue.items():
        if i < out.size and any(w in t for w in _DISPLACEABLE):
            out[i] = True
    return out


def _enlarged(ph, organ: str, grow_mm: float):
    """The phantom with ``organ`` grown by up to ``grow_mm`` (mm) over the soft tissue around it.

    A hepatomegaly or splenomegaly larger than the atlas persons' organs: the organ's label
    spreads, by 6-connected steps from the organ, over the voxels within ``grow_mm`` of it whose
    tissue is one of :data:`_DISPLACEABLE` (fat, bowel, stomach, pancreas, blood). The other organs,
    the body wall and the skeleton keep their place, so the organ grows into the abdomen.

    Returns
    -------
    phantom : Phantom
        A copy with the new label map (the cached reference labels dropped).
    ml : tuple of float
        The organ's volume before and after, mL.
    """
    from dataclasses import replace

    from sample_data.icrp110 import IDS

    lab = np.asarray(ph.labels.array).copy()
    vs = np.sqrt((np.asarray(ph.labels.affine, float)[:3, :3] ** 2).sum(axis=0))
    ids = IDS[organ]
    displaceable = _displaceable(ph, lab)
    displaceable[[i for o in ("kidney_left", "kidney_right", "liver", "spleen") for i in IDS[o]
                  if i < displaceable.size]] = False
    org = np.isin(lab, ids)
    before = float(org.sum() * np.prod(vs)) / 1000.0
    near = ndi.distance_transform_edt(~org, sampling=vs) <= grow_mm
    ok = displaceable[lab] & near
    grown = org.copy()
    step = ndi.generate_binary_structure(3, 1)
    for _ in range(int(np.ceil(grow_mm / vs.min())) + 1):
        new = ndi.binary_dilation(grown, step) & ok & ~grown
        if not new.any():
            break
        grown |= new
    lab[grown & ~org] = ids[0]
    after = float(grown.sum() * np.prod(vs)) / 1000.0
    return replace(ph, labels=ph.labels.with_array(lab), _cache={}), (before, after)


def _without(ph, organ: str):
    """The phantom without ``organ`` (nephrectomy, splenectomy): each of its voxels takes the tissue
    of the nearest :data:`_DISPLACEABLE` voxel around it (fat, bowel, stomach, pancreas, blood), as
    the fat and bowel that fill an empty renal fossa or splenic bed. The other organs stay where they
    are (in patients the spleen or colon may move into the space; not modelled)."""
    from dataclasses import replace

    from sample_data.icrp110 import IDS

    lab = np.asarray(ph.labels.array).copy()
    org = np.isin(lab, IDS[organ])
    source = _displaceable(ph, lab)[lab] & ~org
    _, idx = ndi.distance_transform_edt(~source, return_indices=True)
    lab[org] = lab[tuple(i[org] for i in idx)]
    return replace(ph, labels=ph.labels.with_array(lab), _cache={})


def _marrow_in_bodies_pct(labels, ref) -> float | None:
    """Share (%) of the marrow VOI (label 5) inside the reference L2-L4 bodies (labels 5 and 6: the
    sample patient's truth carves its own VOI out of the bodies); None where the reference has no
    bodies (TotalSegmentator's labelled part) or there is no VOI."""
    ours, theirs = np.asarray(labels.array) == 5, np.isin(np.asarray(ref.array), (5, 6))
    if not theirs.any() or not ours.any():
        return None
    return round(100.0 * float(np.mean(theirs[ours])), 1)


def format_rows(rows) -> str:
    head = f"{'case':<30}{'atlas':<7}{'kidL':>6}{'kidR':>6}{'liver':>6}{'splee':>6}  levels      QC     s"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "refused" in r:
            lines.append(f"{r['case']:<30}{r.get('atlas', ''):<7} refused: {r['refused'][:110]}")
            continue
        d = "".join(f"{'-' if r['dice'][o] is None else format(r['dice'][o], '.2f'):>6}" for o in ORGANS)
        lv = " ".join(f"{n}{'?' if ok is None else ('+' if ok else 'x')}" for n, ok in r["levels"].items())
        fails = f" fail: {', '.join(r['qc_failing'])}" if r["qc_failing"] else ""
        fails += f" warn: {', '.join(r['qc_warn'])}" if r.get("qc_warn") else ""
        up = ""
        if r.get("uptake_error_pct"):
            up = "  uptake % " + " ".join("-" if v is None else f"{v:+.1f}" for v in r["uptake_error_pct"].values())
        if r.get("misaligned_uptake_pct"):
            up += "  (misalignment alone, reference masks % " + " ".join(
                f"{v:+.1f}" for v in r["misaligned_uptake_pct"].values()) + ")"
        les = ""
        if r.get("organ_lesions"):
            les += "  organ lesions " + " ".join(f"{o} {n} ({v} + {z} mL)" for o, (n, v, z) in r["organ_lesions"].items())
        if r.get("parenchyma_error_pct"):
            les += "  liver vs true parenchyma (outline / parenchyma) % " + " / ".join(f"{v:+.1f}" for v in r["parenchyma_error_pct"].values())
        if r.get("lesion_taken_pct") is not None:
            les += "  lesions in organs: " + ("; ".join(f"{n} {o} {v:.0f} %" for n, t in r["lesion_taken_pct"].items()
                                                      for o, v in t.items()
                                                      if not n.startswith("liver_met") or o != "liver")
                                          or "none")
        if r.get("marrow_in_bodies_pct") is not None:
            les += f"  marrow VOI in the reference bodies {r['marrow_in_bodies_pct']:.0f} %"
        if r.get("marrow_uptake_to_coldest"):
            les += "  marrow VOI uptake / coldest " + " ".join(
                f"{n} {v:.2f}" for n, v in sorted(r["marrow_uptake_to_coldest"].items()))
            les += f" (left out: {', '.join(r['marrow_excluded'])})" if r.get("marrow_excluded") else ""
        ghost = [f"{o} {v:.0f} mL" for o, v in r.get("volume_ml", {}).items() if r["dice"][o] is None and v > 0]
        if ghost:
            les += "  found where the reference has none: " + ", ".join(ghost)
        lines.append(f"{r['case']:<30}{r.get('atlas', ''):<7}{d}  {lv:<11} {r['qc']:<5}{r['seconds']:>5.1f}{fails}{up}{les}")
    return "\n".join(lines)


def _organ_mm(value: str) -> tuple[str, float]:
    """``spleen:15`` -> ("spleen", 15.0) for ``--enlarge``."""
    organ, _, mm = value.partition(":")
    if organ not in ORGANS or not mm:
        raise argparse.ArgumentTypeError(f"{value!r}: expected ORGAN:MM with ORGAN one of {', '.join(ORGANS)}")
    return organ, float(mm)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sample_data.seg_regression", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    p.add_argument("--cases", default="AF_2mm,AF_3mm,AF_4mm,AM_2mm,AM_3mm,AM_4mm,AF_3mm_abdomen,totalseg,sample")
    p.add_argument("--anchor", action="store_true",
                   help="give the reference L3 centre as --vertebra-level (organs judged apart from the levels)")
    p.add_argument("--atlas", choices=("none", "loo", "all"), default="none",
                   help="organs by atlas registration with the ICRP-110 phantoms: none (the rules), "
                        "loo (an ICRP case without its own phantom: the honest test), all")
    p.add_argument("--scale", type=lambda v: tuple(float(x) for x in v.split(",")), default=None,
                   metavar="XY,Z", help="ICRP-110 cases: stretch the phantom in-plane and axially (e.g. 1.2,1.0)")
    p.add_argument("--spect", nargs="?", const="uniform", choices=("uniform", "realistic", "early", "sstr", "antibody"),
                   help="ICRP-110 and TotalSegmentator cases: a simulated reference SPECT for the segmenter, and the uptake error; "
                        "uniform organ uptake (default), or realistic (sample_data.seg_spect: cortex, medulla, "
                        "hot renal pelvis, hot spleen, bowel, a node beside the left kidney and a liver "
                        "metastasis near the right one; also reports the share of each lesion an organ took), "
                        "or early (the same at an early session's lower contrast), or sstr (a somatostatin-"
                        "receptor ligand at 24 h: spleen hotter than the kidneys, hot adrenals), or antibody (blood pool, liver and spleen hot, kidneys cold: sample_data.seg_spect.ANTIBODY_UPTAKE); TotalSegmentator: one uptake "
                        "per organ at the same contrasts (sample_data.seg_regression.TOTALSEG_UPTAKE)")
    p.add_argument("--liver-mets", type=float, default=0.0, metavar="FRACTION",
                   help="ICRP-110 cases with --spect realistic, early, sstr or antibody: hot liver metastases (10 x the liver's "
                        "uptake, 8-20 mm radius) filling this fraction of the liver, e.g. 0.15")
    p.add_argument("--spect-noise", type=float, default=0.05, metavar="SD",
                   help="with --spect: relative noise SD of the simulated "
                        "SPECT's voxels (default 0.05; a real Lu-177 SPECT's organ voxels: about 0.1-0.2)")
    p.add_argument("--spect-fwhm", type=float, default=12.0, metavar="MM",
                   help="the simulated SPECT's resolution, Gaussian FWHM in mm (default 12: Lu-177 with a "
                        "medium-energy collimator and resolution recovery; without it about 18-20)")
    p.add_argument("--cyst", type=float, default=0.0, metavar="RADIUS_MM",
                   help="ICRP-110 cases: an exophytic simple cyst (5 HU, no uptake) of this radius on the right "
                        "kidney's lateral surface, left out of the reference kidney, e.g. 20")
    p.add_argument("--enlarge", type=_organ_mm, default=None, metavar="ORGAN:MM",
                   help="ICRP-110 cases: grow one organ (liver, spleen, kidney_left, kidney_right) by up to MM "
                        "over the fat and bowel around it (hepatomegaly, splenomegaly), e.g. spleen:15")
    p.add_argument("--remove", default=None, choices=("kidney_left", "kidney_right", "spleen"),
                   help="ICRP-110 cases: the phantom without this organ (nephrectomy, splenectomy; its place "
                        "filled with the fat and bowel around it), declared absent to the segmenter")
    p.add_argument("--undeclared", action="store_true",
                   help="with --remove: do not tell the segmenter and the gate (what happens when nobody says)")
    p.add_argument("--fov", default=None, metavar="NAME",
                   help="ICRP-110 cases: another field of view (sample_data.icrp110.fov_z_range), e.g. "
                        "bases:40:10 (from 10 mm into the sacrum to 40 mm above the lung bases)")
    p.add_argument("--rebin", type=float, default=None, metavar="MM",
                   help="ICRP-110 cases: the case's CT as a coarse acquisition rebinned to MM isotropic voxels "
                        "(linear interpolation), e.g. AF_4mm with --rebin 2: 4 x 4 x 5 mm made into 2 mm voxels")
    p.add_argument("--hu-offset", type=float, default=0.0, metavar="HU",
                   help="every case: the segmenter sees the CT with the body read HU off (calibration, beam "
                        "hardening, tube voltage), e.g. 15")
    p.add_argument("--spect-shift", type=lambda v: tuple(float(x) for x in v.split(",")), default=None,
                   metavar="X,Y,Z", help="with --spect: the SPECT lies X,Y,Z mm (RAS) from its CT (breathing, patient "
                                         "motion), e.g. 0,0,8")
    args = p.parse_args(argv)
    subjects = ()
    if args.atlas != "none":
        from sample_data.icrp110 import atlas_subjects

        subjects = atlas_subjects(args.shared / "data" / "icrp110" / "Input_GateLab_2019-04-02.zip")
    rows = []
    for name in args.cases.split(","):
        icrp = name[:2] in ("AF", "AM")
        rows.append(run_case(name, args.shared, args.anchor, _atlas_for(name, args.atlas, subjects),
                             spect=args.spect if icrp or name == "totalseg" else False, scale=args.scale if icrp else None,
                             enlarge=args.enlarge if icrp else None, liver_mets=args.liver_mets if icrp else 0.0,
                             spect_noise=args.spect_noise, cyst_mm=args.cyst if icrp else 0.0,
                             spect_fwhm_mm=args.spect_fwhm, fov=args.fov if icrp else None,
                             rebin_mm=args.rebin if icrp else None, hu_offset=args.hu_offset,
                             spect_shift_mm=args.spect_shift, remove=args.remove if icrp else None,
                             declare_removed=not args.undeclared))
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_rows(rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
