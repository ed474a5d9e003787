import numpy as np
import pytest

from bidsapp.rsa.neighbors import PAD, neighbors


def _brute_force(mask, n_voxels=None, radius=None, affine=None):
    """Every pair's squared distance, sorted by (distance, index): the definition, O(V^2)."""
    ijk = np.argwhere(mask).astype(float)
    points = ijk if affine is None else ijk @ np.asarray(affine)[:3, :3].T
    rows = []
    for center in points:
        sq = ((points - center) ** 2).sum(axis=1)
        # Round as the implementation's tie grid does: geometric ties stay ties after an affine.
        sq = np.round(sq, 6)
        order = np.lexsort((np.arange(len(points)), sq))
        rows.append(order[:n_voxels] if radius is None else order[sq[order] <= radius**2 + 1e-9])
    if radius is None:
        return np.array(rows)
    out = np.full((len(rows), max(map(len, rows))), PAD)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _random_mask(seed, shape=(9, 8, 7), fill=0.5):
    return np.random.default_rng(seed).random(shape) < fill


def test_shape_dtype_and_center_first():
    mask = _random_mask(0)
    nbrs = neighbors(mask, 20)
    assert nbrs.shape == (mask.sum(), 20)
    assert nbrs.dtype == np.intp
    np.testing.assert_array_equal(nbrs[:, 0], np.arange(mask.sum()))
    assert all(len(set(row)) == 20 for row in nbrs.tolist())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_voxels", [1, 7, 27, 50])
def test_count_mode_equals_brute_force(seed, n_voxels):
    mask = _random_mask(seed)
    np.testing.assert_array_equal(neighbors(mask, n_voxels), _brute_force(mask, n_voxels))


def test_count_mode_in_mm_with_an_anisotropic_affine():
    mask = _random_mask(2)
    affine = np.diag([2.0, 3.0, 2.5, 1.0])
    affine[:3, 3] = [-90, 10, 4]  # the translation does not move distances
    np.testing.assert_array_equal(neighbors(mask, 15, affine=affine),
                                  _brute_force(mask, 15, affine=affine))


def test_isotropic_affine_gives_the_voxel_unit_neighbourhoods():
    mask = _random_mask(3)
    np.testing.assert_array_equal(neighbors(mask, 30, affine=np.diag([2.4, 2.4, 2.4, 1])),
                                  neighbors(mask, 30))


def test_ties_are_broken_by_index():
    # In a full cube the 6 face neighbours are equidistant: the lowest indices win.
    mask = np.ones((3, 3, 3), dtype=bool)
    center = 13  # (1, 1, 1)
    faces = [4, 10, 12, 14, 16, 22]
    np.testing.assert_array_equal(neighbors(mask, 7)[center], [center, *faces])
    np.testing.assert_array_equal(neighbors(mask, 3)[center], [center, 4, 10])


def test_a_shell_of_ties_larger_than_the_spare_candidates():
    # The center plus every lattice point at squared distance 50 (a shell of 84 voxels, twice
    # the 42 candidates first asked of the k-d tree for 10 neighbours) plus two farther voxels.
    grid = np.stack(np.meshgrid(*[np.arange(-8, 9)] * 3, indexing="ij"), axis=-1)
    sq = (grid**2).sum(axis=-1)
    mask = (sq == 0) | (sq == 50)
    mask[0, 0, 0] = mask[16, 16, 16] = True  # squared distance 192
    assert (sq == 50).sum() == 84
    np.testing.assert_array_equal(neighbors(mask, 10), _brute_force(mask, 10))


def test_radius_mode_equals_brute_force_and_pads_at_the_end():
    mask = _random_mask(4)
    nbrs = neighbors(mask, radius=2.0)
    np.testing.assert_array_equal(nbrs, _brute_force(mask, radius=2.0))
    sizes = (nbrs != PAD).sum(axis=1)
    assert sizes.min() < nbrs.shape[1]  # some rows are padded...
    assert all((row[size:] == PAD).all() for row, size in zip(nbrs, sizes, strict=True))
    np.testing.assert_array_equal(nbrs[:, 0], np.arange(mask.sum()))


def test_radius_mode_in_mm_includes_the_boundary():
    mask = np.ones((5, 5, 5), dtype=bool)
    affine = np.diag([2.4, 2.4, 2.4, 1.0])
    nbrs = neighbors(mask, radius=2.4, affine=affine)
    # Center of the cube: itself and its 6 face neighbours at exactly 2.4 mm.
    assert (nbrs[62] != PAD).sum() == 7
    np.testing.assert_array_equal(nbrs, _brute_force(mask, radius=2.4, affine=affine))


def test_deterministic():
    mask = _random_mask(5, shape=(12, 12, 12))
    np.testing.assert_array_equal(neighbors(mask, 40), neighbors(mask.astype(np.uint8) * 7, 40))


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.ones((4, 4), bool),), {}, "3-D"),
        ((np.zeros((3, 3, 3), bool),), {}, "no nonzero"),
        ((np.ones((2, 2, 2), bool), 9), {}, "n_voxels"),
        ((np.ones((2, 2, 2), bool), 0), {}, "n_voxels"),
        ((np.ones((2, 2, 2), bool),), {"radius": 0}, "radius"),
        ((np.ones((2, 2, 2), bool),), {"affine": np.eye(3)}, "4 x 4"),
        ((np.ones((2, 2, 2), bool),), {"affine": np.zeros((4, 4))}, "singular"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighbors(*args, **kwargs)
