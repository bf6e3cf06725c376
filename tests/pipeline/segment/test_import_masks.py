"""Import backends: DICOM SEG / RTSTRUCT round trips, NIfTI maps, geometry checks, empty organs."""

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.image import Image
from pipeline.imageio import write_image
from pipeline.segment import import_masks as im
from pipeline.segment.assemble import assemble_labels, check_organs
from pipeline.segment.labels import FIXED_LABELS

from segment_synthetic import make_grid, organ_phantom


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


@pytest.mark.parametrize("oblique,feet_first", [(False, False), (True, True)])
def test_dicom_seg_round_trip_is_exact(tmp_path, oblique, feet_first):
    shape = (48, 40, 30)
    labels, ct = organ_phantom(shape, make_grid(shape, oblique=oblique, feet_first=feet_first))
    im.write_dicom_seg(tmp_path / "seg.dcm", labels, FIXED_LABELS)
    notes = []
    got = im.read_dicom_seg(tmp_path / "seg.dcm", ct, notes)
    assert notes == []  # same geometry: no resampling
    for value, name in FIXED_LABELS.items():
        np.testing.assert_array_equal(got[name], np.asarray(labels.array) == value, err_msg=name)


@pytest.mark.parametrize("oblique,feet_first", [(False, False), (True, True), (False, True)])
def test_rtstruct_round_trip_dice_at_least_098(tmp_path, oblique, feet_first):
    shape = (48, 40, 30)
    labels, ct = organ_phantom(shape, make_grid(shape, oblique=oblique, feet_first=feet_first))
    im.write_rtstruct(tmp_path / "rs.dcm", labels, FIXED_LABELS)
    got = im.read_rtstruct(tmp_path / "rs.dcm", ct)
    for value, name in FIXED_LABELS.items():
        truth = np.asarray(labels.array) == value
        # issue 7: Dice >= 0.98 after contour export and rasterisation on the CT geometry
        assert dice(got[name], truth) >= 0.98, name


def test_rtstruct_hole_is_kept_by_the_even_odd_rule(tmp_path):
    shape = (30, 30, 4)
    aff = make_grid(shape)
    lab = np.zeros(shape, np.uint16)
    lab[5:25, 5:25, 1:3] = 3
    lab[12:18, 12:18, 1:3] = 0
    im.write_rtstruct(tmp_path / "rs.dcm", Image(lab, aff, "label"), {3: "liver"})
    got = im.read_rtstruct(tmp_path / "rs.dcm", Image(np.zeros(shape), aff, "HU"))
    np.testing.assert_array_equal(got["liver"], lab == 3)


def test_nifti_label_map_with_user_mapping(tmp_path, phantom_axial):
    labels, ct = phantom_axial
    user = np.zeros(labels.shape, np.int16)
    remap = {3: 10, 4: 11, 1: 12, 2: 13, 6: 14}
    for design, value in remap.items():
        user[np.asarray(labels.array) == design] = value
    write_image(tmp_path / "m.nii.gz", labels.with_array(user), {"quantity": "labels"})
    mapping = {"Liver": 10, "Spleen": 11, "Kidney L": 12, "right kidney": 13, "vertebrae_L2L4": 14}
    got = im.read_nifti_labels(tmp_path / "m.nii.gz", ct, mapping)
    for design, value in remap.items():
        np.testing.assert_array_equal(got[FIXED_LABELS[design]], user == value)


def test_masks_on_another_grid_are_resampled_with_a_note(tmp_path, phantom_axial):
    labels, ct = phantom_axial
    # the same anatomy on a grid of half the voxel count per axis (voxel 2x), same world frame
    coarse_aff = labels.affine.copy()
    coarse_aff[:3, :3] *= 2.0
    coarse_aff[:3, 3] = labels.index_to_world([0.5, 0.5, 0.5])
    coarse = np.asarray(labels.array)[::2, ::2, ::2]
    coarse = coarse[:, :, :]
    write_image(tmp_path / "c.nii.gz", Image(coarse, coarse_aff, "label"), {"quantity": "labels"})
    notes = []
    got = im.read_nifti_labels(tmp_path / "c.nii.gz", ct, None, notes)
    assert any("resampled" in n and "nearest neighbour" in n for n in notes)
    # nearest-neighbour of a 2x subsampled map: the liver still overlaps itself well
    truth = np.asarray(labels.array) == 3
    assert got["liver"].shape == ct.shape
    assert dice(got["liver"], truth) > 0.8


def test_masks_that_do_not_overlap_the_ct_are_refused(tmp_path, phantom_axial):
    labels, ct = phantom_axial
    far = labels.affine.copy()
    far[:3, 3] += [0.0, 0.0, 900.0]  # 90 cm away: another frame of reference
    write_image(tmp_path / "far.nii.gz", Image(labels.array, far, "label"), {"quantity": "labels"})
    with pytest.raises(InputError, match="do not overlap the CT"):
        im.read_nifti_labels(tmp_path / "far.nii.gz", ct)
    part = labels.affine.copy()
    part[:3, 3] += [0.0, 0.0, 60.0]  # half of the labelled voxels above the CT
    write_image(tmp_path / "part.nii.gz", Image(labels.array, part, "label"), {"quantity": "labels"})
    with pytest.raises(InputError, match="inside the CT field of view"):
        im.read_nifti_labels(tmp_path / "part.nii.gz", ct)


def test_empty_organ_is_an_error_naming_it(phantom_axial):
    labels, ct = phantom_axial
    arr = np.asarray(labels.array)
    structures = {name: arr == v for v, name in FIXED_LABELS.items()}
    structures["spleen"] = np.zeros(arr.shape, bool)
    with pytest.raises(InputError, match="spleen"):
        check_organs(structures, "masks.nii.gz")
    with pytest.raises(InputError, match="spleen"):
        assemble_labels(ct, structures, "masks.nii.gz", [])


def test_totalsegmentator_folder_is_read_and_vertebrae_reduced_to_bodies(tmp_path, phantom_axial):
    labels, ct = phantom_axial
    arr = np.asarray(labels.array)
    for stem, v in (("kidney_left", 1), ("kidney_right", 2), ("liver", 3), ("spleen", 4)):
        write_image(tmp_path / f"{stem}.nii.gz", labels.with_array((arr == v).astype(np.uint8)), {"quantity": "m"})
    vert = np.isin(arr, (5, 6))
    for n in ("L2", "L3", "L4"):
        write_image(tmp_path / f"vertebrae_{n}.nii.gz", labels.with_array(vert.astype(np.uint8)), {"quantity": "m"})
    got = im.read_totalsegmentator_folder(tmp_path, ct)
    np.testing.assert_array_equal(got["liver"], arr == 3)
    (tmp_path / "spleen.nii.gz").unlink()
    with pytest.raises(InputError, match="spleen.nii.gz"):
        im.read_totalsegmentator_folder(tmp_path, ct)


def test_canonical_names():
    assert im.canonical_name("Kidney_L") == "kidney_left"
    assert im.canonical_name("RIGHT KIDNEY") == "kidney_right"
    assert im.canonical_name("External") == "body"
    assert im.canonical_name("Lesion 3") == "lesion_3"
    assert im.canonical_name("Heart") is None
