"""Landmarks of the vertebral level vote (pipeline.segment.spine_landmarks: sacrum, rib heads,
bone grown by hysteresis) and the split of segments that hold two vertebrae
(pipeline.segment.spine), on constructed profiles and volumes.

The widths are those measured on the development CTs (the spine's bone blob per slice): sacral
alae with the sacroiliac joints 150-270 mm, an L5 with its transverse processes 84-102 mm, the
other lumbar vertebrae 45-93 mm, the lower sacrum and coccyx 27-87 mm.
"""

import numpy as np

from pipeline.segment import spine_landmarks as LM
from pipeline.segment.spine import _split_merged_segments

VS = (2.0, 2.0, 3.0)
VS_ISO = np.array([2.0, 2.0, 2.0])  # mm


def _width(*runs):
    """Concatenate (value_mm, n_slices) runs into a width profile."""
    return np.concatenate([np.full(n, float(v)) for v, n in runs])


def test_sacral_top_is_the_top_of_the_lowest_wide_run_above_a_narrow_coccyx():
    # coccyx and lower sacrum narrow, then the alae, then L5 with wide transverse processes,
    # then a thoracic vertebra with its ribs wide again
    w = _width((40, 8), (260, 10), (98, 10), (60, 30), (200, 6))
    assert LM.sacral_top(w, VS) == 17
    # a single wide slice is not a run (9 mm at 3 mm slices are 3 slices); the run above it is
    w2 = _width((40, 4), (200, 1), (40, 4), (250, 6), (90, 10))
    assert LM.sacral_top(w2, VS) == 14
    # a gap of one slice inside the alae is bridged
    w3 = _width((250, 4), (0, 1), (250, 4), (90, 10))
    assert LM.sacral_top(w3, VS) == 8
    assert LM.sacral_top(_width((98, 30), (60, 30)), VS) is None


def test_sacrum_evidence_does_not_take_wide_transverse_processes_for_the_alae():
    # segment 0 is S1 (alae, 260 mm); segment 1 is L5 whose transverse processes make it 96-102 mm
    # wide on most slices: the width rule alone (> 95 mm on 55 % of the slices) called L5 the S1
    segments = [(0, 9), (12, 21), (24, 33), (36, 45), (48, 57), (60, 69), (72, 81)]
    w = np.zeros(82)
    w[0:10] = 260.0
    w[12:22] = [96, 84, 96, 102, 102, 99, 98, 97, 80, 70]
    w[24:] = 60.0
    ev = LM.sacrum_evidence(segments, w, 95.0, 5, VS)
    assert ev.available and ev.l1_index == 5  # S1 = segment 0, L1 = segment 5
    assert ev.values["segment"] == 0
    old = LM.sacrum_evidence(segments, w, 95.0, 5)  # without voxel sizes: the width rule only
    assert old.l1_index == 6


def test_sacrum_evidence_names_the_part_above_alae_that_end_inside_a_segment_l5():
    # the L5-S1 disc was not found: segment 0 holds the top of S1 (4 slices of alae) and 18 mm of
    # L5 above them, so L5 is segment 0 and L1 is segment 4
    segments = [(0, 9), (12, 21), (24, 33), (36, 45), (48, 57)]
    w = np.full(58, 60.0)
    w[0:4] = 260.0
    w[4:10] = 96.0
    ev = LM.sacrum_evidence(segments, w, 95.0, 5, VS)
    assert ev.available and ev.l1_index == 4 and ev.values["segment"] == -1
    assert "L5" in ev.detail
    # with 15 mm of the segment above the alae (the sample patient's sacrum, whose S1 body rises
    # above its widest part) or 6 mm, less than the shortest single body, the segment is S1
    for top in (5, 8):
        w[0:top] = 260.0
        ev2 = LM.sacrum_evidence(segments, w, 95.0, 5, VS)
        assert ev2.l1_index == 5 and ev2.values["segment"] == 0


def test_sacrum_evidence_ignores_alae_above_the_lowest_three_segments():
    segments = [(0, 9), (12, 21), (24, 33), (36, 45), (48, 57)]
    w = np.full(58, 60.0)
    w[38:46] = 260.0  # wide bone at the fourth segment: not a sacrum
    ev = LM.sacrum_evidence(segments, w, 95.0, 5, VS)
    assert not ev.available


def test_a_segment_two_vertebrae_tall_is_split_at_its_lowest_body_area():
    # 3 mm slices: segments of 33 mm, 72 mm (two bodies and a missed disc at slice 27) and 30 mm
    segments = [(0, 10), (13, 36), (39, 48)]
    prof = np.ones(50)
    prof[27] = 0.85  # the shallow disc the prominence test missed
    prof[15] = 0.80  # deeper, but too close to the segment's end to be the middle disc
    out, cuts = _split_merged_segments(segments, prof, None, VS, notes := [])
    assert cuts == [27]
    assert out == [(0, 10), (13, 26), (28, 36), (39, 48)]
    assert "2 vertebrae" in notes[0]
    # one vertebra 45 mm tall (a disc found off its centre) is not split
    out2, cuts2 = _split_merged_segments([(0, 14)], prof, None, VS, [])
    assert out2 == [(0, 14)] and cuts2 == []


