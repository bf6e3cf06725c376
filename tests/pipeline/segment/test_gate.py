"""QC gate after segmentation: correct label maps pass, corrupted ones fail on the right check.

The sample patient's truth label map (small preset, its own noisy CT and 24 h SPECT) is the
correct case; the corrupted corpus is :mod:`sample_data.seg_corpus`. The real-anatomy cases
(ICRP-110 phantoms, TotalSegmentator example) are in ``test_gate_real_anatomy.py``.
"""

import json

import numpy as np
import pytest

from pipeline.image import Image
from pipeline.segment import labels as L
from pipeline.segment.gate import check_segmentation
from pipeline.segment.gate_ranges import RANGES, Limits
from pipeline.segment.spine_ct import spine_levels_mm


@pytest.fixture(scope="module")
def sample(sample_24h):
    from sample_data.anatomy import build_phantom

    ph = build_phantom("small", seed=0)
    names = ph.tissue_names
    bowel = np.isin(np.asarray(ph.tissues.array),
                    [k for k, v in names.items() if v in ("small_bowel", "colon", "bowel_gas")])
    levels, _ = spine_levels_mm(sample_24h["ct"])
    return dict(sample_24h, bowel=bowel, levels=levels)


def test_limits_have_three_zones_and_nan_fails():
    lim = Limits(1.0, 2.0, 0.5, 3.0, "mL", "test")
    assert [lim.status(v) for v in (1.5, 0.7, 2.5, 0.4, 3.1, float("nan"))] == \
        ["pass", "warn", "warn", "fail", "fail", "fail"]
    assert lim.expected() == "1-2 mL"
    assert Limits(-109.0, -95.0, -152.0, -52.0, "HU", "test").expected() == "-109 to -95 HU"  # not -109--95
    for key, r in RANGES.items():  # every range: pass inside warn inside fail, with a source
        assert r.fail_lo <= r.pass_lo <= r.pass_hi <= r.fail_hi, key
        assert len(r.source) > 20, key


def test_sample_patient_truth_passes_every_check(sample):
    res = check_segmentation(sample["ct"], sample["truth"], sample["spect"], levels=sample["levels"])
    assert res.status == "pass", [c.line() for c in res.checks if c.status != "pass"]
    # independent values: kidney volume from the truth map itself
    n = int(np.sum(np.asarray(sample["truth"].array) == L.KIDNEY_LEFT))
    assert res.find("kidney_left", "volume_ml").value == pytest.approx(n * sample["ct"].voxel_volume_ml)
    assert res.find("vertebrae_L2L4", "level_offset").status == "pass"
    assert res.find("kidney_left", "uptake_ratio").value > 2.0  # Lu-177 peptide-like kidneys


@pytest.mark.parametrize("case", ["kidney_on_bowel", "kidneys_swapped", "levels_down_one", "half_liver",
                                  "missing_spleen", "marrow_1ml", "shift_30mm_inferior",
                                  "shift_30mm_anterior"])
def test_corrupted_sample_segmentation_fails_on_the_right_check(sample, case):
    from sample_data.seg_corpus import CORRUPTIONS, corrupt

    bad = corrupt(case, sample["truth"], {"bowel": sample["bowel"]})
    res = check_segmentation(sample["ct"], bad, sample["spect"], levels=sample["levels"])
    failing = {c.check for c in res.by_status("fail")}
    assert res.status == "fail"
    assert failing & CORRUPTIONS[case][1], (case, failing)


