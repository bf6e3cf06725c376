"""Dose-rate maps (Gy/h) against local deposition and against the absorbed dose of the TIA map."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from kernels.decay import load_decay
from kernels.select import svalues_for_voxel_size
from pipeline.dose.cli import main
from pipeline.dose.doserate import dose_rate_gy_per_h
from pipeline.dose.stage import DoseGridMedium, DoseSettings, compute_dose
from pipeline.image import Image, affine_from_geometry
from pipeline.imageio import make_sidecar, write_image

VOXEL_MM = 4.8
MEV_TO_J = 1.602176634e-13


def _ct_and_labels():
    """Elliptic body (40 HU, label 7) on a feet-first 2 mm CT, kidney (1) and liver (3) spheres."""
    shape = (110, 90, 60)
    ct = Image(np.full(shape, -1000.0, np.float32),
               affine_from_geometry((-109.0, 89.0, 59.0), np.diag([1.0, -1.0, -1.0]), (2.0, 2.0, 2.0)), "HU")
    xyz = ct.world_grid()
    body = (xyz[..., 0] / 100) ** 2 + (xyz[..., 1] / 80) ** 2 < 1
    labels = np.where(body, 7, 0).astype(np.uint8)
    labels[np.linalg.norm(xyz - (61.0, -21.0, 1.0), axis=-1) < 25] = 1
    labels[np.linalg.norm(xyz - (-51.0, 1.0, 11.0), axis=-1) < 35] = 3
    return ct.with_array(np.where(body, 40.0, -1000.0).astype(np.float32)), ct.with_array(labels, unit="label")


def _tia_grid():
    """Head-first 4.8 mm dose grid covering the CT."""
    return Image(np.zeros((48, 44, 30), np.float32),
                 affine_from_geometry((-112.8, -103.2, -71.0), np.eye(3), (VOXEL_MM,) * 3), "MBq*h/mL")


@pytest.fixture(scope="module")
def lu177_electrons():
    return svalues_for_voxel_size("Lu-177", (VOXEL_MM,) * 3, medium="water", photons=False)


def test_interior_dose_rate_of_a_uniform_source_is_local_deposition_of_the_electron_energy(lu177_electrons):
    # Uniform 1 MBq/mL in a 173 mm cube of water (electron range of Lu-177 < 2 mm): charged-particle
    # equilibrium inside, so the dose rate there is the electron energy emitted per second per unit
    # mass. Reference by hand: A (Bq/g) * E (MeV) * 1.602e-13 J/MeV * 3600 s/h * 1000 g/kg.
    # Tolerance 1 %: kernel truncation and Monte Carlo noise of the S-values (as in test_dose_physics).
    shape = (48, 48, 48)
    activity = np.zeros(shape)
    activity[6:42, 6:42, 6:42] = 1e6  # Bq/mL
    medium = DoseGridMedium(np.ones(shape), np.ones(shape, bool))
    rate = dose_rate_gy_per_h(activity, VOXEL_MM**3 / 1000, medium, settings=DoseSettings(include_photons=False),
                              svalues_mgy_per_mbq_s=lu177_electrons.electron_mgy_per_mbq_s,
                              kernel_density_g_per_ml=1.0, electron_energy_mev=0.0, photon_energy_mev=0.0)
    e_mev = load_decay("Lu-177").electron_energy_mev
    expected_gy_per_h = 1e6 / 1.0 * e_mev * MEV_TO_J * 3600.0 * 1000.0
    inner = rate[10:38, 10:38, 10:38]
    assert inner.mean() == pytest.approx(expected_gy_per_h, rel=0.01)
    assert inner.min() == pytest.approx(expected_gy_per_h, rel=0.01)
    assert inner.max() == pytest.approx(expected_gy_per_h, rel=0.01)


def _hot_activity_and_ct():
    """CT with a bone slab and lung-like gas inside the body; A0 (Bq/mL) hot in the kidney, warm in the liver."""
    ct, labels = _ct_and_labels()
    xyz = ct.world_grid()
    hu = ct.array.copy()
    inside = labels.array > 0
    hu[inside & (np.abs(xyz[..., 1] - 40) < 10)] = 900.0  # dense bone slab, 1.55 g/mL
    hu[inside & (np.linalg.norm(xyz - (-40.0, -30.0, -20.0), axis=-1) < 20)] = -700.0  # gas pocket
    grid = _tia_grid()
    g = grid.world_grid()
    a0 = np.where(np.linalg.norm(g - (61.0, -21.0, 1.0), axis=-1) < 25, 2e6, 0.0)
    a0 += np.where(np.linalg.norm(g - (-51.0, 1.0, 11.0), axis=-1) < 35, 1e5, 0.0)
    a0 += np.where(np.abs(g[..., 1] - 40) < 12, 3e5, 0.0)  # activity in the bone slab too
    return ct.with_array(hu.astype(np.float32)), labels, grid, a0


def _assert_same_linear_map(integral, dose, photon_method, msg=""):
    """Kernel photons: equal to float32 storage (1e-5 of the maximum). Photon transport: the same
    histories and seeds, but the float32 activity maps shift each voxel's share of the decays by
    ~1e-7, which moves the source voxel of an occasional history: at most 0.1 % of the voxels may
    differ by more than 1e-5 of the maximum, and the energy sums agree within 1e-4."""
    if photon_method == "kernel":
        np.testing.assert_allclose(integral, dose, rtol=0, atol=1e-5 * dose.max(), err_msg=msg)
        return
    off = np.abs(integral - dose) > 1e-5 * dose.max()
    assert off.mean() < 1e-3, msg
    assert integral.sum() == pytest.approx(dose.sum(), rel=1e-4), msg


@pytest.mark.parametrize("photon_method", ["transport", "kernel"])
def test_integral_of_mono_exponential_dose_rate_equals_the_dose_of_the_tia_map(lu177_electrons, photon_method):
    # A(t) = A0 exp(-lambda t) everywhere: the dose rate at t_i times exp(lambda t_i) / lambda is the
    # time integral of the dose rate from 0 to infinity, i.e. the dose of the TIA map A0 / lambda, because
    # both are the same linear map of the activity. Tolerance 1e-5 of the maximum: float32 storage
    # of the maps (6e-8) and float64 arithmetic, nothing else may differ. The photon transport runs
    # the dose-rate maps with the histories and seeds of the absorbed dose, so it is linear too.
    ct, labels, grid, a0 = _hot_activity_and_ct()
    lam = np.log(2) / 60.0  # 1/h, effective
    times_h = [1.0, 24.0, 96.0]
    decay = load_decay("Lu-177")
    k = svalues_for_voxel_size("Lu-177", (VOXEL_MM,) * 3, medium="water", photons=True)
    tia = grid.with_array((a0 / 1e6 / lam).astype(np.float32))
    activity = {f"t{t:g}h": (grid.with_array((a0 * np.exp(-lam * t)).astype(np.float32), unit="Bq/mL"), t)
                for t in times_h}
    cube = k.total_mgy_per_mbq_s if photon_method == "kernel" else k.electron_mgy_per_mbq_s
    out = compute_dose(tia, ct, labels, {1: "kidney_left", 3: "liver", 7: "body"},
                       electron_energy_mev=decay.electron_energy_mev, photon_energy_mev=decay.photon_energy_mev,
                       injected_activity_mbq=None, svalues_mgy_per_mbq_s=cube,
                       kernel_density_g_per_ml=k.density_g_per_ml, activity_bq_per_ml=activity,
                       settings=DoseSettings(organ_grid="dose", photon_method=photon_method), decay=decay)
    dose = out.dose.array.astype(np.float64)
    assert dose.max() > 1.0  # a real dose, not an empty map
    assert set(out.dose_rate) == set(activity)
    for tp, (rate, t) in out.dose_rate.items():
        assert rate.unit == "Gy/h" and rate.same_grid(grid)
        integral = rate.array.astype(np.float64) * np.exp(lam * t) / lam
        _assert_same_linear_map(integral, dose, photon_method, tp)
        assert out.dose_rate[tp][1] == t


def _register_dir(root, grid, a0, lam, times_h, nuclide="Lu-177"):
    reg = root / "register"
    for t in times_h:
        tp = f"t{t:g}h"
        img = grid.with_array((a0 * np.exp(-lam * t)).astype(np.float32), unit="Bq/mL")
        write_image(reg / tp / "spect.nii.gz", img, make_sidecar(
            "activity_concentration", "Bq/mL", time_point=tp, time_h=t, radionuclide=nuclide,
            injected_activity_mbq=7400.0))
    return reg


@pytest.fixture
def chain(tmp_path):
    """TIA map A0/lambda and the registered time points A0 exp(-lambda t) of the CLI test patient."""
    ct, labels, grid, a0 = _hot_activity_and_ct()
    lam = np.log(2) / 60.0
    write_image(tmp_path / "ct.nii.gz", ct, make_sidecar("ct", "HU"))
    write_image(tmp_path / "labels.nii.gz", labels, make_sidecar("labels", "label"))
    (tmp_path / "labels.json").write_text(json.dumps({"labels": {"1": "kidney_left", "3": "liver", "7": "body"}}))
    write_image(tmp_path / "kinetics" / "tia.nii.gz", grid.with_array((a0 / 1e6 / lam).astype(np.float32)),
                make_sidecar("time_integrated_activity_concentration", "MBq*h/mL", radionuclide="Lu-177",
                             injected_activity_mbq=7400.0))
    reg = _register_dir(tmp_path, grid, a0, lam, (4.0, 48.0))
    base = ["--kinetics-dir", str(tmp_path / "kinetics"), "--labels", str(tmp_path / "labels.nii.gz"),
            "--ct", str(tmp_path / "ct.nii.gz"), "--method", "local"]
    return tmp_path, reg, base, lam


def test_cli_writes_dose_rate_maps_only_when_asked_and_they_integrate_to_the_dose(chain):
    root, reg, base, lam = chain
    assert main([*base, "--out", str(root / "plain"), "--register-dir", str(reg)]) == 0
    assert not list((root / "plain").glob("dose_rate_*"))
    assert main([*base, "--out", str(root / "rate"), "--register-dir", str(reg), "--dose-rate"]) == 0
    dose = np.asarray(nib.load(str(root / "rate" / "dose.nii.gz")).dataobj, np.float64)
    assert sorted(p.name for p in (root / "rate").glob("dose_rate_*.nii.gz")) == [
        "dose_rate_t48h.nii.gz", "dose_rate_t4h.nii.gz"]
    for tp, t in (("t4h", 4.0), ("t48h", 48.0)):
        nii = nib.load(str(root / "rate" / f"dose_rate_{tp}.nii.gz"))
        side = json.loads((root / "rate" / f"dose_rate_{tp}.json").read_text())
        assert side["unit"] == "Gy/h" and side["time_point"] == tp and side["time_h"] == t
        assert side["quantity"] == "absorbed_dose_rate"
        np.testing.assert_allclose(nii.affine, nib.load(str(root / "rate" / "dose.nii.gz")).affine)
        rate = np.asarray(nii.dataobj, np.float64)
        # analytic integral of the mono-exponential dose rate = dose of A0/lambda (photon transport, default)
        _assert_same_linear_map(rate * np.exp(lam * t) / lam, dose, "transport", tp)


def test_cli_refuses_dose_rate_without_register_dir_in_one_line(chain, capsys):
    root, _, base, _ = chain
    code = main([*base, "--out", str(root / "rate"), "--dose-rate"])
    err = capsys.readouterr().err
    assert code == 2 and "--dose-rate needs --register-dir" in err and err.count("\n") == 1
    assert not (root / "rate").exists()


def test_cli_refuses_time_points_off_the_dose_grid(chain, capsys):
    root, _, base, lam = chain
    shifted = _tia_grid()
    shifted = Image(shifted.array, affine_from_geometry(shifted.origin_ras_mm + 2.4, np.eye(3), (4.8,) * 3),
                    "MBq*h/mL")
    reg = _register_dir(root / "other", shifted, np.ones(shifted.shape), lam, (4.0,))
    code = main([*base, "--out", str(root / "rate"), "--register-dir", str(reg), "--dose-rate"])
    err = capsys.readouterr().err
    assert code == 2 and "not on the dose grid" in err and err.count("\n") == 1
    assert not (root / "rate").exists()
