import numpy as np
import pytest
from scipy import stats

from bidsapp.stats import one_sample_ttest


@pytest.mark.parametrize("n", [2, 5, 12])
def test_matches_scipy_right_sided(n):
    rng = np.random.default_rng(n)
    x = rng.normal(0.02, 0.05, size=(n, 400)) + np.linspace(-0.05, 0.1, 400)
    t, p = one_sample_ttest(x)
    ref = stats.ttest_1samp(x, 0.0, axis=0, alternative="greater")
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-10, atol=1e-300)


def test_axis_and_popmean():
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 1.0, size=(50, 7))
    t, p = one_sample_ttest(x, popmean=0.25, axis=1)
    ref = stats.ttest_1samp(x, 0.25, axis=1, alternative="greater")
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-10)


def test_constant_and_nan_columns_like_scipy():
    x = np.zeros((6, 3))
    x[:, 1] = 1.0
    x[2, 2] = np.nan
    t, p = one_sample_ttest(x)
    assert np.isnan(t[0]) and np.isnan(p[0])
    assert t[1] == np.inf and p[1] == 0.0
    assert np.isnan(t[2]) and np.isnan(p[2])


def test_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        one_sample_ttest(np.ones((1, 4)))
