"""Slice-timing correction: the plan's checks, the Fourier shift, and the planted-delay test."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from bidsapp.preproc.slice_timing import (
    SliceTimingPlan,
    fourier_shift,
    plan_slice_timing,
    slice_time_correct,
    slice_time_correct_img,
)

TR = 2.0


def interleaved(n: int, tr: float = TR) -> list[float]:
    order = list(range(0, n, 2)) + list(range(1, n, 2))
    times = [0.0] * n
    for rank, z in enumerate(order):
        times[z] = rank * tr / n
    return times


def test_plan_valid_uses_fmriprep_reference():
    times = interleaved(10)
    plan = plan_slice_timing({"SliceTiming": times}, (4, 4, 10, 20), TR)
    assert plan.corrected and plan.warning is None
    assert plan.start_time == pytest.approx(min(times) + 0.5 * (max(times) - min(times)))
    assert plan.sidecar() == {"SliceTimingCorrected": True, "StartTime": plan.start_time}
    early = plan_slice_timing({"SliceTiming": times}, (4, 4, 10, 20), TR, slice_time_ref=0.0)
    assert early.start_time == 0.0


@pytest.mark.parametrize("metadata, reason", [
    ({}, "no SliceTiming"),
    ({"SliceTiming": "0 1 2"}, "not a list of numbers"),
    ({"SliceTiming": [0.0, 0.5, None, 1.0]}, "not a list of numbers"),
    ({"SliceTiming": [0.0, 0.5, 1.0]}, "3 entries but the image has 4"),
    ({"SliceTiming": [0.0, 500.0, 1000.0, 1500.0]}, "milliseconds"),
    ({"SliceTiming": [-0.1, 0.5, 1.0, 1.5]}, "must lie in"),
    ({"SliceTiming": [0.5] * 4}, "same acquisition time"),
    ({"SliceTiming": [0.0, 0.5, 1.0, 1.5], "SliceEncodingDirection": "x"},
     "SliceEncodingDirection"),
])
def test_plan_skips_with_a_warning_and_never_raises(metadata, reason):
    plan = plan_slice_timing(metadata, (4, 4, 4, 20), TR)
    assert not plan.corrected
    assert reason in plan.warning
    assert plan.sidecar() == {"SliceTimingCorrected": False}


def test_plan_follows_slice_encoding_direction():
    times = [0.0, 0.5, 1.0, 1.5]
    along_i = plan_slice_timing({"SliceTiming": times, "SliceEncodingDirection": "i"},
                                (4, 6, 8, 20), TR)
    assert along_i.slice_axis == 0 and along_i.slice_times == tuple(times)
    reverse = plan_slice_timing({"SliceTiming": times, "SliceEncodingDirection": "k-"},
                                (6, 6, 4, 20), TR)
    # BIDS: with k- the first entry belongs to the last slice.
    assert reverse.slice_times == tuple(times[::-1])


def test_fourier_shift_matches_a_shifted_sinusoid_and_a_roll():
    t = np.arange(120.0)
    frequency = 0.043
    series = np.sin(2 * np.pi * frequency * t) + 0.01 * t
    shifted = fourier_shift(series, 0.37)
    expected = np.sin(2 * np.pi * frequency * (t + 0.37)) + 0.01 * (t + 0.37)
    assert np.abs(shifted - expected)[5:-5].max() < 2e-3
    noise = np.random.default_rng(0).standard_normal(64)
    whole = fourier_shift(noise, 1.0)
    np.testing.assert_allclose(whole[:-1], noise[1:], atol=1e-9)


def phase_at(series: np.ndarray, frequency: float, tr: float) -> np.ndarray:
    """Phase (rad) of a sinusoid of ``frequency`` Hz in the last axis, by projection."""
    n = series.shape[-1]
    t = np.arange(n) * tr
    window = np.hanning(n)
    cos = (series * window * np.cos(2 * np.pi * frequency * t)).sum(-1)
    sin = (series * window * np.sin(2 * np.pi * frequency * t)).sum(-1)
    return np.arctan2(-sin, cos)


@pytest.mark.parametrize("times", [interleaved(24), [0.0, 0.25, 0.5, 0.75, 1.0, 1.25] * 4],
                         ids=["interleaved", "multiband4"])
def test_planted_delayed_sinusoid_phase_spread_drops_at_least_5x(times):
    n_slices, n_volumes, frequency = len(times), 150, 0.06
    t = np.arange(n_volumes) * TR
    rng = np.random.default_rng(3)
    data = np.empty((3, 3, n_slices, n_volumes), dtype=np.float32)
    for z, delay in enumerate(times):
        # Each slice samples the same signal at its own acquisition time, plus noise.
        data[:, :, z, :] = (100 + 10 * np.sin(2 * np.pi * frequency * (t + delay))
                            + rng.standard_normal((3, 3, n_volumes)))
    plan = plan_slice_timing({"SliceTiming": times}, data.shape, TR)
    corrected = slice_time_correct(data, plan, TR)

    def spread(series):
        phases = np.unwrap(phase_at(series[1, 1] - series[1, 1].mean(-1, keepdims=True),
                                    frequency, TR))
        return np.ptp(phases)

    before, after = spread(data), spread(corrected)
    assert before > 0.3
    assert after * 5 <= before, (before, after)
    print(f"phase spread {before:.3f} -> {after:.5f} rad (ratio {before / after:.0f}x)")
    # Every slice now carries the signal at StartTime.
    expected = 100 + 10 * np.sin(2 * np.pi * frequency * (t + plan.start_time))
    assert np.abs(corrected[1, 1, :, 5:-5] - expected[5:-5]).std() < 1.5


def test_skipped_plan_returns_the_data_unchanged_as_float32():
    data = np.random.default_rng(1).integers(0, 1000, (3, 3, 4, 10)).astype(np.int16)
    plan = SliceTimingPlan(None, None, 2, "skipped")
    out = slice_time_correct(data, plan, TR)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data)


def test_image_keeps_geometry():
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    img = nb.Nifti1Image(np.random.default_rng(2).random((4, 4, 6, 12)).astype(np.float32),
                         affine)
    img.header.set_zooms((3.0, 3.0, 4.0, TR))
    plan = plan_slice_timing({"SliceTiming": interleaved(6)}, img.shape, TR)
    out = slice_time_correct_img(img, plan, TR)
    np.testing.assert_array_equal(out.affine, affine)
    assert out.header.get_zooms() == (3.0, 3.0, 4.0, TR)
    assert out.get_data_dtype() == np.float32
