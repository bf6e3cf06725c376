"""The anatomy of the digital patient: tissues, HU, label map, on the reference CT grid.

Coordinates are RAS+ mm in the reference frame: x to the patient's right, y anterior,
z superior; the body axis is x = y = 0 and z = 0 lies at the L2/L1 disc (roughly the
renal hila). Sizes follow an adult male (ICRP Publication 89 reference masses: liver
1.8 kg, spleen 150 g, kidneys 310 g together) and published vertebral dimensions
(lumbar bodies about 45-50 mm wide, 33-35 mm deep, 27-28 mm high, discs 10-12 mm;
Zhou et al., Eur Spine J 2000;9:242, Panjabi et al., Spine 1992;17:299; from memory).

HU values are typical unenhanced values (lit, from memory: Lamba et al., AJR 2014;203:1244
for liver 55-65, spleen 45-50, kidney 30-40, muscle 45-55, fat -90 to -110, unenhanced blood
40-45, urine 0-10; lung parenchyma -850; cortical bone 1000-1900 but a 1-2 mm shell reads
lower by partial volume; lumbar trabecular bone 130-230 HU in adults, Schreiber et al., JBJS
2011;93:1057; discs 80-100 HU; sclerotic metastases 500-1000 HU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.image import Image, affine_from_geometry

from .presets import CT_Z_RANGE_MM, Preset, get_preset
from .shapes import Canvas, capsule, ellipsoid, polyline_capsules, rotation_matrix

__all__ = ["Phantom", "PhantomModel", "build_phantom", "build_model", "LABEL_NAMES",
           "TISSUES", "VERTEBRA_LEVELS", "vertebra_z_ranges"]

#: DESIGN.md label ids.
LABEL_NAMES = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen", 5: "marrow_L2L4",
               6: "vertebrae_L2L4", 7: "body", 100: "liver_metastasis", 101: "lymph_node",
               102: "bone_lesion"}

#: Vertebral levels from top to bottom, with body height and the disc below it (mm).
#: Lower thoracic bodies 21-24 mm, lumbar 26-28 mm; discs 5-7 mm (thoracic) and 8-11 mm
#: (lumbar) (lit, from memory: Panjabi 1992, Zhou 2000).
VERTEBRA_LEVELS = (
    ("T7", 21.0, 5.0), ("T8", 21.0, 5.0), ("T9", 21.0, 6.0), ("T10", 22.0, 6.0),
    ("T11", 23.0, 7.0), ("T12", 24.0, 8.0), ("L1", 26.0, 10.0), ("L2", 27.0, 10.0),
    ("L3", 28.0, 11.0), ("L4", 28.0, 11.0), ("L5", 28.0, 10.0),
)
#: Half width (LR) and half depth (AP) of each vertebral body, mm.
_BODY_SEMI = {"T7": (16.0, 13.0), "T8": (17.0, 13.5), "T9": (18.0, 14.0), "T10": (19.0, 15.0),
              "T11": (20.0, 15.5), "T12": (21.0, 16.0), "L1": (22.0, 16.5), "L2": (23.0, 17.0),
              "L3": (24.0, 17.5), "L4": (25.0, 17.5), "L5": (26.0, 17.5)}
#: z of the sacral (S1) endplate, mm.
_SACRUM_TOP_Z = -150.0
#: Cortical shell thickness as seen on CT, mm (true vertebral cortex is 0.4-0.7 mm thick,
#: Ritzel et al. 1997, but CT resolution spreads it to 1-2 mm).
_CORTEX_MM = 2.0
#: Distance of the marrow VOI from cortex and endplates, mm (EANM 2010: away from cortex).
_MARROW_MARGIN_MM = 4.0


def vertebra_z_ranges() -> dict:
    """z range (bottom, top) in mm of every vertebral body and disc, keyed by name."""
    out = {}
    z = _SACRUM_TOP_Z
    for name, height, disc in reversed(VERTEBRA_LEVELS):
        out[f"disc_{name}"] = (z, z + disc)  # the disc below the body
        z += disc
        out[name] = (z, z + height)
        z += height
    return out


def _tissue_table():
    """(id, name, HU, density g/mL, kinetic compartment, weight in the compartment)."""
    rows = [
        (1, "skin", 30, 1.09, "muscle"),
        (2, "subcutaneous_fat", -100, 0.95, "fat"),
        (3, "muscle", 50, 1.05, "muscle"),
        (4, "visceral_fat", -90, 0.95, "fat"),
        (5, "lung_left", -850, 0.26, "lung"),
        (6, "lung_right", -850, 0.26, "lung"),
        (7, "heart", 40, 1.05, "blood"),
        (8, "liver", 60, 1.06, "liver"),
        (9, "spleen", 48, 1.06, "spleen"),
        (10, "kidney_left_cortex", 35, 1.05, "kidney_left"),
        (11, "kidney_left_medulla", 28, 1.04, "kidney_left"),
        (12, "kidney_right_cortex", 35, 1.05, "kidney_right"),
        (13, "kidney_right_medulla", 28, 1.04, "kidney_right"),
        (14, "aorta", 42, 1.06, "blood"),
        (15, "ivc", 42, 1.06, "blood"),
        (16, "stomach", 25, 1.03, "bowel"),
        (17, "small_bowel", 30, 1.03, "bowel"),
        (18, "colon", 0, 1.0, "bowel"),
        (19, "bowel_gas", -950, 0.0012, None),
        (20, "bladder_urine", 8, 1.01, "bladder"),
        (21, "bladder_wall", 45, 1.05, "muscle"),
        (22, "spinal_canal", 20, 1.01, "soft_low"),
        (23, "ilium_left", 350, 1.3, "marrow"),
        (24, "ilium_right", 350, 1.3, "marrow"),
        (25, "femoral_head_left", 300, 1.25, "bone"),
        (26, "femoral_head_right", 300, 1.25, "bone"),
    ]
    nid = 27
    for level in ("T10", "T11", "T12"):
        for side in ("left", "right"):
            rows.append((nid, f"rib_{level}_{side}", 600, 1.5, "bone"))
            nid += 1
    for n, (level, _h, _d) in enumerate(VERTEBRA_LEVELS):
        base = 40 + 5 * n
        thoracic = level.startswith("T")
        rows += [
            (base, f"cortex_{level}", 1100, 1.8, "bone"),
            (base + 1, f"trabecular_{level}", 210 if thoracic else 180, 1.15, "marrow"),
            (base + 2, f"posterior_{level}", 450, 1.4, "bone"),
            (base + 3, f"disc_{level}_below", 90, 1.1, "soft_low"),
        ]
    rows += [
        (95, "sacrum_cortex", 1000, 1.8, "bone"),
        (96, "sacrum_trabecular", 170, 1.15, "marrow"),
        # patient table (outside the body, no activity): carbon-fibre skins around a foam core
        (97, "table_shell", 250, 1.5, None),
        (98, "table_core", -850, 0.1, None),
        (100, "liver_metastasis_rim", 42, 1.05, "liver_metastasis_rim"),
        (101, "liver_metastasis_core", 15, 1.02, "liver_metastasis_core"),
        (102, "lymph_node", 40, 1.04, "lymph_node"),
        (103, "bone_lesion", 650, 1.5, "bone_lesion"),
    ]
    weights = {"kidney_left_cortex": 3.0, "kidney_right_cortex": 3.0}  # cortex:medulla 3:1
    return {r[0]: {"name": r[1], "hu": float(r[2]), "density_g_per_ml": float(r[3]),
                   "compartment": r[4], "weight": weights.get(r[1], 1.0)} for r in rows}


#: id -> {"name", "hu", "density_g_per_ml", "compartment", "weight"}
TISSUES = _tissue_table()
_ID = {v["name"]: k for k, v in TISSUES.items()}


@dataclass(frozen=True, eq=False)
class Phantom:
    """Reference-pose anatomy on the reference CT grid.

    Attributes
    ----------
    ct_hu : Image
        Noise-free CT in HU (blurred by the CT resolution), float32.
    labels : Image
        DESIGN label ids (uint16), see :data:`LABEL_NAMES`.
    tissues : Image
        Tissue ids (uint8), see :data:`TISSUES`.
    tissue_names, label_names : dict
        id -> name.
    """

    ct_hu: Image
    labels: Image
    tissues: Image
    tissue_names: dict
    label_names: dict


@dataclass(frozen=True, eq=False)
class PhantomModel:
    """The digital patient on its extended grid (the CT grid plus ``pad_slices`` on each end).

    ``tissues``/``labels``/``hu`` are arrays on the extended grid with ``affine`` (RAS+);
    ``ct_affine`` and ``ct_shape`` describe the reference CT grid, slices
    ``pad_slices:pad_slices + ct_shape[2]`` of the extended grid.
    """

    preset: Preset
    tissues: np.ndarray
    labels: np.ndarray
    hu: np.ndarray
    affine: np.ndarray
    ct_affine: np.ndarray
    ct_shape: tuple
    pad_slices: int
    info: dict = field(default_factory=dict)

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    def crop(self, array):
        """The part of an extended-grid array on the reference CT grid."""
        p = self.pad_slices
        return array[:, :, p:p + self.ct_shape[2]]


def _grid(preset: Preset):
    n = preset.ct_matrix
    dx = preset.ct_pixel_mm
    dz = preset.ct_slice_mm
    z_lo, _z_hi = CT_Z_RANGE_MM
    k_ct = preset.ct_slices
    pad = int(np.ceil(preset.margin_mm / dz))
    half = (n - 1) / 2.0 * dx
    x = half - dx * np.arange(n)  # i -> patient left (RAS -x)
    y = half - dx * np.arange(n)  # j -> posterior (RAS -y)
    z_ct0 = z_lo + dz / 2.0
    z = z_ct0 + dz * np.arange(-pad, k_ct + pad)
    direction = np.diag([-1.0, -1.0, 1.0])
    affine_ext = affine_from_geometry([x[0], y[0], z[0]], direction, [dx, dx, dz])
    affine_ct = affine_from_geometry([x[0], y[0], z_ct0], direction, [dx, dx, dz])
    return x, y, z, affine_ext, affine_ct, (n, n, k_ct), pad


def _interp(z, zs, vs):
    return np.interp(z, zs, vs)


# Body outline (superellipse |x/a|^p + |y/b|^p <= 1) along z: adult male trunk about
# 32-34 cm wide and 22-24 cm deep at the waist, wider at pelvis and lower thorax.
_BODY_Z = [-330.0, -230.0, -150.0, -100.0, -30.0, 60.0, 130.0, 220.0]
_BODY_A = [176.0, 176.0, 168.0, 156.0, 152.0, 160.0, 166.0, 168.0]
_BODY_B = [116.0, 118.0, 114.0, 108.0, 108.0, 112.0, 118.0, 120.0]
_BODY_P = 2.4


def _superellipse(inset_mm, z_only=None):
    def fn(X, Y, Z):
        a = _interp(Z, _BODY_Z, _BODY_A) - inset_mm
        b = _interp(Z, _BODY_Z, _BODY_B) - inset_mm
        inside = (np.abs(X) / a) ** _BODY_P + (np.abs(Y) / b) ** _BODY_P <= 1.0
        if z_only is not None:
            inside = inside & z_only(Z)
        return inside

    big = 200.0
    return fn, np.array([-big, -big, -1e4]), np.array([big, big, 1e4])


def diaphragm_z(X, Y):
    """z (mm) of the diaphragm surface above (X, Y): two domes, right higher than left.

    Right dome apex about T10 (z 115), left 13 mm lower; the posterior costophrenic
    recesses reach T12 (z about 70).
    """
    right = 115.0 - 0.0045 * ((X - 70.0) ** 2 + Y ** 2)
    left = 102.0 - 0.0045 * ((X + 70.0) ** 2 + Y ** 2)
    return np.maximum(right, left)


def _spine_y(z):
    """AP position (RAS y, mm) of the vertebral body centres: a gentle lumbar lordosis."""
    return -40.0 + 8.0 * np.exp(-(((z + 60.0) / 90.0) ** 2))


def _smooth_field(rng, lo, hi, spacing_mm=8.0, sigma_cells=1.3):
    """A smooth random field (zero mean, unit SD) on a world lattice; returns a sampler."""
    from scipy import ndimage

    lo = np.asarray(lo, float)
    shape = tuple(int(np.ceil(v)) + 3 for v in (np.asarray(hi) - lo) / spacing_mm)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_cells, mode="wrap")
    noise /= noise.std()

    def sample(X, Y, Z):
        X, Y, Z = np.broadcast_arrays(X, Y, Z)
        coords = np.stack([(X - lo[0]) / spacing_mm, (Y - lo[1]) / spacing_mm, (Z - lo[2]) / spacing_mm])
        return ndimage.map_coordinates(noise, coords.reshape(3, -1), order=1, mode="nearest").reshape(X.shape)

    return sample


def _paint_body(cv: Canvas):
    t = _ID
    cv.paint(t["skin"], _superellipse(0.0))
    cv.paint(t["subcutaneous_fat"], _superellipse(2.0))
    cv.paint(t["muscle"], _superellipse(18.0))
    cv.paint(t["visceral_fat"], _superellipse(30.0))
    # paraspinal (erector spinae) muscles along the whole trunk
    for s in (-1, 1):
        fn = lambda X, Y, Z, s=s: ((X - s * 38.0) / 30.0) ** 2 + ((Y + 80.0) / 22.0) ** 2 <= 1.0
        cv.paint(t["muscle"], (fn, np.array([-80, -110, -1e4]), np.array([80, -50, 1e4])))
        # psoas: from L1 down, growing (lit: psoas cross-section grows caudally to 15-20 cm^2)
        def psoas(X, Y, Z, s=s):
            r = np.clip(8.0 + (30.0 - Z) * 0.11, 8.0, 26.0)
            cx = s * (26.0 + r) + s * np.clip(-(Z + 130.0) * 0.4, 0, 40)
            cy = -32.0 + np.clip(-(Z + 130.0) * 0.5, 0, 45)
            return (((X - cx) / r) ** 2 + ((Y - cy) / (r * 0.9)) ** 2 <= 1.0) & (Z < 35.0)
        cv.paint(t["muscle"], (psoas, np.array([-120, -70, -280]), np.array([120, 40, 40])))


def _paint_thorax(cv: Canvas):
    t = _ID
    cavity = [t["visceral_fat"]]

    def lung(side):
        def fn(X, Y, Z):
            d = diaphragm_z(X, Y)
            mediastinum = (np.abs(X + 10.0) < 38.0) & (Y > -55.0)
            spine = (np.abs(X) < 30.0) & (Y < -15.0)
            return (Z > d) & ~mediastinum & ~spine & (side * X > 0)
        return fn, np.array([-200, -200, 30]), np.array([200, 200, 1e4])

    cv.paint(t["lung_right"], lung(1), only=cavity)
    cv.paint(t["lung_left"], lung(-1), only=cavity)
    heart = ellipsoid([-25.0, 30.0, 185.0], [70.0, 50.0, 70.0], rotation_matrix(0, 15, -30))
    cv.paint(t["heart"], heart, where=lambda X, Y, Z: Z > diaphragm_z(X, Y),
             only=[t["visceral_fat"], t["lung_left"], t["lung_right"]])


def _paint_organs(cv: Canvas, rng):
    t = _ID
    soft = [t["visceral_fat"]]
    below_diaphragm = lambda X, Y, Z: Z < diaphragm_z(X, Y) - 2.0

    # Small-bowel region: loops of bowel (fluid-filled, 30 HU) in mesenteric fat with gas.
    bowel_field = _smooth_field(rng, [-200, -200, -330], [200, 200, 230], spacing_mm=7.0)
    gas_field = _smooth_field(rng, [-200, -200, -330], [200, 200, 230], spacing_mm=6.0)
    sb = ellipsoid([0.0, 45.0, -95.0], [100.0, 55.0, 70.0])
    cv.paint(t["small_bowel"], sb, only=soft, where=lambda X, Y, Z: bowel_field(X, Y, Z) > -0.6)
    cv.paint(t["bowel_gas"], sb, only=[t["small_bowel"]], where=lambda X, Y, Z: gas_field(X, Y, Z) > 1.7)

    # Colon: caecum -> ascending -> transverse -> descending -> sigmoid -> rectum, 22 mm radius
    colon_path = [(95, 20, -135), (100, 0, -60), (80, 40, -45), (0, 72, -58), (-90, 25, 0),
                  (-100, -5, -60), (-98, 0, -120), (-50, 40, -175), (0, -28, -215), (0, -32, -300)]
    for shape in polyline_capsules(colon_path, 21.0):
        cv.paint(t["colon"], shape, only=soft + [t["small_bowel"], t["bowel_gas"], t["muscle"]])
    colon_gas = _smooth_field(rng, [-200, -200, -330], [200, 200, 230], spacing_mm=9.0)
    for shape in polyline_capsules(colon_path, 17.0):
        cv.paint(t["bowel_gas"], shape, only=[t["colon"]],
                 where=lambda X, Y, Z: colon_gas(X, Y, Z) > 0.1)

    # Stomach under the left dome, with an air-fluid level (gas above z = 85).
    st = ellipsoid([-45.0, 30.0, 62.0], [42.0, 32.0, 45.0], rotation_matrix(0, -20, 0))
    cv.paint(t["stomach"], st, where=below_diaphragm)
    cv.paint(t["bowel_gas"], st, only=[t["stomach"]], where=lambda X, Y, Z: Z > 86.0)

    # Liver (ICRP 89: 1.8 kg; 1.5-1.8 L): a large right lobe under the right dome and a left
    # lobe crossing the midline anteriorly; not posterior-medial (IVC, spine, aorta).
    def liver_clip(X, Y, Z):
        return below_diaphragm(X, Y, Z) & ~((X < 30.0) & (Y < -20.0)) & (Y > -95.0)

    cv.paint(t["liver"], ellipsoid([68.0, 2.0, 44.0], [77.0, 78.0, 73.0]), where=liver_clip,
             only=soft + [t["small_bowel"], t["bowel_gas"], t["colon"], t["muscle"]])
    cv.paint(t["liver"], ellipsoid([-5.0, 48.0, 72.0], [62.0, 36.0, 30.0], rotation_matrix(0, 0, 10)),
             where=liver_clip, only=soft + [t["stomach"], t["bowel_gas"]])

    # Spleen (ICRP 89: 150 g; 150-200 mL) tilted along the 10th rib, under the left dome.
    rot = rotation_matrix(40.0, 0.0, 20.0)
    cv.paint(t["spleen"], ellipsoid([-95.0, -35.0, 42.0], [24.0, 38.0, 52.0], rot), where=below_diaphragm,
             only=soft + [t["colon"], t["bowel_gas"], t["stomach"], t["muscle"]])

    # Kidneys (about 11 x 6 x 3.5 cm, 120-180 mL; left higher than right), bean shape by a
    # hilar notch filled with sinus fat; cortex 9-10 mm thick around the medulla (cortex about
    # two thirds of the parenchyma).
    for side, centre, cortex, medulla in (
        (-1, (-76.0, -46.0, 4.0), "kidney_left_cortex", "kidney_left_medulla"),
        (1, (76.0, -48.0, -4.0), "kidney_right_cortex", "kidney_right_medulla"),
    ):
        # local axes: 0 towards hilum (anteromedial), 1 thickness, 2 long axis (upper pole medial)
        rot = rotation_matrix(0.0, -side * 12.0, side * -30.0)
        hilum = rot @ np.array([-side * 1.0, 0.0, 0.0])
        rot = np.column_stack([hilum, rot @ np.array([0.0, 1.0, 0.0]), rot @ np.array([0.0, 0.0, 1.0])])
        c = np.asarray(centre)
        outer_fn, lo, hi = ellipsoid(c, [30.0, 22.0, 56.0], rot)
        inner_fn, _, _ = ellipsoid(c, [21.0, 13.0, 46.0], rot)
        notch_fn, _, _ = ellipsoid(c + 27.0 * hilum, [16.0, 12.0, 22.0], rot)
        kid = lambda X, Y, Z, o=outer_fn, n=notch_fn: o(X, Y, Z) & ~n(X, Y, Z)
        over = soft + [t["muscle"], t["liver"], t["colon"], t["bowel_gas"], t["small_bowel"], t["spleen"]]
        cv.paint(_ID[cortex], (kid, lo, hi), only=over)
        cv.paint(_ID[medulla], (inner_fn, lo, hi), only=[_ID[cortex]])

    # Aorta (2-2.5 cm diameter) anterior-left of the spine down to the bifurcation at L4,
    # then the common iliac arteries; IVC on the right, through the liver's bare area.
    vz = vertebra_z_ranges()
    z_bif = vz["L4"][1] - 10.0
    ya = lambda z: float(_spine_y(z)) + 17.5 + 15.0
    aorta_path = [(-14.0, ya(z), z) for z in np.arange(260.0, z_bif - 1.0, -20.0)]
    for shape in polyline_capsules(aorta_path, 11.5):
        cv.paint(t["aorta"], shape, only=_not_bone_ids())
    for s in (-1, 1):
        for shape in polyline_capsules([(-14.0, ya(z_bif), z_bif), (s * 45.0, 5.0, -165.0),
                                        (s * 70.0, 20.0, -230.0)], 6.5):
            cv.paint(t["aorta"], shape, only=_not_bone_ids())
    ivc_path = [(22.0, ya(z) - 4.0, z) for z in np.arange(115.0, z_bif - 21.0, -20.0)]
    for shape in polyline_capsules(ivc_path, 11.0):
        cv.paint(t["ivc"], shape, only=_not_bone_ids())

    # Bladder (about 230 mL of urine) with a 3 mm wall.
    cv.paint(t["bladder_wall"], ellipsoid([0.0, 35.0, -232.0], [51.0, 41.0, 33.0]),
             only=soft + [t["small_bowel"], t["bowel_gas"], t["colon"], t["muscle"]])
    cv.paint(t["bladder_urine"], ellipsoid([0.0, 35.0, -232.0], [48.0, 38.0, 30.0]), only=[t["bladder_wall"]])


def _not_bone_ids():
    return [k for k, v in TISSUES.items() if v["compartment"] not in ("bone", "marrow")
            and not v["name"].startswith("disc")]


def _paint_skeleton(cv: Canvas):
    t = _ID
    vz = vertebra_z_ranges()
    for n, (level, _h, _d) in enumerate(VERTEBRA_LEVELS):
        base = 40 + 5 * n
        z0, z1 = vz[level]
        a, b = _BODY_SEMI[level]
        yc = float(_spine_y(0.5 * (z0 + z1)))

        def body(X, Y, Z, a=a, b=b, yc=yc, z0=z0, z1=z1, inset=0.0, zin=0.0):
            return ((((X / (a - inset)) ** 2 + ((Y - yc) / (b - inset)) ** 2) <= 1.0)
                    & (Z >= z0 + zin) & (Z <= z1 - zin))

        box = (np.array([-a - 1, yc - b - 1, z0 - 1]), np.array([a + 1, yc + b + 1, z1 + 1]))
        cv.paint(base, (body, *box))
        inner = lambda X, Y, Z, f=body: f(X, Y, Z, inset=_CORTEX_MM, zin=_CORTEX_MM * 0.75)
        cv.paint(base + 1, (inner, *box))
        # disc below this body (shape of the body, between this body and the next lower one)
        dz0, dz1 = vz[f"disc_{level}"]
        disc = lambda X, Y, Z, a=a, b=b, yc=yc, z0=dz0, z1=dz1: (
            ((X / a) ** 2 + ((Y - yc) / b) ** 2 <= 1.0) & (Z >= z0) & (Z <= z1))
        cv.paint(base + 3, (disc, np.array([-a, yc - b, dz0 - 1]), np.array([a, yc + b, dz1 + 1])))
        # posterior elements: pedicles, laminae, spinous and transverse processes
        yk = yc - b - 9.0  # spinal canal centre
        zc = 0.5 * (z0 + z1)
        hh = 0.5 * (z1 - z0)
        tp_len = {"L1": 18.0, "L2": 22.0, "L3": 26.0, "L4": 22.0, "L5": 20.0}.get(level, 14.0)

        def posterior(X, Y, Z, yk=yk, zc=zc, hh=hh, yc=yc, b=b, tp_len=tp_len):
            inz = np.abs(Z - zc) <= hh * 0.9
            pedicle = ((np.abs(X) >= 9.0) & (np.abs(X) <= 17.0) & (Y <= yc - b + 2.0) & (Y >= yk - 2.0))
            arch = ((((X / 19.0) ** 2 + ((Y - yk) / 15.0) ** 2) <= 1.0)
                    & (((X / 11.0) ** 2 + ((Y - yk) / 8.0) ** 2) > 1.0) & (Y <= yk + 2.0))
            spinous = (np.abs(X) <= 4.0) & (Y <= yk - 10.0) & (Y >= yk - 36.0) & (np.abs(Z - zc + 4.0) <= hh * 0.7)
            transverse = ((np.abs(X) >= 12.0) & (np.abs(X) <= 14.0 + tp_len) & (np.abs(Y - yk - 2.0) <= 5.0)
                          & (np.abs(Z - zc) <= hh * 0.45))
            return inz & (pedicle | arch | spinous | transverse)

        cv.paint(base + 2, (posterior, np.array([-50, yk - 40, z0 - 1]), np.array([50, yc - b + 3, z1 + 1])),
                 only=_not_bone_ids())
    # spinal canal (CSF and cord) through the whole column, down into the sacrum
    canal = lambda X, Y, Z: (X / 11.0) ** 2 + ((Y - _spine_y(Z) + 17.0 + 9.0) / 8.0) ** 2 <= 1.0
    cv.paint(t["spinal_canal"], (canal, np.array([-12, -120, -200]), np.array([12, 0, 1e4])),
             only=_not_bone_ids())

    # Sacrum: a tapering, backward-curving wedge below the S1 endplate with a cortical shell.
    def sacrum(X, Y, Z, inset=0.0):
        depth = np.clip(_SACRUM_TOP_Z - Z, 0.0, None)
        a = 50.0 - 0.30 * depth - inset
        b = 22.0 - 0.09 * depth - inset
        yc = -45.0 - 0.42 * depth
        return ((X / a) ** 2 + ((Y - yc) / b) ** 2 <= 1.0) & (Z <= _SACRUM_TOP_Z) & (Z >= -290.0)

    box = (np.array([-52, -150, -292]), np.array([52, -20, _SACRUM_TOP_Z + 1]))
    cv.paint(t["sacrum_cortex"], (sacrum, *box))
    cv.paint(t["sacrum_trabecular"], (lambda X, Y, Z: sacrum(X, Y, Z, inset=_CORTEX_MM) & (Z <= _SACRUM_TOP_Z - 1.5),
                                      *box), only=[t["sacrum_cortex"]])

    # Iliac wings: curved plates from the sacroiliac joints sweeping laterally and anteriorly,
    # iliac crest at the L4/L5 level, narrowing towards the acetabula.
    for s, name in ((-1, "ilium_left"), (1, "ilium_right")):
        def ilium(X, Y, Z, s=s):
            cx, cy = s * 10.0, -5.0
            rho = np.hypot(X - cx, Y - cy)
            radius = np.interp(Z, [-235.0, -105.0], [95.0, 128.0])
            half_thick = np.interp(Z, [-235.0, -105.0], [8.0, 3.5])
            lateral = s * (X - cx) / np.maximum(rho, 1e-6)
            return ((np.abs(rho - radius) <= half_thick) & (lateral > 0.3) & (Y < 35.0)
                    & (Z >= -245.0) & (Z <= -100.0))
        cv.paint(_ID[name], (ilium, np.array([-150, -110, -246]), np.array([150, 40, -99])),
                 only=_not_bone_ids())
        cv.paint(_ID[name], capsule([s * 42.0, -62.0, -175.0], [s * 60.0, -70.0, -160.0], 9.0),
                 only=_not_bone_ids())  # sacroiliac region
        cv.paint(_ID[f"femoral_head_{'left' if s < 0 else 'right'}"],
                 ellipsoid([s * 92.0, 5.0, -262.0], [24.0, 24.0, 24.0]), only=_not_bone_ids())

    # Lower ribs on T10-T12 (11 and 12 are floating ribs), descending as they sweep around.
    for level, theta_end in (("T10", 2.25), ("T11", 1.8), ("T12", 1.35)):
        z0, z1 = vz[level]
        zv = 0.5 * (z0 + z1)
        for s, side in ((-1, "left"), (1, "right")):
            pts = []
            for th in np.linspace(0.32, theta_end, 24):
                z = zv - 22.0 * (th - 0.32)
                a = float(_interp(z, _BODY_Z, _BODY_A)) - 26.0
                b = float(_interp(z, _BODY_Z, _BODY_B)) - 26.0
                pts.append((s * a * np.sin(th), -b * np.cos(th), z))
            for shape in polyline_capsules(pts, 5.0):
                cv.paint(_ID[f"rib_{level}_{side}"], shape, only=_not_bone_ids())


def _paint_lesions(cv: Canvas):
    t = _ID
    vz = vertebra_z_ranges()
    # Liver metastasis (4 cm, necrotic 2 cm core), in the right lobe.
    met_c = [78.0, 22.0, 35.0]
    cv.paint(t["liver_metastasis_rim"], ellipsoid(met_c, [20.0, 20.0, 20.0]), only=[t["liver"]])
    cv.paint(t["liver_metastasis_core"], ellipsoid(met_c, [10.0, 10.0, 10.0]), only=[t["liver_metastasis_rim"]])
    # Para-aortic lymph node (2.2 cm) left of the aorta at L3.
    z_l3 = 0.5 * sum(vz["L3"])
    cv.paint(t["lymph_node"], ellipsoid([-40.0, float(_spine_y(z_l3)) + 30.0, z_l3], [11.0, 11.0, 13.0]),
             only=[t["visceral_fat"], t["muscle"], t["small_bowel"]])
    # Sclerotic bone metastasis in the right half of T12 (outside L2-L4).
    z12 = 0.5 * sum(vz["T12"])
    tissues_t12 = [40 + 5 * 5, 40 + 5 * 5 + 1]
    cv.paint(t["bone_lesion"], ellipsoid([9.0, float(_spine_y(z12)), z12], [9.0, 9.0, 9.0]), only=tissues_t12)


#: RAS y of the top surface of the patient table in the reference pose, mm.
TABLE_TOP_Y_MM = -max(_BODY_B) - 3.0


def _paint_table(cv: Canvas):
    """A flat patient table under the back (moves with the patient), 20 mm thick, 440 mm wide."""
    top = TABLE_TOP_Y_MM
    table = lambda X, Y, Z: (np.abs(X) <= 220.0) & (Y <= top) & (Y >= top - 20.0)
    box = (np.array([-220.0, top - 20.0, -1e4]), np.array([220.0, top, 1e4]))
    cv.paint(_ID["table_shell"], (table, *box), only=[0])
    core = lambda X, Y, Z: (np.abs(X) <= 214.0) & (Y <= top - 3.0) & (Y >= top - 17.0)
    cv.paint(_ID["table_core"], (core, *box), only=[_ID["table_shell"]])


def _labels_from_tissues(tissues, voxel_mm):
    """DESIGN label map from the tissue map (see README for the rules)."""
    from scipy import ndimage

    names = {k: v["name"] for k, v in TISSUES.items()}
    lut = np.zeros(256, np.uint16)
    for k, name in names.items():
        if name in ("bowel_gas", "table_shell", "table_core") or k == 0:
            continue
        lut[k] = 7
    lut[_ID["kidney_left_cortex"]] = lut[_ID["kidney_left_medulla"]] = 1
    lut[_ID["kidney_right_cortex"]] = lut[_ID["kidney_right_medulla"]] = 2
    lut[_ID["liver"]] = 3
    lut[_ID["spleen"]] = 4
    lut[_ID["liver_metastasis_rim"]] = lut[_ID["liver_metastasis_core"]] = 100
    lut[_ID["lymph_node"]] = 101
    lut[_ID["bone_lesion"]] = 102
    for n, (level, _h, _d) in enumerate(VERTEBRA_LEVELS):
        if level in ("L2", "L3", "L4"):
            lut[40 + 5 * n] = lut[40 + 5 * n + 1] = 6
    labels = lut[tissues]
    # gas inside the body belongs to the body label (it is inside the skin)
    gas = tissues == _ID["bowel_gas"]
    labels[gas] = 7
    # marrow VOI: trabecular L2-L4 at >= 4 mm from anything that is not trabecular bone
    for n, (level, _h, _d) in enumerate(VERTEBRA_LEVELS):
        if level not in ("L2", "L3", "L4"):
            continue
        trab = tissues == (40 + 5 * n + 1)
        idx = np.argwhere(trab)
        lo = np.maximum(idx.min(0) - 3, 0)
        hi = idx.max(0) + 4
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        dist = ndimage.distance_transform_edt(trab[sl], sampling=voxel_mm)
        # distance to the nearest non-trabecular voxel centre; the boundary lies half a
        # voxel closer, hence the half-voxel correction along the coarsest axis
        core = dist >= _MARROW_MARGIN_MM + 0.5 * max(voxel_mm)
        sub = labels[sl]
        sub[core] = 5
    return labels


def build_model(preset="small", seed: int = 0) -> PhantomModel:
    """Rasterise the digital patient on the preset's extended CT grid.

    Parameters
    ----------
    preset : str or Preset
    seed : int
        Seed of the random details (bowel loops and gas pattern).
    """
    from scipy import ndimage

    p = get_preset(preset) if isinstance(preset, str) else preset
    x, y, z, affine_ext, affine_ct, ct_shape, pad = _grid(p)
    rng = np.random.default_rng([int(seed), 11])
    cv = Canvas((len(x), len(y), len(z)), x, y, z)
    _paint_body(cv)
    _paint_thorax(cv)
    _paint_organs(cv, rng)
    _paint_skeleton(cv)
    _paint_lesions(cv)
    _paint_table(cv)
    tissues = cv.array
    voxel_mm = (p.ct_pixel_mm, p.ct_pixel_mm, p.ct_slice_mm)
    labels = _labels_from_tissues(tissues, voxel_mm)
    hu_lut = np.full(256, -1000.0, np.float32)
    for k, v in TISSUES.items():
        hu_lut[k] = v["hu"]
    hu = hu_lut[tissues]
    sigma = [p.ct_blur_mm / 2.3548 / v for v in voxel_mm]
    hu = ndimage.gaussian_filter(hu, sigma, mode="nearest").astype(np.float32)
    return PhantomModel(p, tissues, labels, hu, affine_ext, affine_ct, ct_shape, pad,
                        {"seed": int(seed)})


def build_phantom(preset="small", seed: int = 0) -> Phantom:
    """The reference-pose anatomy in memory (no files, no SPECT).

    Parameters
    ----------
    preset : {"small", "standard"} or Preset
    seed : int

    Returns
    -------
    Phantom
        ``ct_hu`` (HU, float32, noise-free), ``labels`` (DESIGN ids), ``tissues``, on the
        reference CT grid (axial HFS: i to patient left, j posterior, k superior).
    """
    m = build_model(preset, seed)
    tnames = {0: "air"} | {k: v["name"] for k, v in TISSUES.items()}
    return Phantom(
        ct_hu=Image(np.ascontiguousarray(m.crop(m.hu)), m.ct_affine, "HU"),
        labels=Image(np.ascontiguousarray(m.crop(m.labels)), m.ct_affine, "label"),
        tissues=Image(np.ascontiguousarray(m.crop(m.tissues)), m.ct_affine, "label"),
        tissue_names=tnames,
        label_names={0: "background", **LABEL_NAMES},
    )
