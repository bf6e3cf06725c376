"""Fixtures of the segment tests."""

from __future__ import annotations

import pytest
from segment_synthetic import make_grid, organ_phantom


@pytest.fixture
def phantom_axial():
    return organ_phantom()


@pytest.fixture
def phantom_oblique_ff():
    shape = (48, 40, 30)
    return organ_phantom(shape, make_grid(shape, oblique=True, feet_first=True))


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory):
    """The sample patient's CT (small preset, seed 0; 3.5 x 3.5 x 5 mm)."""
    try:
        from sample_data.generator import generate
    except ImportError as exc:
        pytest.skip(f"sample_data not usable: {exc}")
    from pipeline.imageio import read_image

    out = generate(tmp_path_factory.mktemp("small"), preset="small", nuclide="Lu-177", seed=0,
                   fmt="nifti", time_points_h=(24,))
    ct, _ = read_image(out / "nifti" / "t24h_ct.nii.gz")
    return ct


@pytest.fixture(scope="session")
def sample_24h(tmp_path_factory):
    """The sample patient at 24 h (small preset, seed 0): ``ct``, ``spect``, ``truth`` (Images) and
    ``out`` (the generated folder)."""
    from sample_data.generator import generate

    from pipeline.imageio import read_image

    out = generate(tmp_path_factory.mktemp("sample_24h"), preset="small", nuclide="Lu-177", seed=0,
                   fmt="nifti", time_points_h=(24,))
    ct, _ = read_image(out / "nifti" / "t24h_ct.nii.gz")
    spect, _ = read_image(out / "nifti" / "t24h_spect.nii.gz")
    truth, _ = read_image(out / "truth" / "labels.nii.gz")
    return dict(ct=ct, spect=spect, truth=truth, out=out)
