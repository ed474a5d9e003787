"""Permutation null of the max-over-layers statistic, per participant and across the group.

Testing the maximum of ten correlations against zero is biased upward: under the null
hypothesis the maximum of ten noisy, positively biased correlations is positive.  The
remedy is to compare the observed maximum with the maximum the same searchlight gives
when the correspondence between brain and stimuli is broken but everything else is
kept.  :func:`participant_null` builds that null for one participant by reordering whole
trials of the candidate RDMs; :func:`group_permutation_pvalues` combines the
participants' nulls into a group null of the mean maximum (Stelzer et al., 2013).  The
reasoning is in ``docs/statistics.md``.
"""

from __future__ import annotations

import inspect
import itertools
import math
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from bidsapp.errors import BadDataError
from bidsapp.labels import strip_prefix
from bidsapp.progress import Progress

SearchlightFn = Callable[..., np.ndarray]
"""``searchlight_fn(patterns (T, V), neighbors (n_centers, n), candidate_rdms (M, T, T))``
returning correlations of shape (n_centers, M), like :func:`bidsapp.rsa.searchlight`.  A
function that also takes an ``orders`` keyword (K, T), as :func:`bidsapp.rsa.searchlight`
does, is handed the permutations as TR orders and returns (n_centers, K * M)."""

DEFAULT_N_PERMUTATIONS = 100
"""Block permutations per participant; each costs one more pass of the candidate RDMs."""

DEFAULT_N_DRAWS = 10_000
"""Group-level draws of one null map per participant (fewer when all combinations fit)."""

EXACT = "trial-blocks"
"""Scheme that exchanges only trials of equal length: every trial boundary stays in place."""
FITTED = "fitted-trial-blocks"
"""Scheme that exchanges any trials, each cut or mirror-extended to the length of its slot."""
MIN_EXACT_ORDERS = 1000
"""Distinct equal-length reorderings below which :data:`FITTED` is used instead."""


class ParticipantNull(NamedTuple):
    """The permutation null of one participant.

    Attributes
    ----------
    max_r : numpy.ndarray
        Shape (n_permutations, n_centers), float32: per permutation and searchlight
        center, the maximum over layers of the correlation with the permuted candidates.
    block_orders : numpy.ndarray
        Shape (n_permutations, n_trials), int: row k lists, for each trial position, the
        trial whose candidate features were put there.
    observed : numpy.ndarray or None
        Shape (n_centers, L), float32: the searchlight's correlations with the candidates
        as given, when asked for with ``with_observed``; else None.
    scheme : str
        :data:`EXACT` or :data:`FITTED` (:func:`permutation_scheme`).
    """

    max_r: np.ndarray
    block_orders: np.ndarray
    observed: np.ndarray | None = None
    scheme: str = EXACT


def participant_seed(random_seed: int, subject: str) -> int:
    """Return a seed for one participant's permutations, stable across runs and machines.

    Parameters
    ----------
    random_seed : int
        The run's ``--random-seed``.
    subject : str
        The participant label, with or without ``sub-``.

    Returns
    -------
    int
        A 63-bit seed; participants get different permutations, reruns the same ones.
    """
    label = strip_prefix(subject).encode()
    return (int(random_seed) << 32 ^ zlib.crc32(label)) & (2**63 - 1)


