import numpy as np
from scipy import stats

from bidsapp.stats import (
    fdr_mask,
    max_over_layers,
    permutation_statistics,
    study_statistics,
)


def test_study_statistics_follow_the_study():
    rng = np.random.default_rng(0)
    r = rng.normal(0.0, 0.05, size=(7, 10, 500))
    r[:, 4, :100] += 0.1  # layer 5 explains the first 100 voxels
    result = study_statistics(r, q=0.05)
    max_r, best = max_over_layers(r, axis=1)
    ref = stats.ttest_1samp(max_r, 0.0, axis=0, alternative="greater")
    np.testing.assert_allclose(result.t, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(result.p, ref.pvalue, rtol=1e-10)
    assert result.q_per_layer == 0.005
    np.testing.assert_array_equal(result.significant,
                                  stats.false_discovery_control(ref.pvalue) <= 0.005)
    np.testing.assert_allclose(result.mean_max_r, max_r.mean(axis=0))
    assert (result.modal_layer[:100] == 5).mean() > 0.9
    np.testing.assert_allclose(result.mean_layer, best.mean(axis=0))


def test_permutation_statistics():
    rng = np.random.default_rng(1)
    nulls = [rng.normal(0.1, 0.03, size=(40, 200)) for _ in range(5)]
    observed = np.stack([rng.normal(0.1, 0.03, size=200) for _ in range(5)])
    observed[:, :20] += 0.1
    result = permutation_statistics(observed, nulls, q=0.05, n_draws=2000, seed=0)
    assert result.significant[:20].all()
    assert result.significant[20:].mean() <= 0.05
    np.testing.assert_array_equal(result.significant, fdr_mask(result.p, 0.05))
    null_mean = np.stack([n.mean(axis=0) for n in nulls])
    np.testing.assert_allclose(result.debiased_max_r, (observed - null_mean).mean(axis=0))
    assert abs(result.debiased_max_r[20:].mean()) < 0.01  # the 0.1 bias is gone
