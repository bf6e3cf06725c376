"""Sample patients generated once per test session (small preset)."""

from __future__ import annotations

import pytest

#: Time points of the fixtures: the default protocol.
TIME_POINTS_H = (1.0, 4.0, 24.0, 48.0, 168.0)


@pytest.fixture(scope="session")
def small_dicom(tmp_path_factory):
    """Small preset, Lu-177, seed 3, noisy, DICOM."""
    import sample_data

    out = tmp_path_factory.mktemp("sd") / "dicom_noisy"
    return sample_data.generate(out, preset="small", seed=3, noise=True, fmt="dicom")


@pytest.fixture(scope="session")
def small_noisefree(tmp_path_factory):
    """Small preset, Lu-177, seed 3, noise-free, DICOM."""
    import sample_data

    out = tmp_path_factory.mktemp("sd") / "dicom_noisefree"
    return sample_data.generate(out, preset="small", seed=3, noise=False, fmt="dicom")
