"""Searchlight neighbourhoods: each in-mask voxel's nearest in-mask voxels.

Two definitions are offered, both over the in-mask voxels in C order:

* count-based spheres (the default, as CoSMoMVPA's ``cosmo_spherical_neighborhood`` with
  ``count``): the ``n_voxels`` nearest in-mask voxels of each center, the center itself first;
* radius-based spheres: every in-mask voxel within ``radius`` of the center.

Distances are Euclidean, in voxel units or, given an affine, in millimetres.  Equal distances are
broken by the voxels' position in the mask (their C-order index), so the result does not depend
on the k-d tree's internals.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

__all__ = ["PAD", "neighbors"]

#: Value that pads the rows of a radius-mode neighbourhood array past the sphere's last voxel.
PAD = -1

# Rows of centers handled per k-d tree query: bounds the (rows, k, 3) offset arrays to ~100 MB.
_BLOCK = 8192
# Squared distances are compared on a grid of 2**-20 of the smallest squared voxel step, so that
# distances that are equal geometrically but differ in the last bit after an affine are tied.
_GRID_BITS = 20


def neighbors(
    mask: ArrayLike,
    n_voxels: int = 100,
    *,
    radius: float | None = None,
    affine: ArrayLike | None = None,
) -> np.ndarray:
    """Return the searchlight neighbourhood of every in-mask voxel.

    Parameters
    ----------
    mask : array_like
        3-D array; nonzero voxels are in the mask.  In-mask voxels are numbered in C order
        (the order of ``numpy.flatnonzero(mask)``), as the columns of the searchlight patterns.
    n_voxels : int, default 100
        Voxels per neighbourhood in count mode, the center included.  Ignored when `radius` is
        given.
    radius : float, optional
        If given, each neighbourhood is every in-mask voxel whose distance to the center is at
        most `radius` (voxel units, or mm with `affine`; a relative tolerance of 1e-9 absorbs
        rounding), and rows are padded with :data:`PAD` (-1) to the largest sphere.
    affine : array_like, optional
        4 x 4 voxel-to-world affine.  If given, distances are in world units (mm); otherwise in
        voxel units.

    Returns
    -------
    numpy.ndarray
        Integer array (``numpy.intp``) of shape (n_centers, n_voxels) in count mode or
        (n_centers, max sphere size) in radius mode.  Row i belongs to the i-th in-mask voxel and
        lists indices of in-mask voxels sorted by distance to it, then by index; the center is
        therefore first.  In radius mode, entries past a sphere's last voxel are -1.

    Raises
    ------
    ValueError
        If `mask` is not 3-D or empty, `n_voxels` is not in [1, number of in-mask voxels],
        `radius` is not positive, or `affine` is not an invertible 4 x 4 matrix.

    Notes
    -----
    Count mode is CoSMoMVPA's count-based sphere: the ``n_voxels`` nearest voxels, where the
    voxels at exactly the distance of the ``n_voxels``-th are admitted in order of their index
    until the count is reached.  Candidates come from :class:`scipy.spatial.cKDTree`; squared
    distances are then recomputed from the integer voxel offsets and the affine's metric
    (``A.T @ A`` of its 3 x 3 part), so geometric ties are exact ties.

    Examples
    --------
    >>> mask = np.ones((5, 5, 5), bool)
    >>> nbrs = neighbors(mask, n_voxels=7)
    >>> nbrs.shape
    (125, 7)
    >>> int(nbrs[62, 0])  # the center of the cube is its own nearest voxel
    62
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D, not of shape {mask.shape}")
    ijk = np.argwhere(mask)
    n_in_mask = len(ijk)
    if n_in_mask == 0:
        raise ValueError("mask has no nonzero voxel")
    metric, points = _metric_and_points(ijk, affine)
    # One grid step in squared-distance units: exact integers in voxel units without an affine.
    scale = float(2**_GRID_BITS) / float(np.min(np.diag(metric)))
    tree = cKDTree(points)
    if radius is None:
        n_voxels = int(n_voxels)
        if not 1 <= n_voxels <= n_in_mask:
            raise ValueError(f"n_voxels must be in [1, {n_in_mask}] (the in-mask voxels), "
                             f"not {n_voxels}")
        return _count_neighbors(tree, ijk, metric, scale, n_voxels)
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f"radius must be positive, not {radius}")
    return _radius_neighbors(tree, ijk, metric, scale, radius)


