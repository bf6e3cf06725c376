"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_CT_DIR = SHARED / "data" / "real_ct_ge_optima540"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_ct_dir() -> Path:
    """The real anonymised CT beside the project; tests using it skip when it is absent."""
    if not REAL_CT_DIR.is_dir():
        pytest.skip("../shared/data/real_ct_ge_optima540 is not present")
    return REAL_CT_DIR
