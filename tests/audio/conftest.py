"""Fixtures for the audio tests: real (untrained) weights and generated stimuli."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from bidsapp.audio.resnet import SAMPLE_RATE
from bidsapp.audio.weightfile import sidecar_path
from bidsapp.audio.weights import init_untrained


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory) -> Path:
    """The deterministic untrained weights, generated once per test session (~1 s)."""
    return init_untrained(tmp_path_factory.mktemp("models"))


@pytest.fixture
def weights_copy(untrained_weights, tmp_path):
    """A private copy of the untrained weights and sidecar that a test may damage."""
    path = tmp_path / untrained_weights.name
    shutil.copy(untrained_weights, path)
    shutil.copy(sidecar_path(untrained_weights), sidecar_path(path))
    return path


def _write_audio(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE, **kwargs) -> Path:
    """Write float samples (frames or frames x channels) with soundfile and return the path."""
    soundfile.write(path, np.asarray(samples, dtype=np.float32), rate, **kwargs)
    return path


def _noise(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Return reproducible white noise at a moderate level."""
    return 0.1 * np.random.default_rng(seed).standard_normal(int(round(seconds * rate)))


def _clicks(seconds: float, times: list[float], rate: int = SAMPLE_RATE) -> np.ndarray:
    """Return silence with a one-sample click of amplitude 0.9 at each time."""
    audio = np.zeros(int(round(seconds * rate)))
    audio[np.round(np.asarray(times) * rate).astype(int)] = 0.9
    return audio


@pytest.fixture
def write_audio():
    """``write_audio(path, samples, rate=16000, **soundfile_kwargs) -> path``."""
    return _write_audio


@pytest.fixture
def signals():
    """Test signals: ``signals.noise(seconds, seed)`` and ``signals.clicks(seconds, times)``."""
    return SimpleNamespace(noise=_noise, clicks=_clicks)
