"""Labelled CT-like development cases from the ICRP Publication 110 adult reference phantoms.

The phantoms (AF female, AM male: organ label maps made from the CT scans of
two real people; ICRP Publication 110, 2009; packaged by the OpenDose
collaboration, CC BY 4.0; see ``../shared/data/icrp110/README.md``) are read
in memory straight from their zip file, never unpacked into the project.

Orientation (found from the anatomy by :func:`orientation_from_anatomy`; the
.mhd headers carry no direction cosines). For both AF and AM:

- k runs to the patient's **head**: the lungs (ids 96-99) and the brain (61)
  lie at larger k than the liver (95), the sacrum (53/54) at smaller k than
  the lumbar spine (51/52);
- i runs to the patient's **left**: the liver lies at smaller i than the
  spleen (127); the kidney ids 89-91 lie on the spleen's side (left kidney)
  and 92-94 on the liver's side (right kidney), as ICRP 110 says;
- j runs **posterior**: the lumbar spine lies at larger j than the liver's
  centroid, and on the midline of its middle slice the abdomen in front of it
  is deeper than the back behind it (AF: skin at j = 21 and 115, spine
  centroid at j = 80); the spinous processes are at larger j than the
  vertebral bodies.

The arrays are therefore LPS-ordered; their RAS+ affine is
``diag(-dx, -dy, +dz)`` (RAS+ is the NIfTI convention: +x toward the
patient's right, +y anterior, +z superior). The world origin is put at the
centre of the array.

Label ids used (ICRP 110 organ ids, checked against the materials table
``*_LabelsToMaterials.txt`` and by position): 89-91 left kidney (cortex,
medulla, pelvis), 92-94 right kidney, 95 liver, 127 spleen, 96-99 lungs (96/98
their blood, 97/99 their tissue; 100 is lymph, not lung), 49/50 thoracic
spine (cortical "mineral bone" / spongiosa), 51/52 lumbar spine, 53/54 sacrum
(AF has no voxel of 53), 43/44 ribs, 58 cartilage of the spine (the
intervertebral discs), 72 stomach, 74 small intestine, 76-86 colon (even ids
the wall, odd ids the contents), 140 internal air.

The lumbar spine is one label pair for all five vertebrae: :func:`lumbar_levels`
splits it into L1-L5 at the intervertebral discs.
"""

from __future__ import annotations

import argparse
import itertools
import re
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from pipeline.image import Image
from pipeline.segment import labels as L

__all__ = ["Phantom", "DevelopmentCase", "load_phantom", "orientation_from_anatomy", "make_ct",
           "lumbar_levels", "reference_labels", "development_cases", "load_case", "default_zip_path",
           "fov_z_range", "hu_table", "atlas_subjects", "main"]

#: Phantom name -> (array shape (I, J, K), voxel size mm) as given by the .mhd headers.
_FILES = {"AF": ((299, 137, 348), (1.775, 1.775, 4.84)),
          "AM": ((254, 127, 222), (2.137, 2.137, 8.0))}

#: ICRP 110 organ ids (checked by position, see the module docstring).
IDS = {
    "kidney_left": (89, 90, 91), "kidney_right": (92, 93, 94), "liver": (95,), "spleen": (127,),
    "lungs": (96, 97, 98, 99), "brain": (61,), "thoracic_spine": (49, 50), "lumbar_spine": (51, 52),
    "sacrum": (53, 54), "ribs": (43, 44), "spine_cartilage": (58,), "stomach": (72,),
    "small_intestine": (74,), "colon": tuple(range(76, 87)), "colon_contents": (77, 79, 81, 83, 85),
}

#: Unenhanced CT numbers (HU) by tissue name of ``*_LabelsToMaterials.txt``. Soft tissues:
#: typical unenhanced abdominal CT values (Lamba et al., AJR 2014; Kalender, Computed
#: Tomography, 3rd ed. 2011): fat -100, muscle 50, liver 60, spleen 50, kidney 30, blood 40.
#: Lung parenchyma -850 (inspiration; the phantom's "compressed lung" density 0.385 g/mL
#: would give -615). Bone: :func:`_bone_hu`.
TISSUE_HU = {
    "Air_outside_body": -1000.0, "Air": -1000.0, "Vacuum": -1000.0,
    "Adipose_tissue": -100.0, "Muscle_tissue": 50.0, "Liver": 60.0, "Spleen": 50.0,
    "Kidneys": 30.0, "Blood": 40.0, "Heart": 40.0, "Lung_tissue_(compressed_lungs)": -850.0,
    "Gastro-intestinal_tract_-_contents": 20.0, "Stomach": 40.0, "Small_intestine": 40.0,
    "Large_intestine": 40.0, "Oesophagus": 40.0, "Cartilage": 110.0, "Skin": 30.0, "Lymph": 30.0,
    "Pancreas": 40.0, "Adrenals": 30.0, "Urine": 5.0, "Urinary_bladder": 40.0, "Brain": 35.0,
    "Eyes": 10.0, "Thyroid": 90.0, "Breast_(mammary_gland)": -30.0, "Uterus": 45.0,
    "Ovaries": 30.0, "Gallbladder+Pituitary_gland+Trachea+Thymus+Tonsils+Ureters+...": 20.0,
    "Teeth": 1500.0, "Mineral_bone": 1100.0,
}

