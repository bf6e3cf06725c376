import numpy as np

from pipeline.segment.components import select_labels


def test_select_labels_equals_isin_including_absent_and_out_of_range_ids():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 20, (30, 20, 10)).astype(np.int32)
    for ids in ([3, 7], [0], [], [19, 25, 40], np.array([5, 5, 2])):
        assert np.array_equal(select_labels(lab, ids), np.isin(lab, ids))
    assert select_labels(np.zeros((0, 3), np.int32), [1]).shape == (0, 3)
