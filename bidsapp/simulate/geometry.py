"""Geometry-matched planting: sphere patterns that carry a layer's RDM as the app measures it.

The app's candidate RDM compares TRs by the Spearman correlation of the layer's feature
vectors across units; its target RDM compares TRs by the Spearman correlation of the
sphere's voxel patterns, after each voxel's time course was detrended and z-scored per run.
This module plants voxel patterns whose correlations across voxels reproduce the layer's
Spearman geometry after that cleaning (derivation in ``docs/simulate.md``):

1. per 64 ms frame, the layer's feature vector is rank-transformed across units, centred
   and scaled to unit length (``z_t``), so that ``z_t . z_s`` is the Spearman correlation
   of frames ``t`` and ``s`` (:func:`rank_frames`);
2. the correlations are spread out by the increasing, positive-definite kernel
   ``exp(beta (z_t . z_s - 1))``: the map value is a rank correlation of RDMs, so the kernel
   is the same geometry to the analysis, but its differences survive the ranking across a
   sphere's ~100 voxels that the untrained network's 0.9-and-above correlations do not
   (:func:`kernel_map`);
3. the kernel's leading eigenvectors give features ``phi_t``, mapped into the voxels by a
   random matrix with orthonormal rows, rotated (Givens rotations, Bendel & Mickey 1978)
   until every voxel has the same variance over a run, because the z-scoring divides each
   voxel by its own standard deviation and unequal ones would re-weight the voxels
   (:func:`embedding`, :func:`equalize_diagonal`);
4. outside the clips each voxel takes values ``a + b t`` that make its run's time course
   orthogonal to a constant and a line (:func:`balance_outside`): the detrending and
   z-scoring then subtract nothing, where they would otherwise remove the pattern all
   frames share from every analysed TR.

This is a simulation matched to the analysis, for testing that the app can recover a
planted layer; it makes no claim about how brains represent music.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from .signal import GRID_PERIOD, PlantedVoxels, Sphere

MEDIAN_SIMILARITY = 0.5
"""Median over pairs of frames of the planted kernel (see :func:`kernel_map`)."""

MAX_LANDMARKS = 2000
"""Frames the kernel is decomposed on; the others are extended to (Nystroem)."""


def rank_frames(features: np.ndarray) -> np.ndarray:
    """Return each frame's feature vector as centred, unit-length ranks across units.

    Parameters
    ----------
    features : numpy.ndarray
        Shape (units, frames).

    Returns
    -------
    numpy.ndarray
        Shape (frames, units); ``z[t] @ z[s]`` is the Spearman correlation of frames ``t``
        and ``s`` across units (ties averaged, as :func:`bidsapp.rsa.rdm` ranks them).
        Frames that are constant across units are zero: they carry no geometry.
    """
    ranks = rankdata(np.asarray(features, dtype=np.float64), axis=0)
    ranks -= ranks.mean(axis=0)
    norms = np.linalg.norm(ranks, axis=0)
    return (ranks / np.where(norms > 0, norms, 1.0)).T


def equalize_diagonal(matrix: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Rotate ``basis`` so that ``basis.T @ matrix @ basis`` has a constant diagonal.

    Bendel and Mickey's (1978) algorithm: a Givens rotation of two columns whose diagonal
    entries lie on either side of the mean sets one of them to the mean; at most ``n - 1``
    rotations make them all equal, and the trace (the total variance) is unchanged.

    Parameters
    ----------
    matrix : numpy.ndarray
        Symmetric positive semi-definite, shape (d, d).
    basis : numpy.ndarray
        Shape (d, n), the columns to rotate (voxel directions).

    Returns
    -------
    numpy.ndarray
        ``basis @ G`` for an orthogonal ``G`` (n, n).
    """
    basis = basis.copy()
    c = basis.T @ matrix @ basis
    n = c.shape[0]
    target = np.trace(c) / n
    tol = 1e-12 * max(target, 1e-300)
    free = list(range(n))
    while len(free) > 1:
        diag = c[free, free]
        i = free[int(np.argmax(diag))]
        j = free[int(np.argmin(diag))]
        a, e, b = c[i, i] - target, c[j, j] - target, c[i, j]
        if a <= tol or e >= -tol:
            break
        # New c_ii = target when tan(theta) = t solves e t^2 + 2 b t + a = 0 (a > 0 > e).
        t = (-b - np.sqrt(b * b - a * e)) / e
        cos = 1.0 / np.sqrt(1.0 + t * t)
        sin = t * cos
        rot = np.array([[cos, -sin], [sin, cos]])
        basis[:, [i, j]] = basis[:, [i, j]] @ rot
        c[:, [i, j]] = c[:, [i, j]] @ rot
        c[[i, j], :] = rot.T @ c[[i, j], :]
        free.remove(i)
    return basis