def test_a_kidney_far_colder_than_the_other_on_the_spect_fails_uptake_symmetry(sample):
    # a mask on liver, bowel or fat in the fossa of a removed kidney reads a fraction of the other
    # kidney's concentration (0.18-0.20 on the ICRP-110 female with a simulated nephrectomy)
    truth = sample["truth"]
    ok = check_segmentation(sample["ct"], truth, sample["spect"], levels=sample["levels"])
    sym = ok.find("kidneys", "uptake_symmetry")
    assert sym.status == "pass" and sym.value > 0.8
    spect = sample["spect"]
    right = np.asarray(truth.array) == L.KIDNEY_RIGHT
    idx = np.round(spect.world_to_index(truth.index_to_world(np.argwhere(right).astype(float)))).astype(int)
    cold = np.asarray(spect.array, np.float32).copy()
    box = tuple(slice(max(int(a) - 3, 0), int(b) + 4) for a, b in zip(idx.min(0), idx.max(0)))
    cold[box] *= 0.2  # the right kidney's region at a fifth of its uptake
    res = check_segmentation(sample["ct"], truth, spect.with_array(cold), levels=sample["levels"])
    bad = res.find("kidneys", "uptake_symmetry")
    assert bad.status == "fail" and bad.value < 0.35


def test_hot_lesions_in_a_fifth_of_the_liver_warn_and_a_clean_liver_passes(sample):
    truth = sample["truth"]
    ok = check_segmentation(sample["ct"], truth, sample["spect"], levels=sample["levels"])
    clean = ok.find("liver", "hot_lesion_fraction")
    assert clean.status == "pass" and clean.value < 0.02
    assert ok.find("kidney_left", "hot_lesion_fraction") is None  # the renal pelvis is not a lesion
    spect = sample["spect"]
    liver = np.asarray(truth.array) == L.LIVER
    idx = np.round(spect.world_to_index(truth.index_to_world(np.argwhere(liver).astype(float)))).astype(int)
    idx = np.unique(np.clip(idx, 0, np.array(spect.shape) - 1), axis=0)
    arr = np.asarray(spect.array, np.float32).copy()
    hot = idx[idx[:, 2] >= np.percentile(idx[:, 2], 80)]  # the liver's top fifth of SPECT voxels
    arr[tuple(hot.T)] *= 10.0  # metastases at 10 times the liver
    res = check_segmentation(sample["ct"], truth, spect.with_array(arr), levels=sample["levels"])
    bad = res.find("liver", "hot_lesion_fraction")
    assert bad.status == "warn" and 0.1 < bad.value < 0.4


def test_a_liver_whose_hot_fifth_is_labelled_apart_is_checked_on_its_outline_and_warns_lesion_share(sample):
    # the same hot top fifth, now labelled apart by organ_lesions (the default of the built-in
    # backend): the outline's shape checks are those of the whole liver (no solidity or volume
    # complaint about the perforated parenchyma), hot_lesion_fraction passes on what is left, and
    # lesion_share warns that the lesions' spill may still raise the parenchyma
    from pipeline.segment.organ_lesions import label_organ_lesions

    truth = sample["truth"]
    outline = truth.with_array(np.where(np.asarray(truth.array) == 100, L.LIVER, np.asarray(truth.array)))
    spect = sample["spect"]
    liver = np.asarray(outline.array) == L.LIVER
    idx = np.round(spect.world_to_index(truth.index_to_world(np.argwhere(liver).astype(float)))).astype(int)
    idx = np.unique(np.clip(idx, 0, np.array(spect.shape) - 1), axis=0)
    arr = np.asarray(spect.array, np.float32).copy()
    hot = idx[idx[:, 2] >= np.percentile(idx[:, 2], 80)]
    arr[tuple(hot.T)] *= 10.0
    hot_spect = spect.with_array(arr)
    final, rec, _ = label_organ_lesions(outline, hot_spect)
    assert rec["liver"]["labels"]
    res = check_segmentation(sample["ct"], outline, hot_spect, levels=sample["levels"], parenchyma=final)
    share = res.find("liver", "lesion_share")
    assert share.status == "warn" and 0.15 < share.value < 0.6
    assert res.find("liver", "hot_lesion_fraction").status == "pass"
    whole = check_segmentation(sample["ct"], outline, hot_spect, levels=sample["levels"])
    assert [(c.check, c.status) for c in res.checks if c.structure == "liver" and c.check != "lesion_share"
            and c.check != "hot_lesion_fraction"] == [
        (c.check, c.status) for c in whole.checks if c.structure == "liver" and c.check != "hot_lesion_fraction"]
    assert whole.find("liver", "hot_lesion_fraction").status == "warn"


