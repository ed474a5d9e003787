"""Head motion: parameter convention, framewise displacement, ANTs estimation."""

from __future__ import annotations

import numpy as np
import pytest
from preproc_synthetic import moved_series

from bidsapp.preproc.motion import (
    MOTION_COLUMNS,
    HeadMotion,
    bold_reference,
    estimate_head_motion,
    framewise_displacement,
    matrices_to_parameters,
    parameters_to_matrices,
    write_confounds,
)
from bidsapp.preproc.validation import brain_points, motion_error


def test_parameters_round_trip_and_match_the_simulator_convention():
    from bidsapp.simulate.motion import rigid_matrix

    rng = np.random.default_rng(0)
    params = np.c_[rng.uniform(-3, 3, (5, 3)), rng.uniform(-0.1, 0.1, (5, 3))]
    matrices = parameters_to_matrices(params)
    np.testing.assert_allclose(matrices_to_parameters(matrices), params, atol=1e-12)
    for row, matrix in zip(params, matrices, strict=True):
        np.testing.assert_allclose(matrix, rigid_matrix(row), atol=1e-12)


def test_framewise_displacement_is_power_2012():
    params = np.zeros((3, 6))
    params[1] = [0.1, -0.2, 0.0, 0.001, 0.0, -0.002]
    fd = framewise_displacement(params)
    assert np.isnan(fd[0])
    assert fd[1] == pytest.approx(0.3 + 50 * 0.003)
    assert fd[2] == pytest.approx(fd[1])


def test_confounds_file_is_fmriprep_shaped(tmp_path, epi_like):
    matrices = parameters_to_matrices(np.zeros((4, 6)))
    path = write_confounds(tmp_path / "confounds.tsv", HeadMotion(matrices, epi_like))
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == [*MOTION_COLUMNS, "framewise_displacement"]
    assert lines[1].split("\t")[-1] == "n/a"
    assert len(lines) == 5


def test_estimate_head_motion_recovers_planted_motion(epi_like, planted_motion):
    series = moved_series(epi_like, planted_motion, noise=10.0)
    motion = estimate_head_motion(series, reference=epi_like, n_threads=1, seed=3)
    score = motion_error(motion.matrices, planted_motion, brain_points(epi_like))
    assert score["rms_mm"] < 0.1, score
    # Against the unmoved reference there is no reference pose to remove.
    np.testing.assert_allclose(motion.parameters[:, :3], planted_motion[:, :3], atol=0.15)
    assert motion.confounds().shape == (6, 7)


def test_same_seed_gives_the_same_parameters(epi_like, planted_motion):
    # In this process ITK may run several threads (whoever called it first chose), which
    # sums the metric in a varying order: close (hundredths of a mm), not bitwise.
    series = moved_series(epi_like, planted_motion[:2], noise=10.0)
    first = estimate_head_motion(series, seed=5).matrices
    second = estimate_head_motion(series, seed=5).matrices
    np.testing.assert_allclose(first, second, atol=0.05)


def test_single_threaded_reruns_are_bit_identical(tmp_path, epi_like, planted_motion):
    """With one ITK thread (--omp-nthreads 1), reruns give bit-identical parameters."""
    import subprocess
    import sys

    series = moved_series(epi_like, planted_motion[:2], noise=10.0)
    series.to_filename(tmp_path / "bold.nii")
    script = (
        "import sys, numpy as np, nibabel as nb\n"
        "from bidsapp.preproc.motion import estimate_head_motion\n"
        "img = nb.load(sys.argv[1])\n"
        "a, b = (estimate_head_motion(img, n_threads=1, seed=5).matrices for _ in range(2))\n"
        "print('identical' if np.array_equal(a, b) else 'different')\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "bold.nii")],
                          capture_output=True, text=True, timeout=600)
    assert done.stdout.strip() == "identical", done.stderr[-2000:]


def test_reference_is_the_temporal_mean(epi_like, planted_motion):
    series = moved_series(epi_like, planted_motion[:3])
    reference = bold_reference(series)
    np.testing.assert_allclose(np.asarray(reference.dataobj),
                               np.asarray(series.dataobj).mean(-1), rtol=1e-5, atol=1e-3)