LEVELS = ("L1", "L2", "L3", "L4", "L5")


@dataclass(frozen=True, eq=False)
class Phantom:
    """One ICRP-110 phantom read from the zip.

    Attributes
    ----------
    name : str
        ``"AF"`` or ``"AM"``.
    labels : Image
        ICRP 110 organ ids (uint16), shape (I, J, K), RAS+ affine found from the anatomy.
    tissue : dict
        Label id -> tissue name (``*_LabelsToMaterials.txt``).
    density_g_per_ml : dict
        Label id -> mass density, g/mL (``*_GateMaterials.db``).
    orientation : dict
        The anatomical evidence behind the affine (:func:`orientation_from_anatomy`).
    """

    name: str
    labels: Image
    tissue: dict
    density_g_per_ml: dict
    orientation: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class DevelopmentCase:
    """One named development case: phantom, CT voxel size, noise and field of view.

    Attributes
    ----------
    name : str
    phantom : str
        ``"AF"`` or ``"AM"``.
    voxel_size_mm : tuple of float
        CT voxel size (left-right, anterior-posterior, superior-inferior), mm.
    noise_hu : float or None
        Noise SD per voxel, HU; None scales 30 HU at 3 mm cubes (:func:`make_ct`).
    fov : str
        ``"trunk"`` (sacrum to lung apices) or ``"abdomen"`` (truncated: below
        the lung bases, above the sacrum); see :func:`fov_z_range`.
    """

    name: str
    phantom: str
    voxel_size_mm: tuple
    noise_hu: float | None = None
    fov: str = "trunk"
    zip_path: Path | None = None


# --------------------------------------------------------------------------- reading
def default_zip_path() -> Path:
    """``<repo>/../shared/data/icrp110/Input_GateLab_2019-04-02.zip`` (may not exist)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "icrp110" / "Input_GateLab_2019-04-02.zip"


def _read_tables(z: zipfile.ZipFile, name: str):
    """Label id -> tissue name and label id -> density (g/mL) from the zip's tables."""
    tissue = {}
    for line in z.read(f"data/{name}_LabelsToMaterials.txt").decode().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
            for i in range(int(parts[0]), int(parts[1])):  # range [lo, hi)
                tissue[i] = parts[2]
    db = z.read(f"data/{name}_GateMaterials.db").decode()
    dens = {m.group(1): float(m.group(2)) * (1e-3 if m.group(3) == "mg" else 1.0)
            for m in re.finditer(r"^(\S+):\s*d=\s*([0-9.eE+-]+)\s*(g|mg)/cm3", db, re.M)}
    return tissue, {i: dens.get(t, 1.0) for i, t in tissue.items()}


def _centroid_index(arr: np.ndarray, ids) -> np.ndarray:
    return np.argwhere(np.isin(arr, ids)).mean(axis=0)


def orientation_from_anatomy(arr: np.ndarray, voxel_size_mm) -> dict:
    """Direction of the array axes in the patient, found from the organs.

    Parameters
    ----------
    arr : numpy.ndarray, shape (I, J, K)
        ICRP 110 label array.
    voxel_size_mm : array_like, shape (3,)

    Returns
    -------
    dict
        ``signs``: RAS+ sign of the i (x), j (y), k (z) axes; and the evidence
        (index-space centroids of liver, spleen, lungs, spine, body).

    Raises
    ------
    ValueError
        When the organs disagree (e.g. the liver not on the opposite side of
        the spleen, the kidney ids on the wrong sides) or the axes are not
        left-right, anterior-posterior, superior-inferior.
    """
    vs = np.asarray(voxel_size_mm, float)
    c = {k: _centroid_index(arr, IDS[k]) for k in
         ("liver", "spleen", "lungs", "brain", "lumbar_spine", "sacrum", "kidney_left", "kidney_right")}
    # superior: lungs and brain above the liver, sacrum below the lumbar spine
    votes_z = [np.sign(c["lungs"][2] - c["liver"][2]), np.sign(c["brain"][2] - c["liver"][2]),
               np.sign(c["lumbar_spine"][2] - c["sacrum"][2])]
    # the liver lies on the patient's right, the spleen on the left: RAS +x points to the right
    sx = np.sign(c["liver"][0] - c["spleen"][0])
    if np.sign(c["kidney_right"][0] - c["kidney_left"][0]) != sx:
        raise ValueError("kidney ids 89-91 / 92-94 are not on the spleen / liver sides")
    # anterior: the spine lies behind the liver, and on the midline at the lumbar spine's mid
    # slice the abdomen in front of the spine is deeper than the back behind it
    spine = c["lumbar_spine"]
    ci, ck = int(round(spine[0])), int(round(spine[2]))
    js = np.flatnonzero((arr[ci - 3:ci + 4, :, ck] > 0).any(axis=0))
    votes_y = [np.sign(c["liver"][1] - spine[1]), np.sign(0.5 * (js[0] + js[-1]) - spine[1])]
    if len(set(votes_z)) != 1 or len(set(votes_y)) != 1 or 0 in votes_z + votes_y or sx == 0:
        raise ValueError(f"anatomy gives no consistent orientation: z votes {votes_z}, y votes {votes_y}")
    # the axes are left-right / antero-posterior / cranio-caudal: the largest displacement of
    # each pair lies along its own axis
    for ax, (a, b) in enumerate((("liver", "spleen"), ("liver", "lumbar_spine"), ("brain", "liver"))):
        d = np.abs(c[a] - c[b]) * vs
        if ax != 1 and int(np.argmax(d)) != ax:
            raise ValueError(f"axis {ax} is not the expected anatomical axis ({a} - {b}: {d} mm)")
    return {"signs": (int(sx), int(votes_y[0]), int(votes_z[0])),
            "centroid_index": {k: tuple(round(float(x), 1) for x in v) for k, v in c.items()}}


