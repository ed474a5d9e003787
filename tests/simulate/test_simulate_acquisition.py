import numpy as np
import pytest

from bidsapp.simulate.acquisition import run_schedule, slice_timing, williams_square


def test_interleaved_slice_timing():
    times = slice_timing(8, 2.0)
    # Even (0-based) slices first, then odd ones, evenly spread over the TR.
    np.testing.assert_allclose(times, [0, 1.0, 0.25, 1.25, 0.5, 1.5, 0.75, 1.75])


def test_ascending_slice_timing():
    np.testing.assert_allclose(slice_timing(4, 1.0, order="ascending"), [0, 0.25, 0.5, 0.75])


def test_multiband_slice_timing_acquires_bands_together():
    times = slice_timing(64, 0.735, multiband=8)
    assert len(np.unique(times)) == 8
    for k in range(8):
        assert np.all(times[k::8] == times[k])
    assert times.min() == 0 and times.max() < 0.735


def test_multiband_must_divide_slices():
    with pytest.raises(ValueError):
        slice_timing(30, 1.0, multiband=4)


@pytest.mark.parametrize("n", [4, 16])
def test_williams_square_is_a_balanced_latin_square(n):
    square = williams_square(n)
    assert all(sorted(row) == list(range(n)) for row in square)
    assert all(sorted(col) == list(range(n)) for col in square.T)
    pairs = {(a, b) for row in square for a, b in zip(row[:-1], row[1:], strict=True)}
    assert len(pairs) == n * (n - 1)  # every ordered pair once: carry-over balanced


def test_run_schedule_onsets_are_on_triggers_and_gaps_in_range():
    rng = np.random.default_rng(0)
    s = run_schedule(rng, 1, 4, 22.0, 2.0, (4.0, 6.0), 4.0, 8.0)
    assert s.clip_order == tuple(williams_square(4)[1])
    onsets = np.array(s.onsets)
    assert np.allclose(onsets % 2.0, 0) and onsets[0] == 4.0
    gaps = np.diff(onsets) - 22.0
    assert np.all(gaps >= 4.0) and np.all(gaps < 6.0 + 2.0)
    assert s.n_volumes * 2.0 >= onsets[-1] + 22.0 + 8.0
