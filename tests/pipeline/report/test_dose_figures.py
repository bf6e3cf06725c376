"""Fused dose figures: radiological orientation from any affine, the hot spot over the right organ."""

from __future__ import annotations

import numpy as np
import pytest
from report_synthetic import AFFINE_LPS_LIKE, make_patient, phantom, write_nifti

from pipeline.report.dosefig import draw_panels, isodose_levels, kidney_centre, load_volumes, marker_of, three_planes

AFFINES = {
    "lps_like": AFFINE_LPS_LIKE,
    "ras": np.array([[4.0, 0, 0, -118.0], [0, 4.0, 0, -98.0], [0, 0, 4.0, -78.0], [0, 0, 0, 1]]),
    # i runs superior->inferior, j left->right, k anterior->posterior (axes permuted and flipped)
    "permuted": np.array([[0, 4.0, 0, -118.0], [0, 0, -4.0, 98.0], [-4.0, 0, 0, 78.0], [0, 0, 0, 1]]),
}


@pytest.fixture(params=sorted(AFFINES))
def volumes(tmp_path, request):
    affine = AFFINES[request.param]
    shape = (40, 60, 50) if request.param == "permuted" else (60, 50, 40)
    patient = make_patient(tmp_path, with_volumes=False)
    ct, dose, labels = phantom(affine, shape)
    write_nifti(patient / "register" / "reference_ct.nii.gz", ct, affine)
    write_nifti(patient / "dose" / "dose_ct.nii.gz", dose, affine)
    write_nifti(patient / "segment" / "labels.nii.gz", labels, affine)
    vol, why = load_volumes(patient)
    assert why is None
    return vol


def _world_x(vol, panel, col):
    return vol.world_mm(panel.ras_index(0, col))[0]


def test_hot_spot_is_in_the_left_kidney_on_the_patients_left_in_all_three_planes(volumes):
    vol = volumes
    centre, side = kidney_centre(vol)
    assert side == "left" and vol.world_mm(centre)[0] < 0  # RAS: the patient's left is x < 0
    axial, coronal, sagittal = three_planes(vol, centre)
    for panel in (axial, coronal, sagittal):
        row, col = marker_of(panel, centre)
        assert panel.labels[row, col] == 1, panel.name  # over the left kidney in every plane
        assert panel.dose[row, col] == pytest.approx(float(vol.dose.max()))
    for panel in (axial, coronal):
        assert panel.letters[:2] == ("R", "L")
        # the viewer's left column is the patient's right (larger x)
        assert _world_x(vol, panel, 0) > _world_x(vol, panel, panel.dose.shape[1] - 1)
        assert marker_of(panel, centre)[1] > panel.dose.shape[1] / 2  # drawn on the "L" half
    assert axial.letters[2:] == ("A", "P") and coronal.letters[2:] == ("S", "I")
    top = vol.world_mm(axial.ras_index(0, 0))[1]
    bottom = vol.world_mm(axial.ras_index(axial.dose.shape[0] - 1, 0))[1]
    assert top > bottom  # anterior at the top
    assert sagittal.letters == ("A", "P", "S", "I")
    assert vol.world_mm(sagittal.ras_index(0, 0))[0] < 0  # the sagittal plane cuts the left kidney


def test_drawn_figure_puts_the_marker_on_the_side_of_the_L_letter(volumes, tmp_path):
    vol = volumes
    centre, _ = kidney_centre(vol)
    panels = three_planes(vol, centre)
    fig = draw_panels(panels, ["a", "c", "s"], tmp_path / "f.png", "test",
                      markers=[marker_of(p, centre) for p in panels])
    assert (tmp_path / "f.png").stat().st_size > 5000
    for ax, panel in zip(fig.axes[:2], panels[:2]):
        letter_x = {t.get_text(): t.get_position()[0] for t in ax.texts if t.get_gid() and "orientation" in t.get_gid()}
        assert letter_x["L"] > 0.5 > letter_x["R"]
        marker = next(line for line in ax.lines if line.get_gid() == "dose-maximum")
        x_data = marker.get_xdata()[0]
        x_axes = ax.transLimits.transform((x_data, 0))[0]
        assert x_axes > 0.5  # the hot spot is drawn on the L side
        image = next(im for im in ax.images if im.get_gid() == "dose")
        assert image.origin == "upper" and image.get_extent()[3] == 0.0  # row 0 drawn at the top
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "Absorbed dose (Gy)"


def test_isodose_levels_are_round_numbers_inside_the_range():
    assert isodose_levels(4.41) == [0.5, 1.0, 2.0, 3.0]
    assert isodose_levels(21.4) == [3.0, 5.0, 10.0, 20.0]
    assert isodose_levels(0.0) == []
