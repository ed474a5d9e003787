import numpy as np

from bidsapp.simulate.motion import max_displacement, random_motion, rigid_matrix, rotation_matrix


def test_rotation_matrix_order_and_orthonormality():
    r = rotation_matrix(0.1, -0.2, 0.3)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    # x applied first: Rz @ Ry @ Rx.
    only_x = rotation_matrix(np.pi / 2, 0, 0)
    np.testing.assert_allclose(only_x @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(r, rotation_matrix(0, 0, 0.3) @ rotation_matrix(0, -0.2, 0)
                               @ rotation_matrix(0.1, 0, 0))


def test_rigid_matrix_translates():
    m = rigid_matrix(np.array([1.0, 2.0, 3.0, 0, 0, 0]))
    np.testing.assert_allclose(m @ [5, 5, 5, 1], [6, 7, 8, 1])


def test_random_motion_stays_within_limits_and_is_smooth():
    rng = np.random.default_rng(3)
    motion = random_motion(rng, 300, 0.735, 2.0, 2.0)
    assert motion.shape == (300, 6)
    assert np.abs(motion[:, :3]).max() <= 2.0 + 1e-12
    assert np.abs(motion[:, 3:]).max() <= np.deg2rad(2.0) + 1e-12
    assert np.abs(motion).max(axis=0).min() > 0  # every parameter moves
    assert np.abs(np.diff(motion[:, :3], axis=0)).max() < 0.5  # no jumps between volumes


def test_max_displacement_of_a_pure_translation():
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    motion = np.zeros((3, 6))
    motion[1, 0] = 1.5
    assert np.isclose(max_displacement(motion, corners), 1.5)
