"""Atlas registration of labelled CTs onto a patient's CT (kidneys, liver, spleen).

Each atlas subject is a CT (HU) with organ labels (DESIGN ids). For a target CT:

1. both are brought to a working grid (``working_mm``, axis-aligned, HU clipped to
   [-1000, 1000], lightly smoothed);
2. the superior-inferior offset is found by matching slice profiles (fraction of the
   body that is lung, fraction that is bone) over every shift, so that an abdominal
   field of view finds its place in a trunk atlas without any landmark;
3. an affine transform (Mattes mutual information, target body mask, three
   resolution levels) and a deformable one (fast symmetric-forces demons on HU
   clipped to [-300, 300], three levels) map the target grid onto the atlas. When the
   patient's L2-L4 are known (the CT's own level landmarks agree, or the operator named
   a level), the affine's superior-inferior translation is not optimised but set from them,
   the patient's L3 on the atlas's (:func:`z_map_from_levels`); only the scale about L3
   is optimised along z: on a field of view with little lung the mutual information
   drifts along z (see :func:`register_subject`);
4. each organ's indicator is smoothed and carried onto the target grid
   (:mod:`pipeline.segment.atlas_carry`): a prior probability per organ, averaged over
   the atlas subjects.

:mod:`pipeline.segment.atlas_refine` turns the priors and the target CT into masks.
The atlas subjects are read from a folder or the ICRP-110 archive
(:mod:`pipeline.segment.atlas_store`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import InputError
from ..image import Image
from ..imageio import to_sitk
from . import labels as L
from .atlas_refine import histogram_mode_hu
from .components import fill_holes, largest_component

__all__ = ["AtlasSubject", "AtlasOptions", "register_subject", "single_threaded_itk", "z_offset_from_profiles",
           "z_map_from_levels", "subject_levels_z", "ATLAS_ORGANS", "ATLAS_VERTEBRAE"]

#: The organs an atlas carries onto the target (DESIGN ids).
ATLAS_ORGANS = {"kidney_left": L.KIDNEY_LEFT, "kidney_right": L.KIDNEY_RIGHT, "liver": L.LIVER,
                "spleen": L.SPLEEN}

#: Vertebral bodies an atlas subject may carry, with ids used only in atlas label maps
#: (a spectdose label map has one id, 6, for the three).
ATLAS_VERTEBRAE = {"L2": 22, "L3": 23, "L4": 24}


@dataclass(frozen=True)
class AtlasSubject:
    """One labelled CT of the atlas.

    Attributes
    ----------
    name : str
    ct : Image
        HU.
    labels : Image
        DESIGN ids on the CT grid (at least the organs of :data:`ATLAS_ORGANS`).
    source : str
        Provenance (data set, licence) of the subject.
    """

    name: str
    ct: Image
    labels: Image
    source: str = ""


@dataclass(frozen=True)
class AtlasOptions:
    """Settings of the atlas registration.

    Parameters
    ----------
    working_mm : float
        Isotropic voxel size of the registration grid, mm.
    z_search_mm : float
        Largest superior-inferior shift tried by the profile match, mm (either way).
    demons_iterations : int
        Demons iterations at the two coarse levels (4 and 2 times ``working_mm``).
    demons_final_iterations : int
        Demons iterations at ``working_mm`` (0: stop at twice ``working_mm``; this
        level costs about eight times the others). 60 and 15 gave the same leave-one-out
        Dice on the ICRP-110 cases as 100 and 30 (within 0.02) in half the time.
    affine_sampling : float
        Fraction of the patient's body voxels sampled by the affine metric at each level.
    affine_finest_shrink : int
        The affine registration stops at ``working_mm`` times this (1, 2 or 4); the demons
        registration that follows always reaches ``working_mm``.
    demons_sigma_vox : float
        Gaussian regularisation of the demons displacement field, working voxels (SD).
    prior_sigma_mm : float
        Smoothing of each warped organ indicator before it becomes a prior, mm (SD).
    margin_mm : float, optional
        When given, the registration uses only the patient's slab from this far below
        the atlas organs to this far above them (twice that on the atlas side), mm.
        Default None (whole field of view): on the ICRP-110 phantoms a 100 mm slab
        registered worse (kidney Dice 0.58 against 0.77) for a third less time.
    demons_margin_mm : float, optional
        The deformable (demons) step runs only on the patient's slab from this far below
        to this far above the atlas structures (organs and L2-L4) as placed by the affine
        step, mm; outside it the transform is the affine. None: the whole field of view.
        The affine always sees the whole field of view (see ``margin_mm``).
    match_histogram : bool
        Before the demons step, map the atlas CT's numbers onto the patient's, piecewise linear
        through the fat and soft-tissue peaks of both (:func:`tissue_peaks_hu`). The demons force
        assumes that the same tissue reads the same number in both images; the atlas CT is made
        from a textbook HU table (liver 60, spleen 50, muscle 50, kidney 30 HU), a real CT is not
        (the TotalSegmentator example: liver 45, spleen 32, paraspinal muscle about 26, kidneys
        7 HU; soft-tissue peak 17.5 against the atlas's 47.5 HU). Peaks rather than quantiles
        (SimpleITK's histogram matching): a quantile moves with the share of each tissue in the
        field of view (a patient with more fat than the atlas person), a peak does not. Atlas of
        both phantoms, CT only, without / with: TotalSegmentator 0.93 / 0.82 / 0.91 / 0.65 ->
        0.94 / 0.80 / 0.91 / 0.77 (kidneys, liver, spleen); with its antibody-like simulated SPECT
        spleen 0.86 -> 0.91, right kidney 0.88 -> 0.82. The ICRP-110 cases' CTs use the atlas's
        own table: their peaks agree and the mapping is the identity (leave-one-out results
        unchanged). Quantile matching gave TotalSegmentator 0.94 / 0.82 / 0.91 / 0.79.
    """

    working_mm: float = 4.0
    z_search_mm: float = 600.0
    demons_iterations: int = 60
    demons_final_iterations: int = 15
    affine_sampling: float = 0.25
    affine_finest_shrink: int = 2
    demons_sigma_vox: float = 2.0
    prior_sigma_mm: float = 3.0
    margin_mm: float | None = None
    demons_margin_mm: float | None = 60.0
    match_histogram: bool = True


# --------------------------------------------------------------------------- working grid
def _axis_aligned(img: sitk.Image, spacing_mm: float, default: float, interp=sitk.sitkLinear) -> sitk.Image:
    """``img`` resampled on an identity-direction grid of ``spacing_mm`` covering it."""
    size = np.array(img.GetSize())
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    pts = np.array([img.TransformContinuousIndexToPhysicalPoint([float(c) for c in cc]) for cc in corners])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    n = np.maximum(1, np.round((hi - lo) / spacing_mm).astype(int) + 1)
    return sitk.Resample(img, [int(v) for v in n], sitk.Transform(), interp, [float(v) for v in lo],
                         (spacing_mm,) * 3, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), default)


def _working(ct: Image, spacing_mm: float) -> sitk.Image:
    s = sitk.Cast(to_sitk(ct), sitk.sitkFloat32)
    s = sitk.SmoothingRecursiveGaussian(s, 0.5 * spacing_mm)
    s = _axis_aligned(s, spacing_mm, -1000.0)
    return sitk.Clamp(s, sitk.sitkFloat32, -1000.0, 1000.0)


def _body_mask(a: np.ndarray) -> np.ndarray:
    """Body on a working array (z, y, x): > -400 HU, largest component, holes filled per slice."""
    m, _ = largest_component(a > -400.0)
    return fill_holes(m.transpose(1, 2, 0), per_slice=True).transpose(2, 0, 1)


def _profiles(a: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Per slice (z, y, x array): fraction of the body that is lung and that is bone, shape (nz, 2)."""
    area = np.maximum(body.sum(axis=(1, 2)), 1)
    lung = ((a < -500.0) & body).sum(axis=(1, 2)) / area
    bone = ((a > 200.0) & body).sum(axis=(1, 2)) / area
    p = np.stack([lung, 4.0 * bone], axis=1)  # bone fractions are about a quarter of lung fractions
    p[body.sum(axis=(1, 2)) < 0.02 * body.sum(axis=(1, 2)).max()] = np.nan  # no body in the slice
    return p


def z_offset_from_profiles(target: sitk.Image, atlas: sitk.Image, search_mm: float) -> tuple[float, float]:
    """Superior-inferior shift (mm) that best aligns the atlas's slice profiles to the target's.

    Both images on identity-direction grids of the same spacing. The shift ``dz`` maps a
    target point ``z`` to atlas ``z + dz``. Returns ``(dz_mm, cost)`` (mean squared
    profile difference over the target's slices).
    """
    sp = target.GetSpacing()[2]
    ta, aa = sitk.GetArrayViewFromImage(target), sitk.GetArrayViewFromImage(atlas)
    pt, pa = _profiles(ta, _body_mask(ta)), _profiles(aa, _body_mask(aa))
    zt = target.GetOrigin()[2] + sp * np.arange(ta.shape[0])
    za0 = atlas.GetOrigin()[2]
    best = (0.0, np.inf)
    valid_t = ~np.isnan(pt[:, 0])
    for dz in np.arange(-search_mm, search_mm + 0.5 * sp, sp):
        ka = np.round((zt + dz - za0) / sp).astype(int)
        ok = valid_t & (ka >= 0) & (ka < pa.shape[0])
        if ok.sum() < 0.8 * valid_t.sum():
            continue
        d = pt[ok] - pa[ka[ok]]
        d = d[~np.isnan(d).any(axis=1)]
        if len(d) < 0.8 * valid_t.sum():
            continue
        cost = float(np.mean(d ** 2))
        if cost < best[1]:
            best = (float(dz), cost)
    if not np.isfinite(best[1]):
        raise InputError(None, "atlas: the CT's field of view overlaps no atlas subject")
    return best


# --------------------------------------------------------------------------- registration
def _crop_z(img: sitk.Image, z_lo: float, z_hi: float) -> sitk.Image:
    """Slices of an identity-direction image whose centres lie in [z_lo, z_hi] mm (at least 8)."""
    n = img.GetSize()[2]
    z = img.GetOrigin()[2] + img.GetSpacing()[2] * np.arange(n)
    k = np.flatnonzero((z >= z_lo) & (z <= z_hi))
    if k.size < 8:
        return img
    return img[:, :, int(k[0]):int(k[-1]) + 1]


def _translation_init(fixed: sitk.Image, moving: sitk.Image, dz: float) -> sitk.AffineTransform:
    """Affine (fixed -> moving points) with the profile shift in z and body centroids in x, y."""
    fa, ma = sitk.GetArrayViewFromImage(fixed), sitk.GetArrayViewFromImage(moving)
    fb = _body_mask(fa)
    zf = fixed.GetOrigin()[2] + fixed.GetSpacing()[2] * np.arange(fa.shape[0])
    km = np.round((zf + dz - moving.GetOrigin()[2]) / moving.GetSpacing()[2]).astype(int)
    ok = (km >= 0) & (km < ma.shape[0])
    mb = _body_mask(np.asarray(ma)[np.clip(km, 0, ma.shape[0] - 1)]) & ok[:, None, None]
    fb = fb & ok[:, None, None]
    cf = np.array(fixed.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.argwhere(fb).mean(0)[::-1]]))
    cm_idx = np.argwhere(mb).mean(0)[::-1]
    cm = np.array(moving.TransformContinuousIndexToPhysicalPoint([cm_idx[0], cm_idx[1], 0.0]))
    t = sitk.AffineTransform(3)
    t.SetCenter([float(v) for v in cf])
    t.SetTranslation([float(cm[0] - cf[0]), float(cm[1] - cf[1]), float(dz)])
    return t


