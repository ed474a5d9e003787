"""The trial design: built once from the checked inputs, carried as a dict, read back equal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bidsapp.audio.timing import trial_trs
from bidsapp.bids import collect_participants, open_layout
from bidsapp.cli.parser import parse_args
from bidsapp.design import RunDesign, TrialDesign, build_trial_design, subject_designs
from bidsapp.errors import BadDataError
from bidsapp.preproc.slice_timing import volume_time


def _designs(root: Path, *extra: str) -> dict[str, dict[str, TrialDesign]]:
    config = parse_args([str(root), str(root.parent / "out"), "participant", *extra])
    return {s.subject: subject_designs(s, config)
            for s in collect_participants(open_layout(root), config)}


def test_design_of_the_fixture_dataset(bids_root):
    design = _designs(bids_root)["01"]["music"]
    assert design.order == ("clip-a.wav", "clip-b.wav")
    assert [run.stimuli for run in design.runs] == [("clip-a.wav", "clip-b.wav"),
                                                    ("clip-b.wav", "clip-a.wav")]
    assert design.runs[0].onsets[1] == 26.0
    # The fixture's sidecar has SliceTiming over 0-1.75 s: corrected to its middle.
    assert {run.start_time for run in design.runs} == {0.875}
    assert design.n_dropped == 3 and design.drop_seconds == 6.0
    assert design.n_trs == sum(design.trial_lengths) == sum(n - 3 for n in design.trial_trs)
    assert all(Path(p).is_file() for p in design.audio)


def test_design_round_trips_through_json(bids_root):
    design = _designs(bids_root)["02"]["music"]
    again = TrialDesign.from_dict(json.loads(json.dumps(design.to_dict())))
    assert again == design and again.trs_by_stimulus == design.trs_by_stimulus


def test_corrupt_stimulus_file(bids_root):
    (bids_root / "stimuli" / "clip-a.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(BadDataError) as exc:
        _designs(bids_root)
    assert exc.value.exit_code == 65 and "clip-a.wav" in str(exc.value)


def test_trial_not_longer_than_the_dropped_part_is_refused():
    runs = [RunDesign("run-1", (0.0, 10.0), ("a", "b"), 1.0)]
    with pytest.raises(BadDataError, match="nothing is left") as exc:
        build_trial_design("music", 2.0, runs, audio={"a": "a.wav", "b": "b.wav"},
                           trial_trs={"a": 10, "b": 3}, drop_seconds=6)
    assert exc.value.path == Path("b.wav")
    with pytest.raises(BadDataError, match="No audio"):
        build_trial_design("music", 2.0, runs, audio={"a": "a.wav"}, trial_trs={"a": 10},
                           drop_seconds=6)


def test_one_rule_for_the_time_a_volume_stands_for():
    assert volume_time(0.875, 2.0) == 0.875
    assert volume_time(0.0, 2.0) == 0.0  # corrected to the first slice
    assert volume_time(None, 2.0) == 1.0  # uncorrected: the middle of the TR
    assert trial_trs(16000 * 22, 2.0) == 11 and trial_trs(16000 * 21 + 1, 2.0) == 11


def test_audio_past_the_end_of_the_run_is_refused(tmp_path):
    from bidsapp.bids.collect import BoldRun, Trial
    from bidsapp.design import _check_trials_fit

    # The events say 14 s (within one TR of the audio), the audio plays 15.9 s: 8 TRs
    # from volume 17 need volume 24 of a 24-volume run.
    run = BoldRun(path=tmp_path / "sub-01_task-music_run-1_bold.nii.gz",
                  events=tmp_path / "sub-01_task-music_run-1_events.tsv", repetition_time=2.0,
                  n_volumes=24, trials=(Trial(34.0, 14.0, "a.wav"),), metadata={}, entities={})
    design = RunDesign(run.path.name, (34.0,), ("a.wav",), 0.875)
    with pytest.raises(BadDataError, match="needs volumes up to 24") as exc:
        _check_trials_fit(run, design, {"a.wav": int(15.9 * 16000)}, {"a.wav": 8},
                          {"a.wav": Path("a.wav")})
    assert exc.value.path == run.path
    assert "the run has 24 volumes (24 x TR 2 s = 48.0 s)" in str(exc.value)
    _check_trials_fit(run, design, {"a.wav": 14 * 16000}, {"a.wav": 7}, {"a.wav": Path("a.wav")})
