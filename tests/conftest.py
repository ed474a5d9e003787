"""Shared fixtures: small BIDS layouts built by the tests themselves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bidsapp.demo import write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


def make_bids(root: Path, **kwargs) -> Path:
    """Write the demo's tiny BIDS dataset (see :func:`bidsapp.demo.write_tiny_dataset`)."""
    return write_tiny_dataset(root, **kwargs)


@pytest.fixture
def bids_root(tmp_path) -> Path:
    """A fresh copy of a two-subject, two-run BIDS dataset."""
    return make_bids(tmp_path / "bids")


@pytest.fixture
def run_app(tmp_path):
    """Run ``run.py`` in a subprocess and return the completed process."""
    import subprocess

    def _run(*args, timeout=600):
        return subprocess.run([sys.executable, str(REPO / "run.py"), *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)

    return _run


@pytest.fixture
def validator_available() -> bool:
    from bidsapp.bids.validate import find_validator

    return find_validator() is not None