def load_phantom(zip_path, name: str = "AF") -> Phantom:
    """Read one phantom from the OpenDose zip, in memory.

    Parameters
    ----------
    zip_path : str or Path
        ``Input_GateLab_2019-04-02.zip``.
    name : {"AF", "AM"}

    Returns
    -------
    Phantom
        Labels with the RAS+ affine found from the anatomy (origin at the
        array centre), tissue names and densities.
    """
    shape, vs = _FILES[name]
    with zipfile.ZipFile(zip_path) as z:
        raw = z.read(f"data/{name}_UINT16_{shape[0]}_{shape[1]}_{shape[2]}.raw")
        tissue, dens = _read_tables(z, name)
    # MetaImage: the first index (DimSize[0]) varies fastest
    arr = np.ascontiguousarray(np.frombuffer(raw, "<u2").reshape(shape[::-1]).transpose(2, 1, 0))
    ori = orientation_from_anatomy(arr, vs)
    direction = np.diag(np.asarray(ori["signs"], float))
    lin = direction @ np.diag(vs)
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = -lin @ ((np.asarray(shape) - 1) / 2.0)
    return Phantom(name, Image(arr, affine, "label", {"phantom": name}), tissue, dens, ori)


# --------------------------------------------------------------------------- CT numbers
def _bone_hu(tissue: str, density: float) -> float:
    """HU of a bone tissue from its density.

    Spongiosa: the bone branch of Schneider, Bortfeld and Schlegel (Phys Med
    Biol 2000;45:459), rho = 1.017 + 0.592e-3 HU, inverted, at least 100 HU
    (lumbar spongiosa 1.171 g/mL -> 260 HU, thoracic 1.084 -> 113 HU).
    Medullary cavity (yellow marrow) -50 HU.
    """
    if "medullary" in tissue:
        return -50.0
    return max(100.0, (density - 1.017) / 0.592e-3)


def hu_table(ph: Phantom) -> np.ndarray:
    """Label id -> unenhanced CT number (HU), float32 array indexed by label id."""
    n = max(max(ph.tissue) + 1, int(np.asarray(ph.labels.array).max()) + 1)
    hu = np.zeros(n, np.float32)
    for i, t in ph.tissue.items():
        if t in TISSUE_HU:
            hu[i] = TISSUE_HU[t]
        elif "spongiosa" in t or "medullary" in t:
            hu[i] = _bone_hu(t, ph.density_g_per_ml[i])
        else:  # anything else: water-like scaling of the density
            hu[i] = 1000.0 * (ph.density_g_per_ml[i] - 1.0)
    return hu


def _colon_gas(ph: Phantom, rng, gas_fraction: float) -> np.ndarray:
    """Boolean mask (phantom grid) of gas pockets in the colon contents."""
    lab = np.asarray(ph.labels.array)
    contents = np.isin(lab, IDS["colon_contents"])
    out = np.zeros(lab.shape, bool)
    if not contents.any() or gas_fraction <= 0:
        return out
    sl = ndi.find_objects(contents.astype(np.uint8))[0]
    sub = contents[sl]
    sigma = 6.0 / ph.labels.voxel_size_mm  # pockets of about a centimetre
    fieldv = ndi.gaussian_filter(rng.standard_normal(sub.shape).astype(np.float32), sigma)
    thr = np.quantile(fieldv[sub], 1.0 - gas_fraction)
    out[sl] = sub & (fieldv >= thr)
    return out


