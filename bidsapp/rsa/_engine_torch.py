"""The searchlight engine with torch: whole chunks of centers as batched tensor operations.

Written for CUDA; it runs on CPU tensors too, which is how the tests check its arithmetic on
machines without a GPU.  The steps are those of the numpy engine (see ``_engine_numpy``), in
batched form:

1. gather (B, T, n) patterns, sort each TR's row, and derive average ranks from runs of equal
   sorted values (a cumulative max/min over run starts and ends): no packed keys needed;
2. Gram matrices of the doubled centered ranks, exact integers whatever the GPU's summation
   order: in float32 for spheres of up to 256 voxels (see :func:`gram_dtype`), else float64;
3. spheres without tied voxels: counting sort of their integer upper triangles, all spheres of
   the chunk in one ``bincount`` over per-sphere offset bins; spheres with ties: a sort of their
   correlations;
4. one float64 product of the chunk's doubled centered ranks with the candidate columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._ranks import QUANTUM_BITS, pair_layout

# Bins of the counting sort held at once (int64): 512 MB.
_MAX_BINS = 2**26
#: GPU bytes the counting sort holds whatever the chunk: its bins, their copy and their
#: cumulative sum (int64).
COUNTING_BYTES = 3 * _MAX_BINS * 8


def gram_dtype(n_voxels: int) -> torch.dtype:
    """Return the narrowest float type that holds a sphere's rank Gram matrix exactly.

    Doubled centered ranks of ``n`` voxels are integers of magnitude at most ``n - 1``, so
    every partial sum of a Gram entry is an integer of magnitude at most ``n (n - 1)**2``.
    float32 holds all of them exactly while that is below 2**24 (``n`` up to 256), in any
    summation order.  TF32 tensor cores keep that exactness, since they round only the
    inputs, to 11 significant bits, and the ranks need at most 8.  Half the bytes of float64
    matter on a GPU, where the Gram matrices and their upper triangles are the traffic.

    Parameters
    ----------
    n_voxels : int
        Voxels per sphere.

    Returns
    -------
    torch.dtype
        ``torch.float32`` or ``torch.float64``.
    """
    return torch.float32 if n_voxels * (n_voxels - 1) ** 2 < 2**24 else torch.float64


def run_torch(patterns: np.ndarray, neighbors: np.ndarray, columns: np.ndarray,
              norms: np.ndarray, method: str, chunk_size: int, device: str,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Return the float32 (n_centers, L) map values of equally sized spheres.

    Parameters
    ----------
    patterns : numpy.ndarray
        (T, V) finite values.
    neighbors : numpy.ndarray
        (n_centers, n) voxel indices, no padding.
    columns, norms : numpy.ndarray
        Candidate columns (m, L) and norms (L,) from :func:`._ranks.prepare_candidates`.
    method : {'spearman', 'pearson'}
        How the target RDM is compared with the candidates.
    chunk_size : int
        Centers per batch (bounds device memory: ~11 MB per center at T = 496, n = 100).
    device : str
        torch device ('cpu', 'cuda', 'cuda:N').
    progress : callable, optional
        Called with the number of centers of each batch once it is done.

    Returns
    -------
    numpy.ndarray
        float32 (n_centers, L).
    """
    dev = torch.device(device)
    # float32 data stay float32 (sorting only compares); others go to float64, exact for
    # integers up to 2**53.
    dtype = torch.float32 if patterns.dtype in (np.float32, np.float16) else torch.float64
    voxel_major = torch.as_tensor(np.ascontiguousarray(patterns.T), device=dev).to(dtype)
    n_trs = patterns.shape[0]
    layout = pair_layout(n_trs)
    pairs = layout.off_diagonal
    # This engine builds only the T (T - 1) / 2 pairs: candidates without the diagonal zeros.
    cand = torch.as_tensor(columns[pairs], device=dev)
    cand_norms = torch.as_tensor(norms, device=dev)
    rows = torch.as_tensor(layout.rows[pairs], device=dev)
    cols = torch.as_tensor(layout.cols[pairs], device=dev)
    out = torch.empty((len(neighbors), columns.shape[1]), dtype=torch.float32, device=dev)
    with torch.inference_mode():
        for start in range(0, len(neighbors), chunk_size):
            idx = torch.as_tensor(neighbors[start : start + chunk_size], device=dev)
            out[start : start + len(idx)] = _chunk(voxel_major[idx], rows, cols, cand,
                                                   cand_norms, method)
            if progress is not None:
                if dev.type == "cuda":  # kernels run asynchronously: count finished work
                    torch.cuda.synchronize(dev)
                progress(len(idx))
    return out.cpu().numpy()


