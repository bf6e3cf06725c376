"""Vertebrae with focal uptake left out of the L2-L4 marrow VOI (pipeline.segment.marrow_uptake)."""

import numpy as np
import pytest

from pipeline.image import Image, affine_from_geometry
from pipeline.segment import labels as L
from pipeline.segment.gate import check_segmentation
from pipeline.segment.marrow_uptake import MAX_RATIO_TO_COLDEST, exclude_hot_vertebrae, vertebra_vois


def _three_bodies(concentrations, vs=(2.0, 2.0, 2.0)):
    """Three 30 x 30 x 24 mm bodies along z (4 mm discs between them), each with a VOI 4 mm inside;
    a SPECT on the same grid with each VOI's concentration (inferior first) and 1.0 elsewhere."""
    shape = (30, 30, 52)
    lab = np.zeros(shape, np.uint16)
    spect = np.ones(shape, np.float32)
    for n, c in enumerate(concentrations):
        k0 = 2 + n * 16
        lab[:, :, k0:k0 + 12] = L.VERTEBRAE_L2L4
        lab[2:-2, 2:-2, k0 + 2:k0 + 10] = L.MARROW_L2L4
        spect[2:-2, 2:-2, k0 + 2:k0 + 10] = c
    aff = affine_from_geometry((0.0, 0.0, -40.0), np.eye(3), vs)
    return Image(lab, aff, "label"), Image(spect, aff, "Bq/mL")


def test_vois_are_named_from_inferior_to_superior():
    labels, _ = _three_bodies((1.0, 1.0, 1.0))
    vois = vertebra_vois(np.asarray(labels.array), np.asarray(labels.affine), voxel_ml=labels.voxel_volume_ml)
    ks = {n: np.flatnonzero(m.any(axis=(0, 1))) for n, m in vois.items()}
    assert ks["L4"].max() < ks["L3"].min() and ks["L3"].max() < ks["L2"].min()
    # flipped storage order (feet first): the names follow the world z, not the index
    flip = Image(np.asarray(labels.array)[:, :, ::-1].copy(), np.asarray(labels.affine) @ np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 51], [0, 0, 0, 1]], float), "label")
    v2 = vertebra_vois(np.asarray(flip.array), np.asarray(flip.affine), voxel_ml=flip.voxel_volume_ml)
    assert np.array_equal(v2["L2"], vois["L2"][:, :, ::-1])


def test_a_vertebra_above_the_ratio_is_left_out_and_one_below_is_kept():
    # exact concentrations on the label grid: the ratios are 1.2 and 2.0 (limit 1.5)
    labels, spect = _three_bodies((1.0, 1.2, 2.0))
    out, rec = exclude_hot_vertebrae(labels, spect)
    assert rec["status"] == "checked" and rec["excluded"] == ["L2"]
    assert rec["ratio_to_coldest"] == {"L4": 1.0, "L3": 1.2, "L2": 2.0}
    before, after = np.asarray(labels.array), np.asarray(out.array)
    changed = before != after
    assert np.all(before[changed] == L.MARROW_L2L4) and np.all(after[changed] == L.VERTEBRAE_L2L4)
    assert changed.sum() == np.count_nonzero(vertebra_vois(before, np.asarray(labels.affine))["L2"])
    same, rec = exclude_hot_vertebrae(labels, _three_bodies((1.0, 1.2, 1.4))[1])
    assert same is labels and rec["excluded"] == []


def test_without_three_bodies_or_counts_nothing_is_left_out_and_the_record_says_why():
    labels, spect = _three_bodies((1.0, 1.0, 5.0))
    two = np.asarray(labels.array).copy()
    two[:, :, 34:] = 0
    out, rec = exclude_hot_vertebrae(labels.with_array(two), spect)
    assert rec["excluded"] == [] and "three pieces" in rec["status"]
    cold = spect.with_array(np.zeros(spect.shape, np.float32))
    assert "without counts" in exclude_hot_vertebrae(labels, cold)[1]["status"]


@pytest.fixture(scope="module")
def sample(sample_24h):
    return sample_24h["ct"], sample_24h["spect"], sample_24h["truth"]