def fov_z_range(ph: Phantom, fov: str) -> tuple[float, float]:
    """RAS+ z range (mm) of a named field of view.

    ``"trunk"``: a two-bed SPECT/CT, from 50 mm below the sacrum to 30 mm
    above the lung apices. ``"abdomen"``: truncated, from 10 mm above the
    sacrum (the lower half of L5 and the sacrum are cut) to 5 mm below the
    lowest lung voxel (no lung bases; the liver dome is cut).
    ``"bases:LUNG_MM:SACRUM_MM"``: a clinical abdominal field of view, from
    ``SACRUM_MM`` below the top of the sacrum to ``LUNG_MM`` above the lowest
    lung voxel (for example ``"bases:40:10"``; negative values cut higher / lower).
    """
    lab = np.asarray(ph.labels.array)
    img = ph.labels
    zk = lambda ids: img.index_to_world(np.c_[np.zeros(2), np.zeros(2),  # noqa: E731
                                              np.flatnonzero(np.isin(lab, ids).any(axis=(0, 1)))[[0, -1]]])[:, 2]
    lungs, sacrum = zk(IDS["lungs"]), zk(IDS["sacrum"])
    if fov == "trunk":
        return float(np.min(sacrum)) - 50.0, float(np.max(lungs)) + 30.0
    if fov == "abdomen":
        return float(np.max(sacrum)) + 10.0, float(np.min(lungs)) - 5.0
    if fov.startswith("bases:") and len(fov.split(":")) == 3:
        try:
            lung_mm, sacrum_mm = (float(v) for v in fov.split(":")[1:])
        except ValueError:
            raise ValueError(f"field of view {fov!r}: expected bases:LUNG_MM:SACRUM_MM (numbers)") from None
        return float(np.max(sacrum)) - sacrum_mm, float(np.min(lungs)) + lung_mm
    raise ValueError(f"unknown field of view {fov!r} (trunk, abdomen, bases:LUNG_MM:SACRUM_MM)")


def make_ct(phantom: Phantom, voxel_size_mm=(3.0, 3.0, 3.0), noise_hu: float | None = None,
            seed: int = 0, table: bool = True, z_range_mm: tuple | None = None,
            psf_fwhm_mm: float = 1.2, gas_fraction: float = 0.3) -> Image:
    """A low-dose CT-like image (HU) of a phantom on a clinical grid.

    Steps: CT number per label (:data:`TISSUE_HU`, :func:`_bone_hu`); gas
    pockets (-1000 HU) in ``gas_fraction`` of the colon contents (smooth random
    field, ``seed``); Gaussian blur on the phantom grid with, per axis,
    ``sigma^2 = (psf_fwhm_mm / 2.355)^2 + voxel^2 / 12`` (scanner PSF plus the
    output voxel's box average); linear interpolation at the output voxel
    centres (air outside the phantom); the patient table; white Gaussian noise.

    Parameters
    ----------
    phantom : Phantom
    voxel_size_mm : sequence of 3 float
        Output voxel size along the phantom's i (left-right), j
        (antero-posterior) and k (superior-inferior) axes, mm.
    noise_hu : float, optional
        Noise SD per voxel, HU. Default: 30 HU at 3 x 3 x 3 mm scaled by
        ``sqrt(27 mm^3 / voxel volume)`` (low-dose CTAC: about 50 HU at
        2 x 2 x 2.5 mm, 17 HU at 4 x 4 x 5 mm). 0 for a noise-free image.
    seed : int
        Seed of the gas pockets and the noise.
    table : bool
        Add a curved 10 mm carbon-fibre-like table top (250 HU, 450 mm wide,
        edges 30 mm up) 2 mm under the back.
    z_range_mm : (float, float), optional
        Superior-inferior field of view, RAS+ z mm (default: the whole phantom).
    psf_fwhm_mm : float
        In-plane and axial scanner resolution, FWHM mm.
    gas_fraction : float
        Fraction of the colon contents that is gas.

    Returns
    -------
    Image
        HU, float32, shape about (extent / voxel size); axes in the phantom's
        order (i to the patient's left, j posterior, k superior for AF and AM),
        affine RAS+. The grid extends 60 mm behind the phantom to hold the
        table. ``meta`` holds the phantom name, voxel size, noise and seed.
    """
    vs_in = phantom.labels.voxel_size_mm
    vs_out = np.asarray(voxel_size_mm, float)
    if noise_hu is None:
        noise_hu = 30.0 * np.sqrt(27.0 / float(np.prod(vs_out)))
    rng = np.random.default_rng(seed)
    lab = np.asarray(phantom.labels.array)
    hu = hu_table(phantom)[lab]
    hu[_colon_gas(phantom, rng, gas_fraction)] = -1000.0
    s_psf = psf_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    sigma = np.sqrt(s_psf ** 2 + vs_out ** 2 / 12.0) / vs_in
    k_off = 0
    if z_range_mm is not None:  # blur only the slices the field of view needs
        kz = sorted(phantom.labels.world_to_index(np.array([[0, 0, z] for z in z_range_mm], float))[:, 2])
        k_off = max(0, int(np.floor(kz[0])) - 3)
        hu = hu[:, :, k_off:min(lab.shape[2], int(np.ceil(kz[1])) + 4)]
    hu = ndi.gaussian_filter(hu, sigma, mode="nearest", truncate=3.0)

    # output grid in the phantom's index frame: index(p) = c0 + p * step
    step = vs_out / vs_in
    direction = phantom.labels.direction_ras
    post = 1 if direction[1, 1] < 0 else -1  # +j is posterior when its RAS y component is negative
    lo = np.array([-0.5, -0.5, -0.5]) + 0.5 * step
    hi = np.array(lab.shape, float) - 0.5
    pad_j = 60.0 / vs_in[1]
    if post > 0:
        hi[1] += pad_j
    else:
        lo[1] -= pad_j
    if z_range_mm is not None:
        kz = sorted(phantom.labels.world_to_index(np.array([[0, 0, z] for z in z_range_mm], float))[:, 2])
        lo[2], hi[2] = max(lo[2], kz[0]), min(hi[2], kz[1])
    n = np.maximum(1, np.floor((hi - lo) / step + 1e-6)).astype(int)
    aff_idx = np.eye(4)
    aff_idx[:3, :3] = np.diag(step)
    aff_idx[:3, 3] = lo
    affine = phantom.labels.affine @ aff_idx

    out = np.empty(tuple(n), np.float32)
    pi, pj = np.meshgrid(lo[0] + step[0] * np.arange(n[0]), lo[1] + step[1] * np.arange(n[1]), indexing="ij")
    for k in range(n[2]):
        coords = np.stack([pi, pj, np.full_like(pi, lo[2] + step[2] * k - k_off)])
        out[:, :, k] = ndi.map_coordinates(hu, coords, order=1, mode="constant", cval=-1000.0)
    ct = Image(out, affine, "HU")

    if table:
        out = np.asarray(_add_table(ct, s_psf))
    if noise_hu > 0:
        out = out + rng.normal(0.0, noise_hu, out.shape).astype(np.float32)
    out = np.maximum(out, -1024.0).astype(np.float32)
    return Image(out, affine, "HU", {"phantom": phantom.name, "voxel_size_mm": [float(v) for v in vs_out],
                                     "noise_hu": float(noise_hu), "seed": int(seed), "table": bool(table)})


