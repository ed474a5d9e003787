"""Searchlight RSA on arrays: target RDM per sphere, correlated with every candidate RDM.

For each center, the target RDM is ``1 - Spearman`` correlation between the sphere's TR
patterns, and the map value is the Spearman correlation between its upper triangle and each
candidate RDM's (average ranks for ties, as :func:`scipy.stats.spearmanr`).  The method, tie
handling and performance are described in ``docs/searchlight.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bidsapp.device import resolve_device_name

from ._engine_numpy import TILE_PAIRS, run_numpy, run_numpy_orders
from ._engine_torch import COUNTING_BYTES
from ._ranks import order_keys, permuted_candidates, prepare_candidates, reorder_columns
from .neighbors import PAD

__all__ = ["device_chunk_size", "device_memory_need", "estimate_memory", "null_engine_memory",
           "null_stack_rows", "searchlight"]

_METHODS = ("spearman", "pearson")
_BACKENDS = ("numpy", "torch")
# Default centers per task: ~0.3 s of work for a numpy thread; on CUDA, the chunk is sized
# from the GPU's free memory (device_chunk_size).
_CPU_CHUNK = 128
_TORCH_CPU_CHUNK = 32
#: GPU bytes a chunk of the torch engine holds per center and per TR pair at its peak, an
#: upper bound: 25.5 were measured at T = 496 (peak 3.7 GB at 512 centers, 27.7 GB at 8,192,
#: H200) with float64 Gram matrices; the counting sort's temporaries of a group of spheres
#: and the float64 squares of the norms add up to about 36 in the worst case.
DEVICE_BYTES_PER_PAIR = 40
#: Share of the free GPU memory that chunks are planned in (the rest: fragmentation).
_DEVICE_PLANNED = 0.9
#: Most centers per GPU chunk: beyond ~1,000 the time no longer falls (docs/searchlight.md).
_MAX_CUDA_CHUNK = 4096


def searchlight(
    patterns: ArrayLike,
    neighbors: ArrayLike,
    candidate_rdms: ArrayLike,
    *,
    device: Any = "auto",
    backend: str | None = None,
    chunk_size: int | None = None,
    n_jobs: int | None = None,
    method: str = "spearman",
    orders: ArrayLike | None = None,
    progress: Callable[[int], None] | None = None,
    memory: int | None = None,
) -> np.ndarray:
    """Correlate every sphere's target RDM with each candidate RDM.

    Parameters
    ----------
    patterns : array_like
        Shape (T, V): T TRs by the V in-mask voxels (C order, as :func:`neighbors` numbers them).
        Finite values of any real dtype; ties between voxels get average ranks.
    neighbors : array_like of int
        Shape (n_centers, n): each row the in-mask voxel indices of one sphere, as returned by
        :func:`bidsapp.rsa.neighbors`.  Rows may end in -1 padding (radius mode); spheres of
        different sizes are then processed group by group.
    candidate_rdms : array_like
        Shape (L, T, T): one candidate RDM per layer, TRs in the order of `patterns`.  Only the
        strict upper triangle (``k=1``) is read.
    device : str or torch.device, default 'auto'
        'cpu', 'cuda' (or 'cuda:N'), or 'auto': CUDA when torch sees a GPU, else CPU.
    backend : {'numpy', 'torch'}, optional
        Engine.  Default: 'torch' on CUDA, 'numpy' on CPU.  ``backend='torch', device='cpu'``
        runs the CUDA engine's code on CPU tensors (slow; for testing and for machines without
        a BLAS-backed numpy).
    chunk_size : int, optional
        Centers per task.  Defaults: numpy, up to 128 (a task per thread at a time); torch,
        32 on CPU and, on CUDA, as many as the GPU's free memory holds
        (:func:`device_chunk_size`, at most 4,096: 4,096 at T = 496 on an 80 GB GPU, 637
        at T = 2,416).
    n_jobs : int, optional
        CPU threads for the numpy backend, each running single-threaded BLAS.  Default: all
        cores this process may use; -1 means the same.
    method : {'spearman', 'pearson'}, default 'spearman'
        How the target RDM is compared with each candidate: Spearman (the study's) or Pearson
        between upper triangles.  Pearson skips ranking the target RDM; it is faster but it is
        not what the study computed.  The target RDM is ``1 - Spearman`` either way.
    orders : array_like of int, optional
        Shape (K, T), TR indices in [0, T).  Instead of the candidates as given, compare
        each target RDM with every candidate reordered by every order
        (``rdm[order][:, order]``): the candidates of a permutation null.  The candidates
        are ranked once and each reordering is a gather of the ranks, so K orders cost the
        products of K x L candidates but not K x L rankings nor K x L x T x T of memory;
        each target RDM is built once for all orders.  An order that repeats TRs
        (:func:`bidsapp.stats.fitted_index`) gathers the original ranks, a TR paired with
        itself taking the most similar value, and is correlated with them as they are
        (:func:`._ranks.permuted_candidates`).  Identity orders give the maps exactly; the
        others are multiplied in float32 on CPU (~1e-6 relative error).
    progress : callable, optional
        Called with a number of centers each time that many are done (from worker threads
        on CPU), e.g. :meth:`bidsapp.progress.Progress.advance`.  The calls add up to
        ``n_centers``.
    memory : int, optional
        Bytes this call may hold, with `orders` on CPU: the stack of target ranks multiplied
        at once is sized from it (:func:`null_stack_rows`).  Default ``DEFAULT_MEMORY``.

    Returns
    -------
    numpy.ndarray
        float32, shape (n_centers, L), or (n_centers, K * L) with `orders`: the L layers
        of order 0, then those of order 1, and so on.  NaN where the correlation is
        undefined: a sphere with a TR whose voxels are all equal (its Spearman correlation
        with other TRs is undefined), a sphere with fewer than 2 voxels, a constant target
        RDM, or a candidate RDM that is constant or holds a NaN in its upper triangle
        (scipy's ``spearmanr`` gives NaN for these too).

    Raises
    ------
    ValueError
        For inconsistent shapes, T < 3, non-finite patterns, neighbour indices outside
        [0, V) other than trailing -1 padding, `orders` outside [0, T), an unknown
        `method`, `backend` or `device`, or ``backend='numpy'`` with a CUDA device.
    RuntimeError
        If CUDA is asked for and torch sees no GPU.

    See Also
    --------
    bidsapp.rsa.neighbors : the spheres.

    Notes
    -----
    The target RDM of a sphere with n voxels is ``1 - S`` where ``S[i, j]`` is the Pearson
    correlation of the average ranks of TR i's and TR j's values over the sphere's voxels.  The
    map value for layer l is the Pearson correlation between the average ranks of the target's
    upper triangle and those of the candidate's.  Both engines compute the ranks exactly (integer
    arithmetic carried in floating point); the numpy engine ranks the target RDM of spheres
    without tied voxels with a counting sort.  Results agree with ``scipy.stats.spearmanr``
    to ~1e-7 (float32 output), and to better than 1e-5 in spheres with tied voxels, where scipy's
    rounding can split exact ties between TR pairs that the engines keep (see
    ``docs/searchlight.md``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> patterns = rng.standard_normal((20, 30)).astype(np.float32)
    >>> nbrs = np.array([np.arange(10), np.arange(10, 20)])
    >>> candidates = rng.random((2, 20, 20))
    >>> searchlight(patterns, nbrs, candidates, device="cpu").shape
    (2, 2)
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, not {method!r}")
    patterns = np.asarray(patterns)
    candidate_rdms = np.asarray(candidate_rdms)
    nbrs = np.asarray(neighbors)
    n_trs, n_in_mask = _check_inputs(patterns, nbrs, candidate_rdms)
    device, backend = _resolve_device(device, backend)
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    n_jobs = _resolve_n_jobs(n_jobs)

    if orders is not None:
        orders = _check_orders(orders, n_trs)
    n_columns = candidate_rdms.shape[0] * (1 if orders is None else len(orders))
    out = np.full((len(nbrs), n_columns), np.nan, dtype=np.float32)
    if nbrs.size == 0:
        return out
    if progress is not None:
        skipped = int(((nbrs != PAD).sum(axis=1) < 2).sum())
        if skipped:  # spheres too small to correlate are done at once (NaN)
            progress(skipped)
    # Only the voxels some sphere uses are checked and keyed: a chunk of centers (a nipype job)
    # costs in proportion to its size, not to the brain's.
    used, nbrs = _compact(nbrs, n_in_mask)
    if used is not None:
        patterns = patterns[:, used]
    if np.issubdtype(patterns.dtype, np.inexact) and not np.isfinite(patterns).all():
        raise ValueError("patterns holds NaN or infinite values in voxels of the spheres: mask "
                         "those voxels out first")
    columns, norms = prepare_candidates(candidate_rdms, method)
    sizes = (nbrs != PAD).sum(axis=1)
    groups = [(size, np.flatnonzero(sizes == size)) for size in np.unique(sizes) if size >= 2]
    if orders is not None and backend == "numpy":
        cands = permuted_candidates(columns, norms, orders)
        keys = order_keys(patterns)
        rows = null_stack_rows(n_trs, len(keys), len(nbrs), nbrs.shape[1],
                               candidate_rdms.shape[0], len(orders), n_jobs=n_jobs,
                               memory=memory)
        for size, centers in groups:
            block = np.full((len(centers), n_columns), np.nan, dtype=np.float32)
            run_numpy_orders(keys, np.ascontiguousarray(nbrs[centers, :size]), cands, method,
                             rows, n_jobs, block, progress)
            out[centers] = block
        return out

    if backend == "torch":
        # torch only for the torch backend: the NumPy engine runs without it
        from ._engine_torch import run_torch

        # The torch engine takes the reordered columns in full (float64, T (T + 1) / 2 per
        # layer and order), and run_torch copies their off-diagonal pairs once more: as many
        # orders at a time as `memory` holds twice, each block a pass.
        per_order = len(columns) * columns.shape[1] * 8
        budget = DEFAULT_MEMORY if memory is None else int(memory)
        step = 1 if orders is None else max(1, min(len(orders), budget // (2 * per_order)))
        if device.startswith("cuda"):
            import torch  # the torch backend only: the NumPy engine runs without it

            free = torch.cuda.mem_get_info(torch.device(device))[0]
            # A pass's candidates take at most half the GPU; the chunk of centers the rest.
            step = max(1, min(step, free // 2 // per_order))
            chunk = int(chunk_size or device_chunk_size(
                n_trs, patterns.shape[1], step * columns.shape[1], free))
        else:
            chunk = int(chunk_size or _TORCH_CPU_CHUNK)
        blocks = [None] if orders is None else [orders[i:i + step]
                                                for i in range(0, len(orders), step)]
        width = columns.shape[1]
        for b, block in enumerate(blocks):
            block_columns, block_norms = (columns, norms) if block is None else \
                reorder_columns(columns, norms, block)
            first = b * step * width
            for size, centers in groups:
                out[centers, first:first + block_columns.shape[1]] = run_torch(
                    patterns, nbrs[centers, :size], block_columns, block_norms, method,
                    chunk, device, progress if b == 0 else None)
        return out

    keys = order_keys(patterns)
    for size, centers in groups:
        # By default, enough tasks to keep every thread busy to the end, 8 centers at least.
        chunk = int(chunk_size or max(8, min(_CPU_CHUNK, -(-len(centers) // (4 * n_jobs)))))
        if len(centers) == len(nbrs) and size == nbrs.shape[1]:
            run_numpy(keys, nbrs, columns, norms, method, chunk, n_jobs, out, progress)
            continue
        block = np.full((len(centers), len(norms)), np.nan, dtype=np.float32)
        run_numpy(keys, np.ascontiguousarray(nbrs[centers, :size]), columns, norms, method,
                  chunk, n_jobs, block, progress)
        out[centers] = block
    return out


def device_chunk_size(n_trs: int, n_voxels: int, n_columns: int, free_bytes: int) -> int:
    """Return how many centers one chunk of the torch engine may hold in GPU memory.

    The device holds, whatever the chunk: the patterns (float32), the candidate columns of
    one pass (float64, T (T - 1) / 2 pairs each), the pair indices and the counting sort's
    bins; and per center of a chunk ``DEVICE_BYTES_PER_PAIR`` bytes per pair.  Chunks are
    planned in 90% of the free memory; the rest is left to the allocator's fragmentation.

    Parameters
    ----------
    n_trs : int
        T.
    n_voxels : int
        Voxels the spheres use (the patterns' columns on the device).
    n_columns : int
        Candidate columns of one pass: L, or L times the orders of a null's pass.
    free_bytes : int
        Free GPU memory (``torch.cuda.mem_get_info``).

    Returns
    -------
    int
        Centers per chunk, between 1 and 4,096.

    Raises
    ------
    MemoryError
        If not even one center fits, with the bytes needed and the way out (the CPU).

    Examples
    --------
    >>> device_chunk_size(496, 110_000, 10, 80 * 2**30)
    4096
    >>> device_chunk_size(2416, 110_000, 10, 80 * 2**30)
    637
    """
    pairs = n_trs * (n_trs - 1) // 2
    per_center = DEVICE_BYTES_PER_PAIR * pairs
    room = int(free_bytes * _DEVICE_PLANNED) - _device_fixed_bytes(n_trs, n_voxels, n_columns)
    if room < per_center:
        raise MemoryError(
            f"the GPU has {free_bytes / 2**30:.1f} GB free, but the searchlight at T = "
            f"{n_trs} with {n_columns} candidate columns needs at least "
            f"{device_memory_need(n_trs, n_voxels, n_columns) / 2**30:.1f} GB for one "
            f"center: run it on the CPU (--device cpu) or on a GPU with more memory")
    return int(min(_MAX_CUDA_CHUNK, room // per_center))


def device_memory_need(n_trs: int, n_voxels: int, n_columns: int) -> int:
    """Return the free GPU memory the torch engine needs for a chunk of one center.

    Parameters
    ----------
    n_trs, n_voxels, n_columns : int
        As for :func:`device_chunk_size`.

    Returns
    -------
    int
        Bytes of free GPU memory, with the 10% that :func:`device_chunk_size` leaves aside.
    """
    pairs = n_trs * (n_trs - 1) // 2
    fixed = _device_fixed_bytes(n_trs, n_voxels, n_columns)
    return int(np.ceil((fixed + DEVICE_BYTES_PER_PAIR * pairs) / _DEVICE_PLANNED))


def _device_fixed_bytes(n_trs: int, n_voxels: int, n_columns: int) -> int:
    """GPU bytes held whatever the chunk: patterns, candidates, pair indices, bins."""
    pairs = n_trs * (n_trs - 1) // 2
    return n_trs * n_voxels * 4 + pairs * n_columns * 8 + pairs * 16 + COUNTING_BYTES


def estimate_memory(n_trs: int, n_voxels: int, n_centers: int, sphere: int, n_columns: int,
                    *, n_jobs: int = 1, device: str = "cpu") -> int:
    """Return about how many bytes one :func:`searchlight` call holds at its peak.

    The terms that grow with the data: the candidates' ranked columns (T (T + 1) / 2
    pairs by ``n_columns``, float64), the patterns and their order keys, the output, and
    each thread's stack of target RDMs (or, on CUDA, a chunk's spheres on the device).

    Parameters
    ----------
    n_trs, n_voxels, n_centers, sphere : int
        T, in-mask voxels V, centers and voxels per sphere.
    n_columns : int
        Candidate columns per call: L, or L times the permutations of one null batch.
    n_jobs : int
        CPU threads.
    device : str
        'cpu', 'auto' or 'cuda[:N]'; with CUDA the engine's chunk is on the GPU, and the
        host holds the rest.

    Returns
    -------
    int
        Bytes in host memory: an upper estimate (1.3-1.45 times the measured growth of
        the peak RSS at T = 400 and 800, K = 50 and 20, two threads).
    """
    pairs = n_trs * (n_trs + 1) // 2
    data = n_trs * n_voxels * (4 + 4 + 8)  # the patterns, their keys, a float64 copy
    candidates = pairs * n_columns * 8
    output = n_centers * n_columns * 4
    stack = 64 if n_columns >= 64 else 8
    per_thread = stack * pairs * 8 + n_trs * sphere * 24 + pairs * 24
    threads = 0 if str(device).startswith("cuda") else max(1, n_jobs) * per_thread
    return int(data + candidates + output + threads)


#: Bytes a null's :func:`searchlight` call may hold when the caller names no budget.
DEFAULT_MEMORY = 2 * 2**30
#: Resident memory of a process that imported numpy, scipy and torch, before any data.
PROCESS_BASELINE = 512 * 2**20
#: Fewest and most target RDMs stacked for one product with a null's candidates.  Each
#: stack gathers every tile of candidates once: at T = 2,400 and K x L = 1,010 the gather
#: costs ~5 s of one core, against ~0.05 s of product per target RDM.
MIN_STACK, MAX_STACK = 16, 512


def null_engine_memory(n_trs: int, n_voxels: int, n_centers: int, sphere: int, n_layers: int,
                       n_orders: int, *, stack_rows: int, n_jobs: int = 1) -> int:
    """Return about how many bytes a null's :func:`searchlight` call holds on CPU.

    Parameters
    ----------
    n_trs, n_voxels, n_centers, sphere : int
        T, in-mask voxels V, centers and voxels per sphere.
    n_layers, n_orders : int
        L and the K TR orders of the call (the observed order included).
    stack_rows : int
        Target RDMs stacked at once.
    n_jobs : int
        CPU threads.

    Returns
    -------
    int
        Bytes: the process's libraries (``PROCESS_BASELINE``), the patterns and keys, the
        candidates (float32 T x T per layer, float64 columns), the stack (float32
        T (T + 1) / 2 per row), the gathered tile and its index, each thread's buffers, and
        the output and its float64 sums.
    """
    rfp = n_trs * (n_trs + 1) // 2
    data = n_trs * n_voxels * (4 + 4 + 8)
    # The RDMs as given (float32), their ranked columns and upper triangles (float64, the
    # latter while ranking), and the full matrices with their gather blocks (float32).
    candidates = n_layers * (n_trs * n_trs * 4 * 3 + rfp * 8 * 2)
    tile = min(TILE_PAIRS, rfp) * n_orders * (n_layers * 4 + 8 + 8)
    threads = max(1, n_jobs) * (rfp * (8 + 4 + 8 + 8) + n_trs * sphere * 24)
    output = n_centers * n_orders * n_layers * 4 + stack_rows * n_orders * n_layers * 16
    return int(PROCESS_BASELINE + data + candidates + tile + threads + output
               + stack_rows * rfp * 4)


def null_stack_rows(n_trs: int, n_voxels: int, n_centers: int, sphere: int, n_layers: int,
                    n_orders: int, *, n_jobs: int = 1, memory: int | None = None) -> int:
    """Return how many target RDMs a null's :func:`searchlight` call stacks at once.

    As many as ``memory`` leaves room for after what the call holds anyway
    (:func:`null_engine_memory`), between ``MIN_STACK`` and ``MAX_STACK``, and no more than
    the centers; a quarter of them at most (but ``MIN_STACK``), so that progress, reported
    per stack, comes in steps.

    Parameters
    ----------
    n_trs, n_voxels, n_centers, sphere, n_layers, n_orders : int
        As for :func:`null_engine_memory`.
    n_jobs : int
        CPU threads.
    memory : int, optional
        Bytes the call may hold; default ``DEFAULT_MEMORY``.

    Returns
    -------
    int
    """
    budget = DEFAULT_MEMORY if memory is None else int(memory)
    fixed = null_engine_memory(n_trs, n_voxels, n_centers, sphere, n_layers, n_orders,
                               stack_rows=0, n_jobs=n_jobs)
    per_row = n_trs * (n_trs + 1) // 2 * 4 + n_orders * n_layers * 16
    rows = min(MAX_STACK, max(MIN_STACK, (budget - fixed) // per_row))
    # At least 4 stacks where each still holds MIN_STACK: progress is reported per stack.
    rows = min(rows, max(MIN_STACK, -(-n_centers // 4)))
    return int(max(1, min(rows, n_centers)))


#: Searchlight centres per participant-level job: fixed, so that the chunk boundaries, and
#: with them the cached results of a rerun, do not depend on the number of processes.
CHUNK_CENTERS = 20000


def shard_chunks(n_centers: int, shard: int, n_shards: int,
                 chunk_centers: int = CHUNK_CENTERS) -> list[tuple[int, int]]:
    """Return the chunks of centres that one shard of a participant's searchlight computes.

    The centres ``0 .. n_centers`` are cut into ``n_shards`` contiguous shares, in order,
    whose sizes differ by at most one (as :func:`numpy.array_split`); each share is cut into
    chunks of at most ``chunk_centers``, so that a job's memory stays that of one chunk
    whatever the number of shards.  With one shard these are the chunks of
    :class:`bidsapp.interfaces.rsa.PreparePatterns`.  Every centre's value is computed alone,
    so the concatenated results do not depend on the cut.

    Parameters
    ----------
    n_centers : int
        Searchlight centres of the participant (in-mask voxels).
    shard : int
        Which share, from 0 to ``n_shards - 1``.
    n_shards : int
        Number of shares, fixed when the workflow is built (``--searchlight-jobs``).
    chunk_centers : int
        Most centres per chunk.

    Returns
    -------
    list of (int, int)
        ``[start, stop)`` of each chunk.  A share without centres (more shards than
        centres) is one empty chunk ``(start, start)``: its job still runs, cheaply, and
        its empty result merges as nothing.

    Raises
    ------
    ValueError
        If ``shard`` is not in ``[0, n_shards)``.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard must be in [0, {n_shards}), not {shard}")
    start = shard * n_centers // n_shards
    stop = (shard + 1) * n_centers // n_shards
    if start == stop:
        return [(start, start)]
    step = max(1, chunk_centers)
    return [(first, min(first + step, stop)) for first in range(start, stop, step)]


def minimum_job_memory(n_trs: int, n_voxels: int, n_centers: int, sphere: int,
                       n_layers: int, n_permutations: int, *, n_jobs: int = 1,
                       device: str = "cpu") -> int:
    """Return the fewest bytes one searchlight job of the participant level can run in.

    Without a null: what :func:`estimate_memory` gives for the maps.  With one: the null
    engine (:func:`null_engine_memory`) with its smallest stack of target RDMs, ``MIN_STACK``;
    all permutations go in one pass whatever their number.

    Parameters
    ----------
    n_trs, n_voxels, n_centers, sphere : int
        T, in-mask voxels V, centres of the job and voxels per sphere.
    n_layers : int
        Candidate RDMs L.
    n_permutations : int
        K; 0 for no null.
    n_jobs : int
        CPU threads of the job.
    device : str
        As for :func:`estimate_memory`.

    Returns
    -------
    int
        Bytes of host memory.
    """
    if not n_permutations or str(device).startswith("cuda"):
        columns = n_layers * (2 if n_permutations else 1)
        return estimate_memory(n_trs, n_voxels, n_centers, sphere, columns, n_jobs=n_jobs,
                               device=device)
    return null_engine_memory(n_trs, n_voxels, n_centers, sphere, n_layers,
                              n_permutations + 1, stack_rows=MIN_STACK, n_jobs=n_jobs)


def _check_inputs(patterns: np.ndarray, nbrs: np.ndarray,
                  candidate_rdms: np.ndarray) -> tuple[int, int]:
    """Validate shapes and values; return (T, V)."""
    if patterns.ndim != 2:
        raise ValueError(f"patterns must be 2-D (TRs x voxels), not of shape {patterns.shape}")
    n_trs, n_in_mask = patterns.shape
    if n_trs < 3:
        raise ValueError(f"patterns has {n_trs} TRs: an RDM needs at least 3 to correlate")
    if not np.issubdtype(patterns.dtype, np.number) or np.iscomplexobj(patterns):
        raise ValueError(f"patterns must be real numbers, not {patterns.dtype}")
    if candidate_rdms.ndim != 3 or candidate_rdms.shape[1:] != (n_trs, n_trs):
        raise ValueError(f"candidate_rdms must have shape (L, {n_trs}, {n_trs}) to match the "
                         f"{n_trs} TRs of patterns, not {candidate_rdms.shape}")
    if nbrs.ndim != 2 or not np.issubdtype(nbrs.dtype, np.integer):
        raise ValueError(f"neighbors must be a 2-D integer array, not {nbrs.dtype} of shape "
                         f"{nbrs.shape}")
    if nbrs.size:
        if nbrs.min() < PAD or nbrs.max() >= n_in_mask:
            raise ValueError(f"neighbors holds indices outside [0, {n_in_mask}) (the voxels of "
                             f"patterns) other than the padding {PAD}")
        padded = nbrs == PAD
        if (padded[:, :-1] & ~padded[:, 1:]).any():
            raise ValueError(f"neighbors rows may hold the padding {PAD} only at their end")
    return n_trs, n_in_mask


def _check_orders(orders: ArrayLike, n_trs: int) -> np.ndarray:
    """Return `orders` as an intp (K, T) array of TR indices in [0, T), or raise."""
    array = np.asarray(orders)
    if array.ndim != 2 or array.shape[1] != n_trs or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"orders must be integers of shape (K, {n_trs}), not {array.dtype} "
                         f"{array.shape}")
    if array.size and (array.min() < 0 or array.max() >= n_trs):
        raise ValueError(f"orders must index the TRs 0 to {n_trs - 1}")
    return array.astype(np.intp, copy=False)


def _resolve_device(device: Any, backend: str | None) -> tuple[str, str]:
    """Return (device string, backend name) after 'auto' and defaults are resolved."""
    if backend is not None and backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, not {backend!r}")
    if backend == "numpy" and str(device).startswith("cuda"):
        raise ValueError("the numpy backend runs on CPU only: use backend='torch' for CUDA")
    name = resolve_device_name(device)
    if backend is None:
        backend = "numpy" if name == "cpu" else "torch"
    return name, backend


def _resolve_n_jobs(n_jobs: int | None) -> int:
    """Return the number of CPU threads: None or -1 mean every core this process may use."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    available = available or os.cpu_count() or 1
    if n_jobs is None or n_jobs == -1:
        return available
    if int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be a positive integer or -1, not {n_jobs}")
    return int(n_jobs)


def _compact(nbrs: np.ndarray, n_in_mask: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Restrict to the voxels some sphere uses; return (used voxels or None, renumbered rows)."""
    used_flags = np.zeros(n_in_mask, dtype=bool)
    used_flags[nbrs[nbrs != PAD]] = True
    if used_flags.all():
        return None, nbrs.astype(np.intp, copy=False)
    used = np.flatnonzero(used_flags)
    renumber = np.full(n_in_mask + 1, PAD, dtype=np.intp)  # last entry: padding stays padding
    renumber[used] = np.arange(len(used))
    return used, renumber[nbrs]
