"""Fixtures of the simulator tests: the tiny dataset, simulated once per test session."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bidsapp.simulate import simulate


def file_hashes(root: Path) -> dict[str, str]:
    """Return the sha256 of every file under ``root``, keyed by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """The ``tiny`` preset with seed 0 (about 30 s on two cores)."""
    return simulate(tmp_path_factory.mktemp("sim") / "tiny", preset="tiny", seed=0)


#: Parameters of a very small dataset for the tests that must simulate again.
SMALL = dict(subjects=1, runs=1, clips=2, clip_seconds=4.0, tr=1.0, voxel_size=6.0,
             t1w_voxel_size=4.0, slices=24, fov_mm=192.0, gap_seconds=(1.0, 2.0),
             rest_seconds=2.0, radius_mm=12.0)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A two-subject, one-run dataset of two 4 s clips (a few seconds to write)."""
    return simulate(tmp_path_factory.mktemp("sim") / "small", preset="tiny", seed=3,
                    **{**SMALL, "subjects": 2})
