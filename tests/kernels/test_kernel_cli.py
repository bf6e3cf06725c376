"""``spectdose kernel`` (kernels.cli): vsv writes a NIfTI cube with sidecar; generate delegates."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

import kernels.kernel_data as kd
from kernels import cli
from kernels.vsv import svalues_from_point_kernel
from pipeline.imageio import read_image

EDGES = np.concatenate([np.arange(0.0, 2.0, 0.05), np.arange(2.0, 40.01, 0.5)])


@pytest.fixture
def kernel_dir(tmp_path, monkeypatch):
    """A committed-format point kernel (Lu-177 in tissue) in a temporary data folder, and a private cache."""
    monkeypatch.setattr(kd, "data_dir", lambda: tmp_path / "data")
    monkeypatch.setenv("SPECTDOSE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data" / "dpk").mkdir(parents=True)
    fe = np.diff(1.0 - np.exp(-EDGES / 0.4))
    fp = np.diff(1.0 - np.exp(-EDGES / 50.0))
    z = np.full_like(fe, 0.02)
    path = tmp_path / "data" / "dpk" / "Lu-177_tissue.npz"
    np.savez(path, r_edges_mm=EDGES, electron_fraction=fe, photon_fraction=fp, electron_rel_unc=z, photon_rel_unc=z)
    path.with_suffix(".json").write_text(json.dumps({
        "electron_energy_mev_per_decay": 0.1479, "photon_energy_mev_per_decay": 0.0351, "density_g_per_ml": 1.04,
        "engine": "synthetic test kernel"}))
    return tmp_path


def test_vsv_writes_the_cube_with_geometry_unit_and_sidecar(kernel_dir, capsys):
    out = kernel_dir / "out" / "lu_4x4x2.nii.gz"
    rc = cli.main(["vsv", "Lu-177", "--voxel-size-mm", "4", "4", "2", "--extent-mm", "20", "--out", str(out)])
    assert rc == 0
    image, sidecar = read_image(out)
    ref = svalues_from_point_kernel(kd.load_point_kernel("Lu-177", "tissue"), (4.0, 4.0, 2.0), extent_mm=20.0)
    assert image.array.shape == ref.total_mgy_per_mbq_s.shape == (11, 11, 21)
    assert np.allclose(image.array, ref.total_mgy_per_mbq_s, rtol=1e-6)
    assert image.unit == "mGy/(MBq*s)" and sidecar["unit"] == "mGy/(MBq*s)"
    assert np.allclose(image.voxel_size_mm, [4, 4, 2])
    # the centre of the source voxel is at world (0, 0, 0)
    centre = image.affine @ np.array([5, 5, 10, 1.0])
    assert np.allclose(centre[:3], 0.0)
    assert sidecar["radionuclide"] == "Lu-177" and sidecar["medium"] == "tissue"
    assert sidecar["density_g_per_ml"] == 1.04
    assert sidecar["components"] == "electrons+photons"
    assert sidecar["s000_mgy_per_mbq_s"] == pytest.approx(float(ref.total_mgy_per_mbq_s[5, 5, 10]))
    assert "S000" in capsys.readouterr().out


def test_vsv_without_photons_writes_the_electron_cube(kernel_dir):
    out = kernel_dir / "e.nii.gz"
    assert cli.main(["vsv", "lu177", "--voxel-size-mm", "3", "--no-photons", "--no-cache", "--out", str(out)]) == 0
    image, sidecar = read_image(out)
    ref = svalues_from_point_kernel(kd.load_point_kernel("Lu-177", "tissue"), 3.0, photons=False)
    assert np.allclose(image.array, ref.electron_mgy_per_mbq_s, rtol=1e-6)
    assert sidecar["components"] == "electrons"
    assert not (kernel_dir / "cache").exists()


def test_spectdose_dispatches_kernel_vsv(kernel_dir):
    from pipeline.cli import main as spectdose

    out = kernel_dir / "d.nii.gz"
    assert spectdose(["kernel", "vsv", "Lu-177", "--voxel-size-mm", "4.8", "--extent-mm", "10",
                      "--out", str(out)]) == 0
    assert out.exists() and out.with_name("d.json").exists()


@pytest.mark.parametrize("args,needle", [
    (["vsv", "Ho-166", "--voxel-size-mm", "4"], "no point kernel for Ho-166"),
    (["vsv", "Xx-999", "--voxel-size-mm", "4"], "Xx-999"),
    (["vsv", "Lu-177", "--voxel-size-mm", "4", "4"], "one or three"),
    (["vsv", "Lu-177", "--voxel-size-mm", "-4"], "positive"),
])
def test_vsv_bad_input_is_one_line_and_exit_2(kernel_dir, capsys, args, needle):
    rc = cli.main(args + ["--out", str(kernel_dir / "x.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_vsv_output_must_be_nifti(kernel_dir, capsys):
    assert cli.main(["vsv", "Lu-177", "--voxel-size-mm", "4", "--out", str(kernel_dir / "x.npz")]) == 2
    assert ".nii.gz" in capsys.readouterr().err


def test_generate_delegates_its_arguments_to_the_monte_carlo_cli(monkeypatch):
    seen = {}
    fake = types.ModuleType("kernels.mc.cli")
    fake.main = lambda argv: seen.setdefault("argv", list(argv)) and 0
    monkeypatch.setitem(sys.modules, "kernels.mc.cli", fake)
    assert cli.main(["generate", "Y-90", "--voxel-size-mm", "3", "--seed", "7"]) == 0
    assert seen["argv"] == ["Y-90", "--voxel-size-mm", "3", "--seed", "7"]


def test_generate_without_the_monte_carlo_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "kernels.mc.cli", None)  # import raises ImportError
    assert cli.main(["generate", "Y-90"]) == 2
    err = capsys.readouterr().err
    assert "spectdose[mc]" in err and len(err.strip().splitlines()) == 1
