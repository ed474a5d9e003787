import numpy as np
import pytest

from bidsapp.simulate.anatomy import BiasField, load_template, random_transform, template_grid
from bidsapp.simulate.grid import Grid
from bidsapp.simulate.transform import SubjectTransform


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def transform(template):
    rng = np.random.default_rng(7)
    return random_transform(rng, template, max_warp_mm=4.0, rotation_deg=6.0, shift_mm=6.0,
                            scale=0.06)


def test_template_is_the_2009a_grid(template):
    assert template.t1.shape == (197, 233, 189)
    assert np.allclose(template.affine[:3, 3], [-98, -134, -72])
    assert 0.5 < template.csf[template.mask > 0.5].mean() + template.gm[template.mask > 0.5].mean()


def test_template_grid_keeps_the_origin(template):
    grid = template_grid(template, 4.0)
    assert grid.shape == (50, 59, 48)
    assert np.allclose(grid.affine[:3, 3], template.affine[:3, 3])
    assert np.allclose(np.diag(grid.affine)[:3], 4.0)


def test_warp_is_bounded(transform):
    assert np.linalg.norm(transform.field, axis=-1).max() <= 4.0 + 1e-5


def test_round_trip_between_template_and_native(transform):
    points = np.random.default_rng(0).uniform(-70, 70, (500, 3))
    native = transform.to_native(points)
    assert np.abs(native - points).max() > 1.0  # the transform is not the identity
    np.testing.assert_allclose(transform.to_template(native), points, atol=1e-3)
    np.testing.assert_allclose(transform.to_template_fast(native), points, atol=0.05)


def test_identity_transform(template):
    grid = template_grid(template, 4.0)
    identity = SubjectTransform(np.eye(4), np.zeros((*grid.shape, 3), np.float32), grid.affine)
    points = np.array([[-44.0, -22.0, 8.0], [10, -86, 4]])
    np.testing.assert_allclose(identity.to_native(points), points)


def test_bias_field_is_bounded():
    grid = Grid.centered(np.zeros(3), (100, 100, 100), 5.0)
    field = BiasField.random(np.random.default_rng(1), grid, 20.0)(grid.points())
    assert field.min() >= 1 / 1.2 - 1e-9 and field.max() <= 1.2 + 1e-9
    assert field.max() - field.min() > 0.05