def block_permutations(
    trial_lengths: Sequence[int], n_permutations: int, seed: int | np.random.Generator
) -> np.ndarray:
    """Draw random reorderings of whole trials that keep every trial boundary in place.

    Only trials of equal length are exchanged, so position i always holds a block of
    ``trial_lengths[i]`` TRs: the within-trial time structure (autocorrelation, the
    common response to a trial's start) stays aligned between the target and the
    permuted candidate RDMs, and only which stimulus fills a trial changes.  Trials are
    the exchangeability blocks of Winkler et al. (2014).

    Parameters
    ----------
    trial_lengths : sequence of int
        TRs of each stacked trial, in stacking order (after the dropped samples).
    n_permutations : int
        How many reorderings; drawn independently and uniformly, so a reordering (the
        identity included) may repeat, as a Monte Carlo permutation test allows.
    seed : int or numpy.random.Generator
        Seed of the draws.

    Returns
    -------
    numpy.ndarray
        Shape (n_permutations, n_trials), int64: ``order[k, i]`` is the trial whose
        candidate features fill position i in permutation k.

    Raises
    ------
    BadDataError
        If no two trials have the same length, so that no trial can move.
    """
    lengths = np.asarray(trial_lengths, dtype=np.int64)
    if lengths.ndim != 1 or lengths.size == 0 or np.any(lengths <= 0):
        raise ValueError(f"trial_lengths must be positive integers, not {trial_lengths!r}")
    groups = [np.flatnonzero(lengths == value) for value in np.unique(lengths)]
    if all(group.size < 2 for group in groups):
        raise BadDataError(
            f"No two trials have the same length (TRs per trial: {lengths.tolist()}), so "
            "whole trials cannot be permuted without moving trial boundaries",
            fix="cut the stimuli to a common length, or skip the permutation test "
                "(--n-permutations 0; the group level then runs the study's test only)",
        )
    rng = np.random.default_rng(seed)
    orders = np.tile(np.arange(lengths.size), (n_permutations, 1))
    for k in range(n_permutations):
        for group in groups:
            orders[k, group] = rng.permutation(group)
    return orders


def permutation_scheme(trial_lengths: Sequence[int]) -> str:
    """Choose how trials are reordered for the null, from their lengths alone.

    Trials of one length (the study's design) are exchanged as whole blocks
    (:data:`EXACT`, :func:`block_permutations`).  So are trials of several lengths when the
    equal-length groups still allow :data:`MIN_EXACT_ORDERS` distinct reorderings.
    Otherwise (whole songs of unequal length) any trial may fill any slot, cut or mirror-
    extended to the slot's length (:data:`FITTED`, :func:`fitted_index`); see
    ``docs/statistics.md``.

    Parameters
    ----------
    trial_lengths : sequence of int
        TRs of each stacked trial.

    Returns
    -------
    str
        :data:`EXACT` or :data:`FITTED`.
    """
    lengths = np.asarray(trial_lengths)
    if np.all(lengths == lengths[0]) or n_distinct_block_orders(lengths) >= MIN_EXACT_ORDERS:
        return EXACT
    return FITTED


def draw_orders(trial_lengths: Sequence[int], n_permutations: int,
                seed: int | np.random.Generator, scheme: str | None = None) -> np.ndarray:
    """Draw the trial reorderings of a null with the given (or the chosen) scheme.

    Parameters
    ----------
    trial_lengths : sequence of int
        TRs of each stacked trial.
    n_permutations : int
        How many reorderings, drawn independently and uniformly.
    seed : int or numpy.random.Generator
        Seed of the draws.
    scheme : str, optional
        :data:`EXACT` or :data:`FITTED`; by default :func:`permutation_scheme`'s choice.

    Returns
    -------
    numpy.ndarray
        (n_permutations, n_trials) int64: ``order[k, i]`` is the trial whose candidate
        features fill slot i in permutation k.  With trials of one length both schemes
        draw the same orders.
    """
    scheme = scheme or permutation_scheme(trial_lengths)
    if scheme == EXACT:
        return block_permutations(trial_lengths, n_permutations, seed)
    if scheme != FITTED:
        raise ValueError(f"Unknown permutation scheme {scheme!r}")
    n_trials = len(trial_lengths)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_trials) for _ in range(n_permutations)]).astype(
        np.int64).reshape(n_permutations, n_trials)


