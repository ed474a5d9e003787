"""The acquisition model on hand-made objects, without noise unless a test wants it."""

import numpy as np
import pytest
from scipy import sparse

from bidsapp.simulate.bold import NativeEPI, Scanner, bold_geometry, simulate_run

TR = 1.0


def _geometry(multiband=1, slices=6, matrix=8):
    return bold_geometry(np.zeros(3), voxel_size=4.0, matrix=matrix, slices=slices, tr=TR,
                         multiband=multiband, slice_order="interleaved")


def _scanner(geometry, sigma=0.0):
    shape = geometry.grid.shape
    return Scanner(np.ones(shape, np.float32), sigma, np.zeros(shape, np.float32))


def _run(geometry, epi, motion, signal=None, sigma=0.0, ar=0.0, amplitude=1.0):
    n_groups = len(np.unique(geometry.slice_times))
    if signal is None:
        signal = np.zeros((max(epi.operator.shape[1], 1), len(motion), n_groups))
    return simulate_run(np.random.default_rng(0), epi, geometry, _scanner(geometry, sigma),
                        motion, signal, tr=TR, amplitude=amplitude, ar_coefficient=ar,
                        drift_percent=0.0, dtype="float32")


def _no_signal(intensity):
    return NativeEPI(intensity.astype(np.float32), np.zeros(0, np.int64),
                     sparse.csr_matrix((0, 1)), np.full(intensity.shape, np.inf, np.float32))


@pytest.mark.parametrize("multiband", [1, 2])
def test_each_slice_sees_the_signal_at_its_acquisition_time(multiband):
    geometry = _geometry(multiband)
    fine = geometry.fine.shape
    # One planted "voxel" that covers the whole object: the image then shows s(t) directly.
    epi = NativeEPI(np.zeros(fine, np.float32), np.arange(np.prod(fine)),
                    sparse.csr_matrix(np.ones((np.prod(fine), 1))), np.zeros(fine, np.float32))
    n_volumes = 5
    times, group = np.unique(geometry.slice_times, return_inverse=True)
    signal = (np.arange(n_volumes)[:, None] * TR + times[None, :])[None]  # s(t) = t
    out = _run(geometry, epi, np.zeros((n_volumes, 6)), signal)
    expected = np.arange(n_volumes)[None, :] * TR + geometry.slice_times[:, None]
    for z in range(geometry.grid.shape[2]):
        np.testing.assert_allclose(out[:, :, z, :], np.broadcast_to(expected[z], (8, 8, 5)),
                                   atol=1e-5)


def _blob(geometry, center, sigma=6.0):
    points = geometry.fine.points()
    values = 1000 * np.exp(-np.sum((points - center) ** 2, axis=1) / (2 * sigma**2))
    return values.reshape(geometry.fine.shape)


def _centroid(volume, affine):
    ijk = np.argwhere(np.ones(volume.shape, bool))
    weights = volume.ravel()
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return (world * weights[:, None]).sum(0) / weights.sum()


def test_motion_moves_the_head_by_the_planted_parameters():
    geometry = _geometry(slices=12, matrix=16)
    center = np.array([6.0, -2.0, 1.0])
    epi = _no_signal(_blob(geometry, center))
    motion = np.zeros((3, 6))
    motion[1, :3] = [2.0, -1.0, 1.5]
    motion[2, 5] = np.deg2rad(5.0)
    out = _run(geometry, epi, motion)
    c0, c1, c2 = (_centroid(out[..., i], geometry.grid.affine) for i in range(3))
    np.testing.assert_allclose(c0, center, atol=0.2)
    np.testing.assert_allclose(c1 - c0, [2.0, -1.0, 1.5], atol=0.2)
    angle = np.deg2rad(5.0)
    rotated = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    np.testing.assert_allclose(c2, np.asarray(rotated) @ center, atol=0.2)


def test_noise_has_the_planted_level_and_autocorrelation():
    geometry = _geometry(slices=4)
    epi = _no_signal(np.full(geometry.fine.shape, 1000.0))
    out = _run(geometry, epi, np.zeros((400, 6)), sigma=10.0, ar=0.5)
    noise = out[2:-2, 2:-2, :, :].reshape(-1, 400) - 1000.0
    assert abs(noise.std() - 10.0) < 0.3
    lag1 = np.mean([np.corrcoef(v[:-1], v[1:])[0, 1] for v in noise[:50]])
    assert abs(lag1 - 0.5) < 0.05
