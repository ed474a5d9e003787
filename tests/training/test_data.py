"""Corpus shards: written and read back."""

from __future__ import annotations

import numpy as np

from bidsapp.training.data import load_corpus_split, write_shard


def test_shards_round_trip(tmp_path):
    audio = np.linspace(-1, 1, 2 * 60_000, dtype=np.float32).reshape(2, -1)
    labels = np.eye(2, 50, dtype=np.float32)
    write_shard(tmp_path / "test-000.npz", audio, labels, labels > 0, ["a@1", "b@2"])
    (tmp_path / "manifest.json").write_text("{}")
    clips = load_corpus_split(tmp_path, "test")
    assert clips.names == ["a@1", "b@2"]
    np.testing.assert_allclose(clips.audio(1), audio[1], atol=1e-4)
