"""The real-music corpus on disk: shards readable as a clip set, and a re-split that keeps
every window and its teacher labels bit for bit (the teacher itself needs TensorFlow, which
the test environment does not have)."""

from __future__ import annotations

import numpy as np

from bidsapp.audio.resnet import WINDOW_SAMPLES
from bidsapp.training import debian, realmusic
from bidsapp.training.data import load_corpus_split, read_manifest


def fake_corpus(folder):
    rng = np.random.default_rng(0)
    tracks, windows, labels, seconds = [], {}, {}, {}
    for package, count in (("big-music", 12), ("small-music", 3)):
        for i in range(count):
            key = f"{package}/t{i}"
            n = 1 + i % 3
            audio = (0.2 * rng.standard_normal((n, WINDOW_SAMPLES))).astype(np.float32)
            windows[key] = (audio, [j * WINDOW_SAMPLES for j in range(n)])
            labels[key] = rng.uniform(0, 1, (n, 50)).astype(np.float32)
            seconds[key] = n * WINDOW_SAMPLES / 16_000
            tracks.append(debian.Track(package, key, [], debian.track_group(key)))
    # A split other than the current rule's, as an older build would have left it.
    split = {t.key: "train" if i % 2 else "test" for i, t in enumerate(tracks)}
    manifest = {"source": realmusic.SOURCE, "track_seconds": seconds}
    realmusic.write_corpus(folder, tracks, windows, labels, split, manifest)
    return tracks, seconds


def read_all(folder):
    out = {}
    for name in debian.SPLITS:
        if list(folder.glob(f"{name}-*.npz")):
            clips = load_corpus_split(folder, name)
            for clip, label, window in zip(clips.clips, clips.labels, clips.names, strict=True):
                out[window] = (name, np.asarray(clip).copy(), label.copy())
    return out


def test_resplit_keeps_windows_and_labels(tmp_path):
    tracks, seconds = fake_corpus(tmp_path)
    before = read_all(tmp_path)
    assert read_manifest(tmp_path)["splits"]["test"]["windows"] > 0
    manifest = realmusic.resplit(tmp_path)
    after = read_all(tmp_path)
    assert before.keys() == after.keys()
    expected = debian.split_tracks(tracks, seconds)
    for window, (name, audio, label) in after.items():
        assert name == expected[window.rsplit("@", 1)[0]]
        np.testing.assert_array_equal(audio, before[window][1])  # int16, bit for bit
        np.testing.assert_array_equal(label, before[window][2])
    assert sum(manifest["splits"][s]["windows"] for s in debian.SPLITS) == len(before)
    real = load_corpus_split(tmp_path, "train")
    assert real.mask.all() and real.labels.dtype == np.float32
