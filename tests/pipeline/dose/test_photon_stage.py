"""The photon Monte Carlo inside the dose stage (pipeline.dose.photon_stage, stage.compute_dose)."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.decay import load_decay
from kernels.select import svalues_for_voxel_size
from pipeline.dose.organs import label_voxel_indices
from pipeline.dose.photon_stage import labels_on_grid
from pipeline.dose.stage import DoseSettings, compute_dose
from pipeline.image import Image, affine_from_geometry


def _phantom():
    """CT grid 2 mm (water, a 60 mm 'kidney' cube and a 'liver' cube 100 mm away), dose grid 4.8 mm."""
    ct = Image(np.zeros((100, 60, 60), np.float32), affine_from_geometry((0.0, 0.0, 0.0), np.eye(3), (2.0,) * 3),
               "HU")
    lab = np.full(ct.shape, 7, np.uint8)
    lab[10:40, 15:45, 15:45] = 1
    lab[60:90, 15:45, 15:45] = 3
    labels = ct.with_array(lab, unit="label")
    grid = Image(np.zeros((42, 26, 26), np.float32),
                 affine_from_geometry((-0.4, -0.4, -0.4), np.eye(3), (4.8,) * 3), "MBq*h/mL")
    return ct, labels, grid


def test_labels_on_grid_marks_the_dose_voxels_holding_organ_voxel_centres():
    ct, labels, grid = _phantom()
    voxels = label_voxel_indices(labels.array, {1, 3, 7})
    reg = labels_on_grid(voxels, ct, grid, {1, 3})
    # independent: the dose-grid index of every CT voxel centre of the kidney
    ijk = np.argwhere(labels.array == 1)
    world = ijk * 2.0
    c = np.floor((world + 0.4) / 4.8 + 0.5).astype(int)
    expected = np.zeros(grid.shape, bool)
    expected[tuple(c.T)] = True
    np.testing.assert_array_equal(reg == 1, expected)
    assert (reg == 3).sum() > 0 and not np.any((reg == 1) & (reg == 3))
    assert not np.any(reg == 7)


def test_transport_adds_the_photon_dose_in_gy_and_records_it_per_organ():
    ct, labels, grid = _phantom()
    d = load_decay("Lu-177")
    xyz = grid.world_grid()
    kid = (xyz[..., 0] >= 20) & (xyz[..., 0] < 80) & np.all((xyz[..., 1:] >= 30) & (xyz[..., 1:] < 90), axis=-1)
    tia = grid.with_array(np.where(kid, 1.0, 0.0).astype(np.float32))
    k = svalues_for_voxel_size("Lu-177", tia.voxel_size_mm, "water", photons=False)
    kw = dict(electron_energy_mev=d.electron_energy_mev, photon_energy_mev=d.photon_energy_mev,
              injected_activity_mbq=None, kernel_density_g_per_ml=1.0, density_ct=np.ones(ct.shape))
    names = {1: "kidney_left", 3: "liver", 7: "body"}
    with pytest.raises(ValueError, match="needs the decay data"):
        compute_dose(tia, ct, labels, names, svalues_mgy_per_mbq_s=k.electron_mgy_per_mbq_s,
                     settings=DoseSettings(organ_grid="dose", photon_method="transport"), **kw)
    res = compute_dose(tia, ct, labels, names, svalues_mgy_per_mbq_s=k.electron_mgy_per_mbq_s,
                       settings=DoseSettings(organ_grid="dose", photon_method="transport"), decay=d, **kw)
    e_only = compute_dose(tia, ct, labels, names, svalues_mgy_per_mbq_s=k.electron_mgy_per_mbq_s,
                          settings=DoseSettings(organ_grid="dose", include_photons=False), **kw)
    rec = res.assumptions["photon_transport"]
    mean = {o.name: o.mean_gy for o in res.organs}
    mean_e = {o.name: o.mean_gy for o in e_only.organs}
    for name in ("kidney_left", "liver"):
        # the organ table's photon part is the recorded photon dose (same sampling)
        assert mean[name] - mean_e[name] == pytest.approx(rec["organs"][name]["photon_mean_gy"], rel=1e-5)
    # the liver, 40 mm of water from the source's edge, gets photons only
    assert mean_e["liver"] < 1e-3 * mean_e["kidney_left"] < rec["organs"]["liver"]["photon_mean_gy"]
    assert rec["organs"]["kidney_left"]["mean_relative_sd_mc"] <= 0.005
    assert abs(res.energy_balance["photon_transport"]["conservation_error"]) < 1e-9
    # the photon Monte Carlo's deposited energy is in the dose map: dose x mass = electrons + photons
    assert res.energy_balance["absorbed_j"] == pytest.approx(
        e_only.energy_balance["absorbed_j"] + rec["energy_deposited_j"], rel=1e-3)
