"""Which weights the app uses, loading them onto a device, and the untrained fallback.

The trained release in ``models/`` (``resnet18_mtt50.safetensors``, see its model card) is
used when present.  ``python -m bidsapp.audio.weights init-untrained models/`` writes
deterministic He-initialised weights marked ``untrained``, the fallback (and what the
tests compare against); every output made with them says ``untrained`` (see
:func:`weights_info`).  The file
format and its checks live in :mod:`bidsapp.audio.weightfile`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch

from bidsapp.device import resolve_device
from bidsapp.errors import BidsAppError, MissingInputError

from .resnet import ResNet18Audio
from .weightfile import (
    INIT_FIX,
    STATUSES,
    TAGS,
    TRAINED_FILENAME,
    UNTRAINED_FILENAME,
    expected_tensors,
    file_sha256,
    load_state_dict,
    read_sidecar,
    save_weights,
    sidecar_path,
)

__all__ = [
    "MODELS_DIR_ENV",
    "STATUSES",
    "TAGS",
    "TRAINED_FILENAME",
    "UNTRAINED_FILENAME",
    "UNTRAINED_SEED",
    "check_weights",
    "default_weights_path",
    "expected_tensors",
    "file_sha256",
    "init_untrained",
    "load_model",
    "load_state_dict",
    "models_dir",
    "read_sidecar",
    "resolve_device",
    "save_weights",
    "sidecar_path",
    "untrained_state",
    "weights_info",
]

LOGGER = logging.getLogger(__name__)

UNTRAINED_SEED = 20170605
"""Seed of the untrained weights; fixed so every install gets the same file and sha256."""

MODELS_DIR_ENV = "BIDSAPP_MODELS_DIR"
"""Environment variable that overrides the folder searched by :func:`default_weights_path`."""


def models_dir() -> Path:
    """Return the folder that holds the weights: ``$BIDSAPP_MODELS_DIR`` or ``<repo>/models``."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "models"


def default_weights_path() -> Path:
    """Return the trained weights if present, else the untrained ones.

    Returns
    -------
    Path
        ``resnet18_mtt50.safetensors`` or ``resnet18_mtt50_untrained.safetensors`` in
        :func:`models_dir`.  A trained file that is present but broken is returned (and
        fails when loaded) rather than silently replaced by untrained weights.

    Raises
    ------
    MissingInputError
        If neither file exists.
    """
    folder = models_dir()
    for name in (TRAINED_FILENAME, UNTRAINED_FILENAME):
        if (folder / name).is_file():
            return folder / name
    raise MissingInputError(
        "No network weights found (neither trained nor untrained)",
        path=folder / UNTRAINED_FILENAME,
        fix=INIT_FIX,
    )


def weights_info(path: str | Path | None = None) -> dict:
    """Return what every output made with these weights must record.

    Parameters
    ----------
    path : str or Path, optional
        The weights file; :func:`default_weights_path` when omitted.

    Returns
    -------
    dict
        ``path``, ``name`` (the file stem), ``status`` (``"trained"`` or ``"untrained"``),
        ``sha256`` (verified against the file) and ``training_data``: the data set the
        weights were trained on (the sidecar's ``training_data.dataset``), or ``None``.
    """
    path = Path(path) if path is not None else default_weights_path()
    meta = read_sidecar(path)
    training_data = meta.get("training_data")
    return {
        "path": str(path),
        "name": path.stem,
        "status": meta["status"],
        "sha256": meta["sha256"],
        "training_data": (training_data.get("dataset") if isinstance(training_data, dict)
                          else None),
    }


def check_weights(path: str | Path | None = None) -> dict:
    """Verify the weights a run will use, completely, before any computing.

    The network first runs after preprocessing, hours into a participant run; a truncated
    download or a file from another architecture must stop the run at its start instead.

    Parameters
    ----------
    path : str or Path, optional
        The weights file; :func:`default_weights_path` when omitted.

    Returns
    -------
    dict
        :func:`weights_info` of the file.

    Raises
    ------
    MissingInputError
        If no weights file or its sidecar exists (exit 66).
    BadDataError
        If the sha256, the safetensors content, or a tensor's name, shape or type is wrong
        (exit 65).
    """
    path = Path(path) if path is not None else default_weights_path()
    load_state_dict(path)
    return weights_info(path)


def load_model(
    path: str | Path | None = None, device: str | torch.device = "auto"
) -> ResNet18Audio:
    """Return the network with verified weights, in evaluation mode, on ``device``.

    Models are cached per file content and device, so repeated calls are cheap and return
    the same object.

    Parameters
    ----------
    path : str or Path, optional
        The weights file; :func:`default_weights_path` when omitted.
    device : {'auto', 'cpu', 'cuda'} or torch.device, optional
        Where to run; ``'auto'`` uses CUDA when available.

    Returns
    -------
    ResNet18Audio
    """
    path = Path(path) if path is not None else default_weights_path()
    sha256 = read_sidecar(path)["sha256"]
    return _load_model(str(path.resolve()), sha256, str(resolve_device(device)))


@functools.lru_cache(maxsize=4)
def _load_model(path: str, sha256: str, device: str) -> ResNet18Audio:
    model = ResNet18Audio()
    model.load_state_dict(load_state_dict(path), strict=False)
    return model.to(device).eval()


def untrained_state(seed: int = UNTRAINED_SEED) -> dict[str, torch.Tensor]:
    """Return deterministic He-initialised weights for :class:`ResNet18Audio`.

    Drawn with NumPy's PCG64 generator rather than torch's so the bytes (and the sha256)
    do not change with the torch version.  Convolution and fc weights are normal with
    standard deviation ``sqrt(2 / fan_in)``; batch normalization is the identity (scale 1,
    shift 0, running mean 0, running variance 1); the fc bias is 0.
    """
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in sorted(expected_tensors().items()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "weight" and len(shape) > 1:
            fan_in = int(np.prod(shape[1:]))
            values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif leaf in ("weight", "running_var"):
            values = np.ones(shape)
        else:
            values = np.zeros(shape)
        state[name] = torch.from_numpy(values.astype(np.float32))
    return state


def init_untrained(folder: str | Path) -> Path:
    """Write the untrained weights into ``folder`` unless a valid copy is already there.

    Parameters
    ----------
    folder : str or Path
        Usually ``models/``.

    Returns
    -------
    Path
        The ``resnet18_mtt50_untrained.safetensors`` file.
    """
    path = Path(folder) / UNTRAINED_FILENAME
    if path.is_file() and sidecar_path(path).is_file():
        try:
            load_state_dict(path)
        except BidsAppError as exc:
            LOGGER.warning("Replacing invalid untrained weights: %s", exc)
        else:
            LOGGER.info("Untrained weights already present and valid: %s", path)
            return path
    training = {
        "initialisation": "He et al. (2015) normal, sqrt(2 / fan_in); batch norm identity",
        "seed": UNTRAINED_SEED,
        "generator": "python -m bidsapp.audio.weights init-untrained",
    }
    save_weights(untrained_state(), path, status="untrained", training=training)
    LOGGER.info("Wrote untrained weights %s", path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bidsapp.audio.weights init-untrained [FOLDER]``."""
    parser = argparse.ArgumentParser(prog="python -m bidsapp.audio.weights")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init-untrained", help="write deterministic untrained weights")
    init.add_argument("folder", nargs="?", type=Path, default=None, help="default: models/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = init_untrained(args.folder if args.folder is not None else models_dir())
        print(f"{path} sha256={read_sidecar(path)['sha256']}")
    except BidsAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
