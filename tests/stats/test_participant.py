import numpy as np
import pytest

from bidsapp.stats import participant_permutation_test


def test_against_counting_by_hand():
    rng = np.random.default_rng(3)
    null = rng.normal(0.1, 0.02, (19, 50))
    observed = rng.normal(0.1, 0.02, 50)
    observed[7] = 0.5  # one voxel far beyond every permutation
    result = participant_permutation_test(observed, null, alpha=0.05)
    for v in range(50):
        count = sum(null[k, v] >= observed[v] for k in range(19))
        assert result.p_voxel[v] == pytest.approx((1 + count) / 20)
        assert result.debiased[v] == pytest.approx(observed[v] - null[:, v].mean())
    assert result.p_max == pytest.approx(1 / 20) and result.n_null_reaching_max == 0
    largest = np.sort(null.max(axis=1))
    assert result.fwe_threshold == largest[int(np.ceil(0.95 * 18))]
    assert result.beyond_null[7] and result.n_beyond == int((observed > largest[-1]).sum())


def test_null_data_is_not_beyond_its_null():
    rng = np.random.default_rng(4)
    draws = rng.normal(0.2, 0.05, (21, 300))  # every value positive: a biased raw map
    result = participant_permutation_test(draws[0], draws[1:])
    assert (draws[0] > 0).mean() > 0.99
    assert result.p_max > 0.05 and result.n_beyond == 0
    assert abs(result.debiased.mean()) < 0.01


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="null must be"):
        participant_permutation_test(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no permutations"):
        participant_permutation_test(np.zeros(3), np.zeros((0, 3)))
