import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.segment import labels as L


def test_vocabulary_round_trips_through_json(tmp_path):
    arr = np.array([0, 1, 2, 3, 4, 5, 6, 7, 100, 102]).reshape(1, 1, -1)
    vocab = L.vocabulary_for(arr)
    assert vocab[1] == "kidney_left" and vocab[5] == "marrow_L2L4" and vocab[102] == "lesion_3"
    L.write_vocabulary(tmp_path / "labels.json", vocab, backend="x")
    assert L.read_vocabulary(tmp_path / "labels.json") == vocab
    assert all(L.name_to_id(n) == k for k, n in vocab.items())


def test_unknown_label_id_and_bad_vocabulary_are_refused(tmp_path):
    with pytest.raises(ValueError):
        L.vocabulary_for(np.array([[[8]]]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        L.read_vocabulary(tmp_path / "bad.json")
