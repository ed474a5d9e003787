import functools
import importlib
import itertools

import numpy as np
import pytest

from bidsapp.errors import BadDataError
from bidsapp.rsa import searchlight
from bidsapp.stats import (
    block_index,
    block_permutations,
    group_permutation_pvalues,
    n_distinct_block_orders,
    participant_null,
    participant_seed,
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
    # bidsapp's engine takes the permutations as TR orders and ranks each candidate once; a
    # function without that keyword gets the permuted RDMs.  Same maxima, to the bit.
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
    np.testing.assert_array_equal(fast.max_r, slow.max_r)
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
        np.testing.assert_array_equal(null.max_r, fast.max_r)


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
