"""Assembling named masks into the DESIGN label map (rules of pipeline.segment.assemble)."""

import numpy as np

from pipeline.segment.assemble import assemble_labels, vertebral_body_from_vertebra
from pipeline.segment.labels import FIXED_LABELS


def _vertebra(shape=(70, 90, 12), vs=(1.0, 1.0, 3.0)):
    """Body: cylinder radius 18 mm centred at (35, 30); arch: a 6 mm thick bar going posteriorly
    (towards j = 89) from the body to a spinous process."""
    ii, jj, kk = np.indices(shape)
    body = (np.hypot(ii - 35, jj - 30) <= 18) & (kk >= 1) & (kk <= 10)
    arch = (np.abs(ii - 35) <= 3) & (jj > 30) & (jj <= 80) & (kk >= 3) & (kk <= 8)
    return body, body | arch, vs


def test_full_vertebra_is_reduced_to_its_body():
    body, full, vs = _vertebra()
    got = vertebral_body_from_vertebra(full, vs, radius_mm=8.0)
    # the spinous process/arch (6 mm thick, thinner than the 16 mm opening disk) is removed
    assert not np.any(got[:, 55:, :])
    # the body is kept (the opening rounds nothing off a disk of radius 18 mm > 8 mm: exact
    # except where the arch joins it)
    dice = 2 * np.sum(got & body) / (got.sum() + body.sum())
    assert dice > 0.98


def test_assembled_map_keeps_whole_bodies_as_5_plus_6_and_derives_marrow(phantom_axial):
    labels, ct = phantom_axial
    arr = np.asarray(labels.array)
    structures = {name: arr == v for v, name in FIXED_LABELS.items() if v not in (5, 6)}
    structures["vertebrae_L2L4"] = np.isin(arr, (5, 6))
    notes = []
    out = np.asarray(assemble_labels(ct, structures, "test", notes, marrow_margin_mm=2.0).array)
    whole = np.isin(out, (5, 6))
    np.testing.assert_array_equal(whole, np.isin(arr, (5, 6)))
    assert np.any(out == 5) and any("marrow VOI" in n for n in notes)
    for v in (1, 2, 3, 4):
        np.testing.assert_array_equal(out == v, arr == v)