def test_declared_absent_spleen_passes(sample):
    from sample_data.seg_corpus import corrupt

    bad = corrupt("missing_spleen", sample["truth"])
    res = check_segmentation(sample["ct"], bad, levels=sample["levels"], absent_organs=("spleen",))
    assert res.find("spleen", "present").status == "pass" and res.status == "pass"


def test_organ_cut_by_the_field_of_view_warns_instead_of_failing_on_volume(sample):
    ct, truth = sample["ct"], sample["truth"]
    arr = np.asarray(truth.array)
    k = np.flatnonzero((arr == L.KIDNEY_LEFT).any(axis=(0, 1)))
    keep = slice(int(k[0] + 0.75 * (k[-1] - k[0])), arr.shape[2])  # the FOV starts in the kidneys' upper quarter
    sub_ct = Image(np.asarray(ct.array)[:, :, keep], ct.affine @ _shift_k(keep.start), "HU")
    sub_lab = Image(arr[:, :, keep], ct.affine @ _shift_k(keep.start), "label")
    res = check_segmentation(sub_ct, sub_lab)
    vol = res.find("kidney_left", "volume_ml")
    assert vol.value < 70.0 and vol.status == "warn" and "field of view" in vol.note


def _shift_k(k0):
    m = np.eye(4)
    m[2, 3] = k0
    return m


def test_segment_cli_writes_qc_json_for_the_sample_patient(sample, tmp_path):
    from pipeline.segment.cli import main

    out = tmp_path / "seg"
    rc = main(["--ct", str(sample["out"] / "nifti" / "t24h_ct.nii.gz"), "--backend", "nifti",
               "--masks", str(sample["out"] / "truth" / "labels.nii.gz"),
               "--spect", str(sample["out"] / "nifti" / "t24h_spect.nii.gz"), "--out", str(out)])
    assert rc == 0
    qc = json.loads((out / "qc.json").read_text())
    assert qc["status"] == "pass" and not qc["overridden"]
    assert {c["check"] for c in qc["checks"]} >= {"volume_ml", "gas_ml", "side_mm", "level_offset",
                                                  "uptake_ratio", "dome_gap_mm"}