def _chunk(spheres: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, cand: torch.Tensor,
           cand_norms: torch.Tensor, method: str) -> torch.Tensor:
    """Map values (B, L) of a chunk of spheres given as (B, n, T) patterns."""
    sorted_values, order = torch.sort(spheres.transpose(1, 2), dim=-1)
    equal = sorted_values[..., 1:] == sorted_values[..., :-1]
    del sorted_values
    exact = gram_dtype(spheres.shape[1])
    ranks = torch.empty(order.shape, dtype=exact, device=order.device)
    ranks.scatter_(-1, order, _doubled_centered(equal, exact))
    del order
    gram = ranks @ ranks.transpose(1, 2)
    diag = gram.diagonal(dim1=1, dim2=2).clone()
    upper = gram[:, rows, cols]
    del gram, ranks
    tied = equal.flatten(1).any(dim=1)
    undefined = (diag == 0).any(dim=1)
    if method == "spearman":
        target = torch.zeros(upper.shape, dtype=torch.float64, device=upper.device)
        free = ~tied
        if free.any():
            # A sphere's values span up to G_tt / 2 + 1 bins (~n**3 / 6): count as many spheres
            # at a time as fit in _MAX_BINS.
            spheres = torch.nonzero(free).flatten()
            group = max(1, _MAX_BINS // (int(diag[spheres[0], 0]) // 2 + 1))
            for first in range(0, len(spheres), group):
                batch = spheres[first : first + group]
                target[batch] = _counting_ranks(upper[batch])
        slow = tied & ~undefined
        if slow.any():
            target[slow] = _sorting_ranks(-_similarity(upper[slow].double(), diag[slow].double(),
                                                       rows, cols))
    else:
        similarity = upper.double()
        if tied.any():
            similarity[tied] = _similarity(similarity[tied], diag[tied].double(), rows, cols)
        target = similarity.mean(dim=1, keepdim=True) - similarity
        target[undefined] = 0.0
    products = target @ cand
    values = products / torch.sqrt((target * target).sum(dim=1, keepdim=True)) / cand_norms
    values[undefined] = torch.nan
    return values.to(torch.float32)


def _doubled_centered(equal: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Doubled centered average ranks (``dtype``) of sorted rows, from their equal neighbours."""
    n = equal.shape[-1] + 1
    positions = torch.arange(n, device=equal.device).expand(*equal.shape[:-1], n)
    edge = torch.ones((*equal.shape[:-1], 1), dtype=torch.bool, device=equal.device)
    starts = torch.cat([edge, ~equal], dim=-1)
    ends = torch.cat([~equal, edge], dim=-1)
    left = torch.where(starts, positions, 0).cummax(dim=-1).values
    right = torch.where(ends, positions, n - 1).flip(-1).cummin(dim=-1).values.flip(-1)
    return (left + right + (1 - n)).to(dtype)


def _similarity(upper: torch.Tensor, diag: torch.Tensor, rows: torch.Tensor,
                cols: torch.Tensor) -> torch.Tensor:
    """Spearman correlations between TRs from Gram entries (same formula as the numpy engine)."""
    return upper / torch.sqrt(diag[:, rows] * diag[:, cols])


def _counting_ranks(upper: torch.Tensor) -> torch.Tensor:
    """Doubled centered dissimilarity ranks of tie-free spheres' (F, m) Gram upper triangles.

    Entries of one sphere differ by multiples of 4 (twice an even sum of squared rank
    differences, in doubled units), so ``(max - entry) / 4`` are exact integer bins.
    """
    n_spheres, n_pairs = upper.shape
    bins = ((upper.amax(dim=1, keepdim=True) - upper) / 4).to(torch.int64)
    n_bins = int(bins.max()) + 1
    offsets = torch.arange(n_spheres, device=upper.device)[:, None] * n_bins
    counts = torch.bincount((bins + offsets).flatten(), minlength=n_spheres * n_bins)
    counts = counts.view(n_spheres, n_bins)
    step = counts.clone()
    step[:, 1:] += counts[:, :-1]
    step[:, 0] -= n_pairs
    return step.cumsum(dim=1).gather(1, bins).to(torch.float64)


def _sorting_ranks(values: torch.Tensor) -> torch.Tensor:
    """Doubled centered average ranks (float64) of each row of ``values``, by sorting.

    Values are compared on the grid of :func:`._ranks.quantize`, as the numpy engine does.
    """
    largest = values.abs().amax(dim=1, keepdim=True)
    scale = torch.where(largest > 0, 2.0**QUANTUM_BITS / largest, 1.0)
    sorted_values, order = torch.sort(torch.round(values * scale).to(torch.int64), dim=1)
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks.scatter_(1, order, _doubled_centered(sorted_values[:, 1:] == sorted_values[:, :-1]))
    return ranks
