"""``spectdose dose`` end to end on a synthetic patient: outputs, alignment with the CT, planning."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from kernels.decay import load_decay
from pipeline.dose.cli import main
from pipeline.image import Image, affine_from_geometry
from pipeline.imageio import make_sidecar, write_image
from pipeline.atomic import write_json

# CT grid: feet-first supine (i -> R, j -> P, k -> I), 2 mm; dose grid head-first 4.8 mm.
CT_DIR = np.diag([1.0, -1.0, -1.0])
HOT_KIDNEY_RAS = np.array([61.0, -21.0, 1.0])  # patient left = +x in RAS
COLD_LIVER_RAS = np.array([-51.0, 1.0, 11.0])


def _ct_and_labels():
    shape = (110, 90, 60)
    origin = (-109.0, 89.0, 59.0)
    ct = Image(np.full(shape, -1000.0, np.float32), affine_from_geometry(origin, CT_DIR, (2.0, 2.0, 2.0)), "HU")
    xyz = ct.world_grid()
    body = (xyz[..., 0] / 100) ** 2 + (xyz[..., 1] / 80) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0)
    labels = np.where(body, 7, 0).astype(np.uint8)
    kid = np.linalg.norm(xyz - HOT_KIDNEY_RAS, axis=-1) < 25
    liv = np.linalg.norm(xyz - COLD_LIVER_RAS, axis=-1) < 35
    labels[kid] = 1
    labels[liv] = 3
    return ct.with_array(hu.astype(np.float32)), ct.with_array(labels, unit="label")


def _tia_grid():
    shape = (48, 44, 30)
    origin = (-112.8, -103.2, -71.0)
    return Image(np.zeros(shape, np.float32), affine_from_geometry(origin, np.eye(3), (4.8, 4.8, 4.8)), "MBq*h/mL")


@pytest.fixture
def patient(tmp_path):
    ct, labels = _ct_and_labels()
    tia = _tia_grid()
    xyz = tia.world_grid()
    conc = np.where(np.linalg.norm(xyz - HOT_KIDNEY_RAS, axis=-1) < 25, 2.0, 0.0)
    conc += np.where(np.linalg.norm(xyz - COLD_LIVER_RAS, axis=-1) < 35, 0.1, 0.0)
    tia = tia.with_array(conc.astype(np.float32))
    write_image(tmp_path / "ct.nii.gz", ct, make_sidecar("ct", "HU"))
    write_image(tmp_path / "labels.nii.gz", labels, make_sidecar("labels", "label"))
    write_json(tmp_path / "labels.json", {"labels": {"1": "kidney_left", "3": "liver", "7": "body"}})
    kin = tmp_path / "kinetics"
    write_image(kin / "tia.nii.gz", tia, make_sidecar("time_integrated_activity_concentration", "MBq*h/mL",
                                                      radionuclide="Lu-177", injected_activity_mbq=7400.0))
    lam = np.log(2) / 50.0 - load_decay("Lu-177").decay_constant_per_h
    write_json(kin / "fits.json", {"organs": {"kidney_left": {
        "chosen_model": "mono", "candidates": [{"model": "mono", "params": {"A0": 100.0, "lambda_bio_per_h": lam}}]}}})
    return tmp_path


def _run(patient, *extra):
    out = patient / "dose"
    code = main(["--kinetics-dir", str(patient / "kinetics"), "--labels", str(patient / "labels.nii.gz"),
                 "--ct", str(patient / "ct.nii.gz"), "--out", str(out), *extra])
    assert code == 0
    return out


def test_local_method_writes_every_output_and_doses_match_local_deposition(patient):
    out = _run(patient, "--method", "local", "--no-photons")
    for name in ("dose.nii.gz", "dose.json", "dose_ct.nii.gz", "dose_ct.json", "organ_doses.csv", "dvh.csv",
                 "dvh.png", "marrow.json", "bed.csv", "planning.json", "dose_provenance.json"):
        assert (out / name).exists(), name
    rows = {r["name"]: r for r in csv.DictReader((out / "organ_doses.csv").open())}
    # kidney interior: 2 MBq*h/mL at density from 40 HU (Schneider: 1.003 + 1.169e-3*40 = 1.0498 g/mL)
    e = load_decay("Lu-177").electron_energy_mev
    expected = 2.0 * 3600e6 * e * 1.602176634e-13 / (1.0498e-3)
    assert float(rows["kidney_left"]["median_gy"]) == pytest.approx(expected, rel=0.01)
    # the CSV holds 6 significant digits: 1e-5 relative
    assert float(rows["kidney_left"]["mean_gy_per_gbq"]) == pytest.approx(float(rows["kidney_left"]["mean_gy"]) / 7.4,
                                                                          rel=1e-5)


def test_dose_on_ct_grid_is_aligned_when_read_by_nibabel_and_simpleitk(patient):
    out = _run(patient, "--method", "local")
    nii = nib.load(str(out / "dose_ct.nii.gz"))
    itk = sitk.ReadImage(str(out / "dose_ct.nii.gz"))
    lab = nib.load(str(patient / "labels.nii.gz"))
    for point, label, hot in ((HOT_KIDNEY_RAS, 1, True), (COLD_LIVER_RAS, 3, False)):
        ijk = np.rint(np.linalg.inv(nii.affine) @ np.r_[point, 1])[:3].astype(int)
        d_nib = float(np.asarray(nii.dataobj)[tuple(ijk)])
        assert int(np.asarray(lab.dataobj)[tuple(ijk)]) == label
        lps = (-point[0], -point[1], point[2])
        idx = itk.TransformPhysicalPointToIndex(lps)
        assert tuple(idx) == tuple(ijk)
        assert itk[idx] == pytest.approx(d_nib)
        assert (d_nib > 0.1) if hot else (0 < d_nib < 0.02)


def test_bed_and_planning_use_the_fitted_kinetics(patient):
    out = _run(patient, "--method", "local")
    bed = {r["name"]: r for r in csv.DictReader((out / "bed.csv").open())}
    d = float(bed["kidney_left"]["mean_dose_gy"])
    lam, mu = np.log(2) / 50.0, np.log(2) / 2.8
    # both numbers are read from the CSV's 6 significant digits (each rounded by up to 0.5 in the
    # sixth digit, 3e-6 of 0.164): 7e-6
    assert float(bed["kidney_left"]["bed_gy"]) == pytest.approx(d * (1 + d * lam / ((mu + lam) * 2.6)), rel=7e-6)
    plan = json.loads((out / "planning.json").read_text())
    assert plan["limiting_organ"] == "kidneys"
    assert plan["organs"]["kidneys"]["absorbed_dose_gy"] == pytest.approx(23.0, rel=1e-9)


def test_missing_tia_is_one_clear_error_and_nothing_is_written(patient, capsys):
    (patient / "kinetics" / "tia.nii.gz").unlink()
    code = main(["--kinetics-dir", str(patient / "kinetics"), "--labels", str(patient / "labels.nii.gz"),
                 "--ct", str(patient / "ct.nii.gz"), "--out", str(patient / "dose")])
    err = capsys.readouterr().err
    assert code == 2 and "tia.nii.gz: file not found" in err and err.count("\n") == 1
    assert not (patient / "dose").exists()


def test_workflow_config_sets_sex_specific_marrow_mass_and_limits(repo_root):
    import argparse

    import yaml

    from pipeline.dose.cli import settings_from_config

    cfg = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())["dose"]
    args = argparse.Namespace(method=None, no_photons=False, sex="female", config=None)
    s = settings_from_config(cfg, args)
    assert s.marrow.red_marrow_mass_g == 900.0
    assert s.kidney_dose_limit_gy == 23 and s.marrow_dose_limit_gy == 2
    assert s.lq_for("kidney_left").alpha_beta_gy == 2.6


def test_marrow_eanm_dose_takes_the_recovery_corrected_voi_concentration_from_the_kinetics_fit(patient):
    # add an L2-L4 marrow VOI (label 5) holding 0.5 MBq*h/mL in the TIA map
    from pipeline.dose.marrow import MarrowSettings, eanm_marrow_dose
    from pipeline.imageio import read_image

    centre = np.array([0.0, -40.0, 0.0])
    labels, _ = read_image(patient / "labels.nii.gz", unit="label")
    lab = np.asarray(labels.array).copy()
    lab[np.linalg.norm(labels.world_grid() - centre, axis=-1) < 12] = 5
    write_image(patient / "labels.nii.gz", labels.with_array(lab), make_sidecar("labels", "label"))
    write_json(patient / "labels.json", {"labels": {"1": "kidney_left", "3": "liver", "5": "marrow_L2L4", "7": "body"}})
    tia, side = read_image(patient / "kinetics" / "tia.nii.gz")
    conc = np.asarray(tia.array).copy()
    conc[np.linalg.norm(tia.world_grid() - centre, axis=-1) < 20] = 0.5
    write_image(patient / "kinetics" / "tia.nii.gz", tia.with_array(conc), side)

    # without a kinetics fit of the VOI: the mean of the TIA map over the VOI (0.5, interior)
    marrow = json.loads((_run(patient, "--method", "local") / "marrow.json").read_text())
    assert marrow["voi_tia_concentration_mbq_h_per_ml"] == pytest.approx(0.5, rel=1e-4)
    assert marrow["voi_tia_concentration_mbq_h_per_ml"] == marrow["voxel_map_voi_tia_concentration_mbq_h_per_ml"]

    # with the VOI's organ fit corrected by a recovery coefficient of 0.7 in the kinetics stage:
    # 7.2 mL holding 0.5 / 0.7 MBq*h/mL -> the EANM dose is that of 0.5 / 0.7 (independent formula)
    fits = json.loads((patient / "kinetics" / "fits.json").read_text())
    fits["organs"]["marrow_L2L4"] = {"tia_mbq_h": 7.2 * 0.5 / 0.7, "volume_ml": 7.2, "recovery_coefficient": 0.7}
    write_json(patient / "kinetics" / "fits.json", fits)
    marrow = json.loads((_run(patient, "--method", "local") / "marrow.json").read_text())
    expected = eanm_marrow_dose(0.5 / 0.7, load_decay("Lu-177").electron_energy_mev, "male", MarrowSettings())
    assert marrow["absorbed_dose_gy"] == pytest.approx(expected["absorbed_dose_gy"], rel=1e-9)
    assert marrow["voxel_map_voi_tia_concentration_mbq_h_per_ml"] == pytest.approx(0.5, rel=1e-4)
    assert "kinetics organ-level fit" in marrow["voi_tia_concentration_source"]


def test_organ_table_carries_the_kinetic_fit_uncertainty_of_each_fitted_organ(patient):
    fits = json.loads((patient / "kinetics" / "fits.json").read_text())
    fits["organs"]["kidney_left"]["tia_relative_sd"] = 0.0512
    write_json(patient / "kinetics" / "fits.json", fits)
    rows = {r["name"]: r for r in csv.DictReader((_run(patient, "--method", "local") / "organ_doses.csv").open())}
    assert float(rows["kidney_left"]["mean_gy_relative_sd_kinetics"]) == pytest.approx(0.0512)
    assert rows["liver"]["mean_gy_relative_sd_kinetics"] == ""  # not fitted by the kinetics stage


def test_provenance_records_the_partial_volume_correction_of_the_kinetics_stage(patient):
    out = _run(patient, "--method", "local")
    assert json.loads((out / "dose_provenance.json").read_text())["kinetics"]["partial_volume_correction"] == "none"
    fits = json.loads((patient / "kinetics" / "fits.json").read_text())
    fits["partial_volume_correction"] = {"method": "gtm", "psf_fwhm_mm": 11.0}
    write_json(patient / "kinetics" / "fits.json", fits)
    prov = json.loads((_run(patient, "--method", "local") / "dose_provenance.json").read_text())
    assert prov["kinetics"]["partial_volume_correction"] == "gtm"
    assert "voxel TIA map" in prov["kinetics"]["note"]


@pytest.mark.parametrize("photon_method", ["transport", "kernel"])
def test_local_method_takes_photons_from_the_photon_method_and_says_so_or_leaves_them_out(patient, photon_method):
    # Issue 20 (a, c). Reference: the kidney's electron dose is local deposition (analytic, first test);
    # the photon energy absorbed in a 65 mL sphere is far below all of it (photon mean free path
    # ~7 cm at 208 keV): the photon part must be positive but below a quarter of "photons on the
    # spot" (E_photon / E_electron of the electron dose), which the old default gave. With the photon
    # transport, the photon part of the organ dose is the transport's organ photon dose (provenance),
    # to the 6 digits of the table.
    with_ph = _run(patient, "--method", "local", "--photon-method", photon_method)
    prov = json.loads((with_ph / "dose_provenance.json").read_text())
    expected = "photon Monte Carlo" if photon_method == "transport" else "photon voxel S-values"
    assert expected in prov["assumptions"]["photons"]
    assert prov["assumptions"]["electrons"].startswith("deposited in the voxel of the decay")
    d = load_decay("Lu-177")
    rows = {r["name"]: float(r["mean_gy"]) for r in csv.DictReader((with_ph / "organ_doses.csv").open())}
    (with_ph / "organ_doses.csv").rename(patient / "with_photons.csv")
    import shutil

    shutil.rmtree(with_ph)
    without = _run(patient, "--method", "local", "--no-photons")
    prov_e = json.loads((without / "dose_provenance.json").read_text())
    assert prov_e["assumptions"]["photons"].startswith("left out")
    assert json.loads((without / "dose_ct.json").read_text())["include_photons"] is False
    rows_e = {r["name"]: float(r["mean_gy"]) for r in csv.DictReader((without / "organ_doses.csv").open())}
    photon_part = rows["kidney_left"] - rows_e["kidney_left"]
    assert 0 < photon_part < 0.25 * rows_e["kidney_left"] * d.photon_energy_mev / d.electron_energy_mev
    if photon_method == "transport":
        organ = prov["assumptions"]["photon_transport"]["organs"]["kidney_left"]
        assert photon_part == pytest.approx(organ["photon_mean_gy"], rel=2e-4, abs=2e-6)
        assert abs(prov["energy_balance"]["photon_transport"]["conservation_error"]) < 1e-9


def test_organ_grid_is_recorded_and_the_dose_grid_path_stays_available(patient):
    out = _run(patient, "--method", "local", "--no-photons")
    prov = json.loads((out / "dose_provenance.json").read_text())
    og = prov["assumptions"]["organ_grid"]
    assert og["setting"] == "ct" and og["grid"] == "CT" and og["target_voxels"] > 0
    assert json.loads((out / "dose_ct.json").read_text())["organ_grid"] == "ct"
    fine = {r["name"]: float(r["mean_gy"]) for r in csv.DictReader((out / "organ_doses.csv").open())}
    import shutil

    shutil.rmtree(out)
    out = _run(patient, "--method", "local", "--no-photons", "--organ-grid", "dose")
    assert json.loads((out / "dose_provenance.json").read_text())["assumptions"]["organ_grid"] == "dose"
    coarse = {r["name"]: float(r["mean_gy"]) for r in csv.DictReader((out / "organ_doses.csv").open())}
    # the kidney's activity stays in the kidney on the CT grid; the dose grid smears its edge
    assert coarse["kidney_left"] < fine["kidney_left"]