def _add_table(ct: Image, sigma_mm: float) -> np.ndarray:
    """Array of ``ct`` with a curved table top under the back (in air only)."""
    a = np.asarray(ct.array)
    if not np.allclose(ct.direction_ras[:2, 2], 0.0):
        raise ValueError("the table needs a grid whose third axis is superior-inferior")
    ii, jj = np.meshgrid(np.arange(a.shape[0]), np.arange(a.shape[1]), indexing="ij")
    xy = ct.index_to_world(np.stack([ii, jj, np.zeros_like(ii)], axis=-1))  # same in every slice
    x, y = xy[..., 0], xy[..., 1]
    body = a > -500
    if not body.any():
        return a.copy()
    in_plane = body.any(axis=2)
    y_back = float(y[in_plane].min())  # most posterior point (RAS: posterior is -y)
    x_c = float(np.median(x[in_plane]))
    half_width, rise, thick, gap = 225.0, 30.0, 10.0, 2.0
    top = y_back - gap + rise * ((x - x_c) / half_width) ** 2
    plate = (y <= top) & (y >= top - thick) & (np.abs(x - x_c) <= half_width)
    plate = ndi.gaussian_filter(plate.astype(np.float32), sigma_mm / ct.voxel_size_mm[:2])
    return np.where(body, a, a + plate[:, :, None] * (250.0 + 1000.0)).astype(np.float32)


# --------------------------------------------------------------------------- reference
def _spine_column(ph: Phantom):
    """Lumbar bone mask, its k range and the slice profiles used to find the discs."""
    lab = np.asarray(ph.labels.array)
    vs = ph.labels.voxel_size_mm
    lum = np.isin(lab, IDS["lumbar_spine"])
    ks = np.flatnonzero(lum.any(axis=(0, 1)))
    k0, k1 = int(ks[0]), int(ks[-1])
    ci = np.argwhere(lum).mean(axis=0)
    # the column of the vertebral bodies: +-25 mm around the spine's midline, anterior to its centroid
    i_ok = np.abs(np.arange(lab.shape[0]) - ci[0]) * vs[0] <= 25.0
    post = 1 if ph.labels.direction_ras[1, 1] < 0 else -1
    jj = np.arange(lab.shape[1])
    j_ok = (post * (jj - ci[1]) <= 0) & (np.abs(jj - ci[1]) * vs[1] <= 45.0)
    column = i_ok[:, None, None] & j_ok[None, :, None]
    disc = (np.isin(lab, IDS["spine_cartilage"]) & column).sum(axis=(0, 1)).astype(float)
    bone = (lum & column).sum(axis=(0, 1)).astype(float)
    return lum, k0, k1, disc, bone


