"""Fixtures of the report tests: a complete synthetic patient folder (see report_synthetic.py)."""

from __future__ import annotations

import pytest
from report_synthetic import make_patient


@pytest.fixture
def patient_dir(tmp_path):
    """A complete synthetic ``results/P7`` folder (with small CT, dose and label volumes)."""
    return make_patient(tmp_path)
