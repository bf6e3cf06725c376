"""Test material for the registration tests: an analytic torso phantom and helpers.

The phantom is independent of the sample-data generator: a body with a fat
layer, lungs, a liver, two kidneys in perirenal fat and a column of vertebral
bodies separated by discs, with labels and an activity map. Moving time
points are made by resampling it with a known rigid transform, so the true
answer of every registration is known.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from pipeline.image import Image, affine_from_geometry
from pipeline.imageio import LPS_FROM_RAS, make_sidecar, write_image
from pipeline.register.resample import MovingToReference, resample_activity, resample_image
from pipeline.register.transforms import euler_from_affine_ras

#: labels of the analytic phantom
KIDNEY_LEFT, KIDNEY_RIGHT, LIVER, VERTEBRA, BODY = 1, 2, 3, 6, 7
#: vertebral body centres along z (RAS mm)
VERTEBRA_Z_MM = (-105.0, -70.0, -35.0, 0.0, 35.0, 70.0, 105.0)
KIDNEY_CENTRES = {KIDNEY_LEFT: (70.0, -45.0, 0.0), KIDNEY_RIGHT: (-70.0, -45.0, -15.0)}
LIVER_CENTRE = (-60.0, 20.0, 70.0)


def ellipsoid(x, centre, semi_axes):
    return sum(((x[..., a] - centre[a]) / semi_axes[a]) ** 2 for a in range(3)) <= 1.0


def phantom(voxel_mm=3.0, shape=(120, 90, 100), noise_hu=15.0, seed=0):
    """CT (HU), labels and activity (Bq/mL) of the analytic torso, RAS+ axis-aligned grid.

    Returns
    -------
    ct, labels, activity : Image
    """
    origin = -(np.array(shape) - 1) / 2.0 * voxel_mm
    affine = affine_from_geometry(origin, np.eye(3), [voxel_mm] * 3)
    x = Image(np.zeros(shape, np.uint8), affine, "none").world_grid()
    hu = np.full(shape, -1000.0)
    labels = np.zeros(shape, np.uint8)
    r2 = (x[..., 0] / 160.0) ** 2 + ((x[..., 1] + 5.0) / 110.0) ** 2
    body = (r2 <= 1.0) & (np.abs(x[..., 2]) <= 140.0)
    hu[body] = -100.0  # subcutaneous and visceral fat
    inner = ((x[..., 0] / 145.0) ** 2 + ((x[..., 1] + 5.0) / 95.0) ** 2 <= 1.0) & body
    hu[inner] = 40.0  # muscle and viscera
    labels[body] = BODY
    for sx in (-1, 1):  # lungs, upper part
        lung = ellipsoid(x, (sx * 70.0, 0.0, 125.0), (55.0, 60.0, 70.0)) & body
        hu[lung] = -850.0
    liver = ellipsoid(x, LIVER_CENTRE, (70.0, 60.0, 45.0)) & body
    hu[liver] = 60.0
    labels[liver] = LIVER
    for lab, c in KIDNEY_CENTRES.items():
        fat = ellipsoid(x, c, (42.0, 37.0, 67.0))
        hu[fat & body] = -90.0
        kidney = ellipsoid(x, c, (28.0, 22.0, 52.0))
        hu[kidney] = 35.0
        labels[kidney] = lab
    for z in VERTEBRA_Z_MM:  # vertebral bodies: cortical shell, trabecular interior; discs between
        d2 = (x[..., 0] / 20.0) ** 2 + ((x[..., 1] + 60.0) / 17.0) ** 2
        vb = (d2 <= 1.0) & (np.abs(x[..., 2] - z) <= 13.0)
        core = (d2 <= 0.6) & (np.abs(x[..., 2] - z) <= 10.0)
        hu[vb] = 700.0
        hu[core] = 250.0
        labels[vb] = VERTEBRA
        spinous = (np.abs(x[..., 0]) <= 4.0) & (x[..., 1] < -77.0) & (x[..., 1] > -100.0) & (np.abs(x[..., 2] - z) <= 9.0)
        hu[spinous] = 600.0
    rng = np.random.default_rng(seed)
    hu = hu + rng.normal(0.0, noise_hu, shape) if noise_hu else hu
    act = np.where(body, 20.0, 0.0)
    act[liver] = 300.0
    for lab in KIDNEY_CENTRES:
        act[labels == lab] = 2000.0
    ct = Image(hu.astype(np.float32), affine, "HU")
    return ct, Image(labels, affine, "label"), Image(act, affine, "Bq/mL")


def spect_grid(voxel_mm=4.8, shape=(80, 64, 66)):
    origin = -(np.array(shape) - 1) / 2.0 * voxel_mm + np.array([1.1, -0.7, 0.4])  # not aligned to the CT
    return Image(np.zeros(shape, np.uint8), affine_from_geometry(origin, np.eye(3), [voxel_mm] * 3), "grid")


def rigid_ras(rotation_deg=(3.0, -2.0, 2.5), translation_mm=(10.0, -7.0, 12.0), centre_ras_mm=(0, 0, 0)):
    """4x4 RAS+ map reference -> moving: rotation (x, y, z, degrees) about a centre, then translation."""
    rx, ry, rz = np.radians(rotation_deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
    c = np.asarray(centre_ras_mm, float)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = c - rot @ c + np.asarray(translation_mm, float)
    return m


def move(image: Image, matrix_ras, default=-1000.0, interpolator="linear") -> Image:
    """The image as seen in a session whose frame is ``x_tp = matrix_ras @ x_ref`` (same grid)."""
    inv = euler_from_affine_ras(np.linalg.inv(matrix_ras))
    return resample_image(image, image, inv, default_value=default, interpolator=interpolator)


def spect_of(activity: Image, grid: Image, matrix_ras=None) -> Image:
    """Activity (reference pose, CT grid) binned onto a SPECT grid in the session frame ``matrix_ras``."""
    m = np.eye(4) if matrix_ras is None else np.asarray(matrix_ras, float)
    out, _ = resample_activity(activity, grid, MovingToReference(m))
    return out


def transform_points(matrix_ras, points):
    p = np.asarray(points, float)
    return p @ matrix_ras[:3, :3].T + matrix_ras[:3, 3]


def write_ingest_tp(folder, tp, time_h, ct: Image, spect: Image, nuclide="Lu-177", injected_mbq=7400.0):
    """An ingest-like time point folder: ct.nii.gz and spect.nii.gz with the contract's sidecar fields."""
    common = {"patient_id": "TEST01", "time_point": tp, "time_h": float(time_h), "radionuclide": nuclide,
              "injected_activity_mbq": injected_mbq, "acquisition_datetime": "2026-01-05T10:00:00"}
    write_image(folder / tp / "ct.nii.gz", ct, {**make_sidecar("ct_hounsfield", "HU"), **common})
    write_image(folder / tp / "spect.nii.gz", spect, {**make_sidecar("activity_concentration", "Bq/mL"), **common})
