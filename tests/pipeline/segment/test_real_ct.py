"""Built-in segmenter on the real GE Optima 540 CT (feet-first); skipped when the data are absent."""

import csv
import json

import numpy as np
import pytest

from pipeline.segment.cli import main


@pytest.fixture(scope="module")
def real_ct_nifti(real_ct_dir, tmp_path_factory):
    import SimpleITK as sitk

    from pipeline.imageio import from_sitk, write_image

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(real_ct_dir))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(real_ct_dir), series[0]))
    ct = from_sitk(reader.Execute(), "HU")
    path = tmp_path_factory.mktemp("realct") / "ct.nii.gz"
    write_image(path, ct.with_array(ct.array.astype(np.int16)), {"quantity": "ct"})
    return path


@pytest.fixture(scope="module")
def rebinned_ct_nifti(real_ct_nifti, tmp_path_factory):
    """The GE CT as a 4.42 mm acquisition rebinned to 2.21 mm (sample_data.ct_variants.rebinned_ct)."""
    from pipeline.imageio import read_image, write_image
    from sample_data.ct_variants import rebinned_ct

    ct = rebinned_ct(read_image(real_ct_nifti, "HU")[0])
    path = tmp_path_factory.mktemp("rebinned") / "ct.nii.gz"
    write_image(path, ct.with_array(np.round(ct.array).astype(np.int16)), {"quantity": "ct"})
    return path


@pytest.fixture(scope="module")
def real_ct_result(real_ct_nifti, tmp_path_factory):
    out = tmp_path_factory.mktemp("realseg") / "segment"
    assert main(["--ct", str(real_ct_nifti), "--out", str(out), "--atlas", "none"]) == 0
    return out


@pytest.mark.slow
def test_real_ct_organ_volumes_are_physiological(real_ct_result):
    rows = {r["name"]: r for r in csv.DictReader((real_ct_result / "organs.csv").open())}
    # issue 7 ranges: liver 0.9-2.5 L, each kidney 70-260 mL
    assert 900.0 <= float(rows["liver"]["volume_ml"]) <= 2500.0
    for k in ("kidney_left", "kidney_right"):
        assert 70.0 <= float(rows[k]["volume_ml"]) <= 260.0, k
    # soft-tissue organs have soft-tissue CT numbers (non-contrast: 0-100 HU)
    for k in ("liver", "kidney_left", "kidney_right", "spleen"):
        assert 0.0 < float(rows[k]["mean_hu"]) < 100.0, k


@pytest.mark.slow
def test_real_ct_l2_l4_lie_below_the_lowest_rib_bearing_vertebra(real_ct_result):
    info = json.loads((real_ct_result / "labels.json").read_text())
    levels = info["vertebrae"]
    rib = [n for n, v in levels.items() if v["rib_bearing"]]
    assert rib, "no rib-bearing vertebra found"
    lowest_rib_z = min(levels[n]["centre_ras_mm"][2] for n in rib)
    for n in ("L2", "L3", "L4"):
        assert levels[n]["centre_ras_mm"][2] < lowest_rib_z
        assert not levels[n]["rib_bearing"]
    # the lowest rib-bearing vertebra is the one just above L1, i.e. T12 (sacrum count agrees)
    lowest = min(rib, key=lambda n: levels[n]["centre_ras_mm"][2])
    assert lowest == "T12"
    assert levels["L1"]["centre_ras_mm"][2] < levels[lowest]["centre_ras_mm"][2]
    assert (real_ct_result / "qc.png").stat().st_size > 50000


@pytest.mark.slow
def test_real_ct_with_the_icrp110_atlas_gives_physiological_organs_and_records_the_method(
        real_ct_nifti, tmp_path):
    from sample_data.icrp110 import default_zip_path

    if not default_zip_path().is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    out = tmp_path / "segment"
    assert main(["--ct", str(real_ct_nifti), "--out", str(out), "--atlas", str(default_zip_path())]) == 0
    rows = {r["name"]: r for r in csv.DictReader((out / "organs.csv").open())}
    assert 900.0 <= float(rows["liver"]["volume_ml"]) <= 2500.0
    for k in ("kidney_left", "kidney_right"):
        assert 70.0 <= float(rows[k]["volume_ml"]) <= 260.0, k
    qc = json.loads((out / "qc.json").read_text())
    assert qc["status"] in ("pass", "warn")
    organs = qc["organ_method"]["organs"]
    assert set(organs) == {"kidney_left", "kidney_right", "liver", "spleen"}
    for r in organs.values():  # a real person is neither phantom: every organ refined on its own CT
        assert r["method"] == "atlas+CT" and set(r["weights"]) == {"ICRP110_AF", "ICRP110_AM"}


