"""A small synthetic SPECT/label phantom with known kinetics for the kinetics tests.

Built here, independently of the package under test: uniform activity per
tissue on a fine "CT" grid (1.6 mm), imaged onto a 4.8 mm SPECT grid by exact
3x3x3 binning (every SPECT voxel holds 27 CT voxels) and an optional Gaussian
blur. Because imaging is linear, the TIA "as imaged" is the same operator
applied to the true TIA map.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from pipeline.image import Image

LP_LU177 = math.log(2.0) / (6.647 * 24.0)  # Lu-177, ICRP-107 half-life 6.647 d (physics notes, section 1)
TIMES_H = np.array([1.0, 4.0, 24.0, 48.0, 168.0])

# tissue: (label, centre mm, semi-axes mm, model, params) -- concentrations in Bq/mL
TISSUES = {
    "kidney_left": (1, (-45.0, 10.0, 0.0), (18.0, 22.0, 30.0), "uptake_washout", (4.0e5, 0.015, 0.6)),
    "liver": (3, (35.0, 0.0, 5.0), (38.0, 32.0, 34.0), "mono", (1.5e5, 0.01)),
    "spleen": (4, (-20.0, -40.0, 10.0), (18.0, 18.0, 20.0), "bi", (1.0e5, 0.004, 1.5e5, 0.15)),
    "body": (7, (0.0, 0.0, 0.0), (70.0, 65.0, 52.0), "mono", (2.0e4, 0.08)),
}


def concentration(model, params, t):
    """Closed forms written out here (independent of pipeline.kinetics.models)."""
    t = np.asarray(t, float)
    lp = LP_LU177
    if model == "mono":
        a, l = params
        return a * np.exp(-(l + lp) * t)
    if model == "uptake_washout":
        a, lw, lu = params
        return a * (np.exp(-(lw + lp) * t) - np.exp(-(lu + lp) * t))
    if model == "bi":
        a1, l1, a2, l2 = params
        return a1 * np.exp(-(l1 + lp) * t) + a2 * np.exp(-(l2 + lp) * t)
    raise ValueError(model)


def tia_closed_form(model, params):
    """Integral 0..inf of :func:`concentration`, per mL (Bq*h/mL)."""
    lp = LP_LU177
    if model == "mono":
        a, l = params
        return a / (l + lp)
    if model == "uptake_washout":
        a, lw, lu = params
        return a * (1 / (lw + lp) - 1 / (lu + lp))
    a1, l1, a2, l2 = params
    return a1 / (l1 + lp) + a2 / (l2 + lp)


def _affine(origin, spacing):
    aff = np.diag([-spacing, -spacing, spacing, 1.0])
    aff[:3, 3] = origin
    return aff


def build_phantom(times_h=TIMES_H, fwhm_mm=0.0, noise_rel=0.0, seed=0):
    """Return dict with labels (CT grid), spects (SPECT grid, Bq/mL), truth TIA imaged (MBq*h/mL)."""
    n_spect = (36, 32, 26)
    sp = 4.8
    spect_origin = np.array([(n_spect[0] - 1) / 2 * sp, (n_spect[1] - 1) / 2 * sp, -(n_spect[2] - 1) / 2 * sp])
    spect_aff = _affine(spect_origin, sp)
    f = 3
    ct_sp = sp / f
    n_ct = tuple(n * f for n in n_spect)
    # CT voxel (0,0,0) centre sits 1/3 SPECT voxel before SPECT voxel (0,0,0) centre along each axis
    ct_origin = spect_origin + np.array([+1, +1, -1]) * (sp / 2 - ct_sp / 2)
    ct_aff = _affine(ct_origin, ct_sp)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in n_ct], indexing="ij"), axis=-1).astype(float)
    xyz = idx @ ct_aff[:3, :3].T + ct_aff[:3, 3]
    labels = np.zeros(n_ct, np.int16)
    order = ["body", "liver", "spleen", "kidney_left"]
    for name in order:
        lab, c, r, _, _ = TISSUES[name]
        inside = np.sum(((xyz - np.array(c)) / np.array(r)) ** 2, axis=-1) <= 1.0
        labels[inside] = lab
    del xyz, idx

    def image(ct_values):
        binned = ct_values.reshape(n_spect[0], f, n_spect[1], f, n_spect[2], f).mean(axis=(1, 3, 5))
        if fwhm_mm:
            binned = gaussian_filter(binned, fwhm_mm / 2.3548 / sp, mode="constant")
        return binned

    rng = np.random.default_rng(seed)
    spects = []
    for t in times_h:
        ct_c = np.zeros(n_ct)
        for name, (lab, _, _, model, params) in TISSUES.items():
            ct_c[labels == lab] = concentration(model, params, t)
        img = image(ct_c)
        if noise_rel:
            img = img + noise_rel * np.sqrt(np.abs(img) * img.max()) * rng.standard_normal(img.shape)
        spects.append(Image(img, spect_aff, "Bq/mL"))
    ct_tia = np.zeros(n_ct)
    for name, (lab, _, _, model, params) in TISSUES.items():
        ct_tia[labels == lab] = tia_closed_form(model, params) * 1e-6
    truth_tia_imaged = Image(image(ct_tia), spect_aff, "MBq*h/mL")
    true_organ_tia = {name: tia_closed_form(m, p) * 1e-6 * np.sum(labels == lab) * ct_sp ** 3 / 1000
                      for name, (lab, _, _, m, p) in TISSUES.items()}
    return {
        "labels": Image(labels, ct_aff, "label"),
        "spects": spects,
        "times_h": np.asarray(times_h, float),
        "truth_tia_imaged": truth_tia_imaged,
        "true_organ_tia_mbq_h": true_organ_tia,
        "binning": f,
    }


@pytest.fixture(scope="session")
def phantom():
    return build_phantom()


@pytest.fixture(scope="session")
def phantom_blurred():
    return build_phantom(fwhm_mm=10.0)
