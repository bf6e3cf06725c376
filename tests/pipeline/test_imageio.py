"""Round trips between the image model, SimpleITK and NIfTI keep every voxel's world position."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.errors import InputError
from pipeline.image import Image, affine_from_geometry
from pipeline.imageio import (
    from_nifti,
    from_sitk,
    read_image,
    sidecar_path,
    to_nifti,
    to_sitk,
    write_image,
)

TOL_MM = 1e-4


def _rotation(axis, angle_deg):
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# Direction cosines (columns = i, j, k axes in RAS+) of the cases the issue names.
GEOMETRIES = {
    # DICOM axial head-first supine: i -> L (RAS -x), j -> P (RAS -y), k -> S (+z)
    "head_first_supine": np.diag([-1.0, -1.0, 1.0]),
    # feet-first supine: i -> R (+x), j -> P (-y), k -> I (-z)
    "feet_first_supine": np.diag([1.0, -1.0, -1.0]),
    # head-first prone: i -> R, j -> A, k -> S
    "head_first_prone": np.diag([1.0, 1.0, 1.0]),
    # oblique: rotated about two axes
    "oblique": _rotation("z", 17.0) @ _rotation("x", -11.0) @ np.diag([-1.0, -1.0, 1.0]),
    "oblique_feet_first": _rotation("y", 8.0) @ _rotation("z", -23.0) @ np.diag([1.0, -1.0, -1.0]),
}
SPACING = (0.9765625, 1.3, 2.5)  # anisotropic, mm


def _image(direction, shape=(7, 5, 4), spacing=SPACING, origin=(-120.5, 87.25, -310.0)):
    rng = np.random.default_rng(0)
    array = rng.normal(size=shape).astype(np.float32)
    return Image(array, affine_from_geometry(origin, direction, spacing), "Bq/mL")


def _assert_same_world(a: Image, b: Image):
    assert a.shape == b.shape
    np.testing.assert_allclose(a.world_grid(), b.world_grid(), atol=TOL_MM, rtol=0)
    np.testing.assert_array_equal(a.array, b.array)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_sitk_round_trip_keeps_world_coordinates(name):
    image = _image(GEOMETRIES[name])
    back = from_sitk(to_sitk(image), image.unit)
    _assert_same_world(image, back)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_sitk_physical_points_match_ras_world_of_each_voxel(name):
    """SimpleITK's own index->physical (LPS) equals the image model's RAS world, flipped."""
    image = _image(GEOMETRIES[name])
    itk = to_sitk(image)
    world = image.world_grid()
    for ijk in [(0, 0, 0), (6, 4, 3), (3, 1, 2), (0, 4, 1)]:
        lps = np.asarray(itk.TransformIndexToPhysicalPoint([int(v) for v in ijk]))
        ras = world[ijk]
        np.testing.assert_allclose(lps * [-1, -1, 1], ras, atol=TOL_MM)
        assert itk[ijk] == pytest.approx(float(image.array[ijk]))


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_nifti_file_round_trip_keeps_world_coordinates_and_sidecar(name, tmp_path):
    image = _image(GEOMETRIES[name])
    path = write_image(tmp_path / "spect.nii.gz", image, {"quantity": "activity_concentration",
                                                          "radionuclide": "Lu-177"})
    back, sidecar = read_image(path)
    _assert_same_world(image, back)
    assert back.unit == "Bq/mL"
    assert sidecar["quantity"] == "activity_concentration"
    assert sidecar["unit"] == "Bq/mL"
    assert sidecar["radionuclide"] == "Lu-177"
    assert sidecar["software"] == "spectdose" and sidecar["software_version"]


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_nifti_written_by_sitk_reads_back_at_same_world_points(name, tmp_path):
    """A file written by SimpleITK and read by nibabel (and vice versa) agrees voxel by voxel."""
    image = _image(GEOMETRIES[name])
    path = tmp_path / "via_sitk.nii.gz"
    sitk.WriteImage(to_sitk(image), str(path))
    import nibabel as nib

    _assert_same_world(image, from_nifti(nib.load(str(path)), image.unit))
    path2 = tmp_path / "via_nib.nii.gz"
    import nibabel as nib

    nib.save(to_nifti(image), str(path2))
    _assert_same_world(image, from_sitk(sitk.ReadImage(str(path2)), image.unit))


def test_sheared_affine_is_refused_by_sitk_conversion():
    affine = np.eye(4)
    affine[0, 1] = 0.3
    with pytest.raises(ValueError, match="shear"):
        to_sitk(Image(np.zeros((2, 2, 2)), affine, "HU"))


def test_failed_write_leaves_nothing_behind(tmp_path):
    image = _image(np.eye(3))

    class Boom(RuntimeError):
        pass

    import pipeline.imageio as io

    original = io.to_nifti

    def failing(img):
        raise Boom("disk full")

    io.to_nifti = failing
    try:
        with pytest.raises(Boom):
            write_image(tmp_path / "dose.nii.gz", image, {"quantity": "absorbed_dose"})
    finally:
        io.to_nifti = original
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    image = _image(np.eye(3))
    target = tmp_path / "a.nii.gz"
    write_image(target, image, {"quantity": "x"})
    write_image(target, image.with_array(image.array * 2), {"quantity": "x"})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.json", "a.nii.gz"]
    back, _ = read_image(target)
    np.testing.assert_array_equal(back.array, image.array * 2)
    assert json.loads(sidecar_path(target).read_text())["unit"] == "Bq/mL"


def test_reading_a_truncated_nifti_names_the_file(tmp_path):
    image = _image(np.eye(3), shape=(40, 40, 40))
    target = write_image(tmp_path / "ct.nii.gz", image, {"quantity": "x"})
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="ct.nii.gz"):
        back, _ = read_image(target)
        np.asarray(back.array).sum()


def test_reading_a_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match="nope.nii.gz: file not found"):
        read_image(tmp_path / "nope.nii.gz")


def test_atomic_outputs_get_the_umask_mode_not_mkstemp_0600(tmp_path):
    import os
    import stat

    from pipeline.atomic import atomic_dir, write_text

    old = os.umask(0o022)
    try:
        f = write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "b").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_read_json_round_trips_write_json_and_names_the_file_when_missing_or_invalid(tmp_path):
    from pipeline.atomic import read_json, write_json

    write_json(tmp_path / "a.json", {"labels": {"1": "kidney_left"}, "x": 1.5})
    assert read_json(tmp_path / "a.json") == {"labels": {"1": "kidney_left"}, "x": 1.5}
    with pytest.raises(InputError, match=r"nope\.json: label vocabulary not found"):
        read_json(tmp_path / "nope.json", "label vocabulary")
    (tmp_path / "bad.json").write_text("{1: 2")
    with pytest.raises(InputError, match=r"bad\.json: fits is not valid JSON \(.*line 1\)"):
        read_json(tmp_path / "bad.json", "fits")
