"""The geometry-matched signal: the app's own RSA finds the planted layer at every sphere.

The sphere patterns are the simulator's template-space signal (the same responses, run
schedules and balancing as ``simulate()`` uses), sampled at the volumes' times without
motion, warp or drift, then analysed with the app's ``stacked_patterns``, candidate RDMs
and ``searchlight`` at each sphere centre.
"""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.simulate import geometry, truth
from bidsapp.simulate.signal import sample_timeline

MARGIN = 0.03
"""Smallest lead of the planted layer over the runner-up (measured: 0.08 or more)."""


def test_rank_frames_give_spearman_inner_products():
    from scipy.stats import spearmanr

    features = np.random.default_rng(0).standard_normal((40, 6))
    z = geometry.rank_frames(features)
    expected = spearmanr(features).statistic
    np.testing.assert_allclose(z @ z.T, expected, atol=1e-12)


def test_equalize_diagonal_keeps_inner_products_and_equalizes_variance():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 5))
    matrix = a @ a.T + np.diag([10.0, 0, 0, 0, 0])
    basis, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    out = geometry.equalize_diagonal(matrix, basis[:, :5])
    diag = np.diag(out.T @ matrix @ out)
    np.testing.assert_allclose(diag, diag.mean(), rtol=1e-9)
    np.testing.assert_allclose(out @ out.T, basis @ basis.T, atol=1e-12)


def test_kernel_map_is_monotone_in_spearman():
    z = geometry.rank_frames(np.random.default_rng(2).random((30, 200)) + np.arange(30)[:, None])
    phi = geometry.kernel_map(z, 199)(z)
    rho = (z @ z.T)[np.triu_indices(len(z), 1)]
    kernel = (phi @ phi.T)[np.triu_indices(len(z), 1)]
    order = np.argsort(rho)
    assert np.all(np.diff(kernel[order]) > -1e-6)


def test_balance_outside_leaves_nothing_for_detrending():
    from scipy.signal import detrend

    rng = np.random.default_rng(3)
    times = np.arange(50) * 2.0 + 1.0
    inside = (times > 10) & (times < 80)
    signal = np.where(inside, rng.standard_normal((4, 50)), 0.0)
    out = geometry.balance_outside(signal, inside, times)
    np.testing.assert_array_equal(out[:, inside], signal[:, inside])
    np.testing.assert_allclose(detrend(out, axis=1), out, atol=1e-9)


@pytest.fixture(scope="module")
def planted_runs(tiny_dataset):
    """Sub-01's noiseless template-space signal per run, as ``simulate()`` planted it."""
    from bidsapp.audio import LAYER_NAMES
    from bidsapp.simulate import core
    from bidsapp.simulate.acquisition import run_schedule
    from bidsapp.simulate.anatomy import load_template, template_grid
    from bidsapp.simulate.presets import make_params
    from bidsapp.simulate.seeds import rng_for
    from bidsapp.simulate.signal import Sphere, truth_maps
    from bidsapp.simulate.stimuli import clip_name

    info = truth.load(tiny_dataset)
    seed, params = info["Seed"], make_params(info["Preset"], **info["Parameters"])
    template = load_template()
    grid = template_grid(template, params.voxel_size)
    spheres = [Sphere(tuple(c), params.radius_mm, k)
               for c, k in zip(params.centers, params.layers, strict=True)]
    _, _, planted = truth_maps(spheres, template, grid)
    clips = [tiny_dataset / "stimuli" / clip_name(i) for i in range(params.clips)]
    features = core._clip_features(clips, params.weights, info["Weights"]["sha256"],
                                   params.device)
    responses = core._responses(seed, "sub-01", params, planted, spheres, features,
                                LAYER_NAMES)
    start = params.tr / 2  # volume k stands for k TR + TR / 2 without slice-timing correction
    runs = []
    for run in range(1, params.runs + 1):
        schedule = run_schedule(rng_for(seed, "sub-01", "schedule", run), run - 1,
                                params.clips, params.clip_seconds, params.tr,
                                params.gap_seconds, params.lead_in_seconds,
                                params.rest_seconds)
        times = (np.arange(schedule.n_volumes) * params.tr + start)[:, None]
        signal = sample_timeline(responses, schedule, times.ravel())[:, :, None]
        signal = core._balance(signal, schedule, times)[:, :, 0].T  # volumes x voxels
        runs.append((signal, schedule))
    return runs, start, planted, spheres, grid, params


