"""Atlas subjects kept in a folder, and where the atlas comes from (pipeline.segment.atlas_store)."""

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.image import Image, affine_from_geometry
from pipeline.segment import labels as L
from pipeline.segment.atlas import AtlasSubject
from pipeline.segment.atlas_store import load_atlas, read_atlas, resolve_atlas_source, write_atlas_subject


def _subject():
    aff = affine_from_geometry((-40.0, -32.0, -50.0), np.eye(3), (4.0, 4.0, 5.0))
    rng = np.random.default_rng(0)
    ct = np.round(rng.normal(40.0, 10.0, (20, 16, 20))).astype(np.float32)  # whole HU (stored as int16)
    lab = np.zeros(ct.shape, np.uint8)
    lab[4:8, 5:10, 6:12] = L.KIDNEY_LEFT
    lab[12:18, 3:12, 10:18] = L.LIVER
    return Image(ct, aff, "HU"), Image(lab, aff, "label")


def test_atlas_folder_round_trip_and_sources(tmp_path, monkeypatch):
    ct, lab = _subject()
    write_atlas_subject(tmp_path / "atlas", AtlasSubject("s1", ct, lab, "synthetic test"))
    (subject,) = read_atlas(tmp_path / "atlas")
    assert subject.name == "s1" and subject.source == "synthetic test"
    assert np.array_equal(np.asarray(subject.labels.array), np.asarray(lab.array))
    assert np.allclose(np.asarray(subject.ct.array), np.round(np.asarray(ct.array)), atol=0.5)
    assert resolve_atlas_source("none") is None and load_atlas(None) == ()
    monkeypatch.setenv("SPECTDOSE_ATLAS", str(tmp_path / "atlas"))
    assert resolve_atlas_source("auto") == tmp_path / "atlas"
    assert len(load_atlas("auto")) == 1
    with pytest.raises(InputError, match="atlas not found"):
        resolve_atlas_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no subject"):
        read_atlas(tmp_path / "empty")
