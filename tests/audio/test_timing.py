import numpy as np
import pytest
import torch
from nilearn.glm.first_level import compute_regressor, spm_hrf

from bidsapp.audio.timing import (
    GRID_PERIOD,
    average_per_tr,
    convolve_hrf,
    hrf_kernel,
    hrf_per_tr,
    to_grid,
    trial_trs,
)


def test_to_grid_averages_frames_centred_in_each_64_ms_block():
    frames = torch.arange(40, dtype=torch.float32).reshape(1, 1, 40)  # hop 256: 4 per block
    grid = to_grid(frames, hop=256, n_grid=10).numpy()[0, 0]
    # Block j holds frames centred in [1024 j - 512, 1024 j + 512): 4j-2 ... 4j+1.
    assert grid[0] == pytest.approx(np.mean([0, 1]))
    assert grid[1] == pytest.approx(np.mean([2, 3, 4, 5]))
    assert grid[9] == pytest.approx(np.mean(np.arange(34, 40)))  # the tail joins the last block
    same = torch.rand(2, 3, 7)
    assert torch.equal(to_grid(same, hop=1024, n_grid=7), same)


def test_trial_trs_counts_partial_trs():
    assert trial_trs(29 * 16000, 0.735) == 40
    assert trial_trs(30 * 16000, 2.0) == 15  # an exact multiple adds no partial TR
    assert trial_trs(6 * 16000, 0.6) == 10


def test_average_per_tr_bins_are_half_open():
    tr = 4 * GRID_PERIOD
    values = np.arange(12, dtype=float)[None, :]
    np.testing.assert_allclose(average_per_tr(values, tr, 3), [[1.5, 5.5, 9.5]])
    with pytest.raises(ValueError):
        average_per_tr(values, tr, 4)


def test_hrf_is_nilearns_spm_hrf_peaking_near_5_s():
    hrf = hrf_kernel()
    assert hrf.sum() == pytest.approx(1.0)
    assert hrf.argmax() * GRID_PERIOD == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize("tr", [0.735, 2.0])
def test_response_to_a_single_event_peaks_about_5_s_later(tr):
    grid = np.zeros((1, 300))
    grid[0, 0] = 1.0
    response = hrf_per_tr(grid, tr, trial_trs(300 * 1024, tr))[0]
    peak = response.argmax()
    assert peak * tr <= 5.0 < (peak + 1) * tr + 0.1  # the TR that contains t = 5 s
    assert response.min() < 0  # the undershoot is kept


@pytest.mark.parametrize("tr", [0.735, 2.0])
def test_convolving_before_binning_matches_nilearn_sampled_finely(tr):
    # Convolve at 64 ms, then average within TRs = average nilearn's finely sampled
    # regressor (10 ms) within TRs; binning first would sample the HRF at the TR.
    n_tr = trial_trs(29 * 16000, tr)
    times = np.arange(454) * GRID_PERIOD
    boxcar = ((times >= 2.0) & (times < 12.0)).astype(float)[None, :]
    ours = hrf_per_tr(boxcar, tr, n_tr)[0]
    fine = np.arange(0, n_tr * tr, 0.01)
    regressor = compute_regressor(np.array([[2.0], [10.0], [1.0]]), "spm", fine, oversampling=16)
    bins = np.floor(fine / tr).astype(int)
    reference = np.bincount(bins, regressor[0][:, 0]) / np.bincount(bins)
    np.testing.assert_allclose(ours, reference, atol=0.03)
    # The other order, averaging within TRs first and convolving with the HRF sampled at
    # the TR, is several times further off (13-30 % of the peak for this boxcar).
    binned = average_per_tr(np.pad(boxcar, ((0, 0), (0, 600))), tr, n_tr)[0]
    bin_first = np.convolve(binned, spm_hrf(tr, oversampling=1))[:n_tr]
    assert np.abs(bin_first - reference).max() > 3 * np.abs(ours - reference).max()


def test_response_continues_past_the_clip_end():
    grid = np.ones((2, 100))  # 6.4 s of constant activity
    out = convolve_hrf(grid, 1000)
    assert out.shape == (2, 1000)
    assert out[0, 150] > 0.05  # 3.2 s after the end the response is still up
    assert out[0, 99 + hrf_kernel().size :].max() == 0.0  # and nothing is invented after it
