"""Fixtures of the statistics tests: the synthetic-data module, loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_NAME = "bidsapp_tests_stats_synthetic"


def load_synthetic():
    """Import ``tests/stats/synthetic.py`` whatever pytest's import mode."""
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME,
                                                      Path(__file__).with_name("synthetic.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module  # dataclasses look their module up while being built
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


@pytest.fixture(scope="session")
def synthetic():
    return load_synthetic()
