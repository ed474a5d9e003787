"""Packing a rendered corpus into Ogg/Opus and back, and cropping on the device."""

import json

import numpy as np
import pytest
import torch
from test_realmusic import fake_corpus

from bidsapp.audio.resnet import WINDOW_SAMPLES
from bidsapp.training.data import (
    ClipSet,
    DeviceClipBank,
    load_corpus_split,
    read_manifest,
    training_batch,
    write_shard,
)
from bidsapp.training.transport import pack_corpus, unpack_corpus


def _tone_corpus(folder, n_train=6, n_validation=3, samples=64_000):
    # Harmonic tones with distinct pitches and levels: a codec that kept only the level,
    # or shuffled the clips, would fail the spectral comparison below.
    t = np.arange(samples) / 16000.0
    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, n in (("train", n_train), ("validation", n_validation)):
        f0 = rng.uniform(110, 880, n)
        audio = np.stack([0.2 * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t))
                          for f in f0]).astype(np.float32)
        labels = rng.integers(0, 2, (n, 50)).astype(np.float32)
        mask = rng.integers(0, 2, (n, 50)).astype(bool)
        write_shard(folder / f"{split}-000.npz", audio, labels, mask,
                    [f"{split}{i}@{i}" for i in range(n)])
    (folder / "manifest.json").write_text(json.dumps({"seconds": samples / 16000.0}))


def _log_spectrum(audio):
    frames = audio[: audio.size // 400 * 400].reshape(-1, 400)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0) + 1e-3)


def test_pack_unpack_keeps_labels_and_sound(tmp_path):
    pytest.importorskip("soundfile")
    _tone_corpus(tmp_path / "corpus")
    record = pack_corpus(tmp_path / "corpus", tmp_path / "pack", compression_level=0.96)
    assert record["clips"] == 9
    # Much smaller than int16 PCM (256 kbit/s).
    assert record["kbit_per_s"] < 40
    unpack_corpus(tmp_path / "pack", tmp_path / "back")
    manifest = json.loads((tmp_path / "back" / "manifest.json").read_text())
    assert manifest["transport"]["compression_level"] == 0.96
    for split in ("train", "validation"):
        before = load_corpus_split(tmp_path / "corpus", split)
        after = load_corpus_split(tmp_path / "back", split)
        assert after.names == before.names
        np.testing.assert_array_equal(after.labels, before.labels)
        np.testing.assert_array_equal(after.mask, before.mask)
        for i in range(len(before)):
            a, b = before.audio(i), after.audio(i)
            assert a.shape == b.shape
            # Same clip: its long-term spectrum matches within a few dB where it has energy,
            # and matches its own source better than any other clip's.
            errors = [np.abs(_log_spectrum(before.audio(j)) - _log_spectrum(b))[:100].mean()
                      for j in range(len(before))]
            assert int(np.argmin(errors)) == i
            assert np.sqrt(np.mean(b ** 2)) == pytest.approx(np.sqrt(np.mean(a ** 2)), rel=0.1)


def test_device_bank_matches_host_batches():
    rng = np.random.default_rng(3)
    clips = [rng.integers(-3000, 3000, 5000).astype(np.int16) for _ in range(11)]
    clip_set = ClipSet(clips, rng.integers(0, 2, (11, 50)).astype(np.float32),
                       rng.integers(0, 2, (11, 50)).astype(bool), [str(i) for i in range(11)])
    assert DeviceClipBank.supports(clip_set, 1_000)
    bank = DeviceClipBank(clip_set, torch.device("cpu"))
    for step in (0, 1, 7):
        host = training_batch(clip_set, 4, seed=5, step=step, crop_samples=1_000)
        device = bank.batch(4, seed=5, step=step, crop_samples=1_000)
        for h, d in zip(host, device, strict=True):
            np.testing.assert_array_equal(h, d.numpy())


def test_device_bank_refuses_mixed_lengths():
    clips = [np.zeros(5000, np.int16), np.zeros(4000, np.int16)]
    clip_set = ClipSet(clips, np.zeros((2, 50), np.float32), np.zeros((2, 50), bool), ["a", "b"])
    assert not DeviceClipBank.supports(clip_set, 1_000)


def test_pack_a_real_music_corpus_keeps_the_soft_teacher_labels(tmp_path):
    # A real-music corpus's manifest gives its windows in samples, not a clip length in
    # seconds; the bitrate must come from the shards, and the teacher's probabilities
    # must arrive bit for bit.
    pytest.importorskip("soundfile")
    fake_corpus(tmp_path / "real")
    assert "seconds" not in read_manifest(tmp_path / "real")
    record = pack_corpus(tmp_path / "real", tmp_path / "pack", splits=("train", "test"))
    before = {s: load_corpus_split(tmp_path / "real", s) for s in ("train", "test")}
    clips = sum(len(c) for c in before.values())
    assert record["clips"] == clips
    assert record["seconds"] == pytest.approx(clips * WINDOW_SAMPLES / 16000, abs=0.01)
    # White noise is the codec's worst case, yet far below int16 PCM's 256 kbit/s.
    assert 5 < record["kbit_per_s"] < 100
    unpack_corpus(tmp_path / "pack", tmp_path / "back")
    assert read_manifest(tmp_path / "back")["source"] == read_manifest(tmp_path / "real")["source"]
    for split, clip_set in before.items():
        after = load_corpus_split(tmp_path / "back", split)
        assert after.names == clip_set.names
        np.testing.assert_array_equal(after.labels, clip_set.labels)
        assert after.labels.dtype == np.float32 and 0 < after.labels.mean() < 1
        assert after.mask.all()
