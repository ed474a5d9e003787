"""Rigid head motion: smooth random walks of six parameters, and their matrices.

Convention (also in ``docs/simulate.md``): the parameters of volume ``i`` are
``trans_x, trans_y, trans_z`` in mm and ``rot_x, rot_y, rot_z`` in radians, in the scanner's
RAS world coordinates.  They define ``M_i = T(trans) @ Rz(rot_z) @ Ry(rot_y) @ Rx(rot_x)``,
which maps a tissue point's position in the subject's native space (where the T1w was
acquired and the truth transforms point) to its position while volume ``i`` is acquired;
rotations are about the scanner origin (world ``(0, 0, 0)``).  A voxel at scanner position
``p`` therefore records the tissue that sits at ``M_i^-1 p`` in native space.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
"""Column names of the motion TSV, as in fMRIPrep's confounds."""


def rotation_matrix(rot_x: float, rot_y: float, rot_z: float) -> np.ndarray:
    """Return ``Rz @ Ry @ Rx`` for angles in radians (x applied first).

    Parameters
    ----------
    rot_x, rot_y, rot_z : float
        Right-handed rotations about the x, y and z axes, in radians.

    Returns
    -------
    numpy.ndarray
        The 3 x 3 rotation matrix.
    """
    cx, sx = np.cos(rot_x), np.sin(rot_x)
    cy, sy = np.cos(rot_y), np.sin(rot_y)
    cz, sz = np.cos(rot_z), np.sin(rot_z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_matrix(params: np.ndarray) -> np.ndarray:
    """Return the 4 x 4 matrix ``M`` of one row of motion parameters (see module docstring).

    Parameters
    ----------
    params : numpy.ndarray
        ``(trans_x, trans_y, trans_z, rot_x, rot_y, rot_z)`` in mm and radians.

    Returns
    -------
    numpy.ndarray
        Maps native-space points (homogeneous, mm) to their scanner position.
    """
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix(*params[3:6])
    matrix[:3, 3] = params[:3]
    return matrix


def random_motion(rng: np.random.Generator, n_volumes: int, tr: float, max_trans_mm: float,
                  max_rot_deg: float, smooth_seconds: float = 4.0) -> np.ndarray:
    """Return a smooth random walk of the six motion parameters.

    Each parameter is a Gaussian random walk, smoothed with a Gaussian kernel of
    ``smooth_seconds``, started at a random offset (the head is never exactly where it was
    during the T1w), then scaled so that its largest absolute value is a random 40-100% of
    the limit.  Every value therefore stays within ``max_trans_mm`` and ``max_rot_deg``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's motion stream.
    n_volumes : int
        Volumes in the run.
    tr : float
        Repetition time in seconds (sets the smoothing in volumes).
    max_trans_mm, max_rot_deg : float
        Limits of every translation (mm) and rotation (degrees) parameter.
    smooth_seconds : float, optional
        Width (sigma) of the smoothing.

    Returns
    -------
    numpy.ndarray
        Shape (n_volumes, 6): ``trans_x, trans_y, trans_z`` (mm), ``rot_x, rot_y, rot_z``
        (radians).
    """
    limits = np.array([max_trans_mm] * 3 + [np.deg2rad(max_rot_deg)] * 3)
    walk = np.cumsum(rng.standard_normal((n_volumes, 6)), axis=0)
    walk = gaussian_filter1d(walk, sigma=max(smooth_seconds / tr, 0.5), axis=0, mode="nearest")
    walk = walk - walk[0] + rng.uniform(-0.5, 0.5, 6) * np.abs(walk).max(axis=0).clip(1e-9)
    peak = np.abs(walk).max(axis=0)
    target = limits * rng.uniform(0.4, 1.0, 6)
    scale = np.divide(target, peak, out=np.zeros(6), where=peak > 0)
    return walk * scale


def max_displacement(motion: np.ndarray, corners: np.ndarray) -> float:
    """Return the largest distance any point of a box moves under any volume's motion.

    The displacement ``M p - p`` is affine in ``p``, so its norm is convex and its maximum
    over a box is reached at a corner.

    Parameters
    ----------
    motion : numpy.ndarray
        Shape (n_volumes, 6), see :func:`random_motion`.
    corners : numpy.ndarray
        Shape (8, 3): the box's corners in mm.

    Returns
    -------
    float
        The distance in mm.
    """
    worst = 0.0
    homogeneous = np.c_[corners, np.ones(len(corners))]
    for row in motion:
        moved = homogeneous @ rigid_matrix(row).T
        worst = max(worst, float(np.linalg.norm(moved[:, :3] - corners, axis=1).max()))
    return worst