def lumbar_levels(ph: Phantom) -> dict:
    """Split the single lumbar-spine label into L1-L5 at the intervertebral discs.

    The lumbar spine (ids 51/52) runs from the sacrum (53/54, below) to the
    thoracic spine (49/50, above, whose lowest vertebra, T12, bears ribs).
    Per slice, in the column of the vertebral bodies: the disc cartilage
    (id 58) area ``d`` and the lumbar bone area ``b``. A disc slice has much
    cartilage and little bone: score ``d / max(d) + (1 - b / median(b))``.
    The four cuts are the four slices of largest total score such that every
    vertebra is 18-45 mm high (exhaustive search), less a penalty on the
    spread of the heights (vertebrae of one spine are of similar height).
    A vertebra's range is its bone slices: from the slice above the lower
    disc to the slice below the upper disc (the disc slices belong to no
    vertebra). AF (4.84 mm slices): one clean cartilage slice per disc.
    AM (8 mm slices): the discs are partial-volumed into the slices, the
    cuts are good to about one slice (8 mm).

    Returns
    -------
    dict
        ``"L1"`` .. ``"L5"`` -> dict with ``k_range`` (phantom slices,
        inclusive), ``z_range_mm`` (RAS+ z of the outer faces, lo < hi) and
        ``height_mm``; plus ``"_checks"``: the disc scores at the cuts, the
        count (5), whether the thoracic vertebra above bears ribs (T12) and
        whether the sacrum lies below.

    Raises
    ------
    ValueError
        When no split into five vertebrae of plausible height exists.
    """
    lab = np.asarray(ph.labels.array)
    vs_k = float(ph.labels.voxel_size_mm[2])
    sup = 1 if ph.labels.direction_ras[2, 2] > 0 else -1
    lum, k0, k1, disc, bone = _spine_column(ph)
    score = disc / max(disc[k0:k1 + 1].max(), 1.0) + (1.0 - bone / np.median(bone[k0:k1 + 1]))
    best, best_val = None, -np.inf
    inner = range(k0 + 2, k1 - 1)
    for cuts in itertools.combinations(inner, 4):
        edges = (k0 - 1,) + cuts + (k1 + 1,)
        h = (np.diff(edges) - 1) * vs_k  # bone slices between consecutive cuts
        if h.min() < 18.0 or h.max() > 45.0:
            continue
        val = score[list(cuts)].sum() - 2.0 * np.std(h) / np.mean(h)
        if val > best_val:
            best, best_val = cuts, val
    if best is None:
        raise ValueError(f"{ph.name}: lumbar spine ({(k1 - k0 + 1) * vs_k:.0f} mm) cannot be split into 5 vertebrae")
    edges = (k0 - 1,) + best + (k1 + 1,)
    segs = [(edges[n] + 1, edges[n + 1] - 1) for n in range(5)]  # inferior to superior in k order
    if sup < 0:
        segs = segs[::-1]
    names_inf_to_sup = ("L5", "L4", "L3", "L2", "L1")
    z_of = lambda k: float(ph.labels.index_to_world([0.0, 0.0, k])[2])  # noqa: E731
    out = {}
    for name, (a, b) in zip(names_inf_to_sup, segs):
        z = sorted((z_of(a - 0.5), z_of(b + 0.5)))
        out[name] = {"k_range": (int(a), int(b)), "z_range_mm": (z[0], z[1]), "height_mm": z[1] - z[0]}
    # anatomy checks: ribs at the vertebra above (T12), sacrum below
    above = (k1 + 1, min(lab.shape[2], k1 + 1 + int(np.ceil(35.0 / vs_k)))) if sup > 0 else \
        (max(0, k0 - int(np.ceil(35.0 / vs_k))), k0)
    below = (max(0, k0 - 2), k0) if sup > 0 else (k1 + 1, k1 + 3)
    thor = np.isin(lab[:, :, above[0]:above[1]], IDS["thoracic_spine"])
    ribs = np.isin(lab[:, :, above[0]:above[1]], IDS["ribs"])
    near = ndi.binary_dilation(thor, np.ones((2 * int(15 / ph.labels.voxel_size_mm[0]) + 1,) * 2 + (1,), bool))
    out["_checks"] = {
        "count": 5, "disc_score_at_cuts": [round(float(score[c]), 2) for c in best],
        "thoracic_above_with_ribs": bool(thor.any() and (near & ribs).any()),
        "sacrum_below": bool(np.isin(lab[:, :, below[0]:below[1]], IDS["sacrum"]).any()),
    }
    return out


def _vertebral_body(bone: np.ndarray, voxel_size_mm, post: int) -> np.ndarray:
    """Vertebral body of one vertebra's bone mask (axial slices along axis 2).

    The body is the bone in front of the spinal canal. Per slice the canal is
    the largest hole (> 20 mm^2) of the bone ring; its anterior edge (the
    median over the vertebra's slices, so that slices through the gap between
    the pedicles use the same edge) cuts the filled vertebra; the largest
    piece in front of it is the body, its marrow holes filled. ``post`` is
    +1 when the posterior direction is +j, -1 when it is -j.
    """
    vs = np.asarray(voxel_size_mm, float)
    fronts = []
    filled = np.zeros_like(bone)
    for k in range(bone.shape[2]):
        filled[:, :, k] = ndi.binary_fill_holes(bone[:, :, k])
        holes, nh = ndi.label(filled[:, :, k] & ~bone[:, :, k])
        if nh:
            sizes = ndi.sum_labels(np.ones_like(holes), holes, np.arange(1, nh + 1))
            big = int(np.argmax(sizes))
            if sizes[big] * vs[0] * vs[1] > 20.0:
                js = np.flatnonzero((holes == big + 1).any(axis=0))
                fronts.append(js[0] if post > 0 else js[-1])
    if not fronts:
        raise ValueError("no spinal canal found in the vertebra")
    front = int(np.median(fronts))
    jj = np.arange(bone.shape[1])
    anterior = (jj < front) if post > 0 else (jj > front)
    out = np.zeros_like(bone)
    for k in range(bone.shape[2]):
        m = filled[:, :, k] & anterior[None, :]
        lab, n = ndi.label(m)
        if n:
            sizes = ndi.sum_labels(m, lab, np.arange(1, n + 1))
            out[:, :, k] = ndi.binary_fill_holes(lab == int(np.argmax(sizes)) + 1)
    return out


