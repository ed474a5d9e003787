"""The MagnaTagATune loader on a tiny fixture in MTT's layout (written by the test)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile

from bidsapp.audio.resnet import WINDOW_SAMPLES
from bidsapp.audio.weightfile import TAGS
from bidsapp.errors import BadDataError
from bidsapp.training.data import random_crop, training_batch
from bidsapp.training.mtt import load_mtt, read_annotations, split_of_path, top_tags

OTHER_TAGS = [f"other tag {i}" for i in range(188 - len(TAGS))]
# MTT's file interleaves the top tags with the rest; so does the fixture.
COLUMNS = [tag for pair in zip(OTHER_TAGS, TAGS, strict=False) for tag in pair] + OTHER_TAGS[50:]
CLIPS = [  # clip_id, mp3_path, tags
    ("2", "0/artist-album-01-song-0-29.mp3", ["guitar", "classical", "slow"]),
    ("6", "1/artist-album-02-song-30-59.mp3", ["piano", "fast"]),
    ("10", "b/artist-album-03-song-0-29.mp3", ["guitar", "drums"]),
    ("12", "c/artist-album-04-song-0-29.mp3", ["violin", "strings"]),
    ("15", "d/artist-album-05-song-0-29.mp3", ["guitar", "choral"]),
    ("20", "f/artist-album-06-song-0-29.mp3", ["piano"]),
    ("21", "e/artist-album-07-song-0-29.mp3", ["flute"]),  # empty file, as in real MTT
]


@pytest.fixture(scope="module")
def mtt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtt")
    rng = np.random.default_rng(0)
    with open(root / "annotations_final.csv", "w", newline="") as stream:
        writer = csv.writer(stream, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *COLUMNS, "mp3_path"])
        for clip_id, path, tags in CLIPS:
            writer.writerow([clip_id, *[int(c in tags) for c in COLUMNS], path])
    for clip_id, path, _ in CLIPS:
        (root / path).parent.mkdir(exist_ok=True)
        if clip_id == "21":
            (root / path).touch()
            continue
        audio = 0.1 * rng.standard_normal(56_000).astype(np.float32)
        soundfile.write(root / path, audio, 16_000, format="MP3")
    return root


def test_read_annotations_parses_tab_separated_quoted(mtt_root):
    table = read_annotations(mtt_root / "annotations_final.csv")
    assert table.clip_ids == [c[0] for c in CLIPS]
    assert len(table.tag_names) == 188
    assert table.matrix.shape == (len(CLIPS), 188)
    assert table.mp3_paths[3] == "c/artist-album-04-song-0-29.mp3"
    assert table.matrix[0, table.tag_names.index("classical")] == 1


def test_top_tags_orders_by_frequency(mtt_root):
    table = read_annotations(mtt_root / "annotations_final.csv")
    assert top_tags(table, 2) == ["guitar", "piano"]


@pytest.mark.parametrize(("path", "split"), [("0/x.mp3", "train"), ("b/x.mp3", "train"),
                                             ("c/x.mp3", "validation"), ("d/x.mp3", "test"),
                                             ("f/x.mp3", "test"), ("g/x.mp3", None)])
def test_split_follows_the_study(path, split):
    assert split_of_path(path) == split


def test_load_mtt_splits_labels_and_audio(mtt_root):
    train = load_mtt(mtt_root, "train")
    validation = load_mtt(mtt_root, "validation")
    test = load_mtt(mtt_root, "test")
    assert train.names == ["2", "6", "10"]
    assert validation.names == ["12"]
    assert test.names == ["15", "20"]  # the empty mp3 of clip 21 is left out
    assert train.labels.shape == (3, 50) and train.mask.all()
    assert train.labels[0, TAGS.index("guitar")] == 1
    assert train.labels[0, TAGS.index("classical")] == 1
    assert train.labels[1, TAGS.index("guitar")] == 0
    assert test.labels[0, TAGS.index("choral")] == 1
    audio = train.audio(0)
    assert audio.dtype == np.float32 and abs(audio.size - 56_000) < 2_000


def test_training_crops_are_random_windows(mtt_root):
    train = load_mtt(mtt_root, "train")
    audio, labels, mask = training_batch(train, 4, seed=1, step=0)
    assert audio.shape == (4, WINDOW_SAMPLES) and labels.shape == (4, 50)
    again, _, _ = training_batch(train, 4, seed=1, step=0)
    np.testing.assert_array_equal(audio, again)
    crop = random_crop(np.arange(10, dtype=np.float32), np.random.default_rng(0), 4)
    assert crop.size == 4 and np.all(np.diff(crop) == 1)


def test_missing_output_tag_is_bad_data(tmp_path):
    with open(tmp_path / "annotations_final.csv", "w") as stream:
        stream.write('"clip_id"\t"guitar"\t"mp3_path"\n"1"\t"1"\t"0/a.mp3"\n')
    with pytest.raises(BadDataError, match="output tag"):
        load_mtt(tmp_path, "train")
