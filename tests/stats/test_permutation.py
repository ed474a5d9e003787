import functools
import importlib
import itertools

import numpy as np
import pytest

from bidsapp.errors import BadDataError
from bidsapp.rsa import searchlight
from bidsapp.stats import (
    EXACT,
    FITTED,
    block_index,
    block_permutations,
    draw_orders,
    fitted_index,
    group_permutation_pvalues,
    n_distinct_block_orders,
    participant_null,
    participant_seed,
    permutation_scheme,
    permutation_statistics,
    study_statistics,
)


def test_block_permutations_exchange_only_equal_lengths():
    lengths = [5, 5, 3, 5, 3, 7]
    orders = block_permutations(lengths, 200, seed=1)
    assert orders.shape == (200, 6)
    for order in orders:
        assert sorted(order) == list(range(6))
        np.testing.assert_array_equal(np.take(lengths, order), lengths)
    assert (orders[:, 5] == 5).all()  # the only 7-TR trial cannot move
    assert len({tuple(o) for o in orders}) == n_distinct_block_orders(lengths) == 3 * 2 * 2
    np.testing.assert_array_equal(orders, block_permutations(lengths, 200, seed=1))
    assert not np.array_equal(orders, block_permutations(lengths, 200, seed=2))


def test_block_permutations_need_two_equal_trials():
    with pytest.raises(BadDataError, match="No two trials have the same length"):
        block_permutations([3, 4, 5], 10, seed=0)
    with pytest.raises(ValueError):
        block_permutations([3, 0, 3], 10, seed=0)


def test_block_index_permutes_rdms_like_features(synthetic):
    rng = np.random.default_rng(0)
    lengths = [4, 4, 4, 4]
    features = rng.normal(size=(20, 16))
    order = [2, 0, 3, 1]
    index = block_index(lengths, order)
    np.testing.assert_array_equal(index[:4], [8, 9, 10, 11])
    rdm = synthetic.rdm(features)
    np.testing.assert_allclose(synthetic.rdm(features[:, index]), rdm[np.ix_(index, index)],
                               atol=1e-12)


def test_participant_seed_is_stable_and_per_subject():
    assert participant_seed(0, "sub-01") == participant_seed(0, "01")
    assert participant_seed(0, "01") != participant_seed(0, "02")
    assert participant_seed(0, "01") != participant_seed(1, "01")
    assert 0 <= participant_seed(2**40, "x") < 2**63


@pytest.fixture(scope="module")
def small_participant(synthetic):
    design = synthetic.Design(shape=(8, 8, 8), n_trials=4, n_neighbors=9)
    rng = np.random.default_rng(3)
    features = synthetic.simulate_features(design, rng)
    patterns = synthetic.simulate_participant(design, features, rng)
    candidates = np.stack([synthetic.rdm(np.concatenate([t[:, design.n_drop:] for t in f],
                                                        axis=1)) for f in features])
    neighbors = synthetic.nearest_neighbors(design.mask(), design.n_neighbors)
    return design, patterns, neighbors, candidates


def test_participant_null_is_the_max_over_permuted_candidates(synthetic, small_participant):
    design, patterns, neighbors, candidates = small_participant
    null = participant_null(patterns, neighbors, candidates, design.trial_lengths, 6, 11,
                            synthetic.reference_searchlight)
    assert null.max_r.shape == (6, len(neighbors)) and null.max_r.dtype == np.float32
    for k, order in enumerate(null.block_orders):
        index = block_index(design.trial_lengths, order)
        permuted = candidates[:, index][:, :, index]
        expected = synthetic.reference_searchlight(patterns, neighbors, permuted).max(axis=1)
        np.testing.assert_allclose(null.max_r[k], expected, atol=1e-6)
    # Batches bounded by memory give the same result, and the seed fixes everything.
    small = participant_null(patterns, neighbors, candidates, design.trial_lengths, 6, 11,
                             synthetic.reference_searchlight, max_batch_bytes=1)
    np.testing.assert_array_equal(small.max_r, null.max_r)
    np.testing.assert_array_equal(small.block_orders, null.block_orders)


