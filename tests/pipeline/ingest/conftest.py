"""Fixtures of the ingest tests: a synthetic two-session patient and the sample patient."""

from __future__ import annotations

import pytest

import ingest_dicom_factory as fac
from ingest_fixtures import CT_GEOMETRY, SESSIONS, SPECT_GEOMETRY, SyntheticPatient, ct_truth, write_session


@pytest.fixture(scope="session")
def synthetic_patient(tmp_path_factory) -> SyntheticPatient:
    """Two sessions (t4h, t24h) of a Lu-177 patient, CT + NM multi-frame each, with identifying data."""
    folder = tmp_path_factory.mktemp("synthetic") / "patient"
    nm_files, ct_dirs, bqml = {}, {}, {}
    for tp, acq in SESSIONS.items():
        nm_files[tp], ct_dirs[tp], bqml[tp] = write_session(folder, tp, acq)
    return SyntheticPatient(folder, nm_files, ct_dirs, bqml, ct_truth(),
                            fac.truth_affine(**{k: CT_GEOMETRY[k] for k in CT_GEOMETRY}),
                            fac.truth_affine(**{k: SPECT_GEOMETRY[k] for k in SPECT_GEOMETRY}))


@pytest.fixture
def patient(synthetic_patient, tmp_path) -> SyntheticPatient:
    """A private copy of the synthetic patient that a test may change."""
    return synthetic_patient.copy_to(tmp_path / "in")


@pytest.fixture(scope="session")
def sample_patient(tmp_path_factory):
    """The noise-free small sample patient (DICOM), generated once per test session."""
    try:
        from sample_data import generate
    except ImportError:  # pragma: no cover - the generator is built in parallel
        pytest.skip("sample_data.generate is not available")
    return generate(tmp_path_factory.mktemp("sample") / "patient", preset="small", noise=False)


@pytest.fixture(scope="session")
def sample_ingest(sample_patient, tmp_path_factory):
    """``spectdose ingest`` of the sample patient's manifest (all time points)."""
    from pipeline.ingest.cli import main

    out = tmp_path_factory.mktemp("sample_ingest") / "ingest"
    assert main([str(sample_patient / "manifest.yaml"), "--patient-id", "SAMPLE01", "--out", str(out)]) == 0
    return out
