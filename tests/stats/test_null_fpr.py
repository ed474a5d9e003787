"""False positives of the study's test and of the permutation test on synthetic data.

The data (``synthetic.py``) imitate the study's pipeline with the temporal
autocorrelation of BOLD and of HRF-convolved features; see ``docs/statistics.md`` for
the measured table that the slow test reproduces.  Planted layers are tested through the
group level in ``tests/workflows/test_group.py``.
"""

import numpy as np
import pytest

from bidsapp.stats import permutation_statistics, study_statistics

Q = 0.05


def test_study_test_is_biased_and_permutation_test_is_not_on_null_data(synthetic):
    design = synthetic.Design(shape=(10, 10, 10), **synthetic.SCENARIOS["autocorrelated"])
    data = synthetic.simulate_group(design, n_subjects=5, n_permutations=20, seed=21)
    study = study_statistics(data["r"], Q)
    perm = permutation_statistics(study.max_r, list(data["null"]), Q, n_draws=2000, seed=0)
    # Every layer's correlation is positive without any effect (the study's Fig. 6 bias)...
    assert np.mean(data["r"]) > 0.02
    # ...so the study's test finds "effects" almost everywhere; the permutation test not.
    assert study.significant.mean() > 0.5
    assert perm.significant.mean() <= Q
    assert np.mean(perm.p < 0.05) < 0.15  # roughly uniform p-values


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scenario", ["white", "autocorrelated", "autocorrelated+onset"])
def test_false_positive_rates_side_by_side(synthetic, scenario):
    """20 null data sets, 7 participants (as in the study), 50 permutations: one table row."""
    rows = synthetic.null_fpr(scenario, n_reps=20, n_subjects=7, n_permutations=50, q=Q,
                              seed=11)
    row = {key: np.mean([r[key] for r in rows]) for key in rows[0] if key not in ("scenario",
                                                                                  "rep")}
    print(f"\n{scenario}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    assert row["perm_fpr"] <= Q
    assert row["perm_any"] <= 0.15  # the FDR under the complete null, from 20 data sets
    assert row["study_fpr"] > row["perm_fpr"]