def test_participant_null_hands_the_engine_tr_orders(small_participant):
    # bidsapp's engine takes the permutations as TR orders, all in one call, and ranks each
    # candidate once; a function without that keyword gets the permuted RDMs in batches.
    # Same maxima but for the float32 sums of the engine's null product; the same maps.
    design, patterns, neighbors, candidates = small_participant
    engine = functools.partial(searchlight, device="cpu")
    calls = []

    def explicit(p, n, c):
        calls.append(len(c))
        return searchlight(p, n, c, device="cpu")

    args = (design.trial_lengths, 9, 5)
    fast = participant_null(patterns, neighbors, candidates, *args, engine)
    slow = participant_null(patterns, neighbors, candidates, *args, explicit,
                            max_batch_bytes=4 * candidates.nbytes)
    assert calls == [4 * len(candidates)] * 2 + [len(candidates)]  # batches of 4, 4, 1
    np.testing.assert_allclose(fast.max_r, slow.max_r, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(fast.block_orders, slow.block_orders)
    assert fast.observed is None and slow.observed is None

    # With the maps: the identity order joins the first batch; the null does not change.
    maps = searchlight(patterns, neighbors, candidates, device="cpu")
    calls.clear()
    both = [participant_null(patterns, neighbors, candidates, *args, fn, with_observed=True,
                             max_batch_bytes=4 * candidates.nbytes) for fn in (engine, explicit)]
    assert calls == [5 * len(candidates), 4 * len(candidates), len(candidates)]
    for null in both:
        np.testing.assert_array_equal(null.observed, maps)
        np.testing.assert_allclose(null.max_r, fast.max_r, atol=1e-6, rtol=0)


def test_participant_null_in_chunks_of_centers(synthetic, small_participant):
    design, patterns, neighbors, candidates = small_participant
    args = (candidates, design.trial_lengths, 5, 7, synthetic.reference_searchlight)
    whole = participant_null(patterns, neighbors, *args)
    half = len(neighbors) // 2
    parts = [participant_null(patterns, neighbors[:half], *args),
             participant_null(patterns, neighbors[half:], *args)]
    np.testing.assert_array_equal(parts[0].block_orders, parts[1].block_orders)
    np.testing.assert_allclose(np.concatenate([p.max_r for p in parts], axis=1), whole.max_r,
                               atol=1e-6)


def test_participant_null_checks_shapes(synthetic, small_participant):
    design, patterns, neighbors, candidates = small_participant
    with pytest.raises(ValueError, match="must agree"):
        participant_null(patterns, neighbors, candidates, [3, 3], 2, 0,
                         synthetic.reference_searchlight)
    with pytest.raises(ValueError, match="at least 1"):
        participant_null(patterns, neighbors, candidates, design.trial_lengths, 0, 0,
                         synthetic.reference_searchlight)


def test_participant_null_with_the_app_engine(synthetic, small_participant):
    engine = importlib.import_module("bidsapp.rsa.searchlight").searchlight
    design, patterns, neighbors, candidates = small_participant
    ours = participant_null(patterns, neighbors, candidates, design.trial_lengths, 4, 5,
                            lambda p, n, c: engine(p, n, c, device="cpu"))
    reference = participant_null(patterns, neighbors, candidates, design.trial_lengths, 4, 5,
                                 synthetic.reference_searchlight)
    np.testing.assert_allclose(ours.max_r, reference.max_r, atol=1e-4)


def test_group_pvalues_exhaustive_match_brute_force():
    rng = np.random.default_rng(0)
    observed = rng.normal(0.1, 0.05, size=(3, 40))
    nulls = [rng.normal(0.05, 0.05, size=(k, 40)) for k in (4, 3, 5)]
    p, used, exhaustive = group_permutation_pvalues(observed, nulls, n_draws=1000)
    assert exhaustive and used == 60
    sums = np.array([sum(nulls[s][k[s]] for s in range(3))
                     for k in itertools.product(range(4), range(3), range(5))])
    expected = (1 + (sums >= observed.sum(axis=0) - 1e-9).sum(axis=0)) / 61
    np.testing.assert_allclose(p, expected)


def test_group_pvalues_monte_carlo():
    rng = np.random.default_rng(1)
    nulls = [rng.normal(0.0, 0.05, size=(50, 30)) for _ in range(6)]
    observed = np.stack([n[0] for n in nulls])  # exchangeable with the nulls
    observed[:, :5] += 1.0  # strong effects
    observed[0, 29] = np.nan
    p, used, exhaustive = group_permutation_pvalues(observed, nulls, n_draws=999, seed=4)
    assert not exhaustive and used == 999
    np.testing.assert_allclose(p[:5], 1 / 1000)
    assert np.isnan(p[29])
    assert np.all((p[5:29] >= 1 / 1000) & (p[5:29] <= 1))
    again, *_ = group_permutation_pvalues(observed, nulls, n_draws=999, seed=4)
    np.testing.assert_array_equal(p, again)


def test_group_pvalues_shape_checks():
    with pytest.raises(ValueError):
        group_permutation_pvalues(np.zeros((2, 5)), [np.zeros((3, 5))])
    with pytest.raises(ValueError):
        group_permutation_pvalues(np.zeros((2, 5)), [np.zeros((3, 5)), np.zeros((3, 4))])


def test_same_random_seed_gives_identical_maps_and_null(small_participant):
    # --random-seed reproducibility: the maps are deterministic, the null depends on the
    # seed only (through participant_seed), bit for bit.
    from bidsapp.rsa.searchlight import searchlight

    design, patterns, neighbors, candidates = small_participant

    def run(seed):
        maps = searchlight(patterns, neighbors, candidates, device="cpu")
        null = participant_null(patterns, neighbors, candidates, design.trial_lengths, 6,
                                participant_seed(seed, "01"),
                                lambda p, n, c: searchlight(p, n, c, device="cpu"))
        return maps, null

    (maps_a, null_a), (maps_b, null_b) = run(7), run(7)
    np.testing.assert_array_equal(maps_a, maps_b)
    np.testing.assert_array_equal(null_a.max_r, null_b.max_r)
    np.testing.assert_array_equal(null_a.block_orders, null_b.block_orders)
    other = run(8)[1]
    assert not np.array_equal(other.block_orders, null_a.block_orders)


#: Whole songs of unequal length, as in OpenNeuro ds004007 (seconds / TR, made unequal).
UNEQUAL = [12, 13, 15, 17, 19, 20, 22, 25]


def test_scheme_follows_the_trial_lengths():
    assert permutation_scheme([10] * 16) == EXACT  # the study's design
    assert permutation_scheme([10] * 8 + [12] * 8) == EXACT  # 8! * 8! equal-length orders
    assert permutation_scheme(np.repeat([89, 90, 134, 135, 179, 180, 224, 225], 2)) == FITTED
    assert permutation_scheme(UNEQUAL) == FITTED


def test_fitted_orders_are_deterministic_and_equal_the_exact_ones_for_equal_trials():
    a = draw_orders(UNEQUAL, 25, 7)
    np.testing.assert_array_equal(a, draw_orders(UNEQUAL, 25, 7))
    assert not np.array_equal(a, draw_orders(UNEQUAL, 25, 8))
    assert all(sorted(row) == list(range(len(UNEQUAL))) for row in a)
    assert len({tuple(row) for row in a}) > 20  # any trial may move, not only equal ones
    equal = [9] * 6
    np.testing.assert_array_equal(draw_orders(equal, 10, 3, FITTED),
                                  block_permutations(equal, 10, 3))
    for order in block_permutations(equal, 10, 3):
        np.testing.assert_array_equal(fitted_index(equal, order), block_index(equal, order))


@pytest.mark.parametrize("seed", range(5))
def test_fitted_index_keeps_every_trial_boundary(seed):
    order = np.random.default_rng(seed).permutation(len(UNEQUAL))
    index = fitted_index(UNEQUAL, order)
    starts = np.concatenate([[0], np.cumsum(UNEQUAL)[:-1]])
    assert len(index) == sum(UNEQUAL)
    for slot, trial in enumerate(order):
        part = index[starts[slot]:starts[slot] + UNEQUAL[slot]]
        # The slot keeps its place and length, is filled from the start of one trial...
        assert part[0] == starts[trial]
        assert part.min() >= starts[trial] and part.max() < starts[trial] + UNEQUAL[trial]
        # ...cut, or run backwards from its end: neighbours stay neighbours.
        assert np.all(np.abs(np.diff(part)) == 1)
        n = min(UNEQUAL[slot], UNEQUAL[trial])
        np.testing.assert_array_equal(part[:n], starts[trial] + np.arange(n))


def test_null_of_unequal_trials_runs_with_the_app_engine(synthetic):
    design = synthetic.Design(shape=(8, 8, 8), n_trials=len(UNEQUAL),
                              trial_seconds=tuple(1.5 * (n + 4) for n in UNEQUAL))
    assert design.trial_lengths == UNEQUAL
    rng = np.random.default_rng(0)
    features = synthetic.simulate_features(design, rng)
    candidates = np.stack([synthetic.rdm(np.concatenate(
        [t[:, design.n_drop:] for t in synthetic.cut(design, layer)], axis=1))
        for layer in features])
    patterns = synthetic.simulate_participant(design, features, rng)
    nbrs = synthetic.nearest_neighbors(design.mask(), 19)
    engine = functools.partial(searchlight, device="cpu")
    null = participant_null(patterns, nbrs, candidates, UNEQUAL, 6, 11, engine)
    again = participant_null(patterns, nbrs, candidates, UNEQUAL, 6, 11, engine)
    assert null.scheme == FITTED and null.max_r.shape == (6, len(nbrs))
    np.testing.assert_array_equal(null.max_r, again.max_r)
    # The engine correlates with the gathered ranks, not ranked again (docs/statistics.md):
    # close to Spearman on the fitted RDMs, which ranks them again, but not equal.
    reference = participant_null(patterns, nbrs, candidates, UNEQUAL, 6, 11,
                                 synthetic.reference_searchlight)
    difference = np.abs(null.max_r - reference.max_r)
    assert 1e-5 < difference.max() < 0.01, difference.max()


def test_null_of_unequal_trials_is_calibrated(synthetic):
    """On null data with unequal trials, p < 0.05 in at most about 5% of voxels."""
    design = synthetic.Design(shape=(10, 10, 10), n_trials=len(UNEQUAL),
                              trial_seconds=tuple(1.5 * (n + 4) for n in UNEQUAL),
                              **synthetic.SCENARIOS["autocorrelated+onset"])
    data = synthetic.simulate_group(design, n_subjects=5, n_permutations=20, seed=31)
    study = study_statistics(data["r"], 0.05)
    perm = permutation_statistics(study.max_r, list(data["null"]), 0.05, n_draws=2000, seed=0)
    assert study.significant.mean() > 0.5  # the maximum's bias is there...
    assert perm.significant.mean() <= 0.05  # ...and the fitted null removes it
    assert np.mean(perm.p < 0.05) < 0.15  # roughly uniform p-values, as for equal trials


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fitted_null_keeps_false_positives_at_or_below_nominal(synthetic, monkeypatch):
    """12 null data sets of 8 unequal trials (the onset scenario): docs/statistics.md's table.

    Side by side, exchanging the unequal trials as whole blocks (their boundaries move)
    gives false positives far above nominal: the reason for fitting them to their slots.
    """
    import bidsapp.stats.permutation as permutation

    def rates():
        rows = []
        for rep in range(12):
            design = synthetic.Design(shape=(10, 10, 10), n_trials=len(UNEQUAL),
                                      trial_seconds=tuple(1.5 * (n + 4) for n in UNEQUAL),
                                      **synthetic.SCENARIOS["autocorrelated+onset"])
            data = synthetic.simulate_group(design, n_subjects=5, n_permutations=20,
                                            seed=100 + 7 * rep)
            study = study_statistics(data["r"], 0.05)
            perm = permutation_statistics(study.max_r, list(data["null"]), 0.05,
                                          n_draws=2000, seed=rep)
            rows.append((perm.significant.mean(), perm.significant.any(),
                         np.mean(perm.p < 0.05)))
        return np.mean(rows, axis=0)

    fitted = rates()
    monkeypatch.setattr(permutation, "fitted_index", permutation.block_index)
    moved = rates()
    print(f"\nfitted: voxel FPR {fitted[0]:.4f}, family-wise {fitted[1]:.2f}, p < 0.05 in "
          f"{fitted[2]:.4f}; whole blocks moved: {moved[0]:.4f}, {moved[1]:.2f}, {moved[2]:.4f}")
    assert fitted[0] <= 0.05 and fitted[1] <= 0.15 and fitted[2] <= 0.06
    assert moved[2] > 3 * fitted[2]
