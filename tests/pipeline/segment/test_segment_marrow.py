"""EANM marrow VOI: inside the trabecular part, away from cortex, endplates and lesions."""

import numpy as np
from scipy import ndimage as ndi

from pipeline.segment.marrow import marrow_voi

VS = (1.0, 1.0, 2.5)


def _vertebral_body(shape=(60, 60, 16)):
    # cylinder radius 20 mm, height 35 mm (14 slices), cortex/endplates = outer 1.5 mm
    ii, jj, kk = np.indices(shape)
    r = np.hypot(ii - 30, jj - 30)
    body = (r <= 20) & (kk >= 1) & (kk <= 14)
    return body


def _distance_to_outside(body):
    return ndi.distance_transform_edt(np.pad(body, 1), sampling=VS)[1:-1, 1:-1, 1:-1]


def test_eroded_voi_keeps_the_margin_from_cortex_and_endplates():
    body = _vertebral_body()
    voi = marrow_voi({"L3": body}, VS, "eroded", margin_mm=4.0)["L3"]
    assert voi.any() and np.all(body[voi])
    # every VOI voxel centre is > 4 mm from the body surface (surface = half a voxel beyond the
    # outermost centres); checked independently along z: no VOI in the outer 4 mm slabs
    kk = np.flatnonzero(voi.any(axis=(0, 1)))
    z_lo_mm = (kk.min() - 0.5) * 2.5  # centre of the lowest VOI slice to the bottom surface (slice 1 - 0.5)
    assert z_lo_mm > 4.0 - 1e-9
    assert ((14 + 0.5) - kk.max()) * 2.5 > 4.0
    ii, jj = np.nonzero(voi.any(axis=2))
    assert 20.5 - np.hypot(ii - 30, jj - 30).max() > 4.0  # surface at ~20.5 mm from the axis


def test_spheres_have_the_requested_radius_and_stay_inside_the_interior():
    body = _vertebral_body()
    voi = marrow_voi({"L3": body}, VS, "spheres", margin_mm=4.0, sphere_radius_mm=8.0)["L3"]
    interior = marrow_voi({"L3": body}, VS, "eroded", margin_mm=4.0)["L3"]
    assert np.all(interior[voi])
    vol_mm3 = voi.sum() * np.prod(VS)
    # a sphere of 8 mm radius (2145 mm^3), clipped by the interior (height ~ 25 mm, so only the
    # caps beyond +-12.5 mm would be clipped: none); voxelisation on a 1x1x2.5 mm grid: +-15 %
    assert abs(vol_mm3 - 4 / 3 * np.pi * 8 ** 3) / (4 / 3 * np.pi * 8 ** 3) < 0.15


def test_voi_stays_away_from_lesions():
    body = _vertebral_body()
    lesion = np.zeros_like(body)
    lesion[28:33, 28:33, 7:9] = True
    voi = marrow_voi({"L3": body}, VS, "eroded", margin_mm=4.0, lesions=lesion)["L3"]
    # centre-to-centre distance (mm) of every VOI voxel to the nearest lesion voxel
    dist = ndi.distance_transform_edt(~lesion, sampling=VS)
    assert voi.any() and dist[voi].min() > 4.0
    # and the lesion did remove voxels that the lesion-free VOI had
    assert voi.sum() < marrow_voi({"L3": body}, VS, "eroded", margin_mm=4.0)["L3"].sum()


def test_thick_slices_do_not_widen_the_in_plane_margin():
    # 1 x 1 x 5 mm voxels: the endplate margin counts half a 5 mm slice, the in-plane one half a 1 mm pixel
    ii, jj, kk = np.indices((60, 60, 10))
    body = (np.hypot(ii - 30, jj - 30) <= 20) & (kk >= 1) & (kk <= 8)  # surface ~20.5 mm from the axis
    voi = marrow_voi({"L3": body}, (1.0, 1.0, 5.0), "eroded", margin_mm=4.0)["L3"]
    ii, jj = np.nonzero(voi.any(axis=2))
    r = np.hypot(ii - 30, jj - 30).max()
    assert 20.5 - 4.0 - 1.0 <= r < 20.5 - 4.0  # within one pixel of the margin, never inside it
    kk = np.flatnonzero(voi.any(axis=(0, 1)))
    assert (kk.min() - 0.5) * 5.0 > 4.0 and ((8 + 0.5) - kk.max()) * 5.0 > 4.0