def _native_reference(ph: Phantom):
    """Reference labels (spectdose ids) and levels on the phantom's own grid (cached)."""
    if "reference" in ph._cache:
        return ph._cache["reference"]
    lab = np.asarray(ph.labels.array)
    vs = ph.labels.voxel_size_mm
    post = 1 if ph.labels.direction_ras[1, 1] < 0 else -1
    levels = lumbar_levels(ph)
    lum = np.isin(lab, IDS["lumbar_spine"])
    out = np.zeros(lab.shape, np.uint8)
    out[lab > 0] = L.BODY
    bodies = {}
    for name in LEVELS:
        a, b = levels[name]["k_range"]
        bodies[name] = np.zeros(lab.shape, bool)
        bodies[name][:, :, a:b + 1] = _vertebral_body(lum[:, :, a:b + 1], vs, post)
        c = ph.labels.index_to_world(np.argwhere(bodies[name]).mean(axis=0))
        levels[name]["centroid_ras_mm"] = tuple(float(v) for v in c)
        levels[name]["body_volume_ml"] = float(bodies[name].sum() * ph.labels.voxel_volume_ml)
    for name in ("L2", "L3", "L4"):
        out[bodies[name]] = L.VERTEBRAE_L2L4
    out[np.isin(lab, IDS["liver"])] = L.LIVER
    out[np.isin(lab, IDS["spleen"])] = L.SPLEEN
    out[np.isin(lab, IDS["kidney_left"])] = L.KIDNEY_LEFT
    out[np.isin(lab, IDS["kidney_right"])] = L.KIDNEY_RIGHT
    ph._cache["reference"] = (ph.labels.with_array(out, unit="label"), levels)
    return ph._cache["reference"]


def reference_labels(phantom: Phantom, ct_image: Image) -> tuple[Image, dict]:
    """Reference labels on the CT grid and the reference lumbar levels.

    Parameters
    ----------
    phantom : Phantom
    ct_image : Image
        The CT (any grid; only its geometry is used).

    Returns
    -------
    labels : Image
        uint16 on the CT grid, spectdose ids: 1 kidney_left (89-91),
        2 kidney_right (92-94), 3 liver (95), 4 spleen (127), 6 vertebrae_L2L4
        (vertebral bodies of L2-L4 only, no posterior arch, no discs), 7 body
        (every phantom voxel that is not outside air). Nearest-neighbour
        sampling of the phantom at the CT voxel centres.
    levels : dict
        ``"L1"`` .. ``"L5"`` -> ``z_range_mm`` (RAS+ z, lo < hi), ``height_mm``,
        ``centroid_ras_mm`` (of the vertebral body), ``body_volume_ml``,
        ``k_range`` (phantom slices); ``"_checks"`` (see :func:`lumbar_levels`).
        On the phantom's grid, independent of the CT's.
    """
    from pipeline.segment.evaluate import resample_nearest

    native, levels = _native_reference(phantom)
    lab = resample_nearest(native, ct_image).astype(np.uint16)
    return ct_image.with_array(lab, unit="label"), levels


# --------------------------------------------------------------------------- cases
def development_cases(zip_path=None) -> dict:
    """The named development cases of the team: name -> :class:`DevelopmentCase`.

    ``zip_path`` (optional) is stored in each case, so that ``load_case(None, case)`` works.

    AF and AM at 2 mm (slices 2.5 mm) and 4 mm (slices 5 mm) in-plane, the
    3 mm baseline cases, all over the trunk, and AF with a truncated field of
    view (abdomen only: no lung bases, no sacrum). Noise: the low-dose default
    of :func:`make_ct` (about 50, 30 and 17 HU SD at 2, 3 and 4 mm).
    """
    cases = [
        DevelopmentCase("AF_2mm", "AF", (2.0, 2.0, 2.5)),
        DevelopmentCase("AF_3mm", "AF", (3.0, 3.0, 3.0)),
        DevelopmentCase("AF_4mm", "AF", (4.0, 4.0, 5.0)),
        DevelopmentCase("AM_2mm", "AM", (2.0, 2.0, 2.5)),
        DevelopmentCase("AM_3mm", "AM", (3.0, 3.0, 3.0)),
        DevelopmentCase("AM_4mm", "AM", (4.0, 4.0, 5.0)),
        DevelopmentCase("AF_3mm_abdomen", "AF", (3.0, 3.0, 3.0), fov="abdomen"),
    ]
    return {c.name: replace(c, zip_path=None if zip_path is None else Path(zip_path)) for c in cases}


