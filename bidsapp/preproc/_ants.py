"""Glue between nibabel (RAS+ world, voxel affines) and antspyx/ITK (LPS world, transforms).

ITK stores an affine transform as a matrix ``A``, a translation ``t`` and a centre ``c``:
``y = A (x - c) + t + c`` maps a point ``x`` of the fixed (reference) image to the point
``y`` of the moving image, in LPS millimetres.  Everything this package hands around
instead is a 4 x 4 matrix in RAS+ millimetres, as nibabel uses; these helpers convert at
the border and read and write ITK's text transform files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nibabel as nb
import numpy as np

from bidsapp.io import write_text

#: Flips x and y: RAS+ <-> LPS (its own inverse).
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@contextmanager
def ants_environment(n_threads: int | None = None, seed: int = 0) -> Iterator[None]:
    """Set ITK's thread count and ANTs' random seed for the calls inside the block.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once per process, at its first
    multithreaded call, so the thread count only takes effect in a fresh process (each
    nipype MultiProc job is one).  ``ANTS_RANDOM_SEED`` is read at every registration; ANTs
    treats 0 as "seed from the clock", so the app's seed ``s`` becomes ``s + 1``.

    Parameters
    ----------
    n_threads : int, optional
        Threads for ITK filters and registrations (default: leave as is).
    seed : int, optional
        The run's random seed.
    """
    saved = {k: os.environ.get(k) for k in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
                                            "ANTS_RANDOM_SEED")}
    if n_threads:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(int(n_threads))
    os.environ["ANTS_RANDOM_SEED"] = str(abs(int(seed)) % (2**31 - 2) + 1)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def to_ants(img, data: np.ndarray | None = None):
    """Return an ANTsImage with the geometry of a nibabel image.

    Parameters
    ----------
    img : nibabel.spatialimages.SpatialImage
        Gives the affine (and the data unless ``data`` is given).
    data : numpy.ndarray, optional
        3D data on the image's grid (e.g. one volume of a 4D series).

    Returns
    -------
    ants.ANTsImage
        float32 image in ITK's LPS convention.
    """
    return array_to_ants(img.dataobj if data is None else data, img.affine)


def array_to_ants(data: np.ndarray, affine: np.ndarray):
    """Return an ANTsImage of a 3D array with a nibabel (RAS+) voxel-to-world affine.

    Parameters
    ----------
    data : numpy.ndarray
        3D data.
    affine : numpy.ndarray
        4 x 4 voxel-to-world matrix, RAS+ mm.

    Returns
    -------
    ants.ANTsImage
        float32 image in ITK's LPS convention.
    """
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    affine = np.asarray(affine, dtype=float)
    array = np.asarray(data, dtype=np.float32)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = (LPS[:3, :3] @ affine[:3, :3]) / spacing
    origin = LPS[:3, :3] @ affine[:3, 3]
    return ants.from_numpy(np.ascontiguousarray(array), origin=origin.tolist(),
                           spacing=spacing.tolist(), direction=direction)


def to_nibabel(image, like=None):
    """Return a nibabel image with the data and geometry of an ANTsImage.

    Parameters
    ----------
    image : ants.ANTsImage
        A 3D image.
    like : nibabel image, optional
        Copies its header (units, codes) when given.

    Returns
    -------
    nibabel.Nifti1Image
        The image in RAS+ (data in float32 unless the ANTs image is an integer type).
    """
    spacing = np.asarray(image.spacing, dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = LPS[:3, :3] @ (np.asarray(image.direction, dtype=float) * spacing)
    affine[:3, 3] = LPS[:3, :3] @ np.asarray(image.origin, dtype=float)
    header = like.header.copy() if like is not None else None
    out = nb.Nifti1Image(image.numpy(), affine, header)
    out.set_qform(affine, 1 if like is None else int(like.header["qform_code"]) or 1)
    out.set_sform(affine, 1 if like is None else int(like.header["sform_code"]) or 1)
    return out


def itk_to_ras(parameters: Sequence[float], fixed_parameters: Sequence[float]) -> np.ndarray:
    """Return the 4 x 4 RAS+ matrix of an ITK affine (``Parameters``, ``FixedParameters``)."""
    params = np.asarray(parameters, dtype=float)
    matrix = params[:9].reshape(3, 3)
    center = np.asarray(fixed_parameters, dtype=float)[:3]
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = params[9:12] + center - matrix @ center
    return LPS @ lps @ LPS


def ras_to_itk(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ITK ``Parameters`` (12) and ``FixedParameters`` (centre 0) of a RAS+ matrix."""
    lps = LPS @ np.asarray(matrix, dtype=float) @ LPS
    return np.r_[lps[:3, :3].ravel(), lps[:3, 3]], np.zeros(3)


def read_ants_transform(path: str | Path) -> np.ndarray:
    """Read an affine transform file ANTs wrote (``.mat`` or ``.txt``) as a RAS+ matrix."""
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    transform = ants.read_transform(str(path))
    return itk_to_ras(transform.parameters, transform.fixed_parameters)


def write_itk_affines(path: str | Path, matrices: np.ndarray | Sequence[np.ndarray]) -> Path:
    """Write one or more RAS+ matrices as an ITK text transform file (``.txt``).

    A single matrix gives a file every ANTs tool reads; several give fMRIPrep's
    head-motion format (one ``#Transform k`` block per volume).

    Parameters
    ----------
    path : str or Path
        The ``.txt`` file to write (atomically).
    matrices : array of shape (4, 4) or (n, 4, 4)
        Fixed-to-moving point mappings in RAS+ mm.

    Returns
    -------
    Path
        ``path``.
    """
    stack = np.asarray(matrices, dtype=float).reshape(-1, 4, 4)
    lines = ["#Insight Transform File V1.0"]
    for k, matrix in enumerate(stack):
        params, fixed = ras_to_itk(matrix)
        lines += [f"#Transform {k}", "Transform: AffineTransform_double_3_3",
                  "Parameters: " + " ".join(repr(float(v)) for v in params),
                  "FixedParameters: " + " ".join(repr(float(v)) for v in fixed)]
    return write_text(path, "\n".join(lines) + "\n")


def read_itk_affines(path: str | Path) -> np.ndarray:
    """Read an ITK text transform file of affine transforms as RAS+ matrices (n, 4, 4)."""
    matrices = []
    params: list[float] | None = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("Parameters:"):
            params = [float(v) for v in line.split(":", 1)[1].split()]
        elif line.startswith("FixedParameters:"):
            fixed = [float(v) for v in line.split(":", 1)[1].split()]
            if params is None or len(params) != 12:
                raise ValueError(f"{path} holds a transform that is not a 3D affine")
            matrices.append(itk_to_ras(params, fixed))
            params = None
    if not matrices:
        raise ValueError(f"{path} holds no affine transform")
    return np.stack(matrices)
