"""The study's 1D ResNet-18 and its layer features per TR (no fMRI here).

Typical use::

    from bidsapp.audio import compute_features_many, weights_info
    features = compute_features_many(stimuli, tr=0.735, cache_dir=out / "features")
    weights_info()["status"]  # "untrained" until trained weights are installed

Names are imported lazily, so ``python -m bidsapp.audio.weights`` does not load the feature
code (nilearn, scipy.signal) it does not need.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FEATURE_VERSION": "features",
    "compute_features": "features",
    "compute_features_many": "features",
    "load_audio": "decode",
    "LAYERS": "resnet",
    "LAYER_NAMES": "resnet",
    "Layer": "resnet",
    "ResNet18Audio": "resnet",
    "SAMPLE_RATE": "resnet",
    "WINDOW_SAMPLES": "resnet",
    "default_weights_path": "weights",
    "init_untrained": "weights",
    "load_model": "weights",
    "weights_info": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    """Import a public name from its submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    """List the public names next to the module's own."""
    return sorted(set(globals()) | set(_EXPORTS))
