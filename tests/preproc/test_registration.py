"""Registrations: N4, BOLD-to-T1w coregistration and T1w-to-template normalization."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
from preproc_synthetic import moved_series

from bidsapp.preproc.motion import parameters_to_matrices
from bidsapp.preproc.registration import (
    coregister_bold_to_t1w,
    n4_bias_correct,
    normalize_t1w,
    warp_template_to_t1w,
)
from bidsapp.preproc.resample import template_grid, template_to_t1w_points
from bidsapp.preproc.validation import brain_points


@pytest.fixture(scope="module")
def t1_like():
    from nilearn.datasets import load_mni152_template

    t1 = template_grid(load_mni152_template(resolution=1), 3.0)
    return nb.Nifti1Image(np.asarray(t1.dataobj) * 1000, t1.affine)


def test_n4_removes_a_smooth_bias(t1_like):
    data = np.asarray(t1_like.dataobj)
    x = np.linspace(-1, 1, data.shape[0])[:, None, None]
    biased = nb.Nifti1Image((data * np.exp(0.3 * x)).astype(np.float32), t1_like.affine)
    corrected = np.asarray(n4_bias_correct(biased).dataobj)
    brain = data > 300
    left, right = brain & (x < -0.3), brain & (x > 0.3)

    def ratio(volume):
        return np.median(volume[right]) / np.median(volume[left])

    assert abs(np.log(ratio(corrected))) < 0.5 * abs(np.log(ratio(biased.get_fdata())))


def test_coregistration_recovers_a_rigid_offset(t1_like, epi_like):
    # The BOLD reference sits 3 mm and 3 degrees away from the T1w.
    offset = np.array([2.0, -1.5, 1.5, 0.03, -0.04, 0.05])
    bold_reference = moved_series(epi_like, offset[None], noise=5.0).slicer[..., 0]
    matrix = coregister_bold_to_t1w(bold_reference, t1_like, seed=1)
    truth = parameters_to_matrices(offset)[0]
    points = np.c_[brain_points(epi_like), np.ones(len(brain_points(epi_like)))].T
    error = np.linalg.norm(((matrix - truth) @ points)[:3], axis=0)
    assert np.sqrt(np.mean(error**2)) < 0.5, error.mean()


def test_normalization_recovers_an_affine_and_warps_the_mask_back(tmp_path, t1_like):
    from nilearn.datasets import load_mni152_brain_mask

    # A "subject": the template 4 degrees, 5 mm and 5% away (native = A @ template).
    truth = parameters_to_matrices([5.0, -4.0, 3.0, 0.07, 0.0, -0.05])[0]
    truth[:3, :3] *= 1.05
    subject = nb.Nifti1Image(np.asarray(t1_like.dataobj), truth @ t1_like.affine)
    mask = template_grid(load_mni152_brain_mask(resolution=1), 3.0)
    norm = normalize_t1w(subject, t1_like, template_mask=mask, out_dir=tmp_path,
                         quality="fast", seed=2)
    assert norm.forward.is_file() and norm.inverse.is_file()
    grid = template_grid(t1_like, 6.0)
    points = template_to_t1w_points(grid, subject, norm.forward)
    inside = np.asarray(template_grid(mask, 6.0).dataobj) > 0.5
    grid_points = (np.indices(grid.shape).transpose(1, 2, 3, 0) @ grid.affine[:3, :3].T
                   + grid.affine[:3, 3])[inside]
    expected = grid_points @ truth[:3, :3].T + truth[:3, 3]
    error = np.linalg.norm(points[inside] - expected, axis=1)
    assert np.median(error) < 1.5, np.median(error)
    warped = np.asarray(warp_template_to_t1w(mask, subject, norm).dataobj) > 0.5
    reference = np.asarray(mask.dataobj) > 0.5
    overlap = (warped & reference).sum() * 2 / (warped.sum() + reference.sum())
    assert overlap > 0.9
