import numpy as np
import pytest
from scipy import stats

from bidsapp.stats import fdr_mask, fdr_threshold


def _p_values(seed, m=2000, signal=0.1):
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=m)
    k = int(signal * m)
    p[:k] = rng.uniform(0, 1e-3, size=k)  # some true effects
    p[k:k + 20] = p[0]  # ties
    return p


def _step_up_loop(p, q):
    """Benjamini-Hochberg written as the paper states it, one p-value at a time."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    m = len(p)
    k_max = 0
    for rank, i in enumerate(order, start=1):
        if p[i] <= rank * q / m:
            k_max = rank
    rejected = np.zeros(m, dtype=bool)
    for i in order[:k_max]:
        rejected[i] = True
    return rejected


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.05, 0.005, 0.2])
def test_matches_scipy_false_discovery_control(seed, q):
    p = _p_values(seed)
    expected = stats.false_discovery_control(p, method="bh") <= q
    np.testing.assert_array_equal(fdr_mask(p, q), expected)
    np.testing.assert_array_equal(fdr_mask(p, q), _step_up_loop(p, q))


@pytest.mark.parametrize("q", [0.05, 0.005])
def test_matches_statsmodels(q):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = _p_values(7)
    rejected, *_ = multitest.multipletests(p, alpha=q, method="fdr_bh")
    np.testing.assert_array_equal(fdr_mask(p, q), rejected)


def test_threshold_is_largest_rejected_p():
    p = _p_values(3)
    mask = fdr_mask(p, 0.05)
    assert fdr_threshold(p, 0.05) == p[mask].max()


def test_nan_is_untested_and_shape_is_kept():
    p = _p_values(1, m=1000).reshape(10, 10, 10)
    p_nan = p.copy()
    p_nan[0] = np.nan  # 100 untested voxels
    mask = fdr_mask(p_nan, 0.05)
    assert mask.shape == p.shape and not mask[0].any()
    finite = p_nan[1:].ravel()
    expected = stats.false_discovery_control(finite) <= 0.05
    np.testing.assert_array_equal(mask[1:].ravel(), expected)


def test_no_discovery_and_all_zero():
    p = np.linspace(0.5, 1.0, 50)
    assert fdr_threshold(p, 0.05) == 0.0 and not fdr_mask(p, 0.05).any()
    zeros = np.zeros(5)
    assert fdr_mask(zeros, 0.05).all()
    assert not fdr_mask(np.full(4, np.nan), 0.05).any()


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1])
def test_invalid_q(q):
    with pytest.raises(ValueError, match="between 0 and 1"):
        fdr_mask(np.array([0.01]), q)