@pytest.fixture(scope="module")
def candidates(tiny_dataset):
    from bidsapp.audio import compute_features_many
    from bidsapp.rsa import candidate_rdms, canonical_stimulus_order, features_by_layer
    from bidsapp.simulate.stimuli import clip_name

    params = truth.load(tiny_dataset)["Parameters"]
    clips = [tiny_dataset / "stimuli" / clip_name(i) for i in range(params["clips"])]
    by_path = compute_features_many(clips, params["tr"], device="cpu")
    by_stim = {path.name: by_path[path] for path in clips}
    order = canonical_stimulus_order(by_stim)
    trs = {stim: next(iter(f.values())).shape[1] for stim, f in by_stim.items()}
    return candidate_rdms(features_by_layer(by_stim), order, params["tr"]), order, trs


def _ar1_noise(rng: np.random.Generator, shape: tuple[int, int], sd: float, a: float):
    """AR(1) noise along axis 0 with lag-one coefficient ``a`` and stationary sd ``sd``."""
    noise = rng.standard_normal(shape) * sd
    for k in range(1, shape[0]):
        noise[k] = a * noise[k - 1] + np.sqrt(1 - a * a) * noise[k]
    return noise


def _layer_correlations(planted_runs, candidates, snr: float | None):
    """Return r (spheres x layers) at the sphere centres, and the planted layers."""
    from bidsapp.rsa.neighbors import neighbors
    from bidsapp.rsa.searchlight import searchlight
    from bidsapp.rsa.timeseries import RunTrials, stacked_patterns
    from bidsapp.simulate.stimuli import clip_name

    rdms, order, trial_trs = candidates
    runs, start, planted, spheres, grid, params = planted_runs
    rng = np.random.default_rng(12345)
    trials = []
    for signal, schedule in runs:
        if snr:
            # The signal has unit sd within trials, so noise of sd 1 / SNR gives that SNR.
            signal = signal + _ar1_noise(rng, signal.shape, 1 / snr, params.ar_coefficient)
        trials.append(RunTrials(signal, schedule.onsets,
                                [clip_name(c) for c in schedule.clip_order], start))
    patterns, got_order = stacked_patterns(trials, trial_trs, params.tr)
    assert got_order == order
    mask = np.zeros(grid.shape, dtype=bool)
    mask[tuple(planted.ijk.T)] = True
    # stacked_patterns keeps the planted order; the searchlight numbers voxels in C order.
    flat = np.ravel_multi_index(tuple(planted.ijk.T), grid.shape)
    patterns = patterns[np.argsort(flat)]
    inv = np.linalg.inv(grid.affine)
    centres = [np.searchsorted(np.sort(flat), np.ravel_multi_index(
        tuple(np.round(inv[:3, :3] @ s.center + inv[:3, 3]).astype(int)), grid.shape))
        for s in spheres]
    r = searchlight(patterns.T, neighbors(mask, 100)[centres], rdms, device="cpu")
    return np.asarray(r), [s.layer for s in spheres]


@pytest.mark.parametrize("noise", [False, True], ids=["noiseless", "default-snr"])
def test_best_layer_is_the_planted_one_at_every_sphere(planted_runs, candidates, noise):
    params = planted_runs[-1]
    assert params.signal_model == "geometry"
    r, layers = _layer_correlations(planted_runs, candidates, params.snr if noise else None)
    for row, layer in zip(r, layers, strict=True):
        label = f"SNR {params.snr:g}" if noise else "noiseless"
        print(f"layer {layer} ({label}):",
              np.array2string(row, precision=3))
        ranked = np.argsort(row)[::-1]
        assert ranked[0] + 1 == layer, (layer, np.round(row, 3))
        assert row[ranked[0]] - row[ranked[1]] >= MARGIN, (layer, np.round(row, 3))


def test_signal_model_defaults_to_geometry_and_is_checked():
    from bidsapp.errors import UsageError
    from bidsapp.simulate.presets import make_params

    assert make_params("tiny").signal_model == "geometry"
    assert make_params("tiny", signal_model="mixture").signal_model == "mixture"
    with pytest.raises(UsageError, match="signal model"):
        make_params("tiny", signal_model="linear")


def test_cli_takes_the_signal_model(capsys):
    import json

    from bidsapp.simulate.cli import main

    assert main(["out", "--signal-model", "mixture", "--print-params"]) == 0
    assert json.loads(capsys.readouterr().out)["signal_model"] == "mixture"
