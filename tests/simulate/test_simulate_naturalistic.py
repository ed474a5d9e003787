"""The ``naturalistic`` preset: whole songs of unequal length, as in OpenNeuro ds004007."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import soundfile

from bidsapp.bids import collect_participants, open_layout
from bidsapp.cli.parser import parse_args
from bidsapp.design import subject_designs
from bidsapp.simulate import simulate
from bidsapp.simulate.presets import make_params
from bidsapp.stats import FITTED, permutation_scheme

#: Small enough to write in seconds: 8 of the preset's pieces at 10 % of their length.
SHORT = dict(subjects=1, runs=2, clips=8, duration_scale=0.1, voxel_size=8.0,
             t1w_voxel_size=4.0, slices=24, multiband=4, fov_mm=192.0, rest_seconds=4.0)


@pytest.fixture(scope="module")
def naturalistic(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("sim") / "nat", preset="naturalistic", seed=2,
                    **SHORT)


def test_preset_has_the_shape_of_the_public_dataset():
    p = make_params("naturalistic")
    assert (p.subjects, p.runs, p.clips, p.tr, p.voxel_size, p.slices, p.multiband) == (
        25, 2, 16, 1.0, 2.0, 72, 8)
    assert sorted(set(p.durations)) == [89, 90, 134, 135, 179, 180, 224, 225]
    assert (p.audio_rate, p.audio_channels, p.task_sidecar) == (44100, 2, True)
    assert make_params("naturalistic", duration_scale=0.5).durations[0] == 44.5


def test_stimuli_are_cd_quality_stereo_of_unequal_length(naturalistic):
    lengths = []
    for path in sorted((naturalistic / "stimuli").glob("*.wav")):
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
        lengths.append(round(info.duration, 2))
    assert lengths == [round(d * 0.1, 2) for d in (89, 89, 90, 90, 134, 134, 135, 135)]


def test_runs_play_the_same_pieces_in_different_orders(naturalistic):
    func = naturalistic / "sub-01" / "func"
    events = [pd.read_csv(func / f"sub-01_task-music_run-{r}_events.tsv", sep="\t")
              for r in (1, 2)]
    assert set(events[0].stim_file) == set(events[1].stim_file) and len(events[0]) == 8
    assert list(events[0].stim_file) != list(events[1].stim_file)
    assert events[0].duration.nunique() == 4  # the durations come with their pieces
    # RepetitionTime is inherited from the task-level sidecar at the root.
    assert json.loads((naturalistic / "task-music_bold.json").read_text())[
        "RepetitionTime"] == 1.0
    run_sidecar = json.loads((func / "sub-01_task-music_run-1_bold.json").read_text())
    assert "RepetitionTime" not in run_sidecar and "SliceTiming" in run_sidecar


def test_app_reads_it_with_unequal_trials_and_the_fitted_null(naturalistic, tmp_path):
    config = parse_args([str(naturalistic), str(tmp_path / "out"), "participant"])
    subject = collect_participants(open_layout(naturalistic), config)[0]
    assert subject.bold[0].repetition_time == 1.0
    design = subject_designs(subject, config)["music"]
    # 8.9-13.5 s pieces at TR 1 s: 9 or 14 TRs, of which the first 6 s are dropped.
    assert design.trial_trs == (9, 9, 9, 9, 14, 14, 14, 14)
    assert permutation_scheme(design.trial_lengths) == FITTED
