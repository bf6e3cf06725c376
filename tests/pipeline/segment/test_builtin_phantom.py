"""Built-in segmenter on the sample patient (sample_data), against its ground truth.

The CT is the generator's noisy reference CT (NIfTI); the truth is truth/labels.nii.gz
and the per-tissue / per-vertebra map of ``sample_data.build_phantom`` (same grid).
"""

import numpy as np
import pytest

from pipeline.imageio import read_image
from pipeline.segment.cli import segment


def _sample(preset, tmp_path_factory):
    try:
        from sample_data.anatomy import build_phantom
        from sample_data.generator import generate
    except ImportError as exc:  # the generator is built in parallel; skip until it is importable
        pytest.skip(f"sample_data not usable: {exc}")
    out = generate(tmp_path_factory.mktemp(f"sample_{preset}"), preset=preset, nuclide="Lu-177", seed=0,
                   fmt="nifti", time_points_h=(24,))
    ct, _ = read_image(out / "nifti" / "t24h_ct.nii.gz")
    spect, _ = read_image(out / "nifti" / "t24h_spect.nii.gz")
    truth, _ = read_image(out / "truth" / "labels.nii.gz")
    ph = build_phantom(preset, seed=0)
    assert ph.tissues.same_grid(ct) and truth.same_grid(ct)
    labels, info = segment(ct, spect=spect)
    return dict(ct=ct, spect=spect, truth=np.asarray(truth.array), tissues=np.asarray(ph.tissues.array),
                tissue_names=ph.tissue_names, labels=np.asarray(labels.array), info=info)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _sample("small", tmp_path_factory)


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    return _sample("standard", tmp_path_factory)


def _ids(names, pattern):
    return [k for k, v in names.items() if v in pattern]


def _check_levels(s, min_checked=8):
    ct, tis, names, levels = s["ct"], s["tissues"], s["tissue_names"], s["info"]["vertebrae"]
    checked = 0
    for name, v in levels.items():
        if name == "S1":
            ids = _ids(names, ("sacrum_cortex", "sacrum_trabecular"))
        else:
            ids = _ids(names, (f"cortex_{name}", f"trabecular_{name}"))
        if not ids:
            continue  # level outside the phantom's anatomy (the phantom has T7..L5, sacrum)
        k = np.flatnonzero(np.isin(tis, ids).any(axis=(0, 1)))
        z = ct.index_to_world(np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1))[:, 2]
        # the detected vertebra's centre lies inside the true vertebra's z extent
        assert z.min() <= v["centre_ras_mm"][2] <= z.max(), (name, v["centre_ras_mm"][2], z.min(), z.max())
        checked += 1
    assert checked >= min_checked  # S1, L5..L1, T12, T11 at least with the sacrum in view


def _check_marrow_inside_trabecular(s):
    trab = np.isin(s["tissues"], _ids(s["tissue_names"], ("trabecular_L2", "trabecular_L3", "trabecular_L4")))
    marrow = s["labels"] == 5
    assert marrow.sum() > 0
    assert np.all(trab[marrow]), f"{np.sum(marrow & ~trab)} marrow voxels outside trabecular L2-L4"
    # each of L2, L3, L4 holds part of the VOI
    for n in ("L2", "L3", "L4"):
        assert np.any(marrow & (s["tissues"] == _ids(s["tissue_names"], (f"trabecular_{n}",))[0])), n


def test_small_every_vertebra_level_is_correct(small):
    _check_levels(small)
    assert any("agrees" in n for n in small["info"]["notes"])


def test_small_marrow_voi_is_entirely_inside_trabecular_bone(small):
    _check_marrow_inside_trabecular(small)


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


@pytest.mark.slow
def test_standard_organ_dice_meets_issue_thresholds(standard):
    lab, truth = standard["labels"], standard["truth"]
    # issue 7: Dice >= 0.90 liver, >= 0.85 each kidney, >= 0.80 spleen (truth liver excludes the
    # metastasis, which the CT-only built-in cannot tell from liver: part of the residual)
    assert dice(lab == 3, truth == 3) >= 0.90
    assert dice(lab == 1, truth == 1) >= 0.85
    assert dice(lab == 2, truth == 2) >= 0.85
    assert dice(lab == 4, truth == 4) >= 0.80


