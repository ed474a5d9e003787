"""Rendering with FluidSynth (skipped when FluidSynth, music21 or the soundfont is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.training.render import rendering_available

pytestmark = pytest.mark.skipif(not rendering_available(),
                                reason="fluidsynth/pyfluidsynth/music21/FluidR3_GM not installed")

WORK = {"id": "test/scale", "classical": True,
        "parts": [[[i * 0.5, 0.5, 60 + (i * 7) % 12] for i in range(48)],
                  [[i * 1.0, 1.0, 48 + (i * 5) % 12] for i in range(24)]]}


def test_rendering_is_deterministic_and_tagged():
    from bidsapp.training.render import Renderer, draw_spec, spec_labels

    renderer = Renderer(3.2)
    spec = draw_spec(WORK, 3, 3.2)
    first = renderer.render(WORK, spec)
    renderer.render(WORK, draw_spec(WORK, 4, 3.2))
    again = renderer.render(WORK, spec)
    assert first.shape == (51_200,) and first.dtype == np.float32
    assert np.abs(first).max() <= 1 and np.abs(first).max() > 1e-3
    np.testing.assert_allclose(first, again, atol=2e-5)  # below one 16-bit step
    labels, mask = spec_labels(spec, classical_source=True)
    assert labels.shape == mask.shape == (50,)


def test_loud_clips_are_louder_than_quiet_ones():
    from bidsapp.training.render import Renderer, draw_spec

    renderer = Renderer(3.2)
    levels = {"quiet": [], "loud": []}
    for seed in range(12):
        spec = draw_spec(WORK, seed, 3.2)
        if spec.dynamic in levels:
            levels[spec.dynamic].append(np.sqrt(np.mean(renderer.render(WORK, spec) ** 2)))
    assert max(levels["quiet"]) < min(levels["loud"])