def test_segment_cli_refuses_swapped_kidneys_in_one_line(sample, tmp_path, capsys):
    from sample_data.seg_corpus import corrupt

    from pipeline.imageio import write_image
    from pipeline.segment.cli import main

    bad = corrupt("kidneys_swapped", sample["truth"])
    masks = tmp_path / "masks.nii.gz"
    write_image(masks, bad, {"quantity": "labels"})
    out = tmp_path / "seg"
    rc = main(["--ct", str(sample["out"] / "nifti" / "t24h_ct.nii.gz"), "--backend", "nifti",
               "--masks", str(masks), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and not out.exists()
    assert f"error: {masks}: kidney_left: side_mm (-" in err[0]
    rc = main(["--ct", str(sample["out"] / "nifti" / "t24h_ct.nii.gz"), "--backend", "nifti",
               "--masks", str(masks), "--out", str(out), "--qc", "warn"])
    qc = json.loads((out / "qc.json").read_text())
    assert rc == 0 and qc["overridden"] and qc["status"] == "fail"


def test_segment_evaluate_prints_and_writes_the_agreement_with_a_reference(sample, tmp_path, capsys):
    from sample_data.seg_corpus import shift_labels

    from pipeline.imageio import write_image
    from pipeline.segment.cli import main

    # the "test" masks: the truth with the left kidney moved 10.5 mm (3 voxels) to the left
    moved = shift_labels(sample["truth"], (-10.5, 0.0, 0.0), ids=(L.KIDNEY_LEFT,))
    masks = tmp_path / "masks.nii.gz"
    write_image(masks, moved, {"quantity": "labels"})
    out = tmp_path / "seg"
    rc = main(["--ct", str(sample["out"] / "nifti" / "t24h_ct.nii.gz"), "--backend", "nifti", "--masks", str(masks),
               "--out", str(out), "--evaluate", str(sample["out"] / "truth" / "labels.nii.gz")])
    assert rc == 0
    ev = json.loads((out / "evaluation.json").read_text())
    truth = np.asarray(sample["truth"].array) == L.KIDNEY_LEFT
    shifted = np.asarray(moved.array) == L.KIDNEY_LEFT
    expected = 2 * (truth & shifted).sum() / (truth.sum() + shifted.sum())  # Dice by hand
    assert ev["organs"]["kidney_left"]["dice"] == pytest.approx(expected, abs=1e-9)
    assert ev["organs"]["kidney_left"]["centroid_distance_mm"] == pytest.approx(10.5, abs=0.3)
    assert ev["organs"]["liver"]["dice"] == pytest.approx(1.0)
    assert all(ev["levels"][n]["match"] for n in ("L2", "L3", "L4"))
    text = capsys.readouterr().out
    assert "kidney_left" in text and "L3" in text


def test_builtin_qc_json_records_the_level_vote_and_the_anchor_overrides_it(sample, tmp_path):
    from pipeline.segment.cli import main

    ct = str(sample["out"] / "nifti" / "t24h_ct.nii.gz")
    out = tmp_path / "seg"
    assert main(["--ct", ct, "--out", str(out), "--atlas", "none"]) == 0
    vote = json.loads((out / "qc.json").read_text())["levels"]
    assert vote["decision"] == "pass"
    agreeing = [e["name"] for e in vote["evidence"] if e.get("available") and e.get("agrees")]
    assert len(agreeing) >= 2, vote
    # the anchor names the vertebra at the truth L3 centre; it is recorded as the manual evidence
    from sample_data.anatomy import vertebra_z_ranges

    z3 = 0.5 * sum(vertebra_z_ranges()["L3"])
    out2 = tmp_path / "seg2"
    assert main(["--ct", ct, "--out", str(out2), "--atlas", "none", "--vertebra-level", f"L3@{z3:.0f}"]) == 0
    vote2 = json.loads((out2 / "qc.json").read_text())["levels"]
    assert any(e["name"] == "manual" for e in vote2["evidence"])


def test_levels_named_by_the_landmarks_pass_and_by_the_atlas_warn(sample):
    # the sample CT's own level vote (its landmarks agree) passes; the same label map whose levels
    # the atlas registration named (the builtin's fallback when the landmarks disagree or are
    # missing) is a warn that reaches the report, never a silent pass
    _, spine = spine_levels_mm(sample["ct"])
    assert spine.levels["decision"] == "pass"
    ok = check_segmentation(sample["ct"], sample["truth"], sample["spect"], levels=sample["levels"],
                            level_vote=spine.levels)
    ev = ok.find("vertebrae_L2L4", "level_evidence")
    assert ev.status == "pass" and ev.value >= 2 and ok.status == "pass"
    by_atlas = {**spine.levels, "decision": "warn",
                "message": "L2-L4 from the atlas registration; check them on the CT"}
    res = check_segmentation(sample["ct"], sample["truth"], sample["spect"], levels=sample["levels"],
                             level_vote=by_atlas)
    ev = res.find("vertebrae_L2L4", "level_evidence")
    assert res.status == "warn" and ev.status == "warn" and "atlas" in ev.note
    refused = {**spine.levels, "decision": "fail", "message": "vertebral levels unknown"}
    skip = check_segmentation(sample["ct"], sample["truth"], levels=sample["levels"], level_vote=refused)
    assert skip.find("vertebrae_L2L4", "level_evidence").status == "skip"
    assert check_segmentation(sample["ct"], sample["truth"]).find("vertebrae_L2L4", "level_evidence") is None


def test_builtin_cli_labels_the_sample_patients_liver_metastasis_apart_unless_told_not_to(sample, tmp_path):
    # the rules put the sample patient's liver metastasis (truth label 100) inside the liver; with
    # its 24 h SPECT it becomes lesion_1 and the liver keeps its parenchyma
    from pipeline.imageio import read_image
    from pipeline.segment.cli import main

    args = ["--ct", str(sample["out"] / "nifti" / "t24h_ct.nii.gz"), "--atlas", "none",
            "--spect", str(sample["out"] / "nifti" / "t24h_spect.nii.gz")]
    assert main(args + ["--out", str(tmp_path / "on")]) == 0
    labels, _ = read_image(tmp_path / "on" / "labels.nii.gz")
    lab, truth = np.asarray(labels.array), np.asarray(sample["truth"].array)
    met = truth == 100
    assert np.mean(lab[met] == L.LESION_FIRST) > 0.8 and np.mean(lab[met] == L.LIVER) < 0.05
    vocab = json.loads((tmp_path / "on" / "labels.json").read_text())
    assert vocab["labels"][str(L.LESION_FIRST)] == "lesion_1"
    assert any(n.startswith("liver: 1 hot lesion") for n in vocab["notes"])
    qc = json.loads((tmp_path / "on" / "qc.json").read_text())
    assert qc["organ_method"]["organ_lesions"]["liver"]["labels"] == ["lesion_1"]
    assert "lesion_1" in (tmp_path / "on" / "organs.csv").read_text()
    assert main(args + ["--out", str(tmp_path / "off"), "--no-organ-lesions"]) == 0
    off, _ = read_image(tmp_path / "off" / "labels.nii.gz")
    assert np.asarray(off.array).max() < L.LESION_FIRST and np.mean(np.asarray(off.array)[met] == L.LIVER) > 0.8


def _move_l3_back(truth: Image, mm: float) -> Image:
    """The sample truth with the middle of the three L2-L4 bodies (and its VOI) moved ``mm`` posterior."""
    from scipy import ndimage as ndi

    arr = np.asarray(truth.array).copy()
    lab, n = ndi.label(np.isin(arr, (L.MARROW_L2L4, L.VERTEBRAE_L2L4)), structure=np.ones((3, 3, 3), bool))
    objs = sorted((sl[2].start, i) for i, sl in enumerate(ndi.find_objects(lab), start=1))
    assert len(objs) == 3
    mid = lab == objs[1][1]
    ax = int(np.argmax(np.abs(truth.affine[1, :3])))  # the array axis along anterior (RAS+ y)
    step = float(np.linalg.norm(truth.affine[:3, ax]))
    shift = -int(round(mm / step)) * int(np.sign(truth.affine[1, ax]))
    moved_vals = np.roll(np.where(mid, arr, 0), shift, axis=ax)
    arr[mid] = L.BODY
    arr[moved_vals > 0] = moved_vals[moved_vals > 0]
    return truth.with_array(arr)


@pytest.mark.parametrize("mm, status", [(18.0, "warn"), (36.0, "fail")])
def test_a_body_drawn_behind_its_neighbours_is_caught_by_the_antero_posterior_step(sample, mm, status):
    bad = _move_l3_back(sample["truth"], mm)
    res = check_segmentation(sample["ct"], bad, levels=sample["levels"])
    step = res.find("vertebrae_L2L4", "ap_step_mm")
    assert step.value == pytest.approx(mm, abs=2.5)  # the truth's own step is under 2 mm
    assert step.status == status


def test_a_marrow_voi_behind_the_spinal_canal_fails_and_the_truth_lies_in_front_of_it(sample):
    ct, truth = sample["ct"], sample["truth"]
    ok = check_segmentation(ct, truth, levels=sample["levels"]).find("vertebrae_L2L4", "canal_offset_mm")
    assert ok.status == "pass" and 15.0 < ok.value < 30.0  # the body's centre, about half its depth in front
    # L3 moved 36 mm back: its VOI now lies on the arch, about 11 mm behind the canal's centre
    bad = check_segmentation(ct, _move_l3_back(truth, 36.0), levels=sample["levels"])
    off = bad.find("vertebrae_L2L4", "canal_offset_mm")
    assert off.status == "fail" and off.value < 0.0


def test_a_ct_whose_body_reads_20_hu_high_warns_on_its_fat_peak_and_the_right_one_passes(sample):
    ct = sample["ct"]
    a = np.asarray(ct.array, np.float32)
    right = check_segmentation(ct, sample["truth"], levels=sample["levels"]).find("ct", "fat_peak_hu")
    assert right.status == "pass" and -109.0 <= right.value <= -95.0
    high = check_segmentation(ct.with_array(np.where(a > -500.0, a + 20.0, a)), sample["truth"],
                              levels=sample["levels"]).find("ct", "fat_peak_hu")
    assert high.status == "warn"
    assert high.value - right.value == pytest.approx(20.0, abs=1.5)


@pytest.mark.parametrize("shift_mm", [(0.0, 0.0, 0.0), (0.0, 0.0, 8.0), (7.0, 0.0, 0.0)])
def test_a_spect_misaligned_with_its_ct_warns_on_the_kidneys_uptake_offset(sample, shift_mm):
    # the truth masks with the SPECT moved against the CT (breathing, motion): the kidneys' best
    # fitting shift is the imposed one, within a voxel; aligned it is within a voxel of none
    spect = sample["spect"]
    aff = np.array(spect.affine)
    aff[:3, 3] += shift_mm
    moved = Image(np.asarray(spect.array), aff, spect.unit)
    res = check_segmentation(sample["ct"], sample["truth"], moved, levels=sample["levels"])
    for k in ("kidney_left", "kidney_right"):
        c = res.find(k, "uptake_offset_mm")
        assert c.value == pytest.approx(np.linalg.norm(shift_mm), abs=5.0), c.note
        assert c.status == ("warn" if any(shift_mm) else "pass"), c.note
    assert not res.by_status("fail")


def test_a_declared_absent_organ_that_the_label_map_holds_fails_on_present(sample):
    # imported masks with a spleen for a patient declared splenectomised: which is right?
    res = check_segmentation(sample["ct"], sample["truth"], levels=sample["levels"], absent_organs=("spleen",))
    present = res.find("spleen", "present")
    assert present.status == "fail" and present.value > 50.0 and "declared absent" in present.note
    assert res.find("spleen", "volume_ml") is None  # not checked as an organ


def test_a_solitary_kidney_skips_the_two_kidneys_checks_with_the_reason(sample):
    arr = np.asarray(sample["truth"].array).copy()
    arr[arr == L.KIDNEY_LEFT] = L.BODY  # nephrectomy
    one = sample["truth"].with_array(arr)
    res = check_segmentation(sample["ct"], one, levels=sample["levels"], absent_organs=("kidney_left",))
    assert res.find("kidney_left", "present").status == "pass"
    ratio = res.find("kidneys", "volume_ratio")
    assert ratio.status == "skip" and "kidney_left declared absent" in ratio.note
    assert res.find("kidney_right", "volume_ml").status == "pass" and res.status == "pass"
    undeclared = check_segmentation(sample["ct"], one, levels=sample["levels"])
    assert undeclared.find("kidney_left", "present").status == "fail"


def test_a_pedicle_screw_in_l3_warns_on_metal_and_clean_bone_passes(sample):
    ct, truth = sample["ct"], sample["truth"]
    clean = check_segmentation(ct, truth, levels=sample["levels"]).find("vertebrae_L2L4", "metal_ml")
    assert clean.status == "pass" and clean.value == 0.0
    # a 6 mm screw, 40 mm long, antero-posterior through L3's body at 3000 HU (titanium reads 3000+)
    lab = np.asarray(truth.array)
    z = ct.world_grid()
    body = np.isin(lab, (L.MARROW_L2L4, L.VERTEBRAE_L2L4))
    c = z[body].mean(axis=0)
    axis = np.linalg.norm((z - c)[..., [0, 2]], axis=-1) <= 3.0
    screw = axis & (np.abs(z[..., 1] - c[1]) <= 20.0)
    arr = np.asarray(ct.array, np.float32).copy()
    arr[screw] = 3000.0
    res = check_segmentation(ct.with_array(arr), truth, levels=sample["levels"])
    metal = res.find("vertebrae_L2L4", "metal_ml")
    assert metal.status == "warn" and metal.value > 0.3
    assert not res.by_status("fail")
