"""Head-motion estimation: a rigid ANTs registration of every volume to a mean reference.

Convention of the six parameters (the simulator's and SPM's): ``trans_x, trans_y,
trans_z`` in mm and ``rot_x, rot_y, rot_z`` in radians, in RAS+ world coordinates, of the
matrix ``M = T(trans) @ Rz(rot_z) @ Ry(rot_y) @ Rx(rot_x)`` that maps a point of the
reference volume to where the same tissue is in volume ``i`` (rotations about the world
origin).  This is the ``mode-image`` transform that resamples volume ``i`` onto the
reference, as ANTs, ITK and fMRIPrep's ``desc-hmc_xfm`` define it.  Framewise displacement
follows Power et al. (2012): the sum of absolute backward differences of the translations
plus those of the rotations as arc lengths on a 50 mm sphere.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from bidsapp.io import write_text
from bidsapp.progress import Progress

from ._ants import ants_environment, array_to_ants, read_ants_transform

LOGGER = logging.getLogger("bidsapp.preproc")

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
"""Column names of the six motion parameters, as in fMRIPrep's confounds."""

FD_RADIUS_MM = 50.0
"""Head radius that turns rotations into displacements (Power et al., 2012)."""

COLD_ITERATIONS = 20
"""Iterations of a registration that starts from the identity (the first volume)."""

ROUND_TOLERANCE_MM = 0.25
"""A registration round that moved the pose by more than this (framewise displacement, mm)
may have stopped short of the optimum: another round follows from where it ended."""

MAX_ROUNDS = 4
"""Most registration rounds per volume."""


def parameters_to_matrices(parameters: np.ndarray) -> np.ndarray:
    """Return the 4 x 4 rigid matrices of motion parameters.

    Parameters
    ----------
    parameters : numpy.ndarray
        Shape (n, 6) or (6,): ``trans_x, trans_y, trans_z`` (mm), ``rot_x, rot_y, rot_z``
        (radians).

    Returns
    -------
    numpy.ndarray
        Shape (n, 4, 4): ``T @ Rz @ Ry @ Rx``.
    """
    params = np.atleast_2d(np.asarray(parameters, dtype=float))
    matrices = np.tile(np.eye(4), (len(params), 1, 1))
    # Extrinsic rotations about x, then y, then z give Rz @ Ry @ Rx.
    matrices[:, :3, :3] = Rotation.from_euler("xyz", params[:, 3:6]).as_matrix()
    matrices[:, :3, 3] = params[:, :3]
    return matrices


def matrices_to_parameters(matrices: np.ndarray) -> np.ndarray:
    """Return the motion parameters of rigid 4 x 4 matrices (inverse of the above).

    Parameters
    ----------
    matrices : numpy.ndarray
        Shape (n, 4, 4) or (4, 4), rigid (rotation + translation) in RAS+ mm.

    Returns
    -------
    numpy.ndarray
        Shape (n, 6).
    """
    stack = np.asarray(matrices, dtype=float).reshape(-1, 4, 4)
    rotations = Rotation.from_matrix(stack[:, :3, :3]).as_euler("xyz")
    return np.c_[stack[:, :3, 3], rotations]


def framewise_displacement(parameters: np.ndarray, radius: float = FD_RADIUS_MM) -> np.ndarray:
    """Return Power et al.'s framewise displacement of motion parameters.

    Parameters
    ----------
    parameters : numpy.ndarray
        Shape (n, 6), translations (mm) then rotations (radians).
    radius : float, optional
        Radius of the sphere the rotations move, in mm.

    Returns
    -------
    numpy.ndarray
        Shape (n,), mm; the first value is NaN (no previous volume), as fMRIPrep's
        ``n/a``.

    References
    ----------
    Power JD, Barnes KA, Snyder AZ, Schlaggar BL, Petersen SE (2012). Spurious but
    systematic correlations in functional connectivity MRI networks arise from subject
    motion. NeuroImage 59(3):2142-2154.
    """
    params = np.asarray(parameters, dtype=float)
    delta = np.abs(np.diff(params, axis=0))
    fd = delta[:, :3].sum(axis=1) + radius * delta[:, 3:].sum(axis=1)
    return np.r_[np.nan, fd]


