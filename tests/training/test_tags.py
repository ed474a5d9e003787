"""Which tags a rendered clip supervises, and the split by work."""

from __future__ import annotations

import numpy as np

from bidsapp.audio.weightfile import TAGS
from bidsapp.training.corpus import split_of
from bidsapp.training.tags import SUPERVISED_TAGS, clip_labels, supervised_mask


def _on(labels, mask, tag):
    i = TAGS.index(tag)
    return bool(mask[i]), bool(labels[i])


def test_supervised_tags_are_output_tags_and_the_rest_is_masked():
    assert set(SUPERVISED_TAGS) <= set(TAGS) and len(SUPERVISED_TAGS) == 26
    labels, mask = clip_labels([40], drums=False, bpm=60, dynamic="quiet", classical_source=True)
    assert not mask[~supervised_mask()].any() and not labels[~mask].any()
    for tag in ("rock", "vocal", "male", "techno", "opera"):
        assert not mask[TAGS.index(tag)]


def test_solo_violin_slow_quiet_classical():
    labels, mask = clip_labels([40], drums=False, bpm=60, dynamic="quiet", classical_source=True)
    for tag in ("violin", "strings", "solo", "slow", "quiet", "soft", "classical", "classic",
                "no vocals", "no voice"):
        assert _on(labels, mask, tag) == (True, True), tag
    for tag in ("cello", "piano", "drums", "fast", "loud", "choir"):
        assert _on(labels, mask, tag) == (True, False), tag


def test_folk_trio_with_drums_and_choir():
    labels, mask = clip_labels([24, 104, 52], drums=True, bpm=150, dynamic="loud",
                               classical_source=False)
    for tag in ("guitar", "sitar", "choir", "choral", "drums", "beat", "beats", "fast", "loud"):
        assert _on(labels, mask, tag) == (True, True), tag
    for tag in ("solo", "no vocals", "classical", "quiet", "slow"):
        assert _on(labels, mask, tag) == (True, False), tag


def test_ambiguous_tempo_loudness_and_style_are_masked():
    labels, mask = clip_labels([0, 33], drums=False, bpm=100, dynamic="medium",
                               classical_source=True)
    for tag in ("fast", "slow", "loud", "quiet", "soft", "classical", "classic"):
        assert not mask[TAGS.index(tag)], tag
    assert labels.dtype == np.float32


def test_split_by_work_is_stable_and_roughly_80_10_10():
    assert split_of("bach/bwv66.6.mxl") == split_of("bach/bwv66.6.mxl")
    splits = [split_of(f"folk/tune{i}.abc#{i}") for i in range(2_000)]
    assert 0.75 < splits.count("train") / 2_000 < 0.85
    assert splits.count("validation") > 150 and splits.count("test") > 150