def test_the_sacrum_below_the_alae_top_is_not_split_and_counts_no_height():
    prof = np.ones(60)
    # the lowest segment is 66 mm: 48 mm of fused sacrum under the alae top (slice 15), 18 mm above
    out, cuts = _split_merged_segments([(0, 21), (24, 33)], prof, 15, VS, [])
    assert out == [(0, 21), (24, 33)] and cuts == []
    # a segment wholly below the alae top is the sacrum whatever its height
    out2, _ = _split_merged_segments([(0, 30), (33, 42)], prof, 35, VS, [])
    assert out2 == [(0, 30), (33, 42)]


def _bone_with(*pieces, shape=(120, 120, 60)):
    bone = np.zeros(shape, bool)
    for p in pieces:
        bone |= p
    return bone


def _line(shape, start_mm, end_mm, half_mm=3.0):
    """Voxels within half_mm of the segment start->end (mm, from the grid origin)."""
    idx = np.indices(shape).reshape(3, -1).T * np.asarray(VS)
    a, b = np.asarray(start_mm, float), np.asarray(end_mm, float)
    t = np.clip(((idx - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
    d = np.linalg.norm(idx - (a + t[:, None] * (b - a)), axis=1)
    return (d <= half_mm).reshape(shape)


def test_a_short_floating_rib_is_a_rib_and_a_transverse_process_is_not():
    shape = (120, 120, 60)
    cx, cy = 120.0, 120.0  # body centre, mm
    centre = np.tile([cx / VS[0], cy / VS[1]], (shape[2], 1)).astype(float)
    # a 12th rib of ICRP-110 AM: head 26 mm from the body centre at z 135 mm, running out and down
    # to 68 mm from it, 45 mm lower
    rib = _line(shape, (cx + 26, cy - 10, 135), (cx + 66, cy - 25, 90))
    # a transverse process: horizontal, to 56 mm from the body centre, at z 60 mm
    tp = _line(shape, (cx - 26, cy - 20, 60), (cx - 52, cy - 22, 60), half_mm=4.0)
    # a long horizontal bar reaching 68 mm but only 9 mm high: no rib either (it does not descend)
    bar = _line(shape, (cx - 26, cy - 20, 30), (cx - 60, cy - 22, 30), half_mm=4.0)
    comps = LM.lateral_components(_bone_with(rib, tp, bar), centre, VS)
    segments = [(5, 14), (16, 25), (28, 37), (40, 49)]
    assert LM.rib_bearing_segments(comps, segments, VS) == [False, False, False, True]



def test_hysteresis_keeps_low_voxels_only_where_they_touch_a_high_one():
    sm = np.zeros((20, 5, 5), np.float32)
    sm[2:8, 2, 2] = 130.0  # a blurred bar above the low threshold ...
    sm[4, 2, 2] = 200.0  # ... with one voxel above the high one
    sm[12:18, 2, 2] = 130.0  # the same bar without a high voxel
    body = np.ones(sm.shape, bool)
    got = LM.hysteresis(sm, body, 120.0, 150.0)
    assert got[2:8, 2, 2].all() and not got[12:18].any()
    assert got.sum() == 6
    body[5, 2, 2] = False  # outside the patient: cut, and the part beyond it has no seed
    assert LM.hysteresis(sm, body, 120.0, 150.0).sum() == 3


def _rib_volume(reach_centre: bool):
    """Bone (bool, 2 mm voxels, RAS order) of a 'rib' from 30 mm beside the spine axis to 120 mm,
    running down 30 mm, its head at slice 40; with ``reach_centre`` a bridge on slice 30, where
    the spine was not found (a disc), joins it to the spine axis."""
    shape = (160, 60, 60)
    centre = np.full((shape[2], 2), np.nan)
    centre[:, 0], centre[:, 1] = 40.0, 30.0
    centre[30] = np.nan  # no spine seen on this slice
    bone = np.zeros(shape, bool)
    for i in range(55, 101):  # 30 mm to 120 mm from the axis at x = 40
        k = 40 - int(round((i - 55) * 15 / 45))  # down 15 slices (30 mm) along the rib
        bone[i, 29:32, k - 1:k + 1] = True
    if reach_centre:
        bone[40:56, 29:32, 30] = True
        for k in range(30, 41):
            bone[55, 29:32, k] = True
    segments = [(0, 19), (20, 34), (35, 59)]
    return bone, centre, segments


def test_a_rib_head_beside_the_body_marks_its_segment():
    bone, centre, segments = _rib_volume(reach_centre=False)
    comps = LM.lateral_components(bone, centre, VS_ISO)
    assert LM.rib_bearing_segments(comps, segments, VS_ISO, min_head_mm=15.0) == [False, False, True]


def test_grown_bone_that_reaches_the_spine_axis_is_no_rib():
    bone, centre, segments = _rib_volume(reach_centre=True)
    comps = LM.lateral_components(bone, centre, VS_ISO)
    assert LM.rib_bearing_segments(comps, segments, VS_ISO) == [False, True, False]  # head at the axis
    assert LM.rib_bearing_segments(comps, segments, VS_ISO, min_head_mm=15.0) == [False, False, False]