@dataclass(frozen=True)
class HeadMotion:
    """Estimated rigid head motion of one run.

    Attributes
    ----------
    matrices : numpy.ndarray
        Shape (n, 4, 4), RAS+ mm: reference point to the same tissue's point in volume i.
    reference : nibabel.Nifti1Image
        The volume every volume was registered to (the mean of the run).
    """

    matrices: np.ndarray
    reference: object

    @property
    def parameters(self) -> np.ndarray:
        """The six parameters per volume, shape (n, 6) (see the module docstring)."""
        return matrices_to_parameters(self.matrices)

    @property
    def framewise_displacement(self) -> np.ndarray:
        """Power et al.'s framewise displacement (mm), NaN for the first volume."""
        return framewise_displacement(self.parameters)

    def confounds(self):
        """Return the confounds table: the six parameters and ``framewise_displacement``.

        Returns
        -------
        pandas.DataFrame
            One row per volume, fMRIPrep's column names.
        """
        table = pd.DataFrame(self.parameters, columns=list(MOTION_COLUMNS))
        table["framewise_displacement"] = self.framewise_displacement
        return table


def bold_reference(img):
    """Return the temporal mean of a 4D series, the reference of motion estimation.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The 4D BOLD series.

    Returns
    -------
    nibabel.Nifti1Image
        float32 3D image on the same grid.
    """
    total = np.zeros(img.shape[:3], dtype=np.float64)
    for k in range(img.shape[3]):
        total += np.asarray(img.dataobj[..., k], dtype=np.float64)
    mean = (total / img.shape[3]).astype(np.float32)
    out = nb.Nifti1Image(mean, img.affine)
    out.header.set_xyzt_units("mm")
    out.set_qform(img.affine, int(img.header["qform_code"]) or 1)
    out.set_sform(img.affine, int(img.header["sform_code"]) or 1)
    return out


def _shrink_factor(img) -> int:
    # Register at about 4-5 mm: as precise as full resolution for rigid motion of smooth
    # EPI (measured 0.01-0.04 mm) at a fraction of the cost.
    voxel = float(min(img.header.get_zooms()[:3]))
    return max(1, int(round(4.0 / voxel)))


def _shrunk_volume(img, volume: np.ndarray, factor: int):
    """Return ``volume`` smoothed (1 voxel) and subsampled by ``factor``, as an ANTs image.

    This is what ANTs' own pyramid does (Gaussian, then every ``factor``-th voxel), done
    once here so that ANTs never smooths or resamples the full-resolution volumes: that
    was half the time of every registration.
    """
    if factor > 1:
        volume = gaussian_filter(np.asarray(volume, dtype=np.float32), 1.0)
        volume = volume[::factor, ::factor, ::factor]
    affine = np.asarray(img.affine, dtype=float) @ np.diag([factor, factor, factor, 1.0])
    return array_to_ants(volume, affine)


def _pose_change_mm(before: np.ndarray, after: np.ndarray) -> float:
    """Framewise displacement (Power et al., 2012) between two rigid matrices."""
    return float(framewise_displacement(matrices_to_parameters(np.stack([before, after])))[1])