def fitted_index(trial_lengths: Sequence[int], block_order: Sequence[int]) -> np.ndarray:
    """Return the TR index that fills each trial's slot with another trial, fitted to it.

    Slot i keeps its place and length ``trial_lengths[i]``; it is filled from the start of
    trial ``block_order[i]``, which is cut when longer and extended by running it backwards
    from its end (mirror) when shorter, so that neighbouring TRs of a slot stay
    neighbouring TRs of one trial, as in the data.  With trials of one length this is
    :func:`block_index`.

    Parameters
    ----------
    trial_lengths : sequence of int
        TRs of each stacked trial, in the original order.
    block_order : sequence of int
        The trial that fills each slot (a row of :func:`draw_orders`).

    Returns
    -------
    numpy.ndarray
        Shape (T,), int64: column ``index[t]`` of the original features becomes column t;
        a TR may appear more than once and another not at all.
    """
    lengths = np.asarray(trial_lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    parts = []
    for slot, trial in enumerate(block_order):
        source = int(lengths[trial])
        steps = np.arange(lengths[slot])
        if source > 1:
            period = 2 * source - 2
            phase = steps % period
            steps = np.where(phase < source, phase, period - phase)
        else:
            steps = np.zeros_like(steps)
        parts.append(starts[trial] + steps)
    return np.concatenate(parts)


def n_distinct_block_orders(trial_lengths: Sequence[int]) -> int:
    """Return how many distinct reorderings :func:`block_permutations` can draw.

    Parameters
    ----------
    trial_lengths : sequence of int
        TRs of each stacked trial.

    Returns
    -------
    int
        The product over groups of equal-length trials of (group size)!.
    """
    _, counts = np.unique(np.asarray(trial_lengths), return_counts=True)
    return math.prod(math.factorial(int(c)) for c in counts)


def block_index(trial_lengths: Sequence[int], block_order: Sequence[int]) -> np.ndarray:
    """Return the TR index that puts the trials in ``block_order``.

    Parameters
    ----------
    trial_lengths : sequence of int
        TRs of each stacked trial, in the original order.
    block_order : sequence of int
        The trial to put at each position (a row of :func:`block_permutations`).

    Returns
    -------
    numpy.ndarray
        Shape (T,): column ``index[t]`` of the original features becomes column t, so a
        candidate RDM ``R`` becomes ``R[np.ix_(index, index)]``.
    """
    lengths = np.asarray(trial_lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in block_order])


