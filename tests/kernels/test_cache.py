"""The on-disk voxel S-value cache (kernels.cache): keys, hits, invalidation, atomic files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kernels.vsv
from kernels import cache
from kernels.kernel_data import KernelDataError, PointKernel

EDGES = np.concatenate([np.arange(0.0, 2.0, 0.05), np.arange(2.0, 30.01, 0.5)])


def synthetic_kernel(scale=1.0):
    fe = np.diff(1.0 - np.exp(-EDGES / 0.4))
    fp = np.diff(1.0 - np.exp(-EDGES / 50.0)) * scale
    z = np.full_like(fe, 0.02)
    return PointKernel(nuclide="Lu-177", medium="tissue", density_g_per_ml=1.04, r_edges_mm=EDGES,
                       electron_fraction=fe, photon_fraction=fp, electron_rel_unc=z, photon_rel_unc=z,
                       electron_energy_mev=0.148, photon_energy_mev=0.035, provenance={"engine": "synthetic"})


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTDOSE_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c"


def test_cache_dir_follows_the_environment_variable_or_home(cache_root, monkeypatch, tmp_path):
    assert cache.cache_dir() == cache_root / "vsv"
    monkeypatch.delenv("SPECTDOSE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "spectdose" / "vsv"


def test_second_call_reads_the_cache_without_recomputing(cache_root, monkeypatch):
    k = synthetic_kernel()
    first = cache.cached_svalues_for_kernel(k, (4.0, 4.0, 2.0), kernel_hash="h1", extent_mm=20.0)
    files = list((cache_root / "vsv").glob("*.npz"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(kernels.vsv, "svalues_from_point_kernel", boom)
    second = cache.cached_svalues_for_kernel(k, (4.0, 4.0, 2.0), kernel_hash="h1", extent_mm=20.0)
    assert np.array_equal(second.electron_mgy_per_mbq_s, first.electron_mgy_per_mbq_s)
    assert np.array_equal(second.photon_rel_unc, first.photon_rel_unc)
    assert np.array_equal(second.voxel_size_mm, [4.0, 4.0, 2.0])
    assert second.provenance["cache_key"]["kernel_sha256"] == "h1"
    # voxel sizes equal after rounding to 1e-4 mm share the entry
    third = cache.cached_svalues_for_kernel(k, (4.00002, 4.0, 1.99998), kernel_hash="h1", extent_mm=20.0)
    assert np.array_equal(third.electron_mgy_per_mbq_s, first.electron_mgy_per_mbq_s)


def test_new_kernel_data_or_other_settings_miss_the_cache(cache_root):
    k = synthetic_kernel()
    a = cache.cached_svalues_for_kernel(k, 3.0, kernel_hash="h1", extent_mm=15.0)
    b = cache.cached_svalues_for_kernel(synthetic_kernel(scale=0.5), 3.0, kernel_hash="h2", extent_mm=15.0)
    c = cache.cached_svalues_for_kernel(k, 3.0, kernel_hash="h1", extent_mm=15.0, photons=False)
    d = cache.cached_svalues_for_kernel(k, 3.0001, kernel_hash="h1", extent_mm=15.0)
    assert len(list((cache_root / "vsv").glob("*.npz"))) == 4
    c0 = (a.photon_mgy_per_mbq_s.shape[0] // 2,) * 3
    assert b.photon_mgy_per_mbq_s[c0] == pytest.approx(0.5 * a.photon_mgy_per_mbq_s[c0], rel=1e-12)
    assert np.all(c.photon_mgy_per_mbq_s == 0)
    assert d.electron_mgy_per_mbq_s[c0] < a.electron_mgy_per_mbq_s[c0]


def test_corrupt_cache_file_is_recomputed_and_replaced(cache_root):
    k = synthetic_kernel()
    ref = cache.cached_svalues_for_kernel(k, 3.0, kernel_hash="h1", extent_mm=15.0)
    (path,) = (cache_root / "vsv").glob("*.npz")
    path.write_bytes(b"not a zip file")
    again = cache.cached_svalues_for_kernel(k, 3.0, kernel_hash="h1", extent_mm=15.0)
    assert np.array_equal(again.electron_mgy_per_mbq_s, ref.electron_mgy_per_mbq_s)
    assert cache._read(path, cache.cache_key("Lu-177", "tissue", 3.0, photons=True, extent_mm=15.0,
                                             kernel_hash="h1")) is not None


def test_cache_writes_leave_no_temporary_files(cache_root):
    cache.cached_svalues_for_kernel(synthetic_kernel(), 3.0, kernel_hash="h1", extent_mm=15.0)
    names = [p.name for p in (cache_root / "vsv").iterdir()]
    assert len(names) == 1 and names[0].endswith(".npz") and not names[0].startswith(".")


def test_use_cache_false_neither_reads_nor_writes(cache_root):
    cache.cached_svalues_for_kernel(synthetic_kernel(), 3.0, kernel_hash="h1", extent_mm=15.0, use_cache=False)
    assert not (cache_root / "vsv").exists() or not any((cache_root / "vsv").iterdir())


def test_unwritable_cache_folder_does_not_stop_the_computation(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SPECTDOSE_CACHE_DIR", str(blocker))  # a file, so the folder cannot be made
    sv = cache.cached_svalues_for_kernel(synthetic_kernel(), 3.0, kernel_hash="h1", extent_mm=15.0)
    assert sv.electron_mgy_per_mbq_s.max() > 0


def test_round_voxel_size_and_key():
    assert cache.round_voxel_size_mm(4.79523) == (4.7952, 4.7952, 4.7952)
    assert cache.round_voxel_size_mm([4, 4, 2.00004]) == (4.0, 4.0, 2.0)
    with pytest.raises(ValueError):
        cache.round_voxel_size_mm([1.0, 2.0])
    with pytest.raises(ValueError):
        cache.round_voxel_size_mm(0.00001)


def test_point_kernel_hash_changes_with_the_data_file(tmp_path, monkeypatch):
    import kernels.kernel_data as kd

    monkeypatch.setattr(kd, "data_dir", lambda: tmp_path)
    (tmp_path / "dpk").mkdir()
    npz = tmp_path / "dpk" / "Lu-177_tissue.npz"
    npz.write_bytes(b"one")
    npz.with_suffix(".json").write_text("{}")
    h1 = cache.point_kernel_hash("Lu-177", "tissue")
    npz.write_bytes(b"two")
    assert cache.point_kernel_hash("Lu-177", "tissue") != h1


def test_missing_point_kernel_is_a_clear_error(tmp_path, monkeypatch):
    import kernels.kernel_data as kd

    monkeypatch.setattr(kd, "data_dir", lambda: tmp_path)
    with pytest.raises(KernelDataError, match="no point kernel for Ho-166"):
        cache.get_voxel_svalues("Ho-166", 4.0, "tissue")


def test_get_voxel_svalues_reads_the_committed_format(tmp_path, monkeypatch, cache_root):
    import json

    import kernels.kernel_data as kd

    monkeypatch.setattr(kd, "data_dir", lambda: tmp_path / "data")
    k = synthetic_kernel()
    (tmp_path / "data" / "dpk").mkdir(parents=True)
    path = tmp_path / "data" / "dpk" / "Lu-177_water.npz"
    np.savez(path, r_edges_mm=k.r_edges_mm, electron_fraction=k.electron_fraction,
             photon_fraction=k.photon_fraction, electron_rel_unc=k.electron_rel_unc,
             photon_rel_unc=k.photon_rel_unc)
    Path(path.with_suffix(".json")).write_text(json.dumps(
        {"electron_energy_mev_per_decay": 0.148, "photon_energy_mev_per_decay": 0.035, "density_g_per_ml": 1.0}))
    sv = cache.get_voxel_svalues("lu177", 4.0, "water", extent_mm=12.0)
    assert sv.nuclide == "Lu-177" and sv.medium == "water"
    direct = kernels.vsv.svalues_from_point_kernel(kd.load_point_kernel("Lu-177", "water"), 4.0, extent_mm=12.0)
    assert np.allclose(sv.total_mgy_per_mbq_s, direct.total_mgy_per_mbq_s, rtol=1e-14)
