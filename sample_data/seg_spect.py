"""A non-uniform reference SPECT for the segmentation regression, with hot spots that are not organs.

:func:`sample_data.seg_regression.simulated_spect` gives every organ a uniform uptake. A real
Lu-177 peptide or PSMA scan at about 24 h is not uniform, and its hot spots are not all organs.
:func:`realistic_spect` builds, from an ICRP-110 phantom's own organ ids on the CT grid:

- kidneys non-uniform: cortex 10, medulla 5, renal pelvis 15 (urine);
- spleen 8 (next to the left kidney: somatostatin-receptor ligands give the spleen the highest
  uptake of the abdomen in many patients), liver 2, small intestine 1.5, colon 1, stomach 1,
  the rest of the body 0.3 (relative activity concentrations; a plausible 24 h pattern, not a
  measured one);
- :data:`EARLY_UPTAKE`, a plausible early (1-4 h) pattern of the same ligands: lower contrast,
  kidney cortex 6, medulla 3, renal pelvis 25 and bladder urine 40, spleen 3, liver 2.5, heart
  blood 4, bowel 1-1.2, the rest of the body 1.0 (a kidney-to-background ratio of 6 instead
  of 33: the reference SPECT of the workflow is the earliest session unless one is named);
- :data:`SSTR_UPTAKE`, a somatostatin-receptor ligand at about 24 h: the spleen (16) hotter
  than the renal cortex (10), hot adrenals on the kidneys' upper poles (10), pancreas 4, liver 5;
- :data:`ANTIBODY_UPTAKE`, a radiolabelled antibody at 1-3 days: blood pool 8, liver and spleen
  6, kidneys 3 (blood only), the rest 1.5: kidneys colder than their neighbours;
- two lesions of 12 mm radius at uptake 15, placed where they can fool a segmenter: a
  para-aortic lymph node 8 mm medial to the left kidney at its hilum (soft tissue, 40 HU, written
  into the CT too), and a liver metastasis in the liver within 40 mm of the right kidney;

- optionally (``liver_mets_fraction``) hot liver metastases, 8-20 mm radius, at 10 times the
  liver's uptake, until they fill that fraction of the liver: the neuroendocrine patients
  treated with Lu-177 somatostatin-receptor ligands often have many;

then the same camera model as the uniform one (Gaussian blur of ``fwhm_mm``, isotropic
``voxel_mm`` grid, multiplicative noise). The lesions are returned so that the regression can
also check that no kidney took them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REALISTIC_UPTAKE", "EARLY_UPTAKE", "SSTR_UPTAKE", "ANTIBODY_UPTAKE", "realistic_spect", "camera", "imaged"]

#: Relative uptake per ICRP-110 organ id group (see the module docstring).
REALISTIC_UPTAKE = {
    (89, 92): 10.0,  # kidney cortex
    (90, 93): 5.0,  # kidney medulla
    (91, 94): 15.0,  # renal pelvis (urine)
    (127,): 8.0,  # spleen
    (95,): 2.0,  # liver
    (74,): 1.5,  # small intestine
    tuple(range(76, 87)): 1.0,  # colon wall and contents
    (72, 73): 1.0,  # stomach wall and contents
}
REALISTIC_REST = 0.3
#: Relative uptake of an early session (see the module docstring).
EARLY_UPTAKE = {
    (89, 92): 6.0,  # kidney cortex
    (90, 93): 3.0,  # kidney medulla
    (91, 94): 25.0,  # renal pelvis (urine)
    (138,): 40.0,  # urine in the bladder
    (127,): 3.0,  # spleen
    (95,): 2.5,  # liver
    (88,): 4.0,  # blood in the heart
    (74,): 1.2,  # small intestine
    tuple(range(76, 87)): 1.0,  # colon wall and contents
    (72, 73): 1.2,  # stomach wall and contents
}
EARLY_REST = 1.0
#: Relative uptake of a somatostatin-receptor ligand (Lu-177 DOTATATE) at about 24 h: the spleen
#: is the hottest organ of the abdomen, above the kidneys, and the adrenals (on the kidneys' upper
#: poles), the pancreas and the stomach wall take up too (receptor-bearing tissues). The ratios
#: follow the order of typical 24 h SUVs of that ligand (spleen about 1.5 times the kidneys,
#: liver about half the kidneys); they are a plausible pattern, not a measurement.
SSTR_UPTAKE = {
    (89, 92): 10.0,  # kidney cortex
    (90, 93): 6.0,  # kidney medulla
    (91, 94): 6.0,  # renal pelvis (less urine at 24 h)
    (127,): 16.0,  # spleen
    (95,): 5.0,  # liver
    (1, 2): 10.0,  # adrenals
    (113,): 4.0,  # pancreas
    (72,): 2.5,  # stomach wall
    (74,): 1.5,  # small intestine
    tuple(range(76, 87)): 1.0,  # colon wall and contents
}
SSTR_REST = 0.3
#: Relative uptake of a radiolabelled antibody at about 1-3 days: the blood pool is the hottest
#: tissue (the IgG circulates for days), liver and spleen take it up (catabolism), the kidneys
#: only see blood (an intact antibody is not filtered): they are barely above the background,
#: and colder than their neighbours liver and spleen. A plausible pattern, not a measurement.
ANTIBODY_UPTAKE = {
    (89, 92, 90, 93, 91, 94): 3.0,  # kidneys: cortex, medulla, pelvis alike (blood)
    (127,): 6.0,  # spleen
    (95,): 6.0,  # liver
    (10,): 8.0,  # blood vessels of the trunk (aorta, vena cava)
    (87, 88): 8.0,  # heart wall and blood
    (96, 98): 4.0,  # blood of the lungs
    (52, 53): 3.0,  # lumbar spine spongiosa (red marrow)
}
ANTIBODY_REST = 1.5
LESION_UPTAKE = 15.0
LESION_RADIUS_MM = 12.0


def _ball(shape, centre_vox, radius_mm, vs):
    idx = np.indices(shape, dtype=np.float32)
    d2 = sum(((idx[a] - centre_vox[a]) * vs[a]) ** 2 for a in range(3))
    return d2 <= radius_mm ** 2


def realistic_spect(ct, native_on_ct: np.ndarray, fwhm_mm: float = 12.0, voxel_mm: float = 4.8,
                    noise: float = 0.05, seed: int = 0, uptake: dict | None = None, rest: float | None = None,
                    liver_mets_fraction: float = 0.0, liver_lesions: bool = True):
    """The non-uniform SPECT, the CT with the lymph node written in, and the lesion masks.

    Parameters
    ----------
    ct : Image
        The case's CT (HU).
    native_on_ct : numpy.ndarray, shape of ``ct``
        The phantom's ICRP-110 organ ids at the CT's voxel centres (nearest neighbour).
    fwhm_mm, voxel_mm, noise : float
        Camera resolution (mm), SPECT voxel size (mm), relative noise SD.
    seed : int
    uptake : dict, optional
        Relative uptake per tuple of ICRP-110 ids (default :data:`REALISTIC_UPTAKE`; also
        :data:`EARLY_UPTAKE`, :data:`SSTR_UPTAKE`).
    rest : float, optional
        Relative uptake of the rest of the body (default :data:`REALISTIC_REST`).
    liver_mets_fraction : float
        Share of the liver (0-1) given to hot metastases (:func:`_liver_mets`), 0: none.
    liver_lesions : bool
        False: the liver metastases are placed (the same masks and noise) but keep the liver's
        uptake: the lesion-free SPECT of the same case, the reference of the parenchyma's level.

    Returns
    -------
    spect : Image
        Bq/mL (arbitrary scale), on an isotropic ``voxel_mm`` grid over the CT.
    ct_out : Image
        ``ct`` with the lymph node at 40 HU plus the CT's own noise (its SD in the interior of fat).
    lesions : dict
        ``"node_left"`` and ``"liver_met"`` -> bool mask on the CT grid, and ``"liver_mets"``
        with ``liver_mets_fraction``.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    lab = np.asarray(native_on_ct)
    hu = np.asarray(ct.array, np.float32).copy()
    vs = np.asarray(ct.voxel_size_mm, float)
    body = hu > -400.0
    act = np.where(body, REALISTIC_REST if rest is None else rest, 0.0).astype(np.float32)
    for ids, v in (REALISTIC_UPTAKE if uptake is None else uptake).items():
        act[np.isin(lab, ids)] = v
    lesions = {}
    # para-aortic node: medial to the left kidney's hilum, in the kidney's centroid slice (none
    # without a left kidney: a nephrectomy case)
    kid_l = np.isin(lab, (89, 90, 91))
    node = np.zeros(hu.shape, bool)
    if kid_l.any():
        spine_x = float(np.argwhere(np.isin(lab, (51, 52)))[:, 0].mean())
        c = np.argwhere(kid_l).mean(axis=0)
        k = int(round(c[2]))
        pts = np.argwhere(kid_l[:, :, k])
        medial = pts[np.argmin(np.abs(pts[:, 0] - spine_x))]
        step = np.sign(spine_x - medial[0])
        centre = np.array([medial[0] + step * (LESION_RADIUS_MM + 8.0) / vs[0], medial[1], k], float)
        node = _ball(hu.shape, centre, LESION_RADIUS_MM, vs) & body & ~np.isin(lab, (51, 52)) & ~kid_l
        lesions["node_left"] = node
    # liver metastasis: the liver voxel farthest inside the liver among those within 40 mm of the right kidney
    liver = np.isin(lab, (95,))
    kid_r = np.isin(lab, (92, 93, 94))
    # without a right kidney (a nephrectomy case) the deepest point of the whole liver
    near = ndi.distance_transform_edt(~kid_r, sampling=vs) <= 40.0 if kid_r.any() else liver
    inside = ndi.distance_transform_edt(liver, sampling=vs)
    cand = np.where(liver & near, inside, 0.0)
    centre = np.array(np.unravel_index(int(np.argmax(cand)), cand.shape), float)
    lesions["liver_met"] = _ball(hu.shape, centre, LESION_RADIUS_MM, vs) & liver
    act[node] = LESION_UPTAKE
    if liver_lesions:
        act[lesions["liver_met"]] = LESION_UPTAKE
    if liver_mets_fraction > 0:
        mets = _liver_mets(liver & ~lesions["liver_met"], liver_mets_fraction, vs, rng)
        if liver_lesions:
            act[mets] = 10.0 * float(act[liver & ~mets].mean())
        lesions["liver_mets"] = mets
    fat = ndi.binary_erosion((hu > -200) & (hu < 0), iterations=2)  # away from partial volume
    noise_sd = float(np.std(hu[fat])) if fat.any() else 0.0
    hu[node] = 40.0 + noise_sd * rng.standard_normal(int(node.sum())).astype(np.float32)
    ct_out = ct.with_array(hu, unit="HU")

    return camera(ct, act, fwhm_mm, voxel_mm, noise, rng), ct_out, lesions


