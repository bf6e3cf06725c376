"""Atlas segmentation on the ICRP-110 phantoms, leave one out (slow; skipped without ../shared).

The atlas is a folder holding only the other phantom (:func:`sample_data.icrp110.atlas_subjects`
written by :func:`pipeline.segment.atlas_store.write_atlas_subject`), so the case is a person the atlas
has never seen. Thresholds: the measured Dice of ``python -m sample_data.seg_regression --atlas loo``
(AM_4mm: kidneys 0.88/0.79, liver 0.84, spleen 0.58) less 0.05 (the registration is reproducible to the
bit on one machine, since its affine runs single-threaded, but not across libraries and CPUs);
levels must be right. With a reference SPECT
(:func:`sample_data.seg_regression.simulated_spect`: kidney:spleen:liver:rest 10:3:2:0.3,
12 mm FWHM), the SPECT veto, the partial-volume rim and the uptake growth: measured on AM_4mm
kidneys 0.94/0.91, liver 0.93, spleen 0.90, kidney uptake errors -1.2 % and -4.4 %; thresholds
about 0.05 lower and uptake within 10 %. With the realistic SPECT of :mod:`sample_data.seg_spect`
(non-uniform kidneys with a hot pelvis, hot spleen, bowel, a 15x lymph node 8 mm medial to the left
kidney, a liver metastasis): measured kidneys 0.94/0.90, liver 0.93, spleen 0.90, kidney uptake
errors -1.4 % and -5.0 %, no voxel of the node in a kidney (before the basin test of
:func:`pipeline.segment.atlas_refine.drop_other_hot_basins`: 45 % of the node in the left kidney);
thresholds as above, and at most 5 % of the node in any organ.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.imageio import write_image
from pipeline.segment.cli import main

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
ZIP = SHARED / "icrp110" / "Input_GateLab_2019-04-02.zip"


@pytest.mark.slow
@pytest.mark.parametrize("with_spect", [False, True, "realistic"], ids=["ct_only", "with_spect", "realistic_spect"])
def test_leave_one_out_atlas_segments_the_other_phantom(tmp_path, with_spect):
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from pipeline.segment.atlas_store import write_atlas_subject
    from pipeline.segment.evaluate import compare_labels, compare_levels, levels_from_labels
    from pipeline.segment.evaluate import resample_nearest
    from sample_data.icrp110 import atlas_subjects, load_case, load_phantom
    from sample_data.seg_regression import _uptake_errors, simulated_spect
    from sample_data.seg_spect import realistic_spect

    (af,) = atlas_subjects(ZIP, names=("AF",))
    write_atlas_subject(tmp_path / "atlas", af)
    am = load_phantom(ZIP, "AM")
    ct, ref, levels = load_case(ZIP, "AM_4mm", phantom=am)
    lesions, spect = {}, None
    if with_spect == "realistic":
        spect, ct, lesions = realistic_spect(ct, resample_nearest(am.labels, ct))
    write_image(tmp_path / "ct.nii.gz", ct, quantity="CT")
    out = tmp_path / "segment"
    argv = ["--ct", str(tmp_path / "ct.nii.gz"), "--out", str(out), "--atlas", str(tmp_path / "atlas"), "--qc", "warn"]
    if with_spect:
        spect = simulated_spect(ct, ref) if with_spect is True else spect
        write_image(tmp_path / "spect.nii.gz", spect, quantity="activity_concentration")
        argv += ["--spect", str(tmp_path / "spect.nii.gz")]
    assert main(argv) == 0
    from pipeline.imageio import read_image

    labels, _ = read_image(out / "labels.nii.gz", unit="label")
    organs = compare_labels(labels, ref)
    want = {"kidney_left": 0.83, "kidney_right": 0.74, "liver": 0.79, "spleen": 0.53}
    if with_spect:
        want = {"kidney_left": 0.88, "kidney_right": 0.85, "liver": 0.86, "spleen": 0.82}
        err = _uptake_errors(ct, spect, labels, ref)
        assert abs(err["kidney_left"]) < 10.0 and abs(err["kidney_right"]) < 10.0, err
    for name, m in lesions.items():
        taken = np.isin(np.asarray(labels.array)[m], (1, 2, 4) if name == "liver_met" else (1, 2, 3, 4))
        assert taken.mean() <= 0.05, (name, taken.mean())
    for name, dice in want.items():
        assert organs[name]["dice"] >= dice, (name, organs[name]["dice"])
    test_levels = {n: 0.5 * (lo + hi) for n, (lo, hi) in levels_from_labels(labels).items()}
    ref_levels = {n: tuple(v["z_range_mm"]) for n, v in levels.items() if not n.startswith("_")}
    lv = compare_levels(test_levels, ref_levels, names=("L2", "L3", "L4"))
    assert all(r["match"] for r in lv.values()), lv
    qc = json.loads((out / "qc.json").read_text())
    assert qc["organ_method"]["subjects"][0]["subject"] == "ICRP110_AF"
    assert all(np.isfinite(r["best_mad_hu"]) for r in qc["organ_method"]["organs"].values())


@pytest.mark.slow
def test_totalsegmentator_organs_on_the_ct_alone():
    """The real CT on its own, the atlas of both phantoms. Its CT numbers are not the atlas CT's
    textbook table (liver 45 against 60, spleen 32 against 50, muscle about 26 against 50 HU): the
    atlas CT's numbers are mapped onto the patient's through the fat and soft-tissue peaks before the
    demons step (``AtlasOptions.match_histogram``). Its landmarks (sacrum, iliac crests) settle the
    levels, so the registration is pinned at its L3 (:func:`pipeline.segment.atlas.register_subject`).
    Measured kidneys 0.94 / 0.80, liver 0.91, spleen 0.66 (129 of 255 mL on the labelled slices: the
    carried spleen ends 30 mm above this one's lower pole, which lies lower on the spine than the
    atlas persons'; 0.77 from the free registration, whose L3 was 53 mm below this CT's, and 0.65 from
    that registration without the CT-number mapping). Thresholds: spleen 0.60, the other organs 0.78:
    a known under-segmentation on the CT alone, which the SPECT mends (the next test)."""
    if not (SHARED / "totalseg_example").is_dir() or not ZIP.is_file():
        pytest.skip("../shared/data/totalseg_example or icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    row = run_case("totalseg", SHARED.parent, atlas=tuple(atlas_subjects(ZIP)))
    assert "refused" not in row, row
    assert row["dice"]["spleen"] >= 0.60, row["dice"]
    assert min(row["dice"][o] for o in ("kidney_left", "kidney_right", "liver")) >= 0.78, row["dice"]
    assert row["qc"] != "fail", row["qc_failing"]


@pytest.mark.slow
def test_totalsegmentator_ct_with_an_early_spect_meets_the_dice_targets():
    """A real CT (contrast-enhanced, 3 mm) with a simulated early-session SPECT, the atlas of both
    phantoms. Measured (labelled slices only): kidneys 0.94 / 0.90, liver 0.95, spleen 0.91, uptake
    errors -0.2 / -5.0 / -0.7 / +3.4 % (spleen 0.86 before the atlas CT's histogram was matched to
    the patient's). Thresholds: the issue's targets (0.85 kidneys, 0.90 liver, 0.80 spleen) and
    uptake within 8 %."""
    if not (SHARED / "totalseg_example").is_dir() or not ZIP.is_file():
        pytest.skip("../shared/data/totalseg_example or icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    row = run_case("totalseg", SHARED.parent, atlas=tuple(atlas_subjects(ZIP)), spect="early")
    assert "refused" not in row, row
    want = {"kidney_left": 0.85, "kidney_right": 0.85, "liver": 0.90, "spleen": 0.80}
    for name, dice in want.items():
        assert row["dice"][name] >= dice, (name, row["dice"])
        assert abs(row["uptake_error_pct"][name]) < 8.0, row["uptake_error_pct"]
    assert row["qc"] != "fail", row["qc_failing"]


@pytest.mark.slow
def test_an_enlarged_spleen_above_the_left_kidney_is_not_given_to_the_kidney():
    """AF_3mm with a splenomegaly (``seg_regression --enlarge spleen:15``: 125 -> 307 mL, grown over the
    fat around the kidney's upper pole), the realistic SPECT (spleen 8, renal cortex 10: the SPECT cannot
    part them) and the male phantom as atlas. Measured left kidney 164 mL against 141 mL (Dice 0.84),
    spleen Dice 0.83; without the CT-based split of touching organs (:mod:`pipeline.segment.ct_boundary`)
    181 mL (0.80) and 0.79. Threshold: kidney volume within 20 % of the truth, Dice at least 0.82."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from pipeline.segment.cli import segment
    from pipeline.segment.evaluate import compare_labels, resample_nearest
    from sample_data import seg_spect
    from sample_data.icrp110 import atlas_subjects, load_case, load_phantom
    from sample_data.seg_regression import _enlarged

    (am,) = atlas_subjects(ZIP, names=("AM",))
    ph, _ = _enlarged(load_phantom(ZIP, "AF"), "spleen", 15.0)
    ct, ref, _ = load_case(ZIP, "AF_3mm", phantom=ph)
    spect, ct, _ = seg_spect.realistic_spect(ct, resample_nearest(ph.labels, ct))
    labels, _ = segment(ct, spect=spect, atlas=(am,))
    organs = compare_labels(labels, ref)
    ours = float(np.sum(np.asarray(labels.array) == 1)) * ct.voxel_volume_ml
    truth = float(np.sum(np.asarray(ref.array) == 1)) * ct.voxel_volume_ml
    assert abs(ours / truth - 1.0) < 0.20, (ours, truth)
    assert organs["kidney_left"]["dice"] >= 0.82, organs["kidney_left"]


@pytest.mark.slow
def test_a_liver_with_hot_metastases_in_a_seventh_of_it_is_segmented_whole():
    """AF_3mm, realistic SPECT with hot liver metastases (10 x the liver's uptake) in 15 % of the liver
    (``seg_regression --liver-mets 0.15``), the male phantom as atlas. The veto's organ level was the
    75th percentile of the SPECT in the prior, which the metastases raised: liver 0.76 (838 of 1337 mL)
    with the veto from zero, 0.70 from the surroundings. From the median (``FusionOptions.veto_percentile``)
    measured 0.93. Threshold 0.88. The metastases are then labelled apart (``organ_lesions``): the liver's
    mean SPECT against its true parenchyma as imaged, +157 % for the outline, +20 % for what is left (the
    spill of the lesions between them), and the QC gate warns ``lesion_share`` (0.30). Thresholds: the
    parenchyma at most a quarter of the outline's error."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    (am,) = atlas_subjects(ZIP, names=("AM",))
    row = run_case("AF_3mm", SHARED.parent, atlas=(am,), spect="realistic", liver_mets=0.15)
    assert row["dice"]["liver"] >= 0.88, row["dice"]
    assert row["qc"] != "fail", row["qc_failing"]
    assert "liver:lesion_share" in row["qc_warn"]
    err = row["parenchyma_error_pct"]
    assert 0 < err["parenchyma"] < 0.25 * err["outline"], err


@pytest.mark.slow
def test_a_liver_one_third_metastases_at_an_early_session_keeps_its_parenchyma_and_the_kidney_its_shape():
    """AF_3mm, early SPECT (liver 2.5 against 1.0 in the body), hot metastases in 30 % of the liver, the
    male phantom as atlas. With the liver's level at its median the metastases' spill raised it and the
    veto cut half of the normal liver (Dice 0.77, liver uptake +35.5 %); with the 75th percentile in the
    uptake boundary the liver was the "hot" organ and its parenchyma beside the right kidney went to the
    kidney (37 mL, Dice 0.79). Bulk level and the lesion rule: measured liver 0.92, right kidney 0.90,
    liver uptake +0.7 %. Thresholds 0.88 and 0.85 (the issue's kidney target); uptake within 5 % (the
    outline's; the metastases are then labelled apart, and the QC gate warns ``lesion_share``)."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    (am,) = atlas_subjects(ZIP, names=("AM",))
    row = run_case("AF_3mm", SHARED.parent, atlas=(am,), spect="early", liver_mets=0.30)
    assert row["dice"]["liver"] >= 0.88, row["dice"]
    assert row["dice"]["kidney_right"] >= 0.85, row["dice"]
    assert abs(row["uptake_error_pct"]["liver"]) < 5.0, row["uptake_error_pct"]
    assert "liver:lesion_share" in row["qc_warn"]


@pytest.mark.slow
def test_a_somatostatin_receptor_pattern_with_the_spleen_hotter_than_the_kidneys_meets_the_targets():
    """AF_3mm with a 24 h Lu-177 DOTATATE-like SPECT (``seg_regression --spect sstr``: spleen 16 above the
    renal cortex 10, hot adrenals on the kidneys' upper poles, pancreas 4, liver 5), the male phantom as
    atlas. Measured 0.90 / 0.88 / 0.94 / 0.87 (0.85 with a 4 mm spleen rim; the right adrenal, 6 mL, goes into the right kidney: the
    same uptake and CT numbers). Thresholds: the issue's targets."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    (am,) = atlas_subjects(ZIP, names=("AM",))
    row = run_case("AF_3mm", SHARED.parent, atlas=(am,), spect="sstr")
    d = row["dice"]
    assert d["kidney_left"] >= 0.85 and d["kidney_right"] >= 0.85, d
    assert d["liver"] >= 0.90 and d["spleen"] >= 0.80, d
    assert max(abs(v) for v in row["uptake_error_pct"].values()) < 8.0, row["uptake_error_pct"]


@pytest.mark.slow
def test_a_cold_renal_cyst_is_left_out_of_the_kidney_with_a_spect():
    """AF_3mm with a simple cyst of 20 mm radius (5 HU, no uptake) centred on the right kidney's lateral
    surface (``seg_regression --cyst 20``: 28 mL, 13 of them replacing kidney, 15 indenting the liver),
    realistic SPECT, the male phantom as atlas. The reference kidney and liver leave the cyst out. Measured
    right kidney 0.89, uptake -2.2 % (CT only: 0.77, part of the cyst in the kidney, no QC warn: the SPECT
    veto is what leaves it out). Thresholds: 0.85 and 5 %."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    (am,) = atlas_subjects(ZIP, names=("AM",))
    row = run_case("AF_3mm", SHARED.parent, atlas=(am,), spect="realistic", cyst_mm=20.0)
    assert row["dice"]["kidney_right"] >= 0.85, row["dice"]
    assert abs(row["uptake_error_pct"]["kidney_right"]) < 5.0, row["uptake_error_pct"]


@pytest.mark.slow
def test_a_removed_kidney_declared_absent_gets_no_mask_and_the_other_organs_keep_their_targets():
    """AM_3mm without its left kidney (``seg_regression --remove kidney_left``: the renal fossa filled
    with the fat and bowel around it), realistic SPECT, the female phantom as atlas. Declared absent:
    no left kidney mask, the other organs as on the whole phantom (measured 0.93 / 0.94 / 0.89 against
    0.93 / 0.94 / 0.89), QC pass. Undeclared, a 47 mL "kidney" in the fossa, and the gate fails on the
    two kidneys' volume ratio and uptake symmetry. Thresholds: the issue's Dice targets; the fail named."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    (af,) = atlas_subjects(ZIP, names=("AF",))
    row = run_case("AM_3mm", SHARED.parent, atlas=(af,), spect="realistic", remove="kidney_left")
    assert row["volume_ml"]["kidney_left"] == 0.0
    d = row["dice"]
    assert d["kidney_right"] >= 0.85 and d["liver"] >= 0.90 and d["spleen"] >= 0.80, d
    assert row["qc"] != "fail", row["qc_failing"]
    ghost = run_case("AM_3mm", SHARED.parent, atlas=(af,), spect="realistic", remove="kidney_left",
                     declare_removed=False)
    assert ghost["volume_ml"]["kidney_left"] > 0.0
    assert "kidneys:volume_ratio" in ghost["qc_failing"] and "kidneys:uptake_symmetry" in ghost["qc_failing"]


@pytest.mark.slow
def test_a_kidney_only_twice_as_hot_as_the_body_does_not_grow_into_muscle():
    """AF_4mm with a radiolabelled antibody's SPECT (``seg_regression --spect antibody``: kidneys 3, blood
    pool 8, liver and spleen 6, rest 1.5), the male phantom as atlas. The growth by uptake measured from
    zero took 22.8 mL of trunk muscle into the right kidney (161 mL against 114, Dice 0.78, uptake -6.6 %);
    above the surroundings (``FusionOptions.grow_above_surroundings``) measured 0.85, +2.2 %. Thresholds:
    Dice 0.82 (the female right kidneys at this contrast: 0.83-0.85) and uptake within 5 %."""
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import atlas_subjects
    from sample_data.seg_regression import run_case

    (am,) = atlas_subjects(ZIP, names=("AM",))
    row = run_case("AF_4mm", SHARED.parent, atlas=(am,), spect="antibody")
    assert row["dice"]["kidney_right"] >= 0.82, row["dice"]
    assert abs(row["uptake_error_pct"]["kidney_right"]) < 5.0, row["uptake_error_pct"]


@pytest.mark.slow
def test_landmarks_that_disagree_on_a_field_of_view_with_little_lung_are_refused():
    # ICRP-110 AF at 3 mm, the field of view from 10 mm into the sacrum to 40 mm above the lung
    # bases, the male phantom as atlas: the sacrum puts L3 right, the iliac crests one level high
    # (a disc misplaced at the phantom's 4.84 mm slices). The free registration, which drifts as
    # much as a vertebra on such a field of view, sided with the crests and the kidneys came out
    # at Dice 0.49 / 0.44 with warns only; before that it sided with neither (kidneys 0.49 / 0.44
    # too). With 40 mm of lung it arbitrates nothing: refused
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from pipeline.errors import InputError
    from pipeline.segment.cli import segment
    from sample_data.icrp110 import atlas_subjects, fov_z_range, load_phantom, make_ct

    ph = load_phantom(ZIP, "AF")
    ct = make_ct(ph, (3.0, 3.0, 3.0), seed=0, z_range_mm=fov_z_range(ph, "bases:40:10"))
    with pytest.raises(InputError, match="landmarks .*disagree.*cannot settle it"):
        segment(ct, atlas=tuple(atlas_subjects(ZIP, names=("AM",))))


@pytest.mark.slow
def test_a_clinical_field_of_view_with_known_levels_is_registered_at_them():
    # ICRP-110 AM at 3 mm from 10 mm into the sacrum to 20 mm above the lung bases, the female
    # phantom as atlas, the operator naming L3 (its reference centre): the atlas registration is
    # pinned at that level. Free, the affine drifted 38 mm down on this field of view (atlas L3)
    # and gave kidneys 0.83 / 0.68, spleen 0.85; pinned, measured 0.93 / 0.87 / 0.90 / 0.82 (the
    # issue's targets, on the CT alone). Thresholds 0.05 below (other machines' floating point)
    from sample_data.seg_regression import run_case
    from sample_data.icrp110 import atlas_subjects

    row = run_case("AM_3mm", SHARED.parent, anchor=True, atlas=tuple(atlas_subjects(ZIP, names=("AF",))),
                   fov="bases:20:10")
    assert "refused" not in row, row
    want = {"kidney_left": 0.88, "kidney_right": 0.82, "liver": 0.85, "spleen": 0.77}
    for name, dice in want.items():
        assert row["dice"][name] >= dice, (name, row["dice"])
    assert all(row["levels"][n] for n in ("L2", "L3", "L4")), row["levels"]


@pytest.mark.slow
def test_a_clinical_field_of_view_names_its_levels_from_its_own_landmarks():
    # ICRP-110 AM at 3 mm from 60 mm into the sacrum to 80 mm above the lung bases, the female
    # phantom as atlas, no operator level: the sacrum (the top of its alae, not an L5 with wide
    # transverse processes), the iliac crests and the short 12th rib now agree on L3, the
    # registration is pinned there. Before, the sacrum was one level high, the free registration
    # sided with the crests and the L3-L4 bodies came from the atlas prior: L3 and L4 wrong with
    # warns only. Measured 0.92 / 0.87 / 0.89 / 0.80, QC pass; thresholds 0.05 below. The L4
    # body's outline had taken in its arch (the male phantom's 160 HU spongiosa broken at the
    # 150 HU threshold): 68 % of the marrow VOI in the reference bodies, and the gate's
    # canal_offset_mm failed it; the body is now drawn again in front of the canal (89 %)
    from sample_data.seg_regression import run_case
    from sample_data.icrp110 import atlas_subjects

    row = run_case("AM_3mm", SHARED.parent, atlas=tuple(atlas_subjects(ZIP, names=("AF",))), fov="bases:80:60")
    assert "refused" not in row, row
    want = {"kidney_left": 0.87, "kidney_right": 0.82, "liver": 0.84, "spleen": 0.75}
    for name, dice in want.items():
        assert row["dice"][name] >= dice, (name, row["dice"])
    assert all(row["levels"][n] for n in ("L2", "L3", "L4")), row["levels"]
    assert row["qc"] == "pass", row
    assert row["marrow_in_bodies_pct"] >= 80.0, row
