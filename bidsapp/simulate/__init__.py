"""Synthetic BIDS datasets with planted motion, warps, slice timing and layer signals.

Typical use::

    from bidsapp.simulate import simulate
    root = simulate("sim", preset="tiny", seed=0)            # or: bidsapp simulate sim
    root = simulate("study", preset="study", snr=0.3, subjects=12)

The dataset holds the ground truth in ``derivatives/truth/`` (see ``docs/simulate.md``);
:mod:`bidsapp.simulate.truth` reads it back.
"""

from __future__ import annotations

from .core import simulate
from .presets import PRESETS, SimulationParams, make_params

__all__ = ["PRESETS", "SimulationParams", "make_params", "simulate"]
