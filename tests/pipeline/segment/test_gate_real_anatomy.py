"""QC gate on real anatomy: ICRP-110 phantom cases and the TotalSegmentator reference labels.

Correct label maps never fail (warns are counted in the closing note); every case of the
corrupted corpus (:mod:`sample_data.seg_corpus`) fails on a check that names the problem.
Skipped when ../shared is absent.
"""

from pathlib import Path

import numpy as np
import pytest

from pipeline.segment.gate import check_segmentation

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
ZIP = SHARED / "icrp110" / "Input_GateLab_2019-04-02.zip"
TOTALSEG = SHARED / "totalseg_example"

CASES = [("AF_3mm", "AM_3mm"), ("AM_3mm", "AF_3mm"), ("AF_3mm_abdomen", "AM_3mm"), ("AM_4mm", "AF_4mm")]


@pytest.fixture(scope="module")
def icrp_cases():
    if not ZIP.is_file():
        pytest.skip("../shared/data/icrp110 is not present")
    from sample_data.icrp110 import development_cases, load_case, load_phantom
    from sample_data.seg_corpus import icrp_context, with_marrow

    phantoms = {n: load_phantom(ZIP, n) for n in ("AF", "AM")}
    out = {}
    for name in {c for pair in CASES for c in pair}:
        case = development_cases()[name]
        ct, ref, levels = load_case(ZIP, name, phantom=phantoms[case.phantom])
        lz = {n: v["z_range_mm"] for n, v in levels.items() if not n.startswith("_")}
        out[name] = dict(ct=ct, ref=with_marrow(ct, ref, lz), levels=lz,
                         ctx=icrp_context(phantoms[case.phantom], ct))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c, _ in CASES])
def test_correct_icrp_segmentation_never_fails(icrp_cases, case):
    c = icrp_cases[case]
    res = check_segmentation(c["ct"], c["ref"], levels=c["levels"])
    assert not res.by_status("fail"), [x.line() for x in res.by_status("fail")]
    # only an organ cut by the field of view may warn (the abdomen-only case cuts the liver)
    for w in res.by_status("warn"):
        assert "field of view" in w.note, w.line()


@pytest.mark.slow
@pytest.mark.parametrize("case,other", CASES)
@pytest.mark.parametrize("corruption", ["kidney_on_bowel", "kidneys_swapped", "levels_down_one", "half_liver",
                                        "missing_spleen", "marrow_1ml", "other_patient", "shift_30mm_inferior",
                                        "shift_30mm_anterior"])
def test_corrupted_icrp_segmentation_fails_on_the_right_check(icrp_cases, case, other, corruption):
    from sample_data.seg_corpus import CORRUPTIONS, corrupt

    c = icrp_cases[case]
    bad = corrupt(corruption, c["ref"], {**c["ctx"], "other": icrp_cases[other]["ref"]})
    res = check_segmentation(c["ct"], bad, levels=c["levels"])
    failing = {x.check for x in res.by_status("fail")}
    assert failing & CORRUPTIONS[corruption][1], (corruption, failing)


@pytest.mark.slow
def test_totalsegmentator_reference_labels_never_fail():
    """The TotalSegmentator example's reference labels on its 30-slice CT. That file's affine
    repeats the full CT's origin, but its voxels are the full CT's slices 82-111 (checked here):
    the origin is corrected so that the kidneys, liver and L2 cut by this field of view are seen
    as cut. L3 and L4 are below it: the L2-L4 checks may warn, not fail."""
    if not TOTALSEG.is_dir():
        pytest.skip("../shared/data/totalseg_example is not present")
    from pipeline.image import Image
    from pipeline.imageio import read_image
    from pipeline.segment.assemble import assemble_labels

    ct, _ = read_image(TOTALSEG / "example_ct.nii.gz", unit="HU")
    sm, _ = read_image(TOTALSEG / "example_ct_sm.nii.gz", unit="HU")
    seg, _ = read_image(TOTALSEG / "example_seg.nii.gz", unit="label")
    assert np.array_equal(np.asarray(ct.array)[:, :, 82:], np.asarray(sm.array))
    shift = np.eye(4)
    shift[2, 3] = 82
    sm = Image(np.asarray(sm.array), ct.affine @ shift, "HU")
    s = np.asarray(seg.array)
    st = {"spleen": s == 1, "kidney_right": s == 2, "kidney_left": s == 3, "liver": s == 5,
          "vertebrae_L2": s == 30}
    labels = assemble_labels(sm, st, "TotalSegmentator example", [], full_vertebrae=True)
    res = check_segmentation(sm, labels)
    assert not res.by_status("fail"), [x.line() for x in res.by_status("fail")]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["AF_3mm", "AM_4mm"])
def test_a_kidney_mask_without_kidney_uptake_fails_on_the_kidneys_symmetry(icrp_cases, case):
    """A simulated SPECT (12 mm FWHM) of the reference organs passes; the same SPECT with the
    right kidney at the body's background (a removed or non-functioning kidney, the mask left on
    what fills its place) fails on ``kidneys: uptake_symmetry`` and nothing else needs to."""
    from sample_data.seg_regression import simulated_spect

    from pipeline.segment import labels as L

    c = icrp_cases[case]
    ok = check_segmentation(c["ct"], c["ref"], simulated_spect(c["ct"], c["ref"]), levels=c["levels"])
    sym = ok.find("kidneys", "uptake_symmetry")
    assert sym.status == "pass" and sym.value > 0.9, sym.line()
    without = np.asarray(c["ref"].array).copy()
    without[without == L.KIDNEY_RIGHT] = L.BODY  # no kidney uptake there
    spect = simulated_spect(c["ct"], c["ref"].with_array(without))
    res = check_segmentation(c["ct"], c["ref"], spect, levels=c["levels"])
    bad = res.find("kidneys", "uptake_symmetry")
    assert bad.status == "fail" and bad.value < 0.2, bad.line()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["AF_3mm", "AM_4mm"])
def test_reference_kidneys_find_a_spect_moved_against_the_ct(icrp_cases, case):
    """The reference kidneys with the simulated SPECT aligned pass ``uptake_offset_mm`` (within a
    voxel of no shift); moved 8 mm superior, both warn with the imposed shift within a voxel."""
    from sample_data.seg_regression import simulated_spect

    from pipeline.image import Image

    c = icrp_cases[case]
    spect = simulated_spect(c["ct"], c["ref"])
    vox = float(max(c["ct"].voxel_size_mm))
    ok = check_segmentation(c["ct"], c["ref"], spect, levels=c["levels"])
    aff = np.array(spect.affine)
    aff[2, 3] += 8.0
    moved = check_segmentation(c["ct"], c["ref"], Image(np.asarray(spect.array), aff, spect.unit), levels=c["levels"])
    for k in ("kidney_left", "kidney_right"):
        a, m = ok.find(k, "uptake_offset_mm"), moved.find(k, "uptake_offset_mm")
        assert a.status == "pass" and a.value <= vox, a.line()
        assert m.status == "warn" and abs(m.value - 8.0) <= vox, m.line()
