"""The fMRI time series as the study built them, against direct loops."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
from scipy import stats
from scipy.signal import detrend

from bidsapp.errors import BadDataError
from bidsapp.rsa.timeseries import (
    RunTrials,
    average_trials,
    clean_run,
    first_volume,
    masked_volumes,
    stacked_patterns,
)


def test_clean_run_matches_scipy():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 7)) + np.linspace(0, 5, 50)[:, None]
    data[:, 3] = 2.0  # a constant voxel
    cleaned = clean_run(data)
    expected = stats.zscore(detrend(data, axis=0), axis=0)
    np.testing.assert_allclose(np.delete(cleaned, 3, 1), np.delete(expected, 3, 1), atol=1e-5)
    assert np.all(cleaned[:, 3] == 0)


@pytest.mark.parametrize("onset,tr,start,k", [(10.0, 2.0, 1.0, 5), (10.0, 2.0, 0.2, 5),
                                              (0.0, 0.735, 0.3675, 0), (7.35, 0.735, 0.3675, 10)])
def test_first_volume(onset, tr, start, k):
    assert first_volume(onset, tr, start) == k


def test_average_and_stack_against_loop():
    rng = np.random.default_rng(1)
    tr, n_vols, v = 2.0, 40, 6
    orders = [["b", "a"], ["a", "b"]]
    onsets = [4.0, 40.0]
    runs = [RunTrials(rng.normal(size=(n_vols, v)), onsets, order, tr / 2, f"run{i}")
            for i, order in enumerate(orders)]
    trial_trs = {"a": 8, "b": 7}
    patterns, order = stacked_patterns(runs, trial_trs, tr, drop_seconds=6.0)
    assert order == ["a", "b"]
    # Direct loop: clean, cut at onset / TR, average over runs, drop ceil(6 / 2) = 3 TRs.
    expected = []
    for stim in order:
        cuts = []
        for run in runs:
            cleaned = stats.zscore(detrend(run.data, axis=0), axis=0)
            onset = run.onsets[run.stimuli.index(stim)]
            start = int(onset / tr)
            cuts.append(cleaned[start:start + trial_trs[stim]].T)
        expected.append(np.mean(cuts, axis=0)[:, 3:])
    np.testing.assert_allclose(patterns, np.concatenate(expected, axis=1), atol=1e-5)
    assert patterns.shape == (v, 5 + 4)


def test_trial_past_run_end():
    run = RunTrials(np.zeros((10, 3)), [16.0], ["a"], 1.0, "sub-01_run-1_bold.nii.gz")
    with pytest.raises(BadDataError) as exc:
        average_trials([run], {"a": 4}, 2.0)
    assert exc.value.exit_code == 65 and "sub-01_run-1" in str(exc.value)


@pytest.mark.parametrize("dtype, slope", [(np.float32, 1.0), (np.int16, 0.5)])
def test_masked_volumes_equal_the_whole_image_read(tmp_path, dtype, slope):
    rng = np.random.default_rng(3)
    data = rng.normal(100, 20, (7, 6, 5, 23))
    img = nb.Nifti1Image(data.astype(dtype), np.eye(4))
    img.header.set_slope_inter(slope, 3.0 if slope != 1.0 else 0.0)
    path = tmp_path / "bold.nii.gz"
    img.to_filename(path)
    mask = rng.random((7, 6, 5)) > 0.4
    whole = np.asanyarray(nb.load(path).dataobj)[mask].T
    got = masked_volumes(path, mask, block=4)  # 23 volumes: the last block is short
    assert got.dtype == whole.dtype and got.shape == (23, mask.sum())
    np.testing.assert_array_equal(got, whole)