def _liver_mets(liver: np.ndarray, fraction: float, vs, rng) -> np.ndarray:
    """Balls of 8-20 mm radius centred in the liver (at least 3 voxels deep), cut to it, until
    they fill ``fraction`` of it; bool mask, same shape."""
    from scipy import ndimage as ndi

    pts = np.argwhere(ndi.binary_erosion(liver, iterations=3))
    mets = np.zeros_like(liver)
    while pts.size and mets.sum() < fraction * liver.sum():
        mets |= _ball(liver.shape, pts[rng.integers(len(pts))], rng.uniform(8.0, 20.0), vs) & liver
    return mets


def camera(ct, activity: np.ndarray, fwhm_mm: float, voxel_mm: float, noise: float, rng):
    """A SPECT of ``activity`` (relative, on the CT grid): :func:`imaged` (Gaussian blur of
    ``fwhm_mm``, block average onto an isotropic ``voxel_mm`` grid over the CT), then
    multiplicative Gaussian noise of relative SD ``noise``; Bq/mL at 1000 per unit of ``activity``."""
    sp = imaged(ct, np.asarray(activity, np.float32) * 1000.0, fwhm_mm, voxel_mm)
    arr = np.asarray(sp.array, np.float32)
    arr = arr * (1.0 + noise * rng.standard_normal(arr.shape).astype(np.float32))
    return sp.with_array(np.maximum(arr, 0.0), unit="Bq/mL")