def subject_levels_z(subject: AtlasSubject) -> dict:
    """Centre z (RAS+, mm) of each of the subject's L2-L4 bodies (:data:`ATLAS_VERTEBRAE`) it has."""
    lab = np.asarray(subject.labels.array)
    out = {}
    for name, lid in ATLAS_VERTEBRAE.items():
        idx = np.argwhere(lab == lid)
        if idx.size:
            out[name] = float(subject.labels.index_to_world(idx.mean(axis=0)[None].astype(float))[0, 2])
    return out


def z_map_from_levels(target_levels_z: dict, subject: AtlasSubject) -> dict | None:
    """The superior-inferior part of the patient -> atlas map, from the L2-L4 of both.

    ``z_atlas = z + offset_mm`` at the patient's L3, the offset the median over L2, L3 and L4 of
    the atlas's body centre minus the patient's (one misplaced body moves it at most to another
    level's offset, not by a third of its error as a mean would). The
    registration starts from a scale of 1 about L3 and optimises it (:func:`register_subject`).
    A scale from the detected bodies' spacing was worse (ICRP-110 AF at 3 mm, the AM phantom as
    the atlas, the true L3 as the anchor: the detected L2-L4 gave 1.16 where the phantoms' own is
    0.97, and on six fields of view kidneys 0.75-0.87 / 0.70-0.82 and spleens 0.40-0.79 against
    0.88-0.90 / 0.77-0.85 and 0.73-0.79 starting from 1).

    Parameters
    ----------
    target_levels_z : dict
        Some or all of ``"L2"``, ``"L3"``, ``"L4"`` -> centre z of the patient's body (RAS+, mm);
        one level alone (an operator's anchor) gives that level's offset.
    subject : AtlasSubject

    Returns
    -------
    dict or None
        ``offset_mm`` and ``per_level_offset_mm``; None when no level is on both sides or the
        patient's are not in order from L4 up.
    """
    a = subject_levels_z(subject)
    names = [n for n in ("L4", "L3", "L2") if n in a and n in target_levels_z]
    if not names:
        return None
    t = [float(target_levels_z[n]) for n in names]
    if any(lo >= hi for lo, hi in zip(t[:-1], t[1:])):
        return None
    per = {n: round(a[n] - z, 2) for n, z in zip(names, t)}
    return {"offset_mm": float(np.median(list(per.values()))), "per_level_offset_mm": per}


