import numpy as np
import pytest

from bidsapp.errors import UsageError
from bidsapp.simulate.acquisition import RunSchedule
from bidsapp.simulate.anatomy import load_template, template_grid
from bidsapp.simulate.signal import (
    GRID_PERIOD,
    NativeOperator,
    Sphere,
    mixing_weights,
    sample_timeline,
    truth_maps,
    voxel_responses,
)

SPHERES = [Sphere((-44.0, -22.0, 8.0), 10.0, 3), Sphere((10.0, -86.0, 4.0), 8.0, 10)]


@pytest.fixture(scope="module")
def maps():
    template = load_template()
    grid = template_grid(template, 4.0)
    return grid, *truth_maps(SPHERES, template, grid)


def test_grid_period_is_the_networks():
    from bidsapp.audio.timing import GRID_PERIOD as AUDIO_GRID

    assert GRID_PERIOD == AUDIO_GRID


def test_layer_map_has_the_layers_at_the_centres(maps):
    grid, layer_map, masks, planted = maps
    inv = np.linalg.inv(grid.affine)
    for sphere, mask in zip(SPHERES, masks, strict=True):
        ijk = np.round(inv[:3, :3] @ sphere.center + inv[:3, 3]).astype(int)
        assert layer_map[tuple(ijk)] == sphere.layer and mask[tuple(ijk)] == 1
    assert sum(m.sum() for m in masks) == (layer_map > 0).sum() == planted.n
    assert set(np.unique(layer_map)) == {0, 3, 10}


def test_sphere_outside_the_brain_is_refused():
    template = load_template()
    with pytest.raises(UsageError, match="no brain voxel"):
        truth_maps([Sphere((0.0, 0.0, 110.0), 5.0, 1)], template, template_grid(template, 4.0))


def test_mixing_weights_sum_to_zero():
    weights = mixing_weights(np.random.default_rng(0), 5, 64)
    np.testing.assert_allclose(weights.sum(axis=1), 0, atol=1e-12)


def test_voxel_responses_are_unit_variance_mixtures(maps):
    _, _, _, planted = maps
    rng = np.random.default_rng(0)
    names = [f"layer{k}" for k in range(1, 11)]
    features = [{name: rng.random((8, 100)) for name in names} for _ in range(2)]
    responses = voxel_responses(planted, SPHERES, features, names, 100 * GRID_PERIOD,
                                lambda i: np.random.default_rng(i))
    within = np.concatenate(responses, axis=1)
    np.testing.assert_allclose(within.std(axis=1), 1.0)
    first = np.flatnonzero(planted.sphere == 0)[0]
    weights = mixing_weights(np.random.default_rng(0), (planted.sphere == 0).sum(), 8)[0]
    expected = weights @ features[0]["layer3"]
    assert np.corrcoef(expected, responses[0][first])[0, 1] > 0.999999


def test_sample_timeline_interpolates_within_clips_and_is_zero_outside():
    response = np.arange(100, dtype=float)[None, :]  # frame j has value j
    schedule = RunSchedule((0,), (10.0,), (5.0,), 20)
    times = np.array([0.0, 9.99, 10.0, 10.032, 10.0 + 50.5 * GRID_PERIOD, 15.0, 30.0])
    out = sample_timeline([response], schedule, times)[0]
    np.testing.assert_allclose(out, [0, 0, 0, 0.5, 50.5, 0, 0], atol=1e-9)


def test_native_operator_is_identity_at_voxel_centres(maps):
    grid, _, _, planted = maps
    centres = planted.ijk[:5] @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    operator = NativeOperator(planted, SPHERES)
    operator.add(100, centres)
    rows, matrix = operator.finish(planted.n)
    np.testing.assert_array_equal(rows, np.arange(100, 105))
    np.testing.assert_allclose(matrix.toarray(), np.eye(planted.n)[:5], atol=1e-12)