@pytest.mark.slow
def test_standard_levels_and_marrow(standard):
    _check_levels(standard)
    assert any("agrees" in n for n in standard["info"]["notes"])
    _check_marrow_inside_trabecular(standard)


def test_small_spect_lesions_lie_on_true_lesions(small):
    # SPECT hot spots outside liver, spleen and kidneys: the lymph node (truth 101) and the bone
    # lesion (truth 102) are found, and every detected lesion touches a true lesion (no false
    # positive); intra-organ lesions (liver metastasis) are not sought by the built-in.
    labels, _ = segment(small["ct"], spect=small["spect"], lesions_from_spect=True)
    lab, truth = np.asarray(labels.array), small["truth"]
    found = [v for v in np.unique(lab) if v >= 100]
    assert found
    for v in found:
        assert np.any(truth[lab == v] >= 100), v
    for t in (101, 102):
        assert np.any(lab[truth == t] >= 100), t


def _crop_above(ct, tissues, names, level):
    """CT and tissue map cut just above the named vertebra's top (the sacrum leaves the FOV)."""
    from pipeline.image import Image

    ids = _ids(names, (f"cortex_{level}", f"trabecular_{level}", "sacrum_cortex", "sacrum_trabecular"))
    k0 = int(np.flatnonzero(np.isin(tissues, ids).any(axis=(0, 1))).max()) + 2
    aff = ct.affine.copy()
    aff[:3, 3] = ct.index_to_world([0, 0, k0])
    return Image(np.asarray(ct.array)[:, :, k0:], aff, "HU"), tissues[:, :, k0:]


def test_with_the_ribs_alone_the_levels_are_refused_until_an_operator_names_one(small):
    # cut above L5: no sacrum, no iliac crest; the lowest rib-bearing vertebra alone is not
    # enough (one landmark alone named L3 right in 5 of 11 ICRP-110 fields of view)
    from pipeline.errors import InputError

    ct, tis = _crop_above(small["ct"], small["tissues"], small["tissue_names"], "L5")
    with pytest.raises(InputError, match=r"one landmark only \(ribs") as exc:
        segment(ct)
    assert "\n" not in str(exc.value) and "vertebra_level" in str(exc.value)
    z3 = small["info"]["vertebrae"]["L3"]["centre_ras_mm"][2]
    _, info = segment(ct, vertebra_level=f"L3@{z3:.1f}")
    assert info["level_vote"]["decision"] == "pass"  # the ribs agree with the operator
    _check_levels(dict(small, ct=ct, tissues=tis, info=info), min_checked=5)


def test_lumbar_count_override_shifts_levels_and_the_cross_check_reports_it(small):
    # the phantom has 5 lumbar vertebrae: declaring 6 renames them (true L5 becomes "L6") and the
    # rib cross-check must flag the disagreement instead of passing silently
    _, info = segment(small["ct"], lumbar_count=6)
    assert "L6" in info["vertebrae"]
    assert any("cross-check failed" in n for n in info["notes"])
    z_true_l5 = small["info"]["vertebrae"]["L5"]["centre_ras_mm"][2]
    assert info["vertebrae"]["L6"]["centre_ras_mm"][2] == z_true_l5


def test_atlas_named_levels_know_which_landmarks_agree_with_the_atlas():
    from pipeline.segment.builtin_levels import landmarks_with_atlas as _landmarks_with_atlas

    l3 = np.zeros((4, 4, 20), bool)
    l3[:, :, 8:12] = True  # centre at slice 9.5: z = 10 + 2 * 9.5 = 29 mm
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[2, 3] = 10.0
    vote = {"evidence": [
        {"name": "sacrum", "proposes": {"L3": [40.0, 60.0]}},
        {"name": "iliac_crests", "proposes": {"L3": [20.0, 35.0]}},
        {"name": "ribs", "proposes": {}},
        {"name": "atlas", "proposes": {"L3": [20.0, 35.0]}},  # the atlas itself is no landmark
    ]}
    assert _landmarks_with_atlas(vote, l3, affine) == (["sacrum", "iliac_crests"], ["iliac_crests"], 29.0)
    vote["evidence"][1]["proposes"]["L3"] = [60.0, 80.0]
    assert _landmarks_with_atlas(vote, l3, affine) == (["sacrum", "iliac_crests"], [], 29.0)
    assert _landmarks_with_atlas({"evidence": []}, l3, affine) == ([], [], 29.0)
