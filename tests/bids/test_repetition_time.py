"""The TR cross-checks of :mod:`bidsapp.bids.timing` on sidecars as converters write them."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from bidsapp.bids.timing import resolve_repetition_time
from bidsapp.errors import BadDataError

PATH = Path("/data/sub-01/func/sub-01_task-music_run-1_bold.nii.gz")


def _img(tr: float, n_volumes: int = 156, unit: str = "sec") -> nb.Nifti1Image:
    img = nb.Nifti1Image(np.zeros((2, 2, 2, n_volumes), np.int16), np.eye(4))
    img.header.set_xyzt_units("mm", unit)
    img.header.set_zooms((3.0, 3.0, 3.0, tr))
    return img


def test_dcm2niix_philips_pattern_stops_naming_every_value():
    meta = {"RepetitionTime": 1.79355, "RepetitionTimeExcitation": 2,
            "AcquisitionDuration": 325.9}
    with pytest.raises(BadDataError) as err:
        resolve_repetition_time(PATH, meta, _img(1.79355), 156)
    text = str(err.value)
    for value in ("RepetitionTime 1.79355 s", "pixdim[4] of the NIfTI header 1.79355 s",
                  "RepetitionTimeExcitation 2 s", "325.9 s over 156 volumes",
                  "would have used RepetitionTime (1.79355 s)", "32.2 s off"):
        assert value in text, text
    assert err.value.path == PATH
    assert "--repetition-time" in err.value.fix
    assert err.value.exit_code == 65


def test_consistent_philips_sidecar_gives_its_tr():
    meta = {"RepetitionTime": 2.0, "RepetitionTimeExcitation": 2, "AcquisitionDuration": 325.9}
    assert resolve_repetition_time(PATH, meta, _img(2.0), 156) == 2.0


def test_excitation_plus_delay_time_is_the_volume_tr():
    meta = {"RepetitionTime": 3.0, "RepetitionTimeExcitation": 2.0, "DelayTime": 1.0}
    assert resolve_repetition_time(PATH, meta, _img(3.0, 20), 20) == 3.0
    with pytest.raises(BadDataError, match="RepetitionTimeExcitation \\+ DelayTime 2.5 s"):
        resolve_repetition_time(PATH, {**meta, "DelayTime": 0.5}, _img(3.0, 20), 20)


def test_excitation_within_a_volume_and_per_volume_duration_are_not_compared():
    # A 3D sequence's excitation TR, and BIDS' per-volume AcquisitionDuration.
    meta = {"RepetitionTime": 2.0, "RepetitionTimeExcitation": 0.025,
            "AcquisitionDuration": 1.9}
    assert resolve_repetition_time(PATH, meta, _img(2.0, 40), 40) == 2.0


def test_header_in_milliseconds_and_header_disagreement():
    assert resolve_repetition_time(PATH, {"RepetitionTime": 2.0}, _img(2000.0, 10, "msec"),
                                   10) == 2.0
    with pytest.raises(BadDataError, match="pixdim\\[4\\] of the NIfTI header 1.5 s"):
        resolve_repetition_time(PATH, {"RepetitionTime": 2.0}, _img(1.5, 10), 10)


def test_override_is_used_and_names_what_it_replaces(caplog):
    meta = {"RepetitionTime": 1.79355, "RepetitionTimeExcitation": 2}
    with caplog.at_level(logging.WARNING, logger="bidsapp.bids"):
        assert resolve_repetition_time(PATH, meta, _img(1.79355), 156, override=2.0) == 2.0
    assert "--repetition-time 2 s is used instead of RepetitionTime 1.79355 s" in caplog.text


def test_volume_timing_rules():
    timing = [2.0 * i for i in range(10)]
    assert resolve_repetition_time(PATH, {"VolumeTiming": timing}, _img(2.0, 10), 10) == 2.0
    cases = [
        ({"VolumeTiming": timing, "RepetitionTime": 2.0}, "mutually exclusive"),
        ({"VolumeTiming": timing, "DelayTime": 0.5}, "mutually exclusive"),
        ({"VolumeTiming": timing[:9]}, "9 entries but the BOLD image has 10"),
        ({"VolumeTiming": [0, 1, 2, 4, 5, 6, 8, 9, 10, 12]}, "unevenly"),
        ({"VolumeTiming": [t + 1 for t in timing]}, "starts at 1 s"),
        ({"VolumeTiming": timing, "AcquisitionDuration": 1.0}, "sparse acquisition"),
    ]
    for meta, message in cases:
        with pytest.raises(BadDataError, match=message):
            resolve_repetition_time(PATH, meta, _img(2.0, 10), 10)
    with pytest.raises(BadDataError, match="the spacing of VolumeTiming 2 s"):
        resolve_repetition_time(PATH, {"VolumeTiming": timing}, _img(1.5, 10), 10)
