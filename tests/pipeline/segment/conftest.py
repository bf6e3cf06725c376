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
