"""Masks in template space: grey matter, brain, BOLD coverage, and their overlap (Dice).

The grey-matter mask is the template's grey-matter probability map at the output
resolution, thresholded (0.5 by default: voxels more likely grey matter than not).  One
mask in template space for every participant means the searchlight neighbourhoods and the
group statistics cover the same voxels in everyone, as in the study (SPM normalisation
with a template grey-matter mask).  Each run then keeps only the voxels its field of view
covered.
"""

from __future__ import annotations

import nibabel as nb
import numpy as np
from scipy.ndimage import binary_dilation

from .resample import resample_to_grid, template_grid

GM_THRESHOLD = 0.5
"""Grey-matter probability at or above which a template voxel is in the GM mask."""


def _mask_image(mask: np.ndarray, like):
    out = nb.Nifti1Image(np.asarray(mask, dtype=np.uint8), like.affine)
    out.header.set_xyzt_units("mm")
    code = int(like.header["sform_code"]) or 1
    out.set_qform(like.affine, code)
    out.set_sform(like.affine, code)
    return out


def gm_mask_from_probseg(probseg, resolution: float, threshold: float = GM_THRESHOLD,
                         brain_mask=None):
    """Return the template's grey-matter mask on its ``resolution`` mm grid.

    Parameters
    ----------
    probseg : nibabel.Nifti1Image
        The template's 1 mm grey-matter probability map (0-1).
    resolution : float
        Output voxel size in mm (see :func:`bidsapp.preproc.resample.grid_affine_shape`).
    threshold : float, optional
        Probability at or above which a voxel is grey matter, after trilinear resampling
        (which averages the 1 mm probabilities a coarse voxel covers).
    brain_mask : nibabel.Nifti1Image, optional
        The template's 1 mm brain mask; voxels outside it are dropped.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask (0/1) on the output grid.
    """
    grid_img = template_grid(probseg, resolution)
    mask = np.asarray(grid_img.dataobj) >= threshold
    if brain_mask is not None:
        mask &= np.asarray(template_grid(brain_mask, resolution).dataobj) >= 0.5
    return _mask_image(mask, grid_img)


def gm_mask_like(probseg, reference, threshold: float = GM_THRESHOLD, brain_mask=None):
    """Return the template's grey-matter mask on the grid of a template-space image.

    For series preprocessed elsewhere (fMRIPrep), whose grid is not ours.

    Parameters
    ----------
    probseg : nibabel.Nifti1Image
        The template's 1 mm grey-matter probability map.
    reference : nibabel.Nifti1Image
        An image in the same template space (its grid is used).
    threshold : float, optional
        Probability at or above which a voxel is grey matter.
    brain_mask : nibabel.Nifti1Image, optional
        A brain mask on ``reference``'s grid; voxels outside it are dropped.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on ``reference``'s grid.
    """
    grid_img = resample_to_grid(probseg, reference.affine, reference.shape[:3])
    mask = np.asarray(grid_img.dataobj) >= threshold
    if brain_mask is not None:
        mask &= np.asarray(brain_mask.dataobj) > 0
    return _mask_image(mask, grid_img)


def mask_like(mask, reference):
    """Return a binary mask on the grid of another image in the same space.

    Parameters
    ----------
    mask : nibabel.Nifti1Image
        A binary mask (e.g. the template's brain mask).
    reference : nibabel.Nifti1Image
        An image in the same space whose grid is used (e.g. the T1w in template space).

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on ``reference``'s grid: the voxels the resampled mask covers at least
        half, so a mask already on that grid comes back unchanged.
    """
    grid_img = resample_to_grid(nb.Nifti1Image(
        (np.asarray(mask.dataobj) > 0).astype(np.float32), mask.affine),
        reference.affine, reference.shape[:3])
    return _mask_image(np.asarray(grid_img.dataobj) >= 0.5, reference)


def brain_mask_on_grid(brain_mask, resolution: float, dilate_voxels: int = 0):
    """Return the template's brain mask on its ``resolution`` mm grid.

    Parameters
    ----------
    brain_mask : nibabel.Nifti1Image
        The template's 1 mm brain mask.
    resolution : float
        Output voxel size in mm.
    dilate_voxels : int, optional
        Grow the mask by this many voxels (26-connected), e.g. to resample a margin.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask on the output grid.
    """
    grid_img = template_grid(brain_mask, resolution)
    mask = np.asarray(grid_img.dataobj) >= 0.5
    if dilate_voxels:
        mask = binary_dilation(mask, np.ones((3, 3, 3), bool), iterations=dilate_voxels)
    return _mask_image(mask, grid_img)


def carpet_dseg(brain_mask, gm_mask):
    """Return the carpet plot's segmentation: 1 grey matter, 3 other brain, 0 outside.

    Parameters
    ----------
    brain_mask, gm_mask : nibabel image
        Masks on the same grid.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 labels with the brain mask's affine and header.
    """
    labels = np.where(np.asarray(brain_mask.dataobj) > 0, 3, 0).astype(np.uint8)
    labels[np.asarray(gm_mask.dataobj) > 0] = 1
    return nb.Nifti1Image(labels, brain_mask.affine, brain_mask.header)


def coverage_mask(mask, coverage: np.ndarray):
    """Return ``mask`` restricted to the voxels a run's field of view covered.

    Parameters
    ----------
    mask : nibabel.Nifti1Image
        A mask on the output grid.
    coverage : numpy.ndarray
        Boolean array of the same shape (see
        :func:`bidsapp.preproc.resample.resample_bold_to_template`).

    Returns
    -------
    nibabel.Nifti1Image
        The intersection, uint8.
    """
    return _mask_image((np.asarray(mask.dataobj) > 0) & coverage, mask)


def dice(a, b) -> float:
    """Return the Dice overlap of two masks (arrays or images of one grid).

    Parameters
    ----------
    a, b : numpy.ndarray or nibabel image
        Non-zero voxels are in the mask.

    Returns
    -------
    float
        ``2 |a & b| / (|a| + |b|)``; 1.0 when both are empty.
    """
    x = np.asarray(getattr(a, "dataobj", a)) > 0
    y = np.asarray(getattr(b, "dataobj", b)) > 0
    total = x.sum() + y.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(x, y).sum() / total)
