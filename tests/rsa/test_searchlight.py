import warnings
from fractions import Fraction

import numpy as np
import pytest
from scipy.linalg.lapack import ssfrk
from scipy.stats import pearsonr, rankdata, spearmanr

from bidsapp.rsa import _engine_numpy
from bidsapp.rsa._ranks import order_keys, pair_layout
from bidsapp.rsa.neighbors import neighbors
from bidsapp.rsa.searchlight import searchlight, shard_chunks
from bidsapp.stats import fitted_index

ENGINES = [pytest.param({"backend": "numpy"}, id="numpy"),
           pytest.param({"backend": "torch"}, id="torch-cpu")]


def _scipy_searchlight(patterns, nbrs, candidate_rdms, method="spearman"):
    """The definition, with scipy for every correlation: NaN where scipy gives NaN."""
    rows, cols = np.triu_indices(patterns.shape[0], k=1)
    compare = spearmanr if method == "spearman" else pearsonr
    out = np.empty((len(nbrs), len(candidate_rdms)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant inputs
        for center, sphere in enumerate(nbrs):
            sphere = sphere[sphere >= 0]
            target = 1 - spearmanr(patterns[:, sphere].astype(np.float64), axis=1).statistic
            for layer, candidate in enumerate(candidate_rdms):
                out[center, layer] = compare(target[rows, cols], candidate[rows, cols]).statistic
    return out


def _candidates(rng, n_trs, n_layers=3):
    """Continuous RDMs, plus a categorical one (3 values: heavy ties) as the second layer."""
    rdms = rng.random((n_layers, n_trs, n_trs))
    rdms = (rdms + rdms.transpose(0, 2, 1)) / 2
    clips = np.arange(n_trs) // 5
    rdms[1] = (clips[:, None] != clips[None, :]) + (np.abs(clips[:, None] - clips[None, :]) > 2)
    for rdm in rdms:
        np.fill_diagonal(rdm, 0)
    return rdms


def _patterns(rng, kind, n_trs, n_voxels):
    if kind == "float32":
        return rng.standard_normal((n_trs, n_voxels)).astype(np.float32)
    if kind == "float64":
        return rng.standard_normal((n_trs, n_voxels))
    if kind == "int16-narrow":  # tied voxel values in nearly every TR of every sphere
        return rng.integers(-6, 6, (n_trs, n_voxels)).astype(np.int16)
    if kind == "int16-wide":  # ties in some TRs of some spheres
        return rng.integers(-2000, 2000, (n_trs, n_voxels)).astype(np.int16)
    raise ValueError(kind)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["float32", "float64", "int16-narrow", "int16-wide"])
def test_matches_scipy_spearmanr(engine, kind):
    rng = np.random.default_rng(["float32", "float64", "int16-narrow", "int16-wide"].index(kind))
    n_trs, n_in_mask = 45, 300
    patterns = _patterns(rng, kind, n_trs, n_in_mask)
    nbrs = np.array([rng.choice(n_in_mask, 25, replace=False) for _ in range(30)])
    candidates = _candidates(rng, n_trs)
    result = searchlight(patterns, nbrs, candidates, device="cpu", chunk_size=7, **engine)
    assert result.dtype == np.float32 and result.shape == (30, 3)
    assert not np.isnan(result).any()
    np.testing.assert_allclose(result, _scipy_searchlight(patterns, nbrs, candidates), atol=1e-5,
                               rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n_orders", [2, 30])
def test_orders_equal_the_reordered_candidates(engine, n_orders):
    # 30 orders x 3 layers = 90 columns, or 2 x 3.  The gathered ranks are the ranks of the
    # reordered RDM, ties included: the same maps, but for the float32 sums of the numpy
    # engine's null product.
    rng = np.random.default_rng(21)
    n_trs, n_in_mask = 40, 200
    patterns = _patterns(rng, "int16-wide", n_trs, n_in_mask)
    nbrs = np.array([rng.choice(n_in_mask, 20, replace=False) for _ in range(75)])
    candidates = _candidates(rng, n_trs)
    orders = np.stack([rng.permutation(n_trs) for _ in range(n_orders)])
    result = searchlight(patterns, nbrs, candidates, device="cpu", orders=orders, **engine)
    reordered = np.concatenate([candidates[:, order][:, :, order] for order in orders])
    assert result.shape == (75, 3 * n_orders)
    np.testing.assert_allclose(
        result, searchlight(patterns, nbrs, reordered, device="cpu", **engine), atol=1e-6,
        rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_orders_that_repeat_trs_gather_the_ranks_of_the_original(engine):
    # Fitted orders of unequal trials repeat some TRs and leave out others: their columns hold
    # the original RDM's ranks where they were gathered, a TR paired with itself taking the
    # smallest (most similar); the map is the Pearson correlation of the target's ranks with
    # those values (docs/statistics.md).
    rng = np.random.default_rng(5)
    n_trs, n_in_mask = 40, 200
    patterns = _patterns(rng, "int16-wide", n_trs, n_in_mask)
    nbrs = np.array([rng.choice(n_in_mask, 20, replace=False) for _ in range(30)])
    candidates = _candidates(rng, n_trs)[[0, 2]]
    lengths = [4, 7, 9, 20]
    orders = np.stack([fitted_index(lengths, rng.permutation(4)) for _ in range(5)])
    assert any(len(np.unique(order)) < n_trs for order in orders)
    result = searchlight(patterns, nbrs, candidates, device="cpu", orders=orders, **engine)
    rows, cols = np.triu_indices(n_trs, k=1)
    expected = np.empty_like(result, dtype=np.float64)
    for center, sphere in enumerate(nbrs):
        target = 1 - spearmanr(patterns[:, sphere].astype(np.float64), axis=1).statistic
        for layer, candidate in enumerate(candidates):
            ranks = np.zeros((n_trs, n_trs))
            ranks[rows, cols] = rankdata(candidate[rows, cols])
            ranks += ranks.T
            np.fill_diagonal(ranks, ranks[rows, cols].min())
            for k, order in enumerate(orders):
                gathered = ranks[order][:, order][rows, cols]
                expected[center, k * 2 + layer] = pearsonr(rankdata(target[rows, cols]),
                                                           gathered).statistic
    np.testing.assert_allclose(result, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_pearson_option_matches_scipy_pearsonr(engine):
    rng = np.random.default_rng(7)
    patterns = _patterns(rng, "int16-wide", 40, 200)
    patterns[:, :100] = _patterns(rng, "float32", 40, 100)
    nbrs = np.array([rng.choice(200, 20, replace=False) for _ in range(16)])
    candidates = _candidates(rng, 40)
    result = searchlight(patterns, nbrs, candidates, device="cpu", method="pearson", **engine)
    np.testing.assert_allclose(result, _scipy_searchlight(patterns, nbrs, candidates, "pearson"),
                               atol=1e-5, rtol=0)


def _exact_map(patterns, sphere, candidate):
    """Spearman map value with the target RDM ranked in exact rational arithmetic."""
    ranks = 2 * rankdata(patterns[:, sphere], axis=1)  # doubled average ranks: integers
    ranks -= ranks.mean(axis=1, keepdims=True)
    gram = np.rint(ranks @ ranks.T).astype(np.int64)
    rows, cols = np.triu_indices(len(gram), k=1)
    norms = np.diag(gram)
    # rho = g / sqrt(d_i d_j): order by sign(g) g^2 / (d_i d_j), exactly.
    keys = [-Fraction(int(g) * abs(int(g)), int(norms[i]) * int(norms[j]))
            for g, i, j in zip(gram[rows, cols], rows, cols, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    target = np.empty(len(keys))
    start = 0
    while start < len(order):  # average ranks over runs of exactly equal keys
        stop = start
        while stop + 1 < len(order) and keys[order[stop + 1]] == keys[order[start]]:
            stop += 1
        target[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return np.corrcoef(target, rankdata(candidate[rows, cols]))[0, 1]


@pytest.mark.parametrize("engine", ENGINES)
def test_exact_ties_in_the_target_rdm(engine):
    # Narrow integer data make many TR pairs exactly equally (dis)similar.  scipy can split
    # such ties by rounding (it divides by two standard deviations in turn); the engines keep
    # them, so they agree with exact arithmetic far better than 1e-5.
    rng = np.random.default_rng(11)
    patterns = _patterns(rng, "int16-narrow", 30, 60)
    nbrs = np.array([rng.choice(60, 12, replace=False) for _ in range(6)])
    candidates = _candidates(rng, 30, 2)
    result = searchlight(patterns, nbrs, candidates, device="cpu", **engine)
    exact = [[_exact_map(patterns, s, c) for c in candidates] for s in nbrs]
    np.testing.assert_allclose(result, exact, atol=2e-7, rtol=0)


@pytest.mark.parametrize(("n_trs", "n_voxels"), [(60, 30), (496, 100)])
def test_counting_sort_ranks_are_exact(n_trs, n_voxels):
    # The counting-sort ranks of tie-free spheres equal scipy's rankdata of scipy's target RDM,
    # entry for entry, up to the study's size (where the Gram entries are largest).
    rng = np.random.default_rng(n_trs)
    patterns = rng.standard_normal((n_trs, 400)).astype(np.float32)
    keys = order_keys(patterns)
    work = _engine_numpy._Work(n_trs, n_voxels)
    layout = pair_layout(n_trs)
    for _ in range(2):
        sphere = rng.choice(400, n_voxels, replace=False)
        assert not _engine_numpy._voxel_ranks(keys, sphere, work)
        ssfrk(n_trs, n_voxels, 1.0, work.ranks.reshape(n_trs, n_voxels).T, 0.0, work.gram,
              trans="T", overwrite_c=1)
        row = np.empty(len(layout.rows))
        _engine_numpy._counting_ranks(work, row)
        target = 1 - spearmanr(patterns[:, sphere], axis=1).statistic
        pairs = layout.off_diagonal
        expected = 2 * rankdata(target[layout.rows[pairs], layout.cols[pairs]]) - (len(pairs) + 1)
        np.testing.assert_array_equal(row[pairs], expected)


def test_signed_zeros_are_ties():
    rng = np.random.default_rng(5)
    patterns = rng.standard_normal((20, 40)).astype(np.float32)
    patterns[:, :10] = 0.0
    patterns[::2, :5] = -0.0
    nbrs = np.array([np.arange(15), np.arange(3, 18)])
    candidates = _candidates(rng, 20)
    expected = _scipy_searchlight(patterns, nbrs, candidates)
    for engine in ("numpy", "torch"):
        np.testing.assert_allclose(searchlight(patterns, nbrs, candidates, device="cpu",
                                               backend=engine), expected, atol=1e-5, rtol=0)


def test_float64_values_that_float32_cannot_tell_apart():
    rng = np.random.default_rng(6)
    patterns = 1.0 + rng.integers(0, 5, (20, 30)) * 1e-12  # equal in float32, not in float64
    nbrs = np.array([np.arange(12), np.arange(15, 27)])
    candidates = _candidates(rng, 20)
    assert (patterns.astype(np.float32) == 1).all()
    np.testing.assert_allclose(searchlight(patterns, nbrs, candidates, device="cpu"),
                               _scipy_searchlight(patterns, nbrs, candidates), atol=1e-5, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_undefined_correlations_are_nan(engine):
    rng = np.random.default_rng(8)
    patterns = rng.standard_normal((20, 60)).astype(np.float32)
    patterns[4, :20] = 3.0  # TR 4 is constant over voxels 0-19
    nbrs = np.array([np.arange(15), np.arange(5, 20), np.arange(30, 45)])
    candidates = _candidates(rng, 20, 4)
    candidates[2] = 1.0  # constant candidate RDM
    candidates[3, 0, 5] = np.nan  # NaN in the upper triangle
    result = searchlight(patterns, nbrs, candidates, device="cpu", **engine)
    expected = _scipy_searchlight(patterns, nbrs, candidates)
    assert np.isnan(result[:2]).all()  # spheres with a constant TR: the target is undefined
    assert np.isnan(result[:, 2:]).all()
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_allclose(result[2, :2], expected[2, :2], atol=1e-5, rtol=0)


def test_constant_target_rdm_is_nan():
    # Every TR has the same voxel order: all TR pairs correlate perfectly.
    patterns = np.tile(np.arange(10, dtype=np.float32), (8, 1)) * np.arange(1, 9)[:, None]
    result = searchlight(patterns, np.arange(10)[None], _candidates(np.random.default_rng(0), 8),
                         device="cpu")
    assert np.isnan(result).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_padded_neighbourhoods_of_a_radius(engine):
    rng = np.random.default_rng(9)
    mask = rng.random((6, 6, 5)) < 0.6
    nbrs = neighbors(mask, radius=1.5)
    patterns = rng.standard_normal((25, mask.sum())).astype(np.float32)
    candidates = _candidates(rng, 25)
    result = searchlight(patterns, nbrs, candidates, device="cpu", **engine)
    expected = _scipy_searchlight(patterns, nbrs, candidates)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))  # 1-voxel spheres
    np.testing.assert_allclose(result, expected, atol=1e-5, rtol=0)


def test_threads_chunks_and_reruns_agree():
    rng = np.random.default_rng(10)
    patterns = _patterns(rng, "int16-wide", 30, 150)
    nbrs = np.array([rng.choice(150, 20, replace=False) for _ in range(40)])
    candidates = _candidates(rng, 30)
    first = searchlight(patterns, nbrs, candidates, device="cpu", n_jobs=1)
    for kwargs in ({"n_jobs": 2, "chunk_size": 3}, {"n_jobs": 2}, {"chunk_size": 1}):
        np.testing.assert_array_equal(searchlight(patterns, nbrs, candidates, device="cpu",
                                                  **kwargs), first)
    torch_result = searchlight(patterns, nbrs, candidates, device="cpu", backend="torch",
                               chunk_size=16)
    np.testing.assert_allclose(torch_result, first, atol=1e-6, rtol=0)


def test_agrees_with_rsatoolbox_searchlight():
    searchlight_module = pytest.importorskip("rsatoolbox.util.searchlight")
    from rsatoolbox.inference import eval_fixed
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs

    rng = np.random.default_rng(12)
    n_trs, n_clusters, size = 24, 4, 9
    # Disjoint, far-apart clusters of 9 voxels: each voxel's 9 nearest voxels are its cluster,
    # so ranking each cluster's voxels per TR once makes rsatoolbox's 'correlation' RDM (1 -
    # Pearson) of every searchlight the study's 1 - Spearman.
    mask = np.zeros((3, 3, 4 * n_clusters), dtype=bool)
    mask[:, :, ::4] = True
    nbrs = neighbors(mask, size)
    patterns = rng.standard_normal((n_trs, mask.sum())).astype(np.float32)
    candidates = _candidates(rng, n_trs)
    ranked = patterns.astype(np.float64)
    for cluster in np.unique(np.sort(nbrs, axis=1), axis=0):
        ranked[:, cluster] = rankdata(patterns[:, cluster], axis=1)
    rdms = searchlight_module.get_searchlight_RDMs(ranked, np.arange(len(nbrs)), list(nbrs),
                                                   np.arange(n_trs), verbose=False)
    # With 9 voxels, many TR pairs are exactly equally correlated; rsatoolbox's rounding (last
    # bit) splits some of these ties, which moves a Spearman over 276 pairs by ~1e-4 per tie.
    # Rounding its dissimilarities to 12 decimals restores them.
    rdms.dissimilarities = np.round(rdms.dissimilarities, 12)
    models = [ModelFixed(f"layer{i}", RDMs(c[None])) for i, c in enumerate(candidates)]
    evaluations = searchlight_module.evaluate_models_searchlight(rdms, models, eval_fixed,
                                                                 method="spearman")
    expected = np.array([np.ravel(e.evaluations) for e in evaluations])
    np.testing.assert_allclose(searchlight(patterns, nbrs, candidates, device="cpu"), expected,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("patterns", "nbrs", "candidates", "kwargs", "error", "match"),
    [
        (np.zeros(5), np.zeros((1, 2), int), np.zeros((1, 5, 5)), {}, ValueError, "2-D"),
        (np.zeros((2, 5)), np.zeros((1, 2), int), np.zeros((1, 2, 2)), {}, ValueError,
         "at least 3"),
        (np.full((4, 5), np.nan), np.zeros((1, 2), int), np.zeros((1, 4, 4)), {}, ValueError,
         "NaN"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 3, 3)), {}, ValueError, "match"),
        (np.zeros((4, 5)), np.zeros((1, 2)), np.zeros((1, 4, 4)), {}, ValueError, "integer"),
        (np.zeros((4, 5)), np.array([[0, 5]]), np.zeros((1, 4, 4)), {}, ValueError, "outside"),
        (np.zeros((4, 5)), np.array([[0, -1, 2]]), np.zeros((1, 4, 4)), {}, ValueError, "end"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)), {"method": "kendall"},
         ValueError, "method"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)), {"backend": "jax"},
         ValueError, "backend"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)), {"device": "tpu"},
         ValueError, "device"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)), {"n_jobs": 0},
         ValueError, "n_jobs"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)), {"chunk_size": 0},
         ValueError, "chunk_size"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)),
         {"device": "cuda", "backend": "numpy"}, ValueError, "numpy backend"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)),
         {"orders": np.zeros((2, 3), int)}, ValueError, "shape"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)),
         {"orders": np.zeros((2, 4))}, ValueError, "integers"),
        (np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)),
         {"orders": [[0, 1, 1, 4]]}, ValueError, "index the TRs"),
    ],
)
def test_errors(patterns, nbrs, candidates, kwargs, error, match):
    with pytest.raises(error, match=match):
        searchlight(patterns, nbrs, candidates, **kwargs)


