"""Template-space masks and Dice."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from bidsapp.preproc.masks import (
    brain_mask_on_grid,
    coverage_mask,
    dice,
    gm_mask_from_probseg,
    gm_mask_like,
    mask_like,
)


@pytest.fixture(scope="module")
def probseg():
    """A 1 mm 'GM probability': a 20 mm cube of 0.8 inside a 0.3 shell."""
    data = np.zeros((60, 60, 60), np.float32)
    data[10:50, 10:50, 10:50] = 0.3
    data[20:40, 20:40, 20:40] = 0.8
    affine = np.eye(4)
    affine[:3, 3] = -30
    return nb.Nifti1Image(data, affine)


def test_dice():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert dice(a, b) == 1.0
    a[0, :2] = True
    b[0, 1:3] = True
    assert dice(a, b) == pytest.approx(0.5)


def test_gm_mask_thresholds_the_probability_on_the_output_grid(probseg):
    mask = gm_mask_from_probseg(probseg, 2.0, threshold=0.5)
    assert mask.get_data_dtype() == np.uint8
    assert mask.header.get_zooms() == (2.0, 2.0, 2.0)
    data = np.asarray(mask.dataobj)
    assert data.sum() == 10**3  # the 20 mm cube at 2 mm
    lower = np.asarray(gm_mask_from_probseg(probseg, 2.0, threshold=0.2).dataobj)
    assert lower.sum() == 20**3


def test_gm_mask_drops_voxels_outside_the_brain(probseg):
    brain = nb.Nifti1Image((np.asarray(probseg.dataobj) > 0).astype(np.uint8), probseg.affine)
    brain.dataobj[:30] = 0
    mask = np.asarray(gm_mask_from_probseg(probseg, 2.0, brain_mask=brain).dataobj)
    assert 0 < mask.sum() < 10**3


def test_gm_mask_like_uses_the_reference_grid(probseg):
    reference = nb.Nifti1Image(np.zeros((20, 20, 20), np.uint8), np.diag([3.0, 3, 3, 1]))
    reference.affine[:3, 3] = -30
    mask = gm_mask_like(probseg, nb.Nifti1Image(np.zeros((20, 20, 20)), reference.affine))
    assert mask.shape == (20, 20, 20)
    np.testing.assert_array_equal(mask.affine, reference.affine)
    assert np.asarray(mask.dataobj).sum() > 0


def test_brain_mask_dilation_and_coverage(probseg):
    brain = nb.Nifti1Image((np.asarray(probseg.dataobj) > 0.5).astype(np.uint8),
                           probseg.affine)
    plain = brain_mask_on_grid(brain, 2.0)
    grown = brain_mask_on_grid(brain, 2.0, dilate_voxels=2)
    assert np.asarray(grown.dataobj).sum() > np.asarray(plain.dataobj).sum()
    coverage = np.zeros(plain.shape, bool)
    coverage[:15] = True
    covered = np.asarray(coverage_mask(plain, coverage).dataobj)
    assert covered.sum() < np.asarray(plain.dataobj).sum()
    assert not covered[15:].any()


def test_mask_like_keeps_a_mask_on_its_grid_and_follows_another(probseg):
    mask = nb.Nifti1Image((np.asarray(probseg.dataobj) > 0.2).astype(np.uint8),
                          probseg.affine)
    same = mask_like(mask, probseg)
    assert same.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(same.dataobj), np.asarray(mask.dataobj))
    coarse_affine = probseg.affine.copy()
    coarse_affine[:3, :3] *= 2
    coarse = nb.Nifti1Image(np.zeros(tuple(n // 2 for n in probseg.shape), np.float32),
                            coarse_affine)
    down = np.asarray(mask_like(mask, coarse).dataobj)
    assert down.shape == coarse.shape
    assert abs(down.mean() - np.asarray(mask.dataobj).mean()) < 0.1