def test_the_sample_patients_marrow_reads_alike_in_l2_l4_and_a_metastasis_in_l3_is_left_out(sample):
    ct, spect, truth = sample
    same, rec = exclude_hot_vertebrae(truth, spect)
    assert rec["status"] == "checked" and rec["excluded"] == [] and same is truth
    assert max(rec["ratio_to_coldest"].values()) < 1.2  # measured 1.015
    # a 10 mm radius metastasis at L3's VOI centre with 20 x the marrow's concentration, written
    # into the SPECT on its own grid (the camera's blur is not simulated: the VOI means are what count)
    lab = np.asarray(truth.array)
    l3 = vertebra_vois(lab, np.asarray(truth.affine), voxel_ml=truth.voxel_volume_ml)["L3"]
    centre = truth.index_to_world(np.argwhere(l3).mean(axis=0))
    grid = spect.world_grid()
    ball = np.linalg.norm(grid - centre, axis=-1) <= 10.0
    s = np.asarray(spect.array, np.float32).copy()
    s[ball] = 20.0 * rec["mean"]["L3"]
    hot = spect.with_array(s)
    out, rec2 = exclude_hot_vertebrae(truth, hot)
    assert rec2["excluded"] == ["L3"] and rec2["ratio_to_coldest"]["L3"] > 3.0
    res = check_segmentation(ct, out, hot, marrow_uptake=rec2)
    up = res.find("marrow_L3", "uptake_to_coldest")
    assert up.status == "warn" and "left out" in up.note
    assert res.find("marrow_L3", "volume_ml").status == "skip"
    assert res.find("marrow_L2L4", "volume_per_vertebra_ml") is None  # only where the bodies are not three
    assert res.find("marrow_L2", "volume_ml").status == "pass" and res.find("marrow_L2", "uptake_to_coldest").status == "pass"
    assert not res.by_status("fail")
    assert MAX_RATIO_TO_COLDEST == 1.5


def test_two_vertebrae_above_the_third_leave_nothing_out_and_say_so():
    # metastases in two vertebrae, or one cold vertebra (cement, irradiated marrow): the three VOIs
    # cannot say which is marrow; nothing is left out (the marrow dose stays from all three) and the
    # gate warns on both
    labels, spect = _three_bodies((0.4, 1.0, 1.05))
    out, rec = exclude_hot_vertebrae(labels, spect)
    assert out is labels and rec["excluded"] == [] and rec["ambiguous"] == ["L2", "L3"]
    ct = labels.with_array(np.where(np.asarray(labels.array) > 0, 200.0, -100.0).astype(np.float32), unit="HU")
    res = check_segmentation(ct, labels, marrow_uptake=rec)
    for n in ("L2", "L3"):
        c = res.find(f"marrow_{n}", "uptake_to_coldest")
        assert c.status == "warn" and "look at the SPECT" in c.note
    assert res.find("marrow_L4", "uptake_to_coldest").status == "pass"


def test_a_vertebra_between_the_warn_and_the_exclusion_ratios_is_kept_with_a_warn():
    labels, spect = _three_bodies((1.0, 1.0, 1.4))
    out, rec = exclude_hot_vertebrae(labels, spect)
    assert out is labels and rec["excluded"] == [] and "ambiguous" not in rec
    ct = labels.with_array(np.where(np.asarray(labels.array) > 0, 200.0, -100.0).astype(np.float32), unit="HU")
    c = check_segmentation(ct, labels, marrow_uptake=rec).find("marrow_L2", "uptake_to_coldest")
    assert c.status == "warn" and c.value == pytest.approx(1.4) and "kept" in c.note


def test_imported_masks_lose_the_hot_vertebra_from_the_voi_and_qc_json_says_so(sample, tmp_path, capsys):
    import json

    from pipeline.imageio import read_image, write_image
    from pipeline.segment.cli import main

    ct, spect, truth = sample
    lab = np.asarray(truth.array).copy()
    lab[lab >= 100] = L.BODY  # the sample's lesions: not DESIGN organ ids
    vois = vertebra_vois(lab, np.asarray(truth.affine), voxel_ml=truth.voxel_volume_ml)
    centre = truth.index_to_world(np.argwhere(vois["L4"]).mean(axis=0))
    s = np.asarray(spect.array, np.float32).copy()
    s[np.linalg.norm(spect.world_grid() - centre, axis=-1) <= 10.0] *= 15.0
    paths = {}
    for name, img, q in (("ct", ct, "ct"), ("masks", truth.with_array(lab), "labels"),
                         ("spect", spect.with_array(s), "activity_concentration")):
        paths[name] = tmp_path / f"{name}.nii.gz"
        write_image(paths[name], img, {"quantity": q})
    out = tmp_path / "seg"
    assert main(["--ct", str(paths["ct"]), "--backend", "nifti", "--masks", str(paths["masks"]),
                 "--spect", str(paths["spect"]), "--out", str(out), "--qc", "warn"]) == 0
    assert "L4 (" in capsys.readouterr().out  # the note names the vertebra left out
    qc = json.loads((out / "qc.json").read_text())
    up = {c["structure"]: c for c in qc["checks"] if c["check"] == "uptake_to_coldest"}
    assert up["marrow_L4"]["status"] == "warn" and "left out" in up["marrow_L4"]["note"]
    assert qc["marrow_uptake"]["excluded"] == ["L4"] and qc["marrow_uptake"]["ratio_to_coldest"]["L4"] > 1.5
    got, _ = read_image(out / "labels.nii.gz")
    left = vertebra_vois(np.asarray(got.array), np.asarray(got.affine), voxel_ml=got.voxel_volume_ml)
    assert left is None  # two VOIs remain (L2, L3)
    remaining = np.asarray(got.array) == L.MARROW_L2L4
    assert remaining.any() and not np.any(remaining & (np.linalg.norm(truth.world_grid() - centre, axis=-1) < 8.0))