def load_case(zip_path, case: str | DevelopmentCase, seed: int = 0, phantom: Phantom | None = None,
              rebin_mm: float | None = None):
    """CT, reference labels and reference levels of one development case.

    Parameters
    ----------
    zip_path : str or Path or None
        None: the case's own ``zip_path``, else :func:`default_zip_path`.
    case : str or DevelopmentCase
        A name of :func:`development_cases` or a case.
    seed : int
    phantom : Phantom, optional
        The phantom already loaded (saves reading it again).
    rebin_mm : float, optional
        The CT made at the case's voxel size (the acquisition), then delivered on isotropic
        voxels of this size, mm (linear interpolation, :func:`sample_data.ct_variants.resampled_ct`:
        a coarse acquisition rebinned); the reference labels are made on that grid.

    Returns
    -------
    ct : Image
        HU.
    reference : Image
        Labels on the CT grid.
    levels : dict
        See :func:`reference_labels`.
    """
    c = development_cases()[case] if isinstance(case, str) else case
    ph = phantom if phantom is not None else load_phantom(zip_path or c.zip_path or default_zip_path(),
                                                           c.phantom)
    zr = fov_z_range(ph, c.fov)
    ct = make_ct(ph, c.voxel_size_mm, c.noise_hu, seed=seed, z_range_mm=zr)
    if rebin_mm is not None:
        from .ct_variants import resampled_ct

        ct = resampled_ct(ct, rebin_mm)
    ref, levels = reference_labels(ph, ct)
    return ct, ref, levels


def atlas_subjects(zip_path=None, names=("AF", "AM"), voxel_mm: float = 4.0) -> list:
    """The ICRP-110 phantoms as atlas subjects (:class:`pipeline.segment.atlas.AtlasSubject`).

    Each: a noise-free CT of the trunk (:func:`make_ct`, no table, no colon gas) on an
    isotropic ``voxel_mm`` grid and its reference labels (kidneys, liver, spleen, body,
    and the L2, L3 and L4 bodies with the atlas ids of
    :data:`pipeline.segment.atlas.ATLAS_VERTEBRAE`).

    Parameters
    ----------
    zip_path : str or Path, optional
        The OpenDose zip (default :func:`default_zip_path`).
    names : sequence of str
        Phantoms to use ("AF", "AM"); leave one out to test on it.
    voxel_mm : float
        Atlas voxel size, mm.
    """
    from pipeline.segment.atlas import ATLAS_VERTEBRAE, AtlasSubject

    zip_path = zip_path or default_zip_path()
    out = []
    for name in names:
        ph = load_phantom(zip_path, name)
        ct = make_ct(ph, (voxel_mm,) * 3, noise_hu=0.0, table=False, gas_fraction=0.0,
                     z_range_mm=fov_z_range(ph, "trunk"))
        ref, levels = reference_labels(ph, ct)
        lab = np.asarray(ref.array).copy()
        z = ct.index_to_world(np.argwhere(lab == L.VERTEBRAE_L2L4).astype(float))[:, 2]
        idx = np.argwhere(lab == L.VERTEBRAE_L2L4)
        for level, lid in ATLAS_VERTEBRAE.items():  # one id per vertebral body, from the reference levels
            lo, hi = levels[level]["z_range_mm"]
            sel = idx[(z >= lo) & (z <= hi)]
            lab[tuple(sel.T)] = lid
        ref = ref.with_array(lab)
        out.append(AtlasSubject(f"ICRP110_{name}", ct, ref,
                                "ICRP Publication 110 adult reference phantom, OpenDose packaging (CC BY 4.0)"))
    return out


# --------------------------------------------------------------------------- command
def main(argv=None) -> int:
    """Baseline: the built-in segmenter on AF and AM (3 mm, low-dose noise) against the reference."""
    from pipeline.segment.builtin import segment_builtin
    from pipeline.segment.evaluate import (compare_labels, compare_levels, format_label_table,
                                           format_level_table)

    p = argparse.ArgumentParser(prog="python -m sample_data.icrp110", description=main.__doc__)
    p.add_argument("--zip", type=Path, default=default_zip_path())
    p.add_argument("--cases", nargs="+", default=["AF_3mm", "AM_3mm"], choices=sorted(development_cases()))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.zip.is_file():
        print(f"python -m sample_data.icrp110: error: {args.zip}: not found")
        return 2
    phantoms = {}
    for name in args.cases:
        case = development_cases()[name]
        if case.phantom not in phantoms:
            phantoms[case.phantom] = load_phantom(args.zip, case.phantom)
        t0 = time.perf_counter()
        ct, ref, levels = load_case(args.zip, case, args.seed, phantoms[case.phantom])
        t1 = time.perf_counter()
        print(f"\n== {name}: CT {ct.shape} at {tuple(round(float(v), 2) for v in ct.voxel_size_mm)} mm, "
              f"noise {ct.meta['noise_hu']:.0f} HU, case made in {t1 - t0:.1f} s")
        try:
            res = segment_builtin(ct)
        except Exception as exc:  # the baseline reports a failure instead of stopping
            print(f"segment_builtin failed: {type(exc).__name__}: {exc}")
            continue
        t2 = time.perf_counter()
        print(f"segment_builtin: {t2 - t1:.1f} s")
        print(format_label_table(compare_labels(res.labels, ref)))
        print(format_level_table(compare_levels(res.vertebrae, levels)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
