import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from bidsapp.rsa.rdm import candidate_rdms, features_by_layer, rdm
from bidsapp.rsa.stacking import stack_trials


def _reference(features):
    t = features.shape[1]
    out = np.empty((t, t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(t):
            for j in range(t):
                out[i, j] = 1 - spearmanr(features[:, i], features[:, j]).statistic
    return out


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_rdm_equals_a_spearmanr_loop(kind):
    rng = np.random.default_rng(3)
    if kind == "ties":
        features = rng.integers(0, 4, size=(12, 9)).astype(float)  # many ties per column
    else:
        features = rng.standard_normal((30, 11))
    np.testing.assert_allclose(rdm(features), _reference(features), atol=1e-6)


def test_rdm_properties_and_constant_patterns():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((20, 6))
    features[:, 2] = 1.0  # a TR where every unit has the same value
    result = rdm(features)
    reference = _reference(features)
    assert np.isnan(result[2]).all() and np.isnan(result[:, 2]).all()
    assert np.isnan(reference[2]).all()
    keep = [0, 1, 3, 4, 5]
    sub = result[np.ix_(keep, keep)]
    np.testing.assert_allclose(sub, reference[np.ix_(keep, keep)], atol=1e-6)
    np.testing.assert_array_equal(sub, sub.T)
    assert (np.diag(sub) == 0).all()
    assert (sub >= 0).all() and (sub <= 2).all()


def test_rdm_is_invariant_to_monotone_transforms_of_units():
    features = np.random.default_rng(1).standard_normal((25, 7))
    np.testing.assert_allclose(rdm(np.exp(features)), rdm(features), atol=1e-12)


def test_candidate_rdms_stack_each_layer_in_the_given_order():
    rng = np.random.default_rng(2)
    order = ["a.wav", "b.wav", "c.wav"]
    by_stimulus = {
        stim: {"conv1": rng.standard_normal((8, 12)), "fc": rng.standard_normal((5, 12))}
        for stim in reversed(order)
    }
    layers = features_by_layer(by_stimulus)
    assert list(layers) == ["conv1", "fc"]
    result = candidate_rdms(layers, order, tr=1.0)  # drops 6 of 12 TRs per trial
    assert result.shape == (2, 18, 18)
    expected = rdm(stack_trials(layers["fc"], order, 1.0))
    np.testing.assert_array_equal(result[1], expected)
    assert candidate_rdms(layers, order, 1.0, dtype=np.float32).dtype == np.float32


def test_rdm_rejects_non_matrices():
    with pytest.raises(ValueError):
        rdm(np.zeros(5))