def imaged(ct, concentration: np.ndarray, fwhm_mm: float, voxel_mm: float, ct_direction: bool = False):
    """``concentration`` (on the CT grid, any unit per mL) as a noise-free SPECT sees it.

    Gaussian blur of ``fwhm_mm`` (FWHM, mm) on the CT grid, then a linear, anti-aliased
    resampling onto an isotropic grid of ``voxel_mm`` (mm) covering the CT: identity direction,
    or with ``ct_direction`` the CT's axis directions from the CT's first voxel (an axial HFS
    grid for a DICOM writer).

    Returns
    -------
    Image
        float32 concentration on the SPECT grid, unit "Bq/mL".
    """
    from scipy import ndimage as ndi

    from pipeline.grid import resample_to
    from pipeline.image import Image, affine_from_geometry

    act = ndi.gaussian_filter(np.asarray(concentration, np.float32), fwhm_mm / 2.3548 / np.asarray(ct.voxel_size_mm, float))
    lo = ct.index_to_world(np.zeros((1, 3)))[0]
    hi = ct.index_to_world(np.array([[n - 1 for n in ct.shape]], float))[0]
    if ct_direction:
        direction = np.asarray(ct.direction_ras, float)
        extent = np.abs(np.asarray(ct.voxel_size_mm, float) * (np.array(ct.shape) - 1))
        shape = tuple(int(v) for v in np.ceil(extent / voxel_mm) + 1)
        affine = affine_from_geometry(tuple(lo), direction, (voxel_mm,) * 3)
    else:
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        shape = tuple(int(v) for v in np.ceil((hi - lo) / voxel_mm) + 1)
        affine = affine_from_geometry(tuple(lo), np.eye(3), (voxel_mm,) * 3)
    grid = Image(np.zeros(shape, np.float32), affine, "Bq/mL")
    return resample_to(ct.with_array(act, unit="Bq/mL"), grid, "linear", antialias=True)
