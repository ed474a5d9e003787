"""One-shot resampling of BOLD volumes from native space to the template grid.

For every voxel of the output grid (template space, ``output_res`` mm), the nonlinear
template-to-T1w mapping is evaluated once with ``antsApplyTransforms`` (composed into a
displacement field); per volume, the coregistration and that volume's head motion are
composed with it as 4 x 4 matrices, giving the voxel's position in the native BOLD volume,
which is then interpolated (cubic B-spline by default).  Each BOLD value is therefore
interpolated once, from the slice-timing corrected native series to the template.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import nibabel as nb
import numpy as np
from nibabel.openers import Opener
from scipy.ndimage import affine_transform, map_coordinates, spline_filter

from bidsapp.progress import Progress

from ._ants import LPS, ants_environment, to_ants

LOGGER = logging.getLogger("bidsapp.preproc")


def resolution_label(resolution: float) -> str:
    """Return the BIDS ``res`` label of a voxel size: its millimetres, ``p`` for the point.

    Parameters
    ----------
    resolution : float
        Voxel size in mm.

    Returns
    -------
    str
        ``2.4 -> '2p4'``, ``2 -> '2'``, ``1.5 -> '1p5'`` (alphanumeric, as BIDS labels
        must be).
    """
    text = f"{float(resolution):.3f}".rstrip("0").rstrip(".")
    return text.replace(".", "p")


def grid_affine_shape(template, resolution: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Return the affine and shape of the template's box sampled at ``resolution`` mm.

    The grid keeps the template's first voxel centre and axes and holds as many voxels as
    fit in its extent, so every resolution shares one origin with the 1 mm template (and
    with the simulator's truth maps).

    Parameters
    ----------
    template : nibabel.spatialimages.SpatialImage
        The 1 mm template image.
    resolution : float
        Output voxel size in mm.

    Returns
    -------
    tuple
        The 4 x 4 affine and the 3D shape.
    """
    affine = np.asarray(template.affine, dtype=float)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    shape = tuple(int(np.floor((n - 1) * z / resolution + 1e-6)) + 1
                  for n, z in zip(template.shape[:3], zooms, strict=True))
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] / zooms * resolution
    return out, shape


def resample_to_grid(img, affine: np.ndarray, shape: tuple[int, ...], order: int = 1):
    """Resample a 3D image onto a grid of the same space (trilinear by default).

    Parameters
    ----------
    img : nibabel.spatialimages.SpatialImage
        The source image (e.g. a 1 mm template map).
    affine : numpy.ndarray
        Voxel-to-world affine of the grid.
    shape : tuple of int
        Its 3D shape.
    order : int, optional
        Spline order (0 nearest, 1 trilinear).

    Returns
    -------
    nibabel.Nifti1Image
        float32 image on the grid, sform/qform code 4 (template space); 0 outside ``img``.
    """
    shape = tuple(int(s) for s in shape[:3])
    to_source = np.linalg.inv(img.affine) @ affine
    data = np.asarray(img.dataobj, dtype=np.float32)
    # The grid maps linearly into the source: no array of coordinates is needed.
    values = affine_transform(data, to_source[:3, :3], offset=to_source[:3, 3],
                              output_shape=shape, order=order, mode="constant", cval=0.0,
                              output=np.float32)
    out = nb.Nifti1Image(values, affine)
    out.header.set_xyzt_units("mm")
    out.set_qform(affine, 4)
    out.set_sform(affine, 4)
    return out