def _affine_part(t: sitk.Transform) -> sitk.AffineTransform:
    """The affine transform that registration returned (possibly wrapped in a composite)."""
    if t.GetName() == "CompositeTransform":
        t = sitk.CompositeTransform(t).GetNthTransform(0)
    return sitk.AffineTransform(t)


def _with_z_row(init: sitk.AffineTransform, z_map: dict, centre_z_mm: float) -> sitk.AffineTransform:
    """``init`` centred at ``centre_z_mm`` (the patient's L3) with its superior-inferior row
    ``z' = centre_z_mm + offset_mm + 1.0 * (z - centre_z_mm)`` (:func:`z_map_from_levels`): no tilt
    term, and a scale that the optimiser may change about that centre."""
    c = list(init.GetCenter())
    c[2] = float(centre_z_mm)
    init.SetCenter(c)  # the translation keeps its meaning: the matrix is the identity here
    m = list(init.GetMatrix())
    m[6:9] = [0.0, 0.0, 1.0]
    init.SetMatrix(m)
    t = list(init.GetTranslation())
    t[2] = z_map["offset_mm"]
    init.SetTranslation(t)
    return init


def register_subject(target_ct: Image, subject: AtlasSubject, options: AtlasOptions = AtlasOptions(),
                     target_levels_z: dict | None = None):
    """Transform mapping target points to the atlas subject's (affine then demons).

    ``target_levels_z`` (the patient's L2-L4 centres, RAS+ z, mm), when given, pins the affine
    along z (:func:`z_map_from_levels`): the patient's L3 maps onto the atlas's L3 and z does not
    depend on x or y; the affine optimises the scale along z about L3 and the in-plane rows
    (scales, shears, tilts, translations), and the demons step still deforms in every direction.
    Why: on fields of view from the lung bases to the sacrum the mutual information drifts along
    z even when started at the right place (ICRP-110 at 3 mm, the other phantom as the atlas,
    10-60 mm of sacrum and 20-80 mm of lung, five fields of view per phantom: the atlas's L3
    10-38 mm off on eight and 166 mm on one, kidney prior Dice 0.00-0.55 where the trunk gives
    0.52-0.64; pinned at the true L2-L4: L3 within 2 mm, kidney prior Dice 0.54-0.68 and spleen
    0.55-0.72 on every field of view, the trunk's 0.58-0.69 and 0.66-0.67).

    Returns
    -------
    transform : sitk.CompositeTransform
        Target physical point -> atlas physical point.
    info : dict
        ``dz_mm`` (profile shift), ``profile_cost``, ``affine_metric`` (Mattes MI),
        ``ct_number_matching`` (the fat and soft-tissue peaks of atlas and patient, HU, and
        whether the atlas CT was mapped; None without ``match_histogram``), ``demons_rms_change``,
        ``z_map`` (:func:`z_map_from_levels` and the optimised ``z_scale``; None when the patient's
        levels were not given).
    """
    sp = options.working_mm
    fixed = _working(target_ct, sp)
    moving = _working(subject.ct, sp)
    dz, cost = z_offset_from_profiles(fixed, moving, options.z_search_mm)
    # register only the slab that holds the atlas organs (plus margins): the rest of a
    # trunk or whole-body CT costs time and does not move the organs
    lab = np.asarray(subject.labels.array)
    organ = np.isin(lab, list(ATLAS_ORGANS.values()))
    if organ.any() and options.margin_mm is not None:
        zs = subject.labels.index_to_world(np.argwhere(organ).astype(float))[:, 2]  # RAS z = LPS z
        lo_a, hi_a = float(zs.min()), float(zs.max())
        fixed = _crop_z(fixed, lo_a - dz - options.margin_mm, hi_a - dz + options.margin_mm)
        moving = _crop_z(moving, lo_a - 2.0 * options.margin_mm, hi_a + 2.0 * options.margin_mm)
    z_map = None if target_levels_z is None else z_map_from_levels(target_levels_z, subject)
    if z_map is not None:
        dz = z_map["offset_mm"]  # also for the in-plane initialisation (body centroids over the same slices)
    init = _translation_init(fixed, moving, dz)
    if z_map is not None:
        init = _with_z_row(init, z_map, float(np.median(list(target_levels_z.values()))))

    fa = sitk.GetArrayFromImage(fixed)
    fmask = sitk.GetImageFromArray(ndi.binary_dilation(_body_mask(fa), iterations=2).astype(np.uint8))
    fmask.CopyInformation(fixed)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(options.affine_sampling, 1)
    reg.SetMetricFixedMask(fmask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 150, relaxationFactor=0.7)
    reg.SetOptimizerScalesFromPhysicalShift()
    levels = [f for f in (4, 2, 1) if f >= options.affine_finest_shrink]
    reg.SetShrinkFactorsPerLevel(levels)
    reg.SetSmoothingSigmasPerLevel([{4: 2.0, 2: 1.0, 1: 0.0}[f] for f in levels])
    reg.SetInitialTransform(init, inPlace=False)
    if z_map is not None:  # parameters: the matrix row by row, then the translation
        reg.SetOptimizerWeights([1.0] * 6 + [0.0, 0.0, 1.0] + [1.0, 1.0, 0.0])
    with single_threaded_itk():  # reproducible to the bit
        affine = reg.Execute(fixed, moving)
    affine_metric = float(reg.GetMetricValue())
    if z_map is not None:
        z_map["z_scale"] = round(_affine_part(affine).GetMatrix()[8], 4)

    moved = sitk.Resample(moving, fixed, affine, sitk.sitkLinear, -1000.0)
    f_full = sitk.Clamp(fixed, sitk.sitkFloat32, -300.0, 300.0)
    f2, m2 = f_full, sitk.Clamp(moved, sitk.sitkFloat32, -300.0, 300.0)
    matching = None
    if options.match_histogram:
        m2, matching = _matched_to(m2, f2)
    slab = _structures_z_range(subject, affine) if options.demons_margin_mm is not None else None
    if slab is not None:
        lo, hi = slab[0] - options.demons_margin_mm, slab[1] + options.demons_margin_mm
        f2, m2 = _crop_z(f2, lo, hi), _crop_z(m2, lo, hi)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(options.demons_iterations)
    demons.SetStandardDeviations(options.demons_sigma_vox)
    disp = None
    for shrink in (4, 2, 1):
        if shrink == 1 and options.demons_final_iterations == 0:
            break
        demons.SetNumberOfIterations(options.demons_iterations if shrink > 1 else options.demons_final_iterations)
        fs = sitk.Shrink(f2, [shrink] * 3) if shrink > 1 else f2
        ms = sitk.Shrink(m2, [shrink] * 3) if shrink > 1 else m2
        if disp is None:
            disp = demons.Execute(fs, ms)
        else:
            start = sitk.Resample(disp, fs, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
            disp = demons.Execute(fs, ms, start)
    # on the whole grid: zero displacement (the affine alone) outside the demons slab
    disp = sitk.Resample(disp, f_full, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    field = sitk.DisplacementFieldTransform(sitk.Cast(disp, sitk.sitkVectorFloat64))
    comp = sitk.CompositeTransform(3)
    comp.AddTransform(affine)
    comp.AddTransform(field)  # the last added acts first: target -> (demons) -> (affine) -> atlas
    info = {"subject": subject.name, "dz_mm": dz, "profile_cost": cost, "affine_metric": affine_metric,
            "ct_number_matching": matching, "z_map": z_map,
            "demons_rms_change": float(demons.GetRMSChange()),
            "demons_slab_z_mm": None if slab is None else [round(float(f2.GetOrigin()[2]), 1), round(float(
                f2.GetOrigin()[2] + f2.GetSpacing()[2] * (f2.GetSize()[2] - 1)), 1)]}
    return comp, info


@contextmanager
def single_threaded_itk():
    """ITK's default number of threads at one inside the block, restored after it.

    The Mattes mutual information sums its joint histogram over threads in whatever order they
    finish: with two threads the same registration of the TotalSegmentator CT gave a left kidney
    of 5248 or 5622 voxels from one run to the next (the metric differing in its fourth digit).
    Single-threaded it is the same to the bit on every run (the demons step is, at any thread
    count). The registration's own ``SetNumberOfThreads(1)`` does not reach the metric; the
    process default does. Nested blocks restore what they found.
    """
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def tissue_peaks_hu(a: np.ndarray) -> tuple[float, float] | None:
    """CT numbers of the fat peak and of the soft-tissue peak of an image, HU.

    The modes of the values in [-200, -40] and in [-20, 150] HU (5 HU histogram smoothed by
    10 HU). A mode does not depend on how much fat the field of view holds, as a quantile would
    (a patient with more fat than the atlas person moves every quantile); the soft-tissue peak is
    that of the most abundant soft tissue (in a trunk CT muscle, with liver and bowel close by).
    None when either range holds fewer than 1000 voxels.
    """
    peaks = []
    for lo, hi in ((-200.0, -40.0), (-20.0, 150.0)):
        v = a[(a >= lo) & (a <= hi)]
        if v.size < 1000:
            return None
        peaks.append(histogram_mode_hu(v, lo, hi))
    return peaks[0], peaks[1]


def _matched_to(moving: sitk.Image, fixed: sitk.Image, max_offset_hu: float = 80.0) -> tuple[sitk.Image, dict]:
    """``moving``'s CT numbers mapped onto ``fixed``'s (both clamped to [-300, 300] HU).

    Piecewise linear through the fat and soft-tissue peaks (:func:`tissue_peaks_hu`), with -300
    and 300 HU fixed: the same tissue then reads about the same number in both. Unchanged when
    a peak is missing or the peaks differ by more than ``max_offset_hu``. Returns the image and
    a record: ``atlas_peaks_hu`` and ``patient_peaks_hu`` (fat, soft tissue; None when not
    found) and ``applied``.
    """
    m = sitk.GetArrayFromImage(moving)
    pm, pf = tissue_peaks_hu(m), tissue_peaks_hu(sitk.GetArrayViewFromImage(fixed))
    rec = {"atlas_peaks_hu": None if pm is None else [round(v, 1) for v in pm],
           "patient_peaks_hu": None if pf is None else [round(v, 1) for v in pf], "applied": False}
    if pm is None or pf is None or max(abs(a - b) for a, b in zip(pm, pf)) > max_offset_hu:
        return moving, rec
    out = sitk.GetImageFromArray(np.interp(m, [-300.0, *pm, 300.0], [-300.0, *pf, 300.0]).astype(np.float32))
    out.CopyInformation(moving)
    rec["applied"] = True
    return out, rec


def _structures_z_range(subject: AtlasSubject, affine: sitk.Transform) -> tuple[float, float] | None:
    """Patient z range (mm) of the subject's organs and L2-L4 under ``affine`` (patient -> subject).

    The corners of the structures' bounding box in the subject are mapped back with the
    inverse affine; None when the subject has none of the structures.
    """
    lab = np.asarray(subject.labels.array)
    idx = np.argwhere(np.isin(lab, [*ATLAS_ORGANS.values(), *ATLAS_VERTEBRAE.values()]))
    if idx.size == 0:
        return None
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])], float)
    world = subject.labels.index_to_world(corners)  # RAS
    inv = affine.GetInverse()
    z = [inv.TransformPoint((float(-p[0]), float(-p[1]), float(p[2])))[2] for p in world]  # LPS points
    return float(min(z)), float(max(z))
