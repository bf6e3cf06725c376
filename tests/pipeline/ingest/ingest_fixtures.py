"""Synthetic two-session Lu-177 patient for the ingest tests (truth known by construction)."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ingest_dicom_factory as fac

INJECTION = dt.datetime(2026, 1, 5, 9, 0, 0)
SESSIONS = {  # time point id -> acquisition start (seconds on purpose)
    "t4h": dt.datetime(2026, 1, 5, 13, 0, 17),
    "t24h": dt.datetime(2026, 1, 6, 9, 12, 34),
}
ACTIVITY_BQ = 7.4e9
CT_GEOMETRY = dict(origin_lps=(-30.0, -40.0, -20.0), row_cos=(1, 0, 0), col_cos=(0, 1, 0),
                   spacing_ijk=(2.0, 2.5, 3.0))
SPECT_GEOMETRY = dict(origin_lps=(-28.0, -38.0, -18.0), row_cos=(1, 0, 0), col_cos=(0, 1, 0),
                      spacing_ijk=(4.0, 5.0, 6.0))
CT_SHAPE = (24, 20, 16)
SPECT_SHAPE = (12, 10, 8)


def spect_truth(scale: float) -> np.ndarray:
    """Bq/mL on the SPECT grid: a smooth blob plus a hot box, times ``scale``."""
    i, j, k = np.meshgrid(*[np.arange(n, dtype=float) for n in SPECT_SHAPE], indexing="ij")
    blob = 2.0e5 * np.exp(-((i - 5.5) ** 2 / 8 + (j - 4.0) ** 2 / 6 + (k - 3.5) ** 2 / 4))
    blob[2:4, 6:8, 1:3] += 5.0e5
    return blob * scale


def ct_truth() -> np.ndarray:
    i, j, k = np.meshgrid(*[np.arange(n, dtype=float) for n in CT_SHAPE], indexing="ij")
    inside = ((i - 11.5) / 10) ** 2 + ((j - 9.5) / 8) ** 2 < 1
    hu = np.where(inside, 40, -1000).astype(np.int16)
    hu[10:14, 8:11, :] = 700  # a "bone" column
    hu[..., 0] += 3  # mark slice k = 0 so that a flipped stack cannot pass
    return hu


@dataclass
class SyntheticPatient:
    folder: Path
    nm_files: dict
    ct_folders: dict
    spect_bqml: dict
    ct_hu: np.ndarray
    ct_affine: np.ndarray
    spect_affine: np.ndarray

    def copy_to(self, dst: Path) -> "SyntheticPatient":
        shutil.copytree(self.folder, dst)
        return SyntheticPatient(dst, {k: dst / v.relative_to(self.folder) for k, v in self.nm_files.items()},
                                {k: dst / v.relative_to(self.folder) for k, v in self.ct_folders.items()},
                                self.spect_bqml, self.ct_hu, self.ct_affine, self.spect_affine)


def write_session(folder: Path, tp: str, acquisition: dt.datetime, *, injection=INJECTION, **nm_kwargs):
    """CT + NM tomogram of one session under ``folder/tp``; returns (nm path, ct folder, Bq/mL truth)."""
    from pydicom.uid import generate_uid

    study, for_uid = generate_uid(), generate_uid()
    ct_dir = folder / tp / "ct"
    fac.write_ct_series(ct_dir, ct_truth(), **CT_GEOMETRY, study_uid=study, for_uid=for_uid,
                        when=acquisition - dt.timedelta(minutes=5))
    scale = 0.5 ** ((acquisition - injection).total_seconds() / fac.LU177_HALF_LIFE_S)
    bqml = spect_truth(scale)
    nm = fac.write_nm_tomo(folder / tp / "spect" / "NM0001.dcm", bqml, **SPECT_GEOMETRY, study_uid=study,
                           for_uid=for_uid, acquisition=acquisition, injection=injection,
                           activity_bq=ACTIVITY_BQ, **nm_kwargs)
    return nm, ct_dir, bqml