def test_cuda_without_a_gpu_is_an_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA"):
        searchlight(np.zeros((4, 5)), np.zeros((1, 2), int), np.zeros((1, 4, 4)), device="cuda")


def test_auto_device_runs_on_this_machine():
    rng = np.random.default_rng(13)
    patterns = rng.standard_normal((12, 30)).astype(np.float32)
    nbrs = neighbors(np.ones((2, 3, 5), bool), 8)
    candidates = _candidates(rng, 12)
    np.testing.assert_allclose(searchlight(patterns, nbrs, candidates),
                               _scipy_searchlight(patterns, nbrs, candidates), atol=1e-5, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n_voxels", [300, 600])
def test_large_spheres(engine, n_voxels):
    # n > 255: the Gram matrix needs float64; n > ~460: the counting table would be too big and
    # every sphere takes the sorting path.
    rng = np.random.default_rng(n_voxels)
    patterns = rng.standard_normal((30, 700)).astype(np.float32)
    nbrs = np.array([rng.choice(700, n_voxels, replace=False) for _ in range(2)])
    candidates = _candidates(rng, 30)
    np.testing.assert_allclose(searchlight(patterns, nbrs, candidates, device="cpu", **engine),
                               _scipy_searchlight(patterns, nbrs, candidates), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("n_centers", "n_shards", "chunk_centers"), [
    (1000, 1, 300), (1000, 3, 300), (1000, 3, 100), (7, 3, 2), (5, 7, 200), (0, 2, 10),
])
def test_shards_cover_every_centre_once_in_order(n_centers, n_shards, chunk_centers):
    shards = [shard_chunks(n_centers, k, n_shards, chunk_centers) for k in range(n_shards)]
    chunks = [chunk for shard in shards for chunk in shard]
    # In order, contiguous, from 0 to n_centers, each chunk within the size bound.
    assert chunks[0][0] == 0 and chunks[-1][1] == n_centers
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(0 <= stop - start <= chunk_centers for start, stop in chunks)
    sizes = [shard[-1][1] - shard[0][0] for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    # A shard without centres is one empty chunk, not an empty list: its job still runs.
    assert all(shard == [(shard[0][0], shard[0][0])] for shard, size in zip(shards, sizes,
                                                                               strict=True)
               if size == 0)
    if n_shards == 1:  # the chunks of PreparePatterns
        assert chunks == [(s, min(s + chunk_centers, n_centers))
                          for s in range(0, n_centers, chunk_centers)] or n_centers == 0


def test_shard_index_out_of_range():
    with pytest.raises(ValueError, match="shard must be in"):
        shard_chunks(10, 3, 3)


@pytest.mark.parametrize("n_voxels", [100, 256, 257])
def test_torch_gram_type_holds_the_largest_rank_products_exactly(n_voxels):
    import torch

    from bidsapp.rsa._engine_torch import gram_dtype

    # The largest Gram entries: every TR holds the same voxel order, so an entry is the sum
    # of the n squared doubled centered ranks, n (n**2 - 1) / 3, at the edge of float32.
    dtype = gram_dtype(n_voxels)
    assert dtype == (torch.float32 if n_voxels <= 256 else torch.float64)
    ranks = torch.arange(n_voxels, dtype=torch.int64) * 2 - (n_voxels - 1)
    patterns = torch.stack([ranks, ranks.flip(0), ranks.roll(1)]).to(dtype)
    gram = patterns @ patterns.T
    exact = patterns.to(torch.int64) @ patterns.to(torch.int64).T
    assert torch.equal(gram.to(torch.int64), exact)
    assert int(exact[0, 0]) == n_voxels * (n_voxels**2 - 1) // 3


def test_gpu_chunks_are_sized_from_free_memory_and_t():
    from bidsapp.rsa._engine_torch import _MAX_BINS
    from bidsapp.rsa.searchlight import (
        DEVICE_BYTES_PER_PAIR,
        device_chunk_size,
        device_memory_need,
    )

    # The counting sort's three int64 arrays of bins are planned whatever T.
    assert device_memory_need(3, 1, 1) * 0.9 >= 3 * _MAX_BINS * 8
    gb = 2**30
    # The study's T fits the most centers a chunk takes; the naturalistic T about 600.
    assert device_chunk_size(496, 110_000, 10, 80 * gb) == 4096
    chunk = device_chunk_size(2416, 110_000, 10, 80 * gb)
    assert 500 < chunk < 700
    # The chunk's planned bytes stay inside 90% of the free memory, one more center does not.
    pairs = 2416 * 2415 // 2
    fixed = device_memory_need(2416, 110_000, 10) * 0.9 - DEVICE_BYTES_PER_PAIR * pairs
    assert fixed + chunk * DEVICE_BYTES_PER_PAIR * pairs <= 0.9 * 80 * gb
    assert fixed + (chunk + 1) * DEVICE_BYTES_PER_PAIR * pairs > 0.9 * 80 * gb
    # Less memory, more candidate columns or more TRs: fewer centers, never zero.
    assert device_chunk_size(2416, 110_000, 10, 24 * gb) < chunk
    assert device_chunk_size(2416, 110_000, 1000, 80 * gb) < chunk
    assert device_chunk_size(5000, 110_000, 10, 80 * gb) >= 1
    need = device_memory_need(10_000, 110_000, 10)
    assert device_chunk_size(10_000, 110_000, 10, need) == 1
    with pytest.raises(MemoryError, match="--device cpu"):
        device_chunk_size(10_000, 110_000, 10, need - 2**20)


def test_a_searchlight_too_large_for_the_gpu_stops_with_the_fix():
    from bidsapp.errors import UsageError
    from bidsapp.levels.participant import gpu_memory_error
    from bidsapp.rsa.searchlight import device_memory_need

    need = device_memory_need(8000, 60_000, 10)
    assert gpu_memory_error("01", "listen", 8000, 60_000, need) is None
    error = gpu_memory_error("01", "listen", 8000, 60_000, need - 1)
    assert isinstance(error, UsageError) and error.exit_code == 64
    assert "sub-01 task-listen" in str(error) and "T = 8000" in str(error)
    assert "--device cpu" in str(error)


def test_torch_null_in_passes_of_few_orders_equals_one_pass():
    # A memory budget below two orders' columns (the reordered block and the engine's copy of
    # its pairs) gives one order per pass; the maps must not depend on it.
    rng = np.random.default_rng(23)
    n_trs, n_in_mask = 30, 120
    patterns = _patterns(rng, "int16-wide", n_trs, n_in_mask)
    nbrs = np.array([rng.choice(n_in_mask, 15, replace=False) for _ in range(20)])
    candidates = _candidates(rng, n_trs)
    orders = np.stack([rng.permutation(n_trs) for _ in range(7)])
    one_pass = searchlight(patterns, nbrs, candidates, device="cpu", backend="torch",
                           orders=orders)
    per_order = n_trs * (n_trs + 1) // 2 * candidates.shape[0] * 8
    passes = searchlight(patterns, nbrs, candidates, device="cpu", backend="torch",
                         orders=orders, memory=2 * per_order + 1)
    np.testing.assert_array_equal(passes, one_pass)