def estimate_head_motion(img, *, reference=None, iterations: int = 10,
                         sampling: float = 0.1, warm_start: bool = True,
                         max_rounds: int = MAX_ROUNDS, n_threads: int | None = 1,
                         seed: int = 0, label: str | None = None) -> HeadMotion:
    """Estimate rigid head motion by registering every volume to a reference with ANTs.

    Each volume is registered with ``antsRegistration`` (rigid, Mattes mutual information,
    32 bins, regular sampling of ``sampling`` of the voxels within the reference's head
    mask) at a single resolution of about 4 mm (the volumes are smoothed and subsampled
    here, once).  The first volume starts from the identity (every volume is in the same
    scanner space) with :data:`COLD_ITERATIONS` iterations; each later one, from the
    previous volume's pose with ``iterations``, since heads move little in one TR.  A
    registration that still moved the pose by more than :data:`ROUND_TOLERANCE_MM`
    (framewise displacement between its start and its result) may have stopped short, so
    it goes on for another ``iterations``, up to ``max_rounds`` in all: a sudden jerk gets
    the iterations it needs, a still head no more than one round.
    On the simulator's runs this recovers the planted motion to 0.04 mm RMS (tiny, 4 mm
    voxels) and 0.04-0.05 mm (study, 2.4 mm); sampling the whole field of view doubles
    that.  This is the registration ``ants.motion_correction`` runs, without its
    per-volume resampling: the data are resampled once, later, with all transforms
    composed.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The 4D BOLD series (before slice-timing correction, as in fMRIPrep).
    reference : nibabel.Nifti1Image, optional
        Target of the registrations; the temporal mean of ``img`` by default.
    iterations : int, optional
        Gradient-descent iterations of each round.
    sampling : float, optional
        Fraction of the voxels within the head mask that sample the metric.
    warm_start : bool, optional
        Start each volume from the previous volume's estimate (default) instead of the
        identity.  On the first 300 volumes of a study run, 10 iterations from the
        previous pose came within 0.043 mm RMS of the planted motion, against 0.054 mm
        for 20 from the identity, in two thirds of the time.  Without it, every volume
        starts from the identity with ``iterations``.
    max_rounds : int, optional
        Most rounds of ``iterations`` per volume (1: a single registration, as before).
    n_threads : int, optional
        ITK threads (see :func:`~bidsapp.preproc._ants.ants_environment`).  One by default:
        ITK's multithreaded metrics sum in a varying order, so only a single thread gives
        bit-identical parameters on a rerun (and volumes this small gain little from more).
    seed : int, optional
        Random seed of the metric sampling; with one thread the same seed gives the same
        parameters bit for bit.
    label : str, optional
        The run, as named in the progress lines (default: the image's file name).

    Returns
    -------
    HeadMotion
        Matrices per volume and the reference.
    """
    if reference is None:
        reference = bold_reference(img)
    shrink = _shrink_factor(img)
    # A volume registered from the identity has the whole way to go.
    cold_iterations = max(iterations, COLD_ITERATIONS) if warm_start else iterations
    matrices = np.empty((img.shape[3], 4, 4))
    with ants_environment(n_threads, seed), tempfile.TemporaryDirectory() as tmp:
        import ants  # after the environment: ITK reads its thread count at first use

        fixed = _shrunk_volume(reference, np.asarray(reference.dataobj), shrink)
        # Samples in the background only add noise to the metric.
        mask = ants.iMath(ants.get_mask(fixed), "MD", 1)
        previous: Path | None = None  # the transform file of the last registered volume
        progress = Progress(f"Head motion of {label or _name(img)}", img.shape[3], "volumes")
        for k in range(img.shape[3]):
            volume = np.asarray(img.dataobj[..., k], dtype=np.float32)
            if not volume.any():
                # A blank volume has nothing to register; keep it where the previous was.
                matrices[k] = matrices[k - 1] if k else np.eye(4)
                progress.advance()
                continue
            moving = _shrunk_volume(img, volume, shrink)
            if warm_start and previous is not None:
                start, start_matrix, steps = str(previous), matrices[k - 1], iterations
            else:
                start, start_matrix, steps = "Identity", np.eye(4), cold_iterations
            for round_ in range(max(1, max_rounds)):
                prefix = Path(tmp) / f"vol{k:05d}_{round_}_"
                result = ants.registration(
                    fixed, moving, type_of_transform="Rigid", initial_transform=start,
                    mask=mask, aff_metric="mattes", aff_sampling=32,
                    aff_random_sampling_rate=sampling, aff_iterations=(steps,),
                    aff_shrink_factors=(1,), aff_smoothing_sigmas=(1,), outprefix=str(prefix))
                # ANTs collapses the initial transform into the one it writes (``-z 1``).
                written = Path(result["fwdtransforms"][0])
                matrix = read_ants_transform(written)
                for path in Path(tmp).glob(f"{prefix.name}*"):
                    if path != written:
                        path.unlink()
                if round_:
                    Path(start).unlink()  # this volume's previous round
                moved = _pose_change_mm(start_matrix, matrix)
                start, start_matrix, steps = str(written), matrix, iterations
                if moved <= ROUND_TOLERANCE_MM:
                    break
            matrices[k] = matrix
            if previous is not None:
                previous.unlink()
            previous = written
            progress.advance()
    LOGGER.info("Head motion of %d volumes estimated (mean FD %.3f mm)", img.shape[3],
                np.nanmean(framewise_displacement(matrices_to_parameters(matrices)))
                if img.shape[3] > 1 else 0.0)
    return HeadMotion(matrices, reference)


def _name(img) -> str:
    """Return the image's file name for a log line, or a description of an in-memory one."""
    filename = img.get_filename() if hasattr(img, "get_filename") else None
    return Path(filename).name if filename else f"a {img.shape[3]}-volume series"


def write_confounds(path: str | Path, motion: HeadMotion) -> Path:
    """Write the confounds table as fMRIPrep does (tab-separated, ``n/a`` for missing).

    Parameters
    ----------
    path : str or Path
        ``..._desc-confounds_timeseries.tsv``.
    motion : HeadMotion
        The estimated motion.

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    text = motion.confounds().to_csv(sep="\t", index=False, na_rep="n/a",
                                     float_format="%.6g", lineterminator="\n")
    return write_text(path, text)