def kernel_map(z: np.ndarray, n_dims: int, median_similarity: float = MEDIAN_SIMILARITY,
               max_landmarks: int = MAX_LANDMARKS) -> Callable[[np.ndarray], np.ndarray]:
    """Return a finite feature map whose inner products are a spread-out Spearman kernel.

    ``k(t, s) = exp(beta (rho_ts - 1))``, ``rho_ts = z_t . z_s``, is positive definite (a sum
    of Hadamard powers of a Gram matrix) and increasing in ``rho``, so its rank order over
    pairs of frames is the Spearman geometry's.  ``beta`` is chosen so that the median
    kernel value over pairs of frames is ``median_similarity``: the untrained network's
    frames correlate 0.9 and more, differences that the ranking across a hundred voxels
    would drown, and the kernel spreads them out.  The map is the Nystroem extension of the
    kernel's leading ``n_dims`` eigenvectors on (at most ``max_landmarks``) landmark frames.

    Parameters
    ----------
    z : numpy.ndarray
        Shape (frames, units): :func:`rank_frames` of the frames within clips.
    n_dims : int
        Dimensions of the map (the sphere's voxels).
    median_similarity : float, optional
        The kernel's median over pairs of landmark frames.
    max_landmarks : int, optional
        Landmark frames, evenly taken from ``z``.

    Returns
    -------
    callable
        ``phi(z') -> (frames', n_dims')`` with ``phi(z_t) . phi(z_s) ~ k(t, s)``.
    """
    landmarks = z[:: max(1, -(-len(z) // max_landmarks))]
    gram = landmarks @ landmarks.T
    upper = gram[np.triu_indices(len(gram), 1)]
    spread = 1.0 - float(np.median(upper)) if upper.size else 1.0
    beta = np.log(1.0 / median_similarity) / max(spread, 1e-6)
    values, vectors = np.linalg.eigh(np.exp(beta * (gram - 1.0)))
    keep = np.argsort(values)[::-1][:n_dims]
    keep = keep[values[keep] > 1e-10 * values.max()]
    projection = vectors[:, keep] / np.sqrt(values[keep])

    def phi(frames: np.ndarray) -> np.ndarray:
        return np.exp(beta * (frames @ landmarks.T - 1.0)) @ projection

    return phi


def embedding(rng: np.random.Generator, phi_inside: np.ndarray, n_voxels: int,
              inside_fraction: float) -> np.ndarray:
    """Return the map ``B`` (dims x voxels) from kernel features to the sphere's voxels.

    Parameters
    ----------
    rng : numpy.random.Generator
        The sphere's stream (the random rotation).
    phi_inside : numpy.ndarray
        Shape (frames, dims): the kernel features of the frames within clips.
    n_voxels : int
        Voxels of the sphere (at least ``dims``).
    inside_fraction : float
        Expected fraction of a run's time within clips, for the variance that the balancing
        constant outside the clips adds (:func:`balance_outside`).

    Returns
    -------
    numpy.ndarray
        Shape (dims, n_voxels) with orthonormal rows times one scale, chosen so that the
        voxels' within-clip standard deviation is 1 in the root mean square over the sphere.
    """
    dims = phi_inside.shape[1]
    rotation, _ = np.linalg.qr(rng.standard_normal((n_voxels, n_voxels)))
    basis = rotation[:dims]  # dims x voxels, B B^T = I: inner products are kept
    mean = phi_inside.mean(axis=0)
    p = min(max(inside_fraction, 1e-3), 1.0 - 1e-3)
    # Each voxel's variance over the run: within clips phi_t, outside the balancing
    # constant -(p / (1 - p)) mean (see balance_outside).
    second = (p * (phi_inside.T @ phi_inside) / len(phi_inside)
              + p * p / (1 - p) * np.outer(mean, mean))
    basis = equalize_diagonal(second, basis)
    within = (phi_inside - mean) @ basis
    scale = np.sqrt(np.mean(within.var(axis=0)))
    return basis / (scale if scale > 0 else 1.0)


def geometry_responses(planted: PlantedVoxels, spheres: Sequence[Sphere],
                       features: Sequence[Mapping[str, np.ndarray]],
                       layer_names: Sequence[str], clip_seconds: float | Sequence[float],
                       rng_of_sphere: Callable[[int], np.random.Generator],
                       inside_fraction: float) -> list[np.ndarray]:
    """Return every planted voxel's geometry-matched response to each clip (64 ms grid).

    Parameters
    ----------
    planted : PlantedVoxels
        The voxels, in order.
    spheres : sequence of Sphere
        Their spheres (``planted.sphere`` indexes this).
    features : sequence of mapping
        Per clip, layer name to (width, frames) HRF-convolved features on the 64 ms grid.
    layer_names : sequence of str
        Layer names in network order; layer ``k`` is ``layer_names[k - 1]``.
    clip_seconds : float or sequence of float
        Clip duration (or one per clip); frames at or after it are not used for the
        embedding.
    rng_of_sphere : callable
        ``rng_of_sphere(index) -> numpy.random.Generator`` for each sphere's rotation.
    inside_fraction : float
        Expected fraction of a run's time within clips.

    Returns
    -------
    list of numpy.ndarray
        Per clip, shape (n_voxels, frames) float64; to be sampled with
        :func:`~bidsapp.simulate.signal.sample_timeline` and then :func:`balance_outside`.
    """
    n_frames = [next(iter(f.values())).shape[1] for f in features]
    responses = [np.zeros((planted.n, n)) for n in n_frames]
    seconds = np.broadcast_to(np.asarray(clip_seconds, dtype=float), (len(n_frames),))
    n_used = [min(n, int(np.ceil(s / GRID_PERIOD - 1e-9)))
              for n, s in zip(n_frames, seconds, strict=True)]
    for index, sphere in enumerate(spheres):
        rows = np.flatnonzero(planted.sphere == index)
        name = layer_names[sphere.layer - 1]
        ranked = [rank_frames(clip[name]) for clip in features]
        inside = np.concatenate([r[:n] for r, n in zip(ranked, n_used, strict=True)])
        # One dimension fewer than voxels leaves room for the centring across voxels.
        phi = kernel_map(inside, len(rows) - 1)
        basis = embedding(rng_of_sphere(index), phi(inside), len(rows), inside_fraction)
        for response, z in zip(responses, ranked, strict=True):
            response[rows] = (phi(z) @ basis).T
    return responses


def balance_outside(signal: np.ndarray, inside: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Fill each voxel's signal outside the clips so that its run mean and trend are zero.

    The app detrends (linearly) and z-scores every voxel per run; both subtract a fit of
    ``1`` and ``t`` from the time course, which would subtract a fixed pattern (and one
    growing with time) from every analysed TR.  Outside the clips each voxel gets
    ``a + b t`` with ``a`` and ``b`` chosen so that the whole time course is orthogonal to
    ``1`` and ``t``: the cleaning then removes nothing from the planted patterns.

    Parameters
    ----------
    signal : numpy.ndarray
        Shape (n_voxels, n_times): sampled signal, zero outside the clips.
    inside : numpy.ndarray
        Boolean, shape (n_times,): within a clip.
    times : numpy.ndarray
        Shape (n_times,): the sample times (s).

    Returns
    -------
    numpy.ndarray
        A copy of ``signal`` with the outside filled.
    """
    out = signal.copy()
    outside = ~np.asarray(inside, dtype=bool)
    if not outside.any():
        return out
    tau = (times - times.mean()) / max(float(np.ptp(times)), 1e-9)
    design = np.stack([np.ones_like(tau), tau])  # 2 x n_times
    target = -(out @ design.T)  # n_voxels x 2: what the outside has to cancel
    system = design[:, outside] @ design[:, outside].T
    # A single outside sample cannot cancel a trend as well; then only the mean is zeroed.
    if np.linalg.cond(system) > 1e12:
        out[:, outside] = target[:, :1] / outside.sum()
        return out
    coef = np.linalg.solve(system, target.T)  # 2 x n_voxels
    out[:, outside] = (design[:, outside].T @ coef).T
    return out
