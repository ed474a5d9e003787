import numpy as np
import pytest

from bidsapp.stats import max_over_layers, mean_layer, modal_layer


def test_max_over_layers_matches_numpy():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(4, 10, 300))
    max_r, best = max_over_layers(r, axis=1)
    np.testing.assert_array_equal(max_r, r.max(axis=1))
    np.testing.assert_array_equal(best, r.argmax(axis=1) + 1)
    assert best.dtype == np.int16


def test_nan_layers_are_skipped_and_ties_go_shallow():
    r = np.array([[0.1, np.nan, np.nan, 0.3],
                  [0.2, 0.1, np.nan, 0.3],
                  [0.2, np.nan, np.nan, 0.1]])  # layers x voxels
    max_r, best = max_over_layers(r, axis=0)
    np.testing.assert_array_equal(best, [2, 2, 0, 1])
    np.testing.assert_allclose(max_r, [0.2, 0.1, np.nan, 0.3])


def test_mean_layer_ignores_unassigned():
    best = np.array([[1, 0, 10], [3, 0, 0], [5, 0, 1]])
    np.testing.assert_allclose(mean_layer(best), [3.0, 0.0, 5.5])


def test_modal_layer_counts_and_tie_breaks():
    best = np.array([[2, 4, 0, 7],
                     [2, 5, 0, 8],
                     [3, 4, 0, 9],
                     [3, 5, 0, 9]])
    # voxel 0: tie 2 vs 3; voxel 1: tie 4 vs 5; voxel 3: 9 wins outright
    np.testing.assert_array_equal(modal_layer(best, 10), [2, 4, 0, 9])
    mean_r = np.zeros((10, 4))
    mean_r[2, 0] = 0.5  # layer 3 has the higher group-mean r at voxel 0
    mean_r[3, 1] = 0.5  # layer 4 at voxel 1
    mean_r[7, 3] = 0.9  # no tie at voxel 3: the count wins, not the mean
    np.testing.assert_array_equal(modal_layer(best, 10, mean_r), [3, 4, 0, 9])


def test_modal_layer_shape_checks():
    with pytest.raises(ValueError):
        modal_layer(np.ones(5, int), 10)
    with pytest.raises(ValueError):
        modal_layer(np.ones((3, 5), int), 10, mean_r=np.zeros((9, 5)))
