"""One-shot resampling: the grid, the res label, and agreement with per-volume ANTs."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest
from preproc_synthetic import moved_series

from bidsapp.preproc._ants import write_itk_affines
from bidsapp.preproc.motion import parameters_to_matrices
from bidsapp.preproc.resample import (
    grid_affine_shape,
    resample_bold_to_template,
    resolution_label,
    template_grid,
    template_to_t1w_points,
)


@pytest.mark.parametrize("res, label", [(2.4, "2p4"), (2.0, "2"), (1.5, "1p5"), (4, "4"),
                                        (0.75, "0p75")])
def test_resolution_label(res, label):
    assert resolution_label(res) == label


@pytest.mark.parametrize("res", [2.4, 4.0])
def test_grid_matches_the_simulators_truth_grid(res):
    from nilearn.datasets import load_mni152_template

    from bidsapp.simulate.anatomy import load_template
    from bidsapp.simulate.anatomy import template_grid as truth_grid

    affine, shape = grid_affine_shape(load_mni152_template(resolution=1), res)
    truth = truth_grid(load_template(), res)
    assert shape == truth.shape
    np.testing.assert_allclose(affine, truth.affine)


def test_template_grid_keeps_values_and_codes():
    from nilearn.datasets import load_mni152_template

    template = load_mni152_template(resolution=1)
    grid = template_grid(template, 2.0)
    assert grid.header.get_zooms() == (2.0, 2.0, 2.0)
    assert int(grid.header["sform_code"]) == 4
    # Grid voxel (i, j, k) sits on template voxel (2i, 2j, 2k).
    np.testing.assert_allclose(np.asarray(grid.dataobj)[40, 50, 40],
                               np.asarray(template.dataobj)[80, 100, 80], rtol=1e-5)


def _ants_affine(path, matrix_ras):
    """Write a RAS matrix as an ANTs binary .mat (the format ANTs registrations write)."""
    import ants

    from bidsapp.preproc._ants import ras_to_itk

    params, fixed = ras_to_itk(matrix_ras)
    transform = ants.create_ants_transform(transform_type="AffineTransform", dimension=3)
    transform.set_parameters(params)
    transform.set_fixed_parameters(fixed)
    ants.write_transform(transform, str(path))
    return path


def test_one_interpolation_equals_ants_with_the_transform_list_per_volume(
        tmp_path, epi_like, planted_motion):
    import ants

    from bidsapp.preproc._ants import to_ants, to_nibabel

    motion = planted_motion[:3]
    bold = moved_series(epi_like, motion)
    bold.to_filename(tmp_path / "bold.nii")
    bold = nb.load(tmp_path / "bold.nii")
    # A T1w space a few mm and degrees away, and a scaled "normalization".
    normalization = parameters_to_matrices([3.0, -2.0, 4.0, 0.05, -0.03, 0.04])[0]
    normalization[:3, :3] *= 1.05
    coreg = parameters_to_matrices([-1.0, 2.0, 0.5, -0.02, 0.01, 0.03])[0]
    norm_file = _ants_affine(tmp_path / "tpl2t1w.mat", normalization)
    coreg_file = write_itk_affines(tmp_path / "coreg.txt", coreg)
    matrices = parameters_to_matrices(motion)
    grid = template_grid(epi_like, 4.0)
    t1w = nb.Nifti1Image(np.zeros((40, 40, 40), np.float32), np.diag([5.0, 5, 5, 1]))

    points = template_to_t1w_points(grid, t1w, norm_file)
    grid_points = (np.indices(grid.shape).reshape(3, -1).T @ grid.affine[:3, :3].T
                   + grid.affine[:3, 3])
    np.testing.assert_allclose(points.reshape(-1, 3),
                               grid_points @ normalization[:3, :3].T + normalization[:3, 3],
                               atol=1e-3)

    out, coverage = resample_bold_to_template(bold, matrices, coreg, points, grid,
                                              tmp_path / "out.nii.gz", tr=2.0, order=1)
    ours = np.asarray(nb.load(out).dataobj)
    assert ours.shape == (*grid.shape, 3)
    assert nb.load(out).header.get_zooms()[3] == 2.0
    for k in range(3):
        motion_file = write_itk_affines(tmp_path / f"motion{k}.txt", matrices[k])
        reference = to_nibabel(ants.apply_transforms(
            to_ants(grid), to_ants(bold, np.asarray(bold.dataobj[..., k])),
            [str(norm_file), str(coreg_file), str(motion_file)],
            whichtoinvert=[False, False, False], interpolator="linear"))
        expected = np.asarray(reference.dataobj)
        inside = coverage & (expected > 0)
        assert inside.sum() > 1000
        np.testing.assert_allclose(ours[..., k][inside], expected[inside], rtol=1e-3,
                                   atol=0.5)


def test_cubic_interpolation_of_an_unmoved_series_is_exact(tmp_path, epi_like):
    bold = moved_series(epi_like, np.zeros((2, 6)))
    grid = epi_like  # same grid: native = T1w = template
    identity = np.eye(4)
    points = (np.indices(grid.shape).transpose(1, 2, 3, 0) @ grid.affine[:3, :3].T
              + grid.affine[:3, 3])
    mask = np.asarray(epi_like.dataobj) > 100
    out, coverage = resample_bold_to_template(bold, np.stack([identity] * 2), identity,
                                              points, grid, tmp_path / "same.nii", tr=2.0,
                                              mask=mask)
    data = np.asarray(nb.load(out).dataobj)
    np.testing.assert_allclose(data[mask], np.asarray(bold.dataobj)[mask], atol=1e-2)
    assert not data[~mask].any()
    assert coverage[mask].all() and not coverage[~mask].any()


def test_only_cubic_and_trilinear_are_offered(tmp_path, epi_like):
    bold = moved_series(epi_like, np.zeros((1, 6)))
    points = (np.indices(epi_like.shape).transpose(1, 2, 3, 0) @ epi_like.affine[:3, :3].T
              + epi_like.affine[:3, 3])
    with pytest.raises(ValueError, match="order"):
        resample_bold_to_template(bold, np.eye(4)[None], np.eye(4), points, epi_like,
                                  tmp_path / "out.nii", tr=2.0, order=5)
