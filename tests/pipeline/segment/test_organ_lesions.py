"""Hot lesions inside the liver and spleen labelled apart (pipeline.segment.organ_lesions).

Synthetic SPECTs: uptake blocks and balls blurred by a 12 mm FWHM Gaussian on 2 mm voxels, the
camera's resolution for Lu-177 with resolution recovery.
"""

import numpy as np
from scipy import ndimage as ndi

from pipeline.image import Image
from pipeline.segment import labels as L
from pipeline.segment.organ_lesions import hot_lesions_in_organ, label_organ_lesions

VS = (2.0, 2.0, 2.0)
FWHM_MM = 12.0


def _blur(act):
    return ndi.gaussian_filter(act, FWHM_MM / 2.3548 / np.asarray(VS))


def _liver_with_ball(radius_mm=14.0, contrast=8.0, noise=0.0):
    """A 100 x 80 x 80 mm liver block at 2 in a body at 0.3, a ball of ``radius_mm`` at ``contrast``
    times the liver in its middle; returns liver, ball, SPECT."""
    shape = (70, 60, 60)
    liver = np.zeros(shape, bool)
    liver[10:60, 10:50, 10:50] = True
    idx = np.indices(shape).astype(float)
    ball = sum(((idx[a] - (35, 30, 30)[a]) * VS[a]) ** 2 for a in range(3)) <= radius_mm ** 2
    act = np.full(shape, 0.3) + np.where(liver, 1.7, 0.0) + np.where(ball, 2.0 * (contrast - 1.0), 0.0)
    spect = _blur(act)
    if noise:
        spect = spect * (1.0 + noise * np.random.default_rng(0).standard_normal(shape))
    return liver, ball, spect


def test_a_hot_metastasis_is_found_with_about_its_volume_and_its_spill_zone_apart():
    liver, ball, spect = _liver_with_ball()
    found, rec = hot_lesions_in_organ(spect, liver, VS)
    assert rec["lesions"] == 1 and len(found) == 1
    les = found[0]
    true_ml = ball.sum() * 8e-3  # 11.5 mL
    # the core (40 % of the peak's excess) of a ball 2.3 FWHM across: within 30 % of its volume
    assert abs(les.volume_ml - true_ml) / true_ml < 0.3
    assert (les.mask & ball).sum() > 0.8 * ball.sum()
    assert les.spill_ml > 0 and not (les.spill & les.mask).any()
    # the parenchyma's level is that of the same liver without the lesion, not raised by it
    _, _, clean = _liver_with_ball(contrast=1.0)
    _, rec_clean = hot_lesions_in_organ(clean, liver, VS)
    assert abs(rec["parenchyma_level"] / rec_clean["parenchyma_level"] - 1.0) < 0.03
    assert 4.0 < les.peak_to_parenchyma < 8.0  # blurred: below the true 16 / 2


def test_a_liver_without_lesions_and_with_noise_has_none():
    liver, _, spect = _liver_with_ball(contrast=1.0, noise=0.15)
    found, rec = hot_lesions_in_organ(spect, liver, VS)
    assert found == [] and rec["regions"] == 0


def test_a_hot_kidneys_spill_across_the_common_boundary_is_not_a_lesion():
    # kidney block at 10 against the liver block at 2: the kidney's spill raises the liver's edge
    # above twice its level, but the SPECT keeps rising into the kidney
    shape = (70, 50, 50)
    liver = np.zeros(shape, bool)
    kidney = np.zeros(shape, bool)
    liver[5:40, 5:45, 5:45] = True
    kidney[40:60, 15:35, 15:35] = True
    spect = _blur(np.where(liver, 2.0, 0.0) + np.where(kidney, 10.0, 0.0) + 0.3)
    assert (spect[liver] > 2.0 * np.median(spect[liver])).sum() > 100  # the spill reaches the threshold
    found, rec = hot_lesions_in_organ(spect, liver, VS)
    assert found == [] and rec["spill_rejected"] >= 1


def test_label_organ_lesions_gives_the_core_a_lesion_id_and_the_spill_zone_to_the_body():
    liver, ball, spect = _liver_with_ball()
    lab = np.where(liver, L.LIVER, L.BODY).astype(np.uint16)
    lab[:3] = 0
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    labels = Image(lab, aff, "label")
    out, rec, notes = label_organ_lesions(labels, Image(spect.astype(np.float32), aff, "Bq/mL"))
    new = np.asarray(out.array)
    assert np.array_equal(np.asarray(labels.array), lab)  # the input is not changed
    assert set(np.unique(new)) == {0, L.LIVER, L.BODY, L.LESION_FIRST}
    assert rec["liver"]["labels"] == ["lesion_1"] and len(notes) == 1 and "lesion_1" in notes[0]
    les = new == L.LESION_FIRST
    assert abs(les.sum() * 8e-3 - rec["liver"]["volumes_ml"][0]) < 1e-6
    moved = liver & (new == L.BODY)
    assert abs(moved.sum() * 8e-3 - rec["liver"]["spill_zone_ml"][0]) < 1e-6
    # the liver's SPECT mean without the lesion and its spill zone is the lesion-free liver's over
    # the same voxels within 3 %; with the lesion the liver's mean was more than 10 % too high
    _, _, clean = _liver_with_ball(contrast=1.0)
    kept = new == L.LIVER
    assert abs(spect[kept].mean() / clean[kept].mean() - 1.0) < 0.03
    assert spect[liver].mean() > 1.1 * clean[liver].mean()
