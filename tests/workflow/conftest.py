"""Fixtures of the workflow tests (helpers in wf_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helper modules beside this file (wf_helpers, dryrun, slurm_cluster) are imported by name,
# whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from wf_helpers import make_two_patient_workdir  # noqa: E402


@pytest.fixture
def two_patient_workdir(tmp_path) -> Path:
    """A working folder with two manifest patients (NIfTI, empty files) and a valid config."""
    return make_two_patient_workdir(tmp_path)
