"""Voxel grids and interpolation: the geometry every image of the simulation shares.

Grids are axis-aligned RAS boxes given by a shape and a voxel-to-world affine (mm);
:func:`sample` interpolates a volume at world points and :func:`in_slabs` evaluates a
function of world points over a large grid with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Return ``affine`` applied to points.

    Written as ``(A @ points.T).T``: numpy's matrix product is many times faster with the
    long axis last than with ``points @ A.T``.

    Parameters
    ----------
    affine : numpy.ndarray
        A 4 x 4 affine.
    points : numpy.ndarray
        Shape (N, 3).

    Returns
    -------
    numpy.ndarray
        Shape (N, 3).
    """
    return (affine[:3, :3] @ np.asarray(points, float).T).T + affine[:3, 3]


@dataclass(frozen=True)
class Grid:
    """A voxel grid: its shape and its voxel-to-world affine (mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @classmethod
    def centered(cls, center: np.ndarray, extent_mm: tuple[float, float, float],
                 voxel: float, shape: tuple[int, int, int] | None = None) -> Grid:
        """Return an axis-aligned RAS grid of ``voxel`` mm centred on ``center``.

        Parameters
        ----------
        center : numpy.ndarray
            World coordinates (mm) of the grid's centre.
        extent_mm : tuple of float
            Size of the box to cover; ignored when ``shape`` is given.
        voxel : float
            Isotropic voxel size in mm.
        shape : tuple of int, optional
            The number of voxels per axis.

        Returns
        -------
        Grid
            The grid.
        """
        if shape is None:
            shape = tuple(int(np.ceil(e / voxel - 1e-6)) for e in extent_mm)
        affine = np.diag([voxel, voxel, voxel, 1.0])
        affine[:3, 3] = np.asarray(center, float) - voxel * (np.asarray(shape) - 1) / 2
        return cls(tuple(int(s) for s in shape), affine)

    def points(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return world coordinates of the voxel centres with ``start <= i < stop``.

        Points are in C order of ``(i, j, k)``, so the slab's flat indices in the whole
        volume run from ``start * shape[1] * shape[2]`` upwards without gaps.

        Parameters
        ----------
        start, stop : int, optional
            The slab along the first axis (default: the whole grid).

        Returns
        -------
        numpy.ndarray
            Shape (N, 3), mm.
        """
        stop = self.shape[0] if stop is None else stop
        ijk = np.stack(np.meshgrid(np.arange(start, stop), np.arange(self.shape[1]),
                                   np.arange(self.shape[2]), indexing="ij"), -1)
        ijk = ijk.reshape(-1, 3).astype(float)
        return apply_affine(self.affine, ijk)

    def corners(self) -> np.ndarray:
        """Return the world coordinates (8, 3) of the outermost voxel centres."""
        idx = np.array([[i, j, k] for i in (0, self.shape[0] - 1)
                        for j in (0, self.shape[1] - 1) for k in (0, self.shape[2] - 1)], float)
        return apply_affine(self.affine, idx)


def sample(volume: np.ndarray, affine: np.ndarray, points: np.ndarray, order: int = 1,
           cval: float = 0.0, mode: str = "constant") -> np.ndarray:
    """Interpolate a volume at world points.

    Parameters
    ----------
    volume : numpy.ndarray
        3D array, or 4D with components along the last axis (each is interpolated).
    affine : numpy.ndarray
        Its voxel-to-world 4 x 4 affine.
    points : numpy.ndarray
        Shape (N, 3), world mm.
    order : int, optional
        Spline order (1 is trilinear).
    cval : float, optional
        Value outside the volume when ``mode`` is ``'constant'``.
    mode : str, optional
        :func:`scipy.ndimage.map_coordinates` boundary mode.

    Returns
    -------
    numpy.ndarray
        Shape (N,), or (N, components) for a 4D volume.
    """
    inv = np.linalg.inv(affine)
    coords = inv[:3, :3] @ np.asarray(points, float).T + inv[:3, 3:4]
    if volume.ndim == 4:
        return np.stack([map_coordinates(volume[..., c], coords, order=order, mode=mode,
                                         cval=cval, prefilter=order > 1)
                         for c in range(volume.shape[3])], axis=1)
    return map_coordinates(volume, coords, order=order, mode=mode, cval=cval,
                           prefilter=order > 1)


def presmooth(volume: np.ndarray, voxel_size: float, source_mm: float = 1.0) -> np.ndarray:
    """Blur a volume before sampling it at ``voxel_size`` mm, to avoid aliasing.

    Parameters
    ----------
    volume : numpy.ndarray
        The finely sampled volume.
    voxel_size : float
        The coarser spacing it will be sampled at, in mm.
    source_mm : float, optional
        Its own voxel size in mm.

    Returns
    -------
    numpy.ndarray
        Blurred by a Gaussian whose FWHM makes up the difference in resolution (the input
        itself when that is negligible).
    """
    sigma = np.sqrt(max(voxel_size**2 - source_mm**2, 0.0)) / 2.355 / source_mm
    return gaussian_filter(volume, sigma) if sigma > 0.1 else volume


def in_slabs(grid: Grid, func, chunk_voxels: int = 2_000_000) -> np.ndarray:
    """Evaluate a function of world points over a grid slab by slab; return the volume.

    Parameters
    ----------
    grid : Grid
        The grid to fill.
    func : callable
        ``func(points, start) -> (N,)`` where ``points`` are the world coordinates of the
        slab's voxels and ``start`` the flat index of its first voxel in the whole volume.
    chunk_voxels : int, optional
        Voxels per slab, which bounds the memory on 1 mm grids.

    Returns
    -------
    numpy.ndarray
        float32 volume of ``grid.shape``.
    """
    out = np.empty(grid.shape, dtype=np.float32)
    per_slab = grid.shape[1] * grid.shape[2]
    step = max(1, chunk_voxels // per_slab)
    for i0 in range(0, grid.shape[0], step):
        i1 = min(grid.shape[0], i0 + step)
        out[i0:i1] = func(grid.points(i0, i1), i0 * per_slab).reshape(
            i1 - i0, grid.shape[1], grid.shape[2])
    return out
