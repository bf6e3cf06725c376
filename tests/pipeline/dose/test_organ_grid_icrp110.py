"""Organ self-doses independent of the dose-grid voxel size, on ICRP-110 anatomy (issue 20, part b).

Uniform 1 MBq*h/mL in the left kidney (142 mL), spleen (125 mL) or liver (1333 mL) of the ICRP-110
adult female phantom; the dose stage gets it binned into 4.8, 4.42 and 3.9 mm dose grids and
computes the organ's mean self-dose with the organ-grid dose (default). Reference: the same
source with the near electron dose on the phantom grid cut 2 x 2 x 5 (0.89 x 0.89 x 0.97 mm)
and the rest on the phantom grid (:mod:`pipeline.dose.organ_grid_check`). Tolerance 2 % (issue
20). Measured (2026-12): organ grid within -0.48 % .. +0.24 % for all 27 cases; the dose-grid
path (``organ_grid: dose``) -2.5 % (liver, Y-90, 3.9 mm) to -12.3 % (spleen, Lu-177, 4.8 mm).
"""

from __future__ import annotations

import pytest

from sample_data.icrp110 import default_zip_path

pytestmark = pytest.mark.slow

GRIDS_MM = (4.8, 4.42, 3.9)


@pytest.fixture(scope="module")
def af_phantom():
    path = default_zip_path()
    if not path.exists():
        pytest.skip(f"{path} is not present (../shared/data/icrp110)")
    from sample_data.icrp110 import load_phantom

    return load_phantom(path, "AF")


@pytest.mark.parametrize("nuclide", ["Lu-177", "Cu-67", "Y-90"])
@pytest.mark.parametrize("organ", ["kidney_left", "spleen", "liver"])
def test_organ_self_dose_on_spect_grids_is_within_2_percent_of_the_1_mm_reference(af_phantom, organ, nuclide):
    from pipeline.dose.organ_grid_check import binned_tia, phantom_organ, reference_self_dose_gy, stage_self_dose_gy

    case = phantom_organ(None, organ, af_phantom)
    ref = reference_self_dose_gy(case, nuclide)
    # the phantom grid alone gives the same mean (voxel S-values are exact means over a union of
    # voxels): a check of the S-value integration at two voxel sizes, 0.05 %
    assert ref["phantom_grid_gy"] == pytest.approx(ref["reference_gy"], rel=5e-4)
    for voxel_mm in GRIDS_MM:
        tia = binned_tia(case, voxel_mm)
        fine = stage_self_dose_gy(case, nuclide, voxel_mm, "ct", tia=tia)
        coarse = stage_self_dose_gy(case, nuclide, voxel_mm, "dose", tia=tia)
        print(f"{organ} {nuclide} {voxel_mm} mm: organ grid {100 * (fine / ref['reference_gy'] - 1):+.2f} %, "
              f"dose grid {100 * (coarse / ref['reference_gy'] - 1):+.2f} %")
        assert fine == pytest.approx(ref["reference_gy"], rel=0.02), voxel_mm
        assert abs(fine / ref["reference_gy"] - 1) < abs(coarse / ref["reference_gy"] - 1), voxel_mm


@pytest.mark.parametrize("nuclide", ["Lu-177", "Y-90"])
def test_sample_patient_organ_doses_from_its_spect_grid_are_within_2_percent_of_the_ct_grid_truth(
        tmp_path, nuclide):
    # The small sample patient (noise-free), true TIA on its CT grid (3.5 x 3.5 x 5 mm) binned into
    # its 4.8 mm SPECT grid (no camera blur): every region holds activity (organs, lesions, marrow,
    # body background), and the kidneys' is not uniform (cortex and medulla). Reference: the true
    # TIA as the CT-grid source (pipeline.dose.organ_grid_check.sample_patient_check). Tolerance 2 %
    # (issue 20). Measured: kidneys -1.6 .. -1.4 %, liver +0.3 %, spleen +1.7 %, lesions -0.4 ..
    # +0.8 % (dose-grid path: kidneys -12 .. -9 %, lesions -26 .. -11 %). The marrow VOI's voxel
    # mean (+2.6 .. +6.8 %) and the vertebrae (-4 %) are not asserted: activity is not uniform
    # inside them (cortical shell, marrow), the assumption of the placement; the EANM marrow dose
    # does not use the voxel dose.
    from sample_data.generator import generate

    from pipeline.dose.organ_grid_check import sample_patient_check

    sample = generate(tmp_path / "sample", preset="small", nuclide=nuclide, seed=0, noise=False)
    res = sample_patient_check(sample, nuclide)
    for name in ("kidney_left", "kidney_right", "liver", "spleen", "liver_metastasis", "lymph_node", "bone_lesion"):
        r = res[name]
        print(f"{nuclide} {name}: organ grid {100 * (r['organ_grid_gy'] / r['reference_gy'] - 1):+.2f} %, "
              f"dose grid {100 * (r['dose_grid_gy'] / r['reference_gy'] - 1):+.2f} %")
        assert r["organ_grid_gy"] == pytest.approx(r["reference_gy"], rel=0.02), name
    for name in ("kidney_left", "kidney_right", "bone_lesion"):
        assert res[name]["dose_grid_gy"] < 0.95 * res[name]["reference_gy"], name
