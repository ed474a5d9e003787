"""nibabel <-> antspyx glue: image geometry, ITK transform files and conventions."""

from __future__ import annotations

import os

import nibabel as nb
import numpy as np

from bidsapp.preproc._ants import (
    ants_environment,
    itk_to_ras,
    ras_to_itk,
    read_ants_transform,
    read_itk_affines,
    to_ants,
    to_nibabel,
    write_itk_affines,
)
from bidsapp.preproc.motion import parameters_to_matrices


def oblique_image() -> nb.Nifti1Image:
    affine = parameters_to_matrices([10.0, -20.0, 5.0, 0.1, -0.2, 0.3])[0] @ np.diag(
        [2.0, 3.0, 4.0, 1.0])
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    return nb.Nifti1Image(data, affine)


def test_image_round_trip_keeps_data_and_oblique_geometry():
    img = oblique_image()
    back = to_nibabel(to_ants(img))
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(img.dataobj))


def test_ants_world_is_lps():
    import ants

    img = oblique_image()
    point = ants.transform_index_to_physical_point(to_ants(img), (1, 2, 3))
    ras = img.affine @ [1, 2, 3, 1]
    np.testing.assert_allclose(point, [-ras[0], -ras[1], ras[2]], atol=1e-4)


def test_itk_parameters_round_trip_with_a_centre():
    matrix = parameters_to_matrices([1.0, 2.0, 3.0, 0.05, 0.02, -0.04])[0]
    params, fixed = ras_to_itk(matrix)
    np.testing.assert_allclose(itk_to_ras(params, fixed), matrix, atol=1e-12)
    # The same transform expressed about another centre maps points identically.
    center = np.array([5.0, -7.0, 11.0])
    a, t = params[:9].reshape(3, 3), params[9:]
    shifted = np.r_[a.ravel(), t - center + a @ center]
    np.testing.assert_allclose(itk_to_ras(shifted, center), matrix, atol=1e-10)


def test_text_files_round_trip_and_ants_reads_them(tmp_path):
    import ants

    matrices = parameters_to_matrices(np.random.default_rng(1).normal(0, [1, 1, 1, .02, .02,
                                                                          .02], (3, 6)))
    path = write_itk_affines(tmp_path / "many.txt", matrices)
    np.testing.assert_allclose(read_itk_affines(path), matrices, atol=1e-12)
    single = write_itk_affines(tmp_path / "one.txt", matrices[1])
    np.testing.assert_allclose(read_ants_transform(single), matrices[1], atol=1e-6)
    # ANTs maps an LPS point exactly as the RAS matrix maps the RAS point.
    transform = ants.read_transform(str(single))
    ras = np.array([12.0, -30.0, 40.0])
    lps_out = transform.apply_to_point([-ras[0], -ras[1], ras[2]])
    expected = matrices[1] @ np.r_[ras, 1.0]
    np.testing.assert_allclose(lps_out, [-expected[0], -expected[1], expected[2]], atol=1e-5)


def test_environment_sets_and_restores_seed_and_threads(monkeypatch):
    monkeypatch.delenv("ANTS_RANDOM_SEED", raising=False)
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "7")
    with ants_environment(n_threads=2, seed=0):
        assert os.environ["ANTS_RANDOM_SEED"] == "1"  # ANTs reads 0 as "use the clock"
        assert os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "2"
    assert "ANTS_RANDOM_SEED" not in os.environ
    assert os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "7"