def _metric_and_points(ijk: np.ndarray, affine: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the squared-distance metric of voxel offsets and the points the tree indexes."""
    if affine is None:
        return np.eye(3), ijk.astype(np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4 x 4, not of shape {affine.shape}")
    linear = affine[:3, :3]
    if abs(np.linalg.det(linear)) < 1e-12:
        raise ValueError("affine is singular: its 3 x 3 part has no inverse")
    return linear.T @ linear, ijk @ linear.T + affine[:3, 3]


def _grid_sq_dist(ijk: np.ndarray, centers: np.ndarray, cand: np.ndarray, metric: np.ndarray,
                  scale: float) -> np.ndarray:
    """Squared distances from each center to its candidates, on the tie-breaking grid (int64)."""
    offsets = ijk[cand] - ijk[centers][:, None, :]
    sq = np.einsum("rka,rka->rk", offsets @ metric, offsets)
    return np.rint(sq * scale).astype(np.int64)


def _sort_by_distance_then_index(sq: np.ndarray, cand: np.ndarray, n_in_mask: int) -> np.ndarray:
    """Sort each row's candidates by (grid squared distance, index); return the sorted indices."""
    if int(sq.max(initial=0)) < np.iinfo(np.int64).max // (2 * n_in_mask):
        # One int64 key per candidate: numpy's vectorized sort beats a two-key lexsort.
        keys = sq * n_in_mask + cand
        keys.sort(axis=1)
        return keys % n_in_mask
    order = np.lexsort((cand, sq), axis=1)
    return np.take_along_axis(cand, order, axis=1)


def _count_neighbors(tree: cKDTree, ijk: np.ndarray, metric: np.ndarray, scale: float,
                     n_voxels: int) -> np.ndarray:
    """Count mode: the ``n_voxels`` nearest voxels of each center, ties broken by index."""
    n_in_mask = len(ijk)
    result = np.empty((n_in_mask, n_voxels), dtype=np.intp)
    for start in range(0, n_in_mask, _BLOCK):
        centers = np.arange(start, min(start + _BLOCK, n_in_mask))
        # A shell of equidistant voxels can straddle the n-th place: ask for spare candidates and
        # ask again, with more, for the rows whose spares are all at the n-th distance.
        k = min(n_in_mask, n_voxels + max(32, n_voxels // 2))
        todo = centers
        while todo.size:
            _, cand = tree.query(tree.data[todo], k=k, workers=-1)
            cand = np.asarray(cand, dtype=np.intp).reshape(len(todo), k)
            sq = _grid_sq_dist(ijk, todo, cand, metric, scale)
            ranked = _sort_by_distance_then_index(sq, cand, n_in_mask)
            # Complete iff the farthest candidate is strictly farther than the n-th nearest (or
            # every voxel is a candidate).
            sq.sort(axis=1)
            complete = (sq[:, -1] > sq[:, n_voxels - 1]) | (k == n_in_mask)
            result[todo[complete]] = ranked[complete, :n_voxels]
            todo = todo[~complete]
            k = min(n_in_mask, 2 * k)
    return result


def _radius_neighbors(tree: cKDTree, ijk: np.ndarray, metric: np.ndarray, scale: float,
                      radius: float) -> np.ndarray:
    """Radius mode: every voxel within ``radius``, sorted by (distance, index), padded with -1."""
    n_in_mask = len(ijk)
    limit = np.rint(radius**2 * scale * (1 + 1e-9))
    # The k-d tree's float distances get a looser tolerance; the grid decides membership.
    loose = radius * (1 + 1e-6)
    width = int(tree.query_ball_point(tree.data, loose, return_length=True, workers=-1).max())
    result = np.full((n_in_mask, width), PAD, dtype=np.intp)
    for start in range(0, n_in_mask, _BLOCK):
        centers = np.arange(start, min(start + _BLOCK, n_in_mask))
        _, cand = tree.query(tree.data[centers], k=width, distance_upper_bound=loose, workers=-1)
        cand = np.asarray(cand, dtype=np.intp).reshape(len(centers), width)
        # Missing neighbours come back as index n_in_mask: point them at the center, then drop.
        missing = cand == n_in_mask
        cand[missing] = centers.repeat(width).reshape(cand.shape)[missing]
        sq = _grid_sq_dist(ijk, centers, cand, metric, scale)
        outside = missing | (sq > limit)
        # Push voxels outside the sphere past every inside one, then sort by (distance, index).
        sq[outside] = np.iinfo(np.int64).max // (4 * n_in_mask)
        ranked = _sort_by_distance_then_index(sq, cand, n_in_mask)
        inside = (~outside).sum(axis=1)
        ranked[np.arange(width) >= inside[:, None]] = PAD
        result[centers] = ranked
    return result
