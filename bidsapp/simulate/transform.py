"""A subject's known deformation of the template: ``y = A @ (x + u(x))``.

``x`` is a template (MNI) point in mm, ``u`` a smooth displacement field defined on a coarse
template-space grid and interpolated trilinearly (clamped at the grid's edge), ``A`` a 4 x 4
affine (rotation, translation, scaling) and ``y`` the same tissue point in the subject's
native (scanner) space in mm.  Both ``A`` and ``u`` are written to the truth folder.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .grid import Grid, apply_affine, sample

WARP_SPACING_MM = 4.0
"""Spacing of the grid that defines the displacement field."""


@dataclass(frozen=True)
class SubjectTransform:
    """The known mapping ``y = A @ (x + u(x))`` from template to native space (mm)."""

    affine: np.ndarray
    field: np.ndarray
    field_affine: np.ndarray

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """Return the displacement ``u`` at template points.

        Parameters
        ----------
        points : numpy.ndarray
            Shape (N, 3), template mm.

        Returns
        -------
        numpy.ndarray
            Shape (N, 3), mm; trilinear, clamped at the field's edges.
        """
        return sample(self.field, self.field_affine, points, mode="nearest")

    def to_native(self, points: np.ndarray) -> np.ndarray:
        """Map template (MNI) points to native points.

        Parameters
        ----------
        points : numpy.ndarray
            Shape (N, 3), template mm.

        Returns
        -------
        numpy.ndarray
            Shape (N, 3), native mm.
        """
        moved = points + self.displacement(points)
        return apply_affine(self.affine, moved)

    def to_template(self, points: np.ndarray, tolerance_mm: float = 1e-4,
                    max_iterations: int = 50) -> np.ndarray:
        """Map native points to template points, inverting the warp by fixed point.

        ``x = z - u(x)`` with ``z = A^-1 y`` converges because the field's Jacobian is kept
        below 0.5, so the error at least halves at every iteration.

        Parameters
        ----------
        points : numpy.ndarray
            Shape (N, 3), native mm.
        tolerance_mm : float, optional
            Stop when no point moves more than this between iterations.
        max_iterations : int, optional
            Upper bound on the iterations.

        Returns
        -------
        numpy.ndarray
            Shape (N, 3), template mm.
        """
        inv = np.linalg.inv(self.affine)
        z = apply_affine(inv, points)
        x = z - self.displacement(z)
        for _ in range(max_iterations):
            new = z - self.displacement(x)
            change = np.abs(new - x).max() if len(x) else 0.0
            x = new
            if change < tolerance_mm:
                break
        return x

    @functools.cached_property
    def inverse_field(self) -> np.ndarray:
        """The inverse displacement ``w(z) = x - z`` on the field's own grid.

        Computed once by the exact fixed point at the grid points; interpolating it is what
        :meth:`to_template_fast` does for millions of image voxels.
        """
        grid = Grid(self.field.shape[:3], self.field_affine)
        z = grid.points()
        x = z - self.displacement(z)
        for _ in range(50):
            new = z - self.displacement(x)
            change = np.abs(new - x).max()
            x = new
            if change < 1e-4:
                break
        return (x - z).reshape(self.field.shape).astype(np.float32)

    def to_template_fast(self, points: np.ndarray) -> np.ndarray:
        """Map native points to template points by interpolating :attr:`inverse_field`.

        The inverse displacement is as smooth as the field (20 mm), so trilinear
        interpolation between its 4 mm grid points is within about 0.02 mm of
        :meth:`to_template` at a tenth of the cost; the images are made with it.

        Parameters
        ----------
        points : numpy.ndarray
            Shape (N, 3), native mm.

        Returns
        -------
        numpy.ndarray
            Shape (N, 3), template mm.
        """
        inv = np.linalg.inv(self.affine)
        z = apply_affine(inv, points)
        return z + sample(self.inverse_field, self.field_affine, z, mode="nearest")