def participant_null(
    patterns: np.ndarray,
    neighbors: np.ndarray,
    candidate_rdms: np.ndarray,
    trial_lengths: Sequence[int],
    n_permutations: int,
    seed: int | np.random.Generator,
    searchlight_fn: SearchlightFn,
    *,
    max_batch_bytes: int = 2**30,
    with_observed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ParticipantNull:
    """Compute one participant's null of the max-over-layers searchlight correlation.

    For each of ``n_permutations`` trial reorderings (:func:`draw_orders`, with the scheme
    of :func:`permutation_scheme`), the rows and columns of every candidate RDM are
    reordered by whole trials (fitted to their slots when lengths differ), the
    searchlight correlates them with the unchanged target RDMs, and the maximum over
    layers is kept.  Permutations are stacked as extra candidates, so the engine builds
    each target RDM once per batch.  An engine that takes TR ``orders`` gets them all in
    one batch and bounds its own memory (:func:`bidsapp.rsa.searchlight`'s ``memory``);
    for any other engine a batch holds at most ``max_batch_bytes`` of permuted T x T RDMs.

    Parameters
    ----------
    patterns : numpy.ndarray
        Shape (T, V): the stacked, z-scored TR patterns of the in-mask voxels.
    neighbors : numpy.ndarray
        Shape (n_centers, n): each searchlight's voxel indices into ``patterns``.
    candidate_rdms : numpy.ndarray
        Shape (L, T, T): one candidate RDM per layer, trials stacked as in ``patterns``.
    trial_lengths : sequence of int
        TRs of each stacked trial; they must sum to T.
    n_permutations : int
        Number of block permutations K (see ``DEFAULT_N_PERMUTATIONS``).
    seed : int or numpy.random.Generator
        Seed of the permutations, e.g. :func:`participant_seed`.
    searchlight_fn : callable
        The engine, ``searchlight_fn(patterns, neighbors, candidate_rdms) -> (n_centers,
        M)``; pass :func:`bidsapp.rsa.searchlight` (``functools.partial`` for ``device``).
        If it takes an ``orders`` keyword (see ``SearchlightFn``), the permutations are
        passed as TR orders, all in one call, so that the engine ranks each candidate once
        and builds each target RDM once.
    max_batch_bytes : int, optional
        Memory bound of the permuted RDMs passed to one call of an engine that does not
        take ``orders``.
    with_observed : bool, optional
        Also return the correlations with the candidates as given (the participant's
        maps), from the first batch: the engine then builds the target RDMs once for the
        maps and the null together.  They equal ``searchlight_fn(patterns, neighbors,
        candidate_rdms)``.
    progress : callable, optional
        Passed on to ``searchlight_fn`` when it takes a ``progress`` keyword: it is then
        called with numbers of centers that add up to ``n_centers`` in each batch (one
        with an engine that takes ``orders``).

    Returns
    -------
    ParticipantNull
        ``max_r`` (K, n_centers) float32, ``block_orders`` (K, n_trials) and, with
        ``with_observed``, ``observed`` (n_centers, L) float32.

    References
    ----------
    Nichols, T. E., Holmes, A. P. (2002). Nonparametric permutation tests for functional
    neuroimaging: a primer with examples. Human Brain Mapping 15(1), 1-25.
    https://doi.org/10.1002/hbm.1058
    """
    candidate_rdms = np.asarray(candidate_rdms)
    n_layers, n_tr = candidate_rdms.shape[0], candidate_rdms.shape[-1]
    if candidate_rdms.shape != (n_layers, n_tr, n_tr):
        raise ValueError(f"candidate_rdms must be (L, T, T), not {candidate_rdms.shape}")
    if np.shape(patterns)[0] != n_tr or int(np.sum(trial_lengths)) != n_tr:
        raise ValueError(
            f"patterns have {np.shape(patterns)[0]} TRs, the candidate RDMs {n_tr} and the "
            f"trials {int(np.sum(trial_lengths))}; all three must agree"
        )
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, not {n_permutations}")
    scheme = permutation_scheme(trial_lengths)
    orders = draw_orders(trial_lengths, n_permutations, seed, scheme)
    index_of = block_index if scheme == EXACT else fitted_index
    takes_orders = _takes_keyword(searchlight_fn, "orders")
    batch = n_permutations if takes_orders else _batch_size(
        n_layers * n_tr * n_tr * candidate_rdms.itemsize, n_permutations, max_batch_bytes)
    extra = {"progress": progress} if progress is not None and _takes_keyword(
        searchlight_fn, "progress") else {}
    n_centers = np.shape(neighbors)[0]
    max_r = np.empty((n_permutations, n_centers), dtype=np.float32)
    observed = None
    for start in range(0, n_permutations, batch):
        stop = min(start + batch, n_permutations)
        tr_orders = np.stack([index_of(trial_lengths, order) for order in orders[start:stop]])
        first = with_observed and start == 0
        if first:  # the identity order: the candidates as given
            tr_orders = np.concatenate([np.arange(n_tr)[None], tr_orders])
        if takes_orders:
            r = searchlight_fn(patterns, neighbors, candidate_rdms, orders=tr_orders, **extra)
        else:
            stacked = np.empty((len(tr_orders), n_layers, n_tr, n_tr),
                               dtype=candidate_rdms.dtype)
            for j, index in enumerate(tr_orders):
                stacked[j] = candidate_rdms[:, index][:, :, index]
            r = searchlight_fn(patterns, neighbors, stacked.reshape(-1, n_tr, n_tr), **extra)
        r = np.asarray(r).reshape(n_centers, len(tr_orders), n_layers)
        if first:
            observed, r = np.array(r[:, 0], dtype=np.float32), r[:, 1:]
        with np.errstate(invalid="ignore"):
            # A NaN layer (constant RDM) is skipped as in the observed maximum.
            max_r[start:stop] = np.nanmax(np.where(np.isnan(r), -np.inf, r), axis=2).T
    max_r[~np.isfinite(max_r)] = np.nan
    return ParticipantNull(max_r=max_r, block_orders=orders, observed=observed, scheme=scheme)


def _batch_size(per_permutation: int, n_permutations: int, max_batch_bytes: int) -> int:
    """Return the permutations per engine call whose candidates fit ``max_batch_bytes``."""
    return max(1, min(n_permutations, max_batch_bytes // per_permutation))


def _takes_keyword(searchlight_fn: SearchlightFn, keyword: str) -> bool:
    """Whether ``searchlight_fn`` accepts ``keyword`` (``orders``, ``progress``)."""
    try:
        return keyword in inspect.signature(searchlight_fn).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False


def _draw_indices(
    n_nulls: Sequence[int], n_draws: int, seed: int | np.random.Generator
) -> tuple[np.ndarray, bool]:
    """Return (draws, exhaustive): one null index per participant per draw."""
    total = math.prod(n_nulls)
    if total <= n_draws:
        grid = itertools.product(*(range(k) for k in n_nulls))
        return np.array(list(grid), dtype=np.int64).reshape(total, len(n_nulls)), True
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, k, size=n_draws) for k in n_nulls]), False


