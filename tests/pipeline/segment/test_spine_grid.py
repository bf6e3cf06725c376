"""Levels named on a ~3 mm grid where a finer working grid does not settle them (pipeline.segment.spine_grid)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.segment.orient import ras_order_affine, to_ras_order


@pytest.fixture(scope="module")
def small_ras(small_ct):
    """The sample patient's CT in RAS order with its affine, and the truth's vertebral z ranges."""
    from sample_data.anatomy import vertebra_z_ranges

    arr, tr, vs = to_ras_order(small_ct)
    aff = ras_order_affine(small_ct, tr, (1, 1, 1))
    return np.maximum(arr.astype(np.float32), -1024.0), vs, aff, vertebra_z_ranges()


def _z_range(v, aff):
    return sorted(float(aff[2, 2] * k + aff[2, 3]) for k in (v.k_lo - 0.5, v.k_hi + 0.5))


def test_a_grid_of_3mm_and_coarser_is_analysed_as_it_is(small_ras):
    from pipeline.segment.builtin import _body
    from pipeline.segment.spine import analyse_spine
    from pipeline.segment.spine_grid import analyse_spine_levels

    arr, vs, aff, _ = small_ras
    body = _body(arr, vs)
    a = analyse_spine_levels(arr, body, vs, affine=aff)
    b = analyse_spine(arr, body, vs, affine=aff)
    assert a.vertebrae == b.vertebrae and "grid_mm" not in a.levels


def _two_mm(small_ras):
    arr, vs, aff, truth = small_ras
    shape2 = tuple(int(round(n * v / 2.0)) for n, v in zip(arr.shape, vs))
    scale = np.array(arr.shape) / np.array(shape2)  # native voxels per 2 mm voxel
    a2 = ndi.zoom(arr, 1.0 / scale, order=1, grid_mode=True, mode="nearest")
    aff2 = aff.copy()
    aff2[:3, :3] = aff[:3, :3] * scale[None, :]
    aff2[:3, 3] = aff[:3, :3] @ (0.5 * scale - 0.5) + aff[:3, 3]
    return a2, vs * scale, aff2, truth


def test_levels_settled_on_the_working_grid_are_kept(small_ras):
    from pipeline.segment.builtin import _body
    from pipeline.segment.spine_grid import analyse_spine_levels

    a2, vs2, aff2, truth = _two_mm(small_ras)
    sp = analyse_spine_levels(a2, _body(a2, vs2), vs2, affine=aff2)
    assert sp.levels["settled"] and "grid_mm" not in sp.levels
    for n in ("L2", "L3", "L4"):
        z = _z_range(sp.by_name(n), aff2)
        assert truth[n][0] <= 0.5 * sum(z) <= truth[n][1], (n, z, truth[n])


def test_levels_named_on_3mm_are_carried_to_the_2mm_working_slices(small_ras, monkeypatch):
    """The sample CT interpolated to 2 mm, its working grid's vote made unsettled: the levels are
    named on a 3 mm grid, the vertebrae's slice ranges on the 2 mm grid span the same z (within
    one 3 mm voxel: the two grids' slice edges differ) and L2-L4 are centred in the truth's
    bodies; the bodies' mask is the 2 mm one."""
    import pipeline.segment.spine_grid as G
    from pipeline.segment.builtin import _body
    from pipeline.segment.spine_grid import analyse_spine_levels

    real = G.analyse_spine
    a2, vs2, aff2, truth = _two_mm(small_ras)

    def unsettled_on_2mm(ct, *a, **kw):
        sp = real(ct, *a, **kw)
        if ct.shape == a2.shape and not kw.get("body_centred"):
            sp.levels.update(settled=False, decision="fail", message="made unsettled by the test")
        return sp

    monkeypatch.setattr(G, "analyse_spine", unsettled_on_2mm)

    sp = analyse_spine_levels(a2, _body(a2, vs2), vs2, affine=aff2)
    assert sp.levels["decision"] == "pass" and sp.levels["working_grid_vote"]["decision"] == "fail"
    assert all(abs(g - 3.0) < 0.2 or g == pytest.approx(v) for g, v in zip(sp.levels["grid_mm"], vs2))
    assert sp.body_mask.shape == a2.shape and sp.centre.shape == (a2.shape[2], 2)
    proposed = next(e for e in sp.levels["evidence"] if e["name"] == "sacrum")["proposes"]
    for n in ("L2", "L3", "L4"):
        v = sp.by_name(n)
        z = _z_range(v, aff2)
        assert max(abs(z[0] - proposed[n][0]), abs(z[1] - proposed[n][1])) <= 3.0, (n, z, proposed[n])
        assert truth[n][0] <= 0.5 * sum(z) <= truth[n][1], (n, z, truth[n])
        assert sp.body_mask[:, :, v.k_lo:v.k_hi + 1].any()


def test_the_working_grids_analysis_stands_where_neither_grid_is_accepted(small_ras):
    from pipeline.segment.builtin import _body
    from pipeline.segment.spine_grid import analyse_spine_levels

    a2, vs2, aff2, _ = _two_mm(small_ras)
    calls = []

    def never(sp):
        calls.append(sp.levels.get("grid_mm"))
        return False

    sp = analyse_spine_levels(a2, _body(a2, vs2), vs2, affine=aff2, accept=never)
    assert "grid_mm" not in sp.levels and len(calls) == 2 and calls[1] is not None
