"""The planted signal: spheres in MNI space, and the ``mixture`` signal model.

The default ``geometry`` model is in :mod:`bidsapp.simulate.geometry`; this module holds
the spheres, the sampling of responses in time and space, and the ``mixture`` model:
For a sphere carrying layer ``k`` with ``U`` units, truth-grid voxel ``v`` gets weights
``w_v = g - mean(g)``, ``g ~ N(0, I_U)``: a random linear mixture of the units whose weights
sum to zero, so the voxel follows the layer's pattern across units and not its overall
activation level, and the voxels' pattern correlations approximate the Pearson correlations
between the layer's unit patterns that the candidate RDM is built from.  Its response to a
clip is ``w_v @ F`` where ``F`` (U x frames) are the layer's HRF-convolved features on the
network's 64 ms grid (from :func:`bidsapp.audio.compute_features_many`), divided by the
voxel's standard deviation over all clips, so each planted voxel has unit variance within
trials.  Between clips the response is zero: the features end with the clip, with no HRF
tail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from bidsapp.errors import UsageError

from .acquisition import RunSchedule
from .anatomy import Template
from .grid import Grid, apply_affine, sample

GRID_PERIOD = 0.064
"""Seconds between feature frames: one conv5 frame (1,024 samples at 16 kHz)."""


@dataclass(frozen=True)
class Sphere:
    """A planted sphere: MNI centre (mm), radius (mm) and layer (1 = conv1 ... 10 = fc)."""

    center: tuple[float, float, float]
    radius: float
    layer: int


@dataclass(frozen=True)
class PlantedVoxels:
    """The truth-grid voxels that carry signal, in a fixed order used by every array."""

    ijk: np.ndarray
    sphere: np.ndarray
    grid: Grid

    @property
    def n(self) -> int:
        """Number of planted voxels."""
        return len(self.ijk)


def truth_maps(spheres: Sequence[Sphere], template: Template, grid: Grid
               ) -> tuple[np.ndarray, list[np.ndarray], PlantedVoxels]:
    """Return the layer map, one mask per sphere and the planted voxels on ``grid``.

    A voxel belongs to a sphere when its centre lies within the radius and inside the
    template's brain mask (trilinearly sampled, above one half).

    Parameters
    ----------
    spheres : sequence of Sphere
        Non-overlapping spheres.
    template : Template
        Gives the brain mask.
    grid : Grid
        The truth grid in template space.

    Returns
    -------
    layer_map : numpy.ndarray
        int16, 0 outside spheres, the sphere's layer inside.
    masks : list of numpy.ndarray
        uint8 masks, one per sphere.
    planted : PlantedVoxels
        Their voxels, sphere by sphere in C order.

    Raises
    ------
    UsageError
        If a sphere holds no brain voxel.
    """
    points = grid.points()
    in_brain = (sample(template.mask, template.affine, points) > 0.5).reshape(grid.shape)
    layer_map = np.zeros(grid.shape, dtype=np.int16)
    masks, ijk, which = [], [], []
    for index, sphere in enumerate(spheres):
        dist = np.linalg.norm(points - np.asarray(sphere.center), axis=1).reshape(grid.shape)
        mask = (dist <= sphere.radius) & in_brain
        if not mask.any():
            raise UsageError(
                f"The sphere at {tuple(sphere.center)} (radius {sphere.radius} mm) holds no "
                "brain voxel", fix="give centres inside the brain, in MNI mm")
        layer_map[mask] = sphere.layer
        masks.append(mask.astype(np.uint8))
        voxels = np.argwhere(mask)
        ijk.append(voxels)
        which.append(np.full(len(voxels), index))
    return layer_map, masks, PlantedVoxels(np.concatenate(ijk), np.concatenate(which), grid)


def mixing_weights(rng: np.random.Generator, n_voxels: int, width: int) -> np.ndarray:
    """Return Gaussian mixing weights whose rows sum to zero.

    Parameters
    ----------
    rng : numpy.random.Generator
        The sphere's mixing stream.
    n_voxels : int
        Planted voxels of the sphere.
    width : int
        Units of the layer.

    Returns
    -------
    numpy.ndarray
        Shape (n_voxels, width): ``g - mean(g)`` per row, ``g ~ N(0, 1)``.
    """
    weights = rng.standard_normal((n_voxels, width))
    return weights - weights.mean(axis=1, keepdims=True)


def voxel_responses(planted: PlantedVoxels, spheres: Sequence[Sphere],
                    features: Sequence[Mapping[str, np.ndarray]], layer_names: Sequence[str],
                    clip_seconds: float | Sequence[float], rng_of_sphere) -> list[np.ndarray]:
    """Return every planted voxel's unit-variance response to each clip on the 64 ms grid.

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
        Clip duration (or one per clip); frames at or after it are not used for the scaling.
    rng_of_sphere : callable
        ``rng_of_sphere(index) -> numpy.random.Generator`` for each sphere's weights.

    Returns
    -------
    list of numpy.ndarray
        Per clip, shape (n_voxels, frames) float64.
    """
    responses = [np.zeros((planted.n, next(iter(f.values())).shape[1])) for f in features]
    for index, sphere in enumerate(spheres):
        rows = np.flatnonzero(planted.sphere == index)
        name = layer_names[sphere.layer - 1]
        weights = mixing_weights(rng_of_sphere(index), len(rows), features[0][name].shape[0])
        for response, clip in zip(responses, features, strict=True):
            response[rows] = weights @ np.asarray(clip[name], dtype=np.float64)
    seconds = np.broadcast_to(np.asarray(clip_seconds, dtype=float), (len(responses),))
    n_used = [min(r.shape[1], int(np.ceil(s / GRID_PERIOD - 1e-9)))
              for r, s in zip(responses, seconds, strict=True)]
    within = np.concatenate([r[:, :n] for r, n in zip(responses, n_used, strict=True)], axis=1)
    scale = within.std(axis=1)
    scale[scale == 0] = 1.0  # a dead layer stays flat instead of dividing by zero
    return [r / scale[:, None] for r in responses]


def sample_timeline(responses: Sequence[np.ndarray], schedule: RunSchedule,
                    times: np.ndarray) -> np.ndarray:
    """Return the planted signal of every voxel at arbitrary times of a run.

    Parameters
    ----------
    responses : sequence of numpy.ndarray
        Per clip, (n_voxels, frames) on the 64 ms grid, frame ``j`` at ``j * 0.064`` s after
        the onset.
    schedule : RunSchedule
        Which clip starts when.
    times : numpy.ndarray
        Shape (n_times,), seconds from the start of the run (slice acquisition times).

    Returns
    -------
    numpy.ndarray
        Shape (n_voxels, n_times): linear interpolation between frames within each clip,
        zero outside clips.
    """
    out = np.zeros((responses[0].shape[0], len(times)))
    for clip, onset, seconds in zip(schedule.clip_order, schedule.onsets, schedule.durations,
                                    strict=True):
        rel = times - onset
        inside = np.flatnonzero((rel >= 0) & (rel < seconds))
        if not inside.size:
            continue
        response = responses[clip]
        position = rel[inside] / GRID_PERIOD
        j0 = np.minimum(np.floor(position).astype(int), response.shape[1] - 1)
        j1 = np.minimum(j0 + 1, response.shape[1] - 1)
        frac = position - j0
        out[:, inside] = response[:, j0] * (1 - frac) + response[:, j1] * frac
    return out


class NativeOperator:
    """Collects the trilinear weights that carry truth-grid signal onto native grid points.

    A native point ``y`` receives ``sum_v phi(x(y) - x_v) s_v(t)`` where ``x(y)`` is its
    template position, ``x_v`` the planted truth voxels and ``phi`` the trilinear kernel of
    the truth grid: the signal image in template space, interpolated, seen in native space.
    """

    def __init__(self, planted: PlantedVoxels, spheres: Sequence[Sphere]):
        self._grid = planted.grid
        self._column = np.full(planted.grid.shape, -1, dtype=np.int64)
        self._column[tuple(planted.ijk.T)] = np.arange(planted.n)
        voxel = float(abs(planted.grid.affine[0, 0]))
        self._centers = np.array([s.center for s in spheres], float)
        self._reach = np.array([s.radius for s in spheres]) + np.sqrt(3) * voxel
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []

    def add(self, row_offset: int, template_points: np.ndarray) -> None:
        """Add native points and their template positions.

        Parameters
        ----------
        row_offset : int
            Flat native-grid index of the first point; the others follow one by one.
        template_points : numpy.ndarray
            Shape (N, 3): where each native point lies in template space (mm).
        """
        near = np.zeros(len(template_points), dtype=bool)
        for center, reach in zip(self._centers, self._reach, strict=True):
            near |= np.sum((template_points - center) ** 2, axis=1) <= reach**2
        rows = np.flatnonzero(near)
        if not rows.size:
            return
        inv = np.linalg.inv(self._grid.affine)
        coords = apply_affine(inv, template_points[rows])
        base = np.floor(coords).astype(np.int64)
        frac = coords - base
        shape = np.array(self._grid.shape)
        for corner in np.ndindex(2, 2, 2):
            idx = base + corner
            weight = np.prod(np.where(corner, frac, 1 - frac), axis=1)
            ok = np.all((idx >= 0) & (idx < shape), axis=1) & (weight > 0)
            column = np.full(len(rows), -1)
            column[ok] = self._column[tuple(idx[ok].T)]
            keep = column >= 0
            self._rows.append(rows[keep] + row_offset)
            self._cols.append(column[keep])
            self._weights.append(weight[keep])

    def finish(self, n_columns: int) -> tuple[np.ndarray, sparse.csr_matrix]:
        """Return the native points that receive signal and their weights.

        Parameters
        ----------
        n_columns : int
            Number of planted voxels.

        Returns
        -------
        targets : numpy.ndarray
            Sorted flat native-grid indices.
        matrix : scipy.sparse.csr_matrix
            Shape (len(targets), n_columns): the signal at ``targets`` is
            ``matrix @ s`` for planted-voxel signals ``s``.
        """
        if not self._rows:
            return np.zeros(0, dtype=np.int64), sparse.csr_matrix((0, n_columns))
        rows = np.concatenate(self._rows)
        targets, compact = np.unique(rows, return_inverse=True)
        matrix = sparse.csr_matrix(
            (np.concatenate(self._weights), (compact, np.concatenate(self._cols))),
            shape=(len(targets), n_columns))
        return targets, matrix