def axis_aligned_box(mask, *, voxel_size: float, margin_mm: float = 8.0
                     ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Return a grid with RAS axes that covers a mask's voxels, with a margin.

    Figures drawn by nilearn resample every oblique image (e.g. a T1w acquired tilted, as
    most are) once per view and overlay; on this grid they are drawn as they are.

    Parameters
    ----------
    mask : nibabel.spatialimages.SpatialImage
        The region to cover (non-zero voxels), e.g. the T1w brain mask.
    voxel_size : float
        Voxel size of the grid, in mm.
    margin_mm : float, optional
        Added on every side of the mask's bounding box.

    Returns
    -------
    affine : numpy.ndarray
        Diagonal voxel-to-world affine (RAS+).
    shape : tuple of int
        The grid's shape.
    """
    data = np.asarray(mask.dataobj) > 0
    if not data.any():
        data = np.ones(data.shape, bool)
    bounds = [np.flatnonzero(data.any(axis=tuple(a for a in range(3) if a != axis)))
              for axis in range(3)]
    corners = np.array([[i, j, k, 1.0] for i in (bounds[0][0], bounds[0][-1])
                        for j in (bounds[1][0], bounds[1][-1])
                        for k in (bounds[2][0], bounds[2][-1])]).T
    world = (mask.affine @ corners)[:3]
    low, high = world.min(axis=1) - margin_mm, world.max(axis=1) + margin_mm
    shape = tuple(int(n) for n in np.ceil((high - low) / voxel_size).astype(int) + 1)
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = low
    return affine, shape


def template_grid(template, resolution: float):
    """Return the template resampled (trilinear) onto its ``resolution`` mm grid.

    Parameters
    ----------
    template : nibabel.Nifti1Image
        The 1 mm template (T1w, mask or probability map).
    resolution : float
        Output voxel size in mm.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image on the grid of :func:`grid_affine_shape`, sform/qform code 4.
    """
    affine, shape = grid_affine_shape(template, resolution)
    return resample_to_grid(template, affine, shape)


def template_to_t1w_points(grid, t1w, transform: str | Path, *,
                           n_threads: int | None = None) -> np.ndarray:
    """Map every voxel centre of a template grid to T1w space (mm, RAS+).

    Parameters
    ----------
    grid : nibabel.Nifti1Image
        The output grid (see :func:`template_grid`).
    t1w : nibabel.Nifti1Image
        The T1w image (its geometry only).
    transform : str or Path
        ``from-T1w_to-<tpl>_mode-image`` transform (ANTs composite ``.h5`` or warp).
    n_threads : int, optional
        ITK threads.

    Returns
    -------
    numpy.ndarray
        Shape (*grid.shape, 3): T1w-space coordinates of each grid voxel.
    """
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    with ants_environment(n_threads), tempfile.TemporaryDirectory() as tmp:
        field_file = ants.apply_transforms(
            to_ants(grid), to_ants(t1w, np.zeros(t1w.shape[:3], np.float32)),
            [str(transform)], whichtoinvert=[False], compose=str(Path(tmp) / "tpl2t1w_"))
        if field_file is None:
            raise RuntimeError(f"antsApplyTransforms could not compose {transform}")
        # A displacement field: LPS vectors from each grid point to its T1w point.
        displacement = np.asarray(nb.load(field_file).dataobj, dtype=float)
    displacement = displacement.reshape(*grid.shape[:3], 3)
    ijk = np.indices(grid.shape[:3], dtype=float).transpose(1, 2, 3, 0)
    points = ijk @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    return points + displacement * np.diag(LPS)[:3]


def _nifti_header(shape: tuple[int, ...], affine: np.ndarray, tr: float):
    """Return the header of a float32 template-space series (sform/qform code 4)."""
    header = nb.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header.set_qform(affine, 4)
    header.set_sform(affine, 4)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    header.set_zooms((*zooms, tr))
    header.set_xyzt_units("mm", "sec")
    header.set_slope_inter(1.0, 0.0)
    header.set_data_offset(_DATA_OFFSET)
    return header


#: Where the data start in a single-file NIfTI-1 without extensions: the 348-byte header
#: and the 4-byte extension flag.
_DATA_OFFSET = 352


def resample_bold_to_template(bold, motion_matrices: np.ndarray, coreg_matrix: np.ndarray,
                              t1w_points: np.ndarray, grid, out_file: str | Path, *,
                              tr: float, mask: np.ndarray | None = None,
                              order: int = 3, label: str | None = None
                              ) -> tuple[Path, np.ndarray]:
    """Resample a native BOLD series onto the template grid in one interpolation.

    Parameters
    ----------
    bold : nibabel.Nifti1Image
        The slice-timing corrected series in native space (an uncompressed NIfTI keeps
        memory low: volumes are read one at a time, and each output volume is written
        as soon as it is computed).
    motion_matrices : numpy.ndarray
        Shape (n, 4, 4): reference point to volume point (see :mod:`.motion`).
    coreg_matrix : numpy.ndarray
        4 x 4: T1w point to reference point (see :func:`.coregister_bold_to_t1w`).
    t1w_points : numpy.ndarray
        Shape (*grid.shape, 3) from :func:`template_to_t1w_points`.
    grid : nibabel.Nifti1Image
        The output grid.
    out_file : str or Path
        The output ``.nii.gz`` (or ``.nii``), float32, written atomically.
    tr : float
        Repetition time, written in the header.
    mask : numpy.ndarray, optional
        Boolean grid mask of the voxels to compute (others are 0); all by default.
    order : int, optional
        Spline order: 3 (cubic B-spline, default) or 1 (trilinear: less than half the
        time here, 0.07 against 0.15 s per study volume, but slightly smoother; see
        ``docs/validation.md``).
    label : str, optional
        The run, as named in the progress lines (default: the image's file name).

    Returns
    -------
    tuple
        The output path, and the boolean coverage mask: grid voxels that fell inside the
        BOLD field of view in every volume.
    """
    if order not in (1, 3):
        raise ValueError(f"order must be 1 (trilinear) or 3 (cubic B-spline), not {order}")
    out_file = Path(out_file)
    shape = tuple(grid.shape[:3])
    n_volumes = bold.shape[3]
    if mask is None:
        mask = np.ones(shape, dtype=bool)
    points = t1w_points[mask].T  # (3, N)
    # The file stores volumes in Fortran order: where each masked voxel sits in one volume.
    out_index = np.ravel_multi_index(np.nonzero(mask), shape, order="F")
    covered = np.ones(points.shape[1], dtype=bool)
    to_voxels = np.linalg.inv(bold.affine)
    bounds = np.asarray(bold.shape[:3], dtype=float)[:, None]
    header = _nifti_header((*shape, n_volumes), grid.affine, tr)
    volume_out = np.zeros(int(np.prod(shape)), dtype=np.float32)
    with tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
        partial = Path(tmp) / out_file.name
        # Volume after volume straight into the (compressed) output: no full-size copy of
        # the series in memory or on disk, and one pass of compression.
        with Opener(str(partial), "wb") as stream:
            header.write_to(stream)  # with the extension flag of a single file
            stream.write(b"\0" * (_DATA_OFFSET - stream.tell()))
            source = bold.get_filename() if hasattr(bold, "get_filename") else None
            label = label or (Path(source).name if source else "BOLD")
            progress = Progress(f"Resampling {label} to the template grid", n_volumes,
                                "volumes")
            for k in range(n_volumes):
                volume = np.asarray(bold.dataobj[..., k], dtype=np.float32)
                matrix = to_voxels @ motion_matrices[k] @ coreg_matrix
                # Broadcast, not a BLAS product: OpenBLAS would start a thread per core
                # that then spins through the rest of the loop, taking the other core.
                coords = (matrix[:3, 0:1] * points[0] + matrix[:3, 1:2] * points[1]
                          + matrix[:3, 2:3] * points[2] + matrix[:3, 3:4])
                inside = np.all((coords > -0.5) & (coords < bounds - 0.5), axis=0)
                covered &= inside
                if order > 1:
                    volume = spline_filter(volume, order=order, mode="nearest",
                                           output=np.float32)
                values = map_coordinates(volume, coords, order=order, mode="nearest",
                                         prefilter=False, output=np.float32)
                values[~inside] = 0.0
                volume_out[out_index] = values
                stream.write(volume_out.data)
                progress.advance()
        partial.replace(out_file)
    coverage = np.zeros(shape, dtype=bool)
    coverage[mask] = covered
    return out_file, coverage