def group_permutation_pvalues(
    max_r: np.ndarray,
    null_max_r: Sequence[np.ndarray],
    n_draws: int = DEFAULT_N_DRAWS,
    seed: int | np.random.Generator = 0,
    *,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, int, bool]:
    """Return per-voxel p-values of the group-mean maximum against the permutation null.

    Each draw takes one null map per participant, at random and independently, and
    averages them; the p-value of a voxel is the fraction of draws whose mean reaches
    the observed mean, counting the observed itself: ``(1 + #{mean_b >= mean_obs}) /
    (1 + B)`` (Stelzer et al., 2013; Phipson and Smyth, 2010).  The null of each voxel is
    its own, so the upward bias of the maximum, and any bias of the correlations from
    temporal autocorrelation, is in the null as well as in the observed mean.

    Parameters
    ----------
    max_r : numpy.ndarray
        Shape (n_participants, n_voxels): observed max-over-layers correlations.
    null_max_r : sequence of numpy.ndarray
        One array per participant, shape (K_s, n_voxels): the null maps (``max_r`` of
        :func:`participant_null`).  K_s may differ between participants.
    n_draws : int, optional
        Number of random draws B.  When the product of the K_s is not larger, every
        combination is used once instead (an exact enumeration).
    seed : int or numpy.random.Generator, optional
        Seed of the draws.
    chunk_size : int, optional
        Voxels per block; memory is about ``4 * B * chunk_size`` bytes.

    Returns
    -------
    p : numpy.ndarray
        Shape (n_voxels,): p-values in [1 / (B + 1), 1]; NaN where a value is NaN.
    n_draws : int
        The number of draws B used.
    exhaustive : bool
        True when every combination of null maps was used.

    References
    ----------
    Stelzer, J., Chen, Y., Turner, R. (2013). Statistical inference and multiple testing
    correction in classification-based multi-voxel pattern analysis (MVPA): random
    permutations and cluster size control. NeuroImage 65, 69-82.
    https://doi.org/10.1016/j.neuroimage.2012.09.063

    Phipson, B., Smyth, G. K. (2010). Permutation p-values should never be zero.
    Statistical Applications in Genetics and Molecular Biology 9(1), 39.
    https://doi.org/10.2202/1544-6115.1585
    """
    max_r = np.asarray(max_r, dtype=np.float64)
    n_subjects, n_voxels = max_r.shape
    if len(null_max_r) != n_subjects:
        raise ValueError(f"{len(null_max_r)} null arrays for {n_subjects} participants")
    nulls = [np.asarray(a, dtype=np.float32) for a in null_max_r]
    for s, null in enumerate(nulls):
        if null.ndim != 2 or null.shape[1] != n_voxels or null.shape[0] < 1:
            raise ValueError(f"null {s} must be (K, {n_voxels}), not {null.shape}")
    draws, exhaustive = _draw_indices([a.shape[0] for a in nulls], n_draws, seed)
    observed = max_r.sum(axis=0)
    # Draws that equal the observed sum up to float32 rounding count as reaching it.
    tolerance = 1e-5 * n_subjects
    exceed = np.zeros(n_voxels, dtype=np.int64)
    progress = Progress(f"Group permutation test ({draws.shape[0]:,} draws of {n_subjects} "
                        "participants' nulls)", n_voxels, "voxels")
    for start in range(0, n_voxels, chunk_size):
        block = slice(start, min(start + chunk_size, n_voxels))
        total = np.zeros((draws.shape[0], block.stop - block.start), dtype=np.float32)
        for s, null in enumerate(nulls):
            total += null[:, block][draws[:, s]]
        exceed[block] = (total >= observed[block] - tolerance).sum(axis=0)
        progress.advance(block.stop - block.start)
    p = (1.0 + exceed) / (1.0 + draws.shape[0])
    undefined = ~np.isfinite(observed) | np.any([~np.isfinite(a).all(0) for a in nulls], axis=0)
    p[undefined] = np.nan
    return p, int(draws.shape[0]), exhaustive