@pytest.mark.slow
def test_real_ct_rebinned_from_a_coarse_acquisition_gives_right_levels_and_whole_marrow_vois(rebinned_ct_nifti,
                                                                                             tmp_path):
    """The GE CT as a 4.42 mm acquisition rebinned to 2.21 mm (the held-back case's kind of CT),
    the ICRP-110 atlas. Before: T11 was taken for T12 (a thin 12th rib lost at 150 HU), the atlas
    sided with the ribs and L2-L4 went on one level high with a warn; with the ribs found, L2 and
    L3, whose canal is no hole on this CT, were cut at a dip in their own trabecular core and
    their marrow VOIs failed the gate at 1.0 and 1.5 mL. Measured now: levels pass (sacrum,
    crests and ribs agree), L3 centre at z = -209 mm (reference -224..-191 mm, read on the full
    CT), marrow VOIs 15.5 / 17.0 / 18.8 mL, kidneys 137 / 159 mL (full CT: 130 / 150 mL)."""
    from sample_data.icrp110 import default_zip_path

    if not default_zip_path().is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    out = tmp_path / "segment"
    assert main(["--ct", str(rebinned_ct_nifti), "--out", str(out), "--atlas", str(default_zip_path())]) == 0
    qc = json.loads((out / "qc.json").read_text())
    assert qc["levels"]["decision"] == "pass", qc["levels"]["message"]
    info = json.loads((out / "labels.json").read_text())
    z3 = info["vertebrae"]["L3"]["centre_ras_mm"][2]
    assert -224.0 <= z3 <= -191.0
    marrow = {c["structure"]: c["value"] for c in qc["checks"]
              if c["check"] == "volume_ml" and c["structure"].startswith("marrow_L")}
    assert len(marrow) == 3 and min(marrow.values()) >= 8.0, marrow
    rows = {r["name"]: float(r["volume_ml"]) for r in csv.DictReader((out / "organs.csv").open())}
    for k in ("kidney_left", "kidney_right"):  # within 15 % of the full CT's 130 / 150 mL
        assert 110.0 <= rows[k] <= 175.0, (k, rows[k])


@pytest.mark.slow
@pytest.mark.parametrize("offset_hu", [15.0, -30.0])
def test_real_ct_whose_body_reads_off_by_tens_of_hu_keeps_its_levels_and_kidneys(rebinned_ct_nifti, tmp_path,
                                                                                   offset_hu):
    """The rebinned GE CT with every voxel of the body read ``offset_hu`` off (calibration, beam
    hardening, tube voltage). Before the segmenter read the CT against its fat peak
    (pipeline.segment.ct_numbers): +15 HU named L2-L4 one level high (the atlas, siding with
    no landmark) and grew the kidneys from 144 / 161 to 163 / 208 mL with only warns; -30 HU
    named them five levels off and the gate failed it. Measured after: the landmarks' levels,
    kidneys 147 / 167 mL for both (both read as with fat at -102 HU; the CT as it is, -106 HU:
    147 / 165 mL, with the fat levels of the organs' refinement at its own fat); the gate warns on
    the fat peak only, its tissue checks reading the CT against fat too."""
    from pipeline.imageio import read_image, write_image
    from sample_data.icrp110 import default_zip_path

    if not default_zip_path().is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    ct, _ = read_image(rebinned_ct_nifti, "HU")
    a = np.asarray(ct.array)
    path = tmp_path / "ct.nii.gz"
    write_image(path, ct.with_array(np.where(a > -500, a + offset_hu, a).astype(np.int16)), {"quantity": "ct"})
    out = tmp_path / "segment"
    assert main(["--ct", str(path), "--out", str(out), "--atlas", str(default_zip_path())]) == 0
    qc = json.loads((out / "qc.json").read_text())
    # named by the CT's landmarks (a warn for a 75 mm L5 whose disc with S1 is blurred away)
    assert "sacrum, iliac_crests, ribs agree" in qc["levels"]["message"], qc["levels"]["message"]
    z3 = json.loads((out / "labels.json").read_text())["vertebrae"]["L3"]["centre_ras_mm"][2]
    assert -224.0 <= z3 <= -191.0
    fat = [c for c in qc["checks"] if c["check"] == "fat_peak_hu"][0]
    assert fat["status"] == "warn"
    # the gate reads the organs' CT numbers against fat too: no other tissue check warns
    assert [c["check"] for c in qc["checks"] if c["status"] != "pass" and c["structure"] not in
            ("ct", "vertebrae_L2L4")] == []
    assert qc["organ_method"]["ct_numbers"]["subtracted_hu"] == pytest.approx(offset_hu - 3.8, abs=2.0)
    rows = {r["name"]: float(r["volume_ml"]) for r in csv.DictReader((out / "organs.csv").open())}
    for k, ml in (("kidney_left", 147.0), ("kidney_right", 165.0)):  # the unshifted CT's, within 8 %
        assert abs(rows[k] / ml - 1.0) <= 0.08, (k, rows[k])
