"""Compare preprocessing with a simulation's planted truth (tests, benchmarks, docs).

The simulator (:mod:`bidsapp.simulate`) plants, per subject, a template-to-native mapping
and per run a rigid motion of every volume.  These functions score what preprocessing
recovered against them:

- :func:`motion_error`: RMS displacement of brain voxels between the recovered and the
  planted motion, after removing the constant pose of the reference volume;
- :func:`gm_dice`: Dice between the template's grey matter and the subject's grey matter
  brought back into the template by the recovered normalization;
- :func:`chain_error`: distance, in native space, between where the whole recovered chain
  (normalization, coregistration, motion) samples an MNI point and where the planted
  anatomy and motion put it.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from .masks import dice
from .motion import matrices_to_parameters, parameters_to_matrices


def _reference_pose(matrices: np.ndarray, true_matrices: np.ndarray) -> np.ndarray:
    # Recovered motion is relative to the mean volume, the planted one to native space:
    # inv(est_k) @ true_k is the reference's own pose, constant up to estimation error.
    offsets = np.array([np.linalg.inv(e) @ t for e, t in zip(matrices, true_matrices,
                                                            strict=True)])
    return parameters_to_matrices(matrices_to_parameters(offsets).mean(axis=0))[0]


def brain_points(reference, fraction: float = 0.4) -> np.ndarray:
    """Return world points (N, 3) of the brightest ``fraction`` of a reference volume."""
    data = np.asarray(reference.dataobj, dtype=float)
    mask = data > np.quantile(data, 1.0 - fraction)
    ijk = np.argwhere(mask)
    return ijk @ reference.affine[:3, :3].T + reference.affine[:3, 3]


def motion_error(matrices: np.ndarray, true_parameters: np.ndarray, points: np.ndarray
                 ) -> dict[str, float]:
    """Score recovered head motion against the planted parameters.

    Parameters
    ----------
    matrices : numpy.ndarray
        Recovered (n, 4, 4) reference-to-volume matrices (:class:`.motion.HeadMotion`).
    true_parameters : numpy.ndarray
        Planted (n, 6) parameters (same convention, native space to volume).
    points : numpy.ndarray
        (N, 3) brain points in mm where displacements are compared.

    Returns
    -------
    dict
        ``rms_mm``: RMS over volumes of the RMS displacement error over the points;
        ``max_mm``: the worst volume; ``trans_rms_mm`` and ``rot_rms_deg``: RMS errors
        of the parameters themselves.
    """
    true = parameters_to_matrices(true_parameters)
    pose = _reference_pose(matrices, true)
    homogeneous = np.c_[points, np.ones(len(points))].T
    per_volume = []
    for est, tru in zip(matrices, true, strict=True):
        delta = ((est @ pose) - tru) @ homogeneous
        per_volume.append(np.sqrt(np.mean(np.sum(delta[:3] ** 2, axis=0))))
    recovered = matrices_to_parameters(np.array([m @ pose for m in matrices]))
    diff = recovered - np.asarray(true_parameters)
    return {"rms_mm": float(np.sqrt(np.mean(np.square(per_volume)))),
            "max_mm": float(np.max(per_volume)),
            "trans_rms_mm": float(np.sqrt(np.mean(diff[:, :3] ** 2))),
            "rot_rms_deg": float(np.degrees(np.sqrt(np.mean(diff[:, 3:] ** 2))))}


def sample_world(img, points: np.ndarray, order: int = 1) -> np.ndarray:
    """Interpolate a 3D image at world points (N, 3); 0 outside."""
    inv = np.linalg.inv(img.affine)
    coords = points @ inv[:3, :3].T + inv[:3, 3]
    return map_coordinates(np.asarray(img.dataobj, dtype=np.float32), coords.T, order=order,
                           mode="constant", cval=0.0)


def gm_dice(gm_probseg, grid_points: np.ndarray, recovered_t1w_points: np.ndarray,
            to_template, threshold: float = 0.5) -> float:
    """Return the Dice of planted and recovered grey matter in template space.

    Planted: the template's GM probability at each grid point, thresholded.  Recovered:
    the subject's GM (the template's, carried by the planted warp) read where the
    recovered normalization samples the subject for that grid point.

    Parameters
    ----------
    gm_probseg : nibabel.Nifti1Image
        The template's grey-matter probability (1 mm).
    grid_points : numpy.ndarray
        (N, 3) template points (e.g. in-brain voxels of a template grid).
    recovered_t1w_points : numpy.ndarray
        (N, 3) T1w points the recovered normalization assigns to them
        (:func:`.resample.template_to_t1w_points`).
    to_template : callable
        The planted native-to-template mapping of points (N, 3) -> (N, 3).
    threshold : float, optional
        GM probability threshold.

    Returns
    -------
    float
        Dice coefficient.
    """
    planted = sample_world(gm_probseg, grid_points) >= threshold
    recovered = sample_world(gm_probseg, to_template(recovered_t1w_points)) >= threshold
    return dice(planted, recovered)


def chain_error(mni_points: np.ndarray, t1w_points: np.ndarray, coreg: np.ndarray,
                motion: np.ndarray, to_native, true_parameters: np.ndarray) -> np.ndarray:
    """Return, per point, the worst distance over volumes between recovered and planted.

    Parameters
    ----------
    mni_points : numpy.ndarray
        (P, 3) template points (e.g. planted sphere centres).
    t1w_points : numpy.ndarray
        (P, 3) T1w points the recovered normalization maps them to.
    coreg : numpy.ndarray
        Recovered T1w-to-reference matrix.
    motion : numpy.ndarray
        Recovered (n, 4, 4) reference-to-volume matrices.
    to_native : callable
        Planted template-to-native mapping of points.
    true_parameters : numpy.ndarray
        Planted (n, 6) motion.

    Returns
    -------
    numpy.ndarray
        (P,) mm: how far from the planted tissue each point's samples were taken.
    """
    true = parameters_to_matrices(true_parameters)
    native = np.c_[to_native(mni_points), np.ones(len(mni_points))].T
    recovered = np.c_[t1w_points, np.ones(len(t1w_points))].T
    worst = np.zeros(len(mni_points))
    for est, tru in zip(motion, true, strict=True):
        delta = (est @ coreg @ recovered) - (tru @ native)
        worst = np.maximum(worst, np.linalg.norm(delta[:3], axis=0))
    return worst


def field_at(grid, field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Interpolate a (X, Y, Z, 3) point field on ``grid`` at world points (trilinear).

    Parameters
    ----------
    grid : nibabel image
        Gives the field's voxel-to-world affine.
    field : numpy.ndarray
        E.g. :func:`.resample.template_to_t1w_points` of that grid.
    points : numpy.ndarray
        (N, 3) world points.

    Returns
    -------
    numpy.ndarray
        (N, 3).
    """
    inv = np.linalg.inv(grid.affine)
    coords = (np.asarray(points) @ inv[:3, :3].T + inv[:3, 3]).T
    return np.stack([map_coordinates(field[..., c], coords, order=1, mode="nearest")
                     for c in range(3)], axis=1)
