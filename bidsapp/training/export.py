"""Turn a training checkpoint into a release: safetensors + sidecar via the audio part.

The file is written with :func:`bidsapp.audio.weightfile.save_weights`, so its format and
sha256 are the app's, and its sidecar records what the network was trained on
(``training_data``: the rendered corpus unless told otherwise).  A release (status
``trained``) is written as ``resnet18_mtt50.safetensors``, the name the app looks for
first.  Anything else (e.g. ``trained-partial`` for an unfinished run) is written as
``resnet18_mtt50_rendered.safetensors`` with that status in its sidecar, which
:func:`bidsapp.audio.weights.load_model` refuses, the safe default;
:func:`load_exported_model` reads it with the same checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from bidsapp.audio.resnet import ResNet18Audio
from bidsapp.audio.weightfile import (
    TRAINED_FILENAME,
    expected_tensors,
    file_sha256,
    save_weights,
    sidecar_path,
)
from bidsapp.errors import BadDataError, MissingInputError
from bidsapp.io import write_json

EXPORT_FILENAME = "resnet18_mtt50_rendered.safetensors"
"""Name of exported weights that are not a release (status other than ``trained``)."""

CORPUS_TRAINING_DATA = {
    "dataset": "music21 corpus rendered with FluidSynth and FluidR3_GM (bidsapp.training)",
    "tags": "the 50 MagnaTagATune output names; only the 26 the renderer produces supervised",
    "split": "by musical work (sha256 of the work id): 80% train, 10% validation, 10% test",
    "magnatagatune": "not used",
}


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu"
                          ) -> tuple[ResNet18Audio, dict]:
    """Return the network of a ``best.pt``/``last.pt`` checkpoint (evaluation mode) and it.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError("The checkpoint does not exist", path=path,
                                fix="pass RUN_DIR/best.pt of a bidsapp train run")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = ResNet18Audio()
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), checkpoint


def load_exported_model(path: str | Path, device: str | torch.device = "cpu") -> ResNet18Audio:
    """Load exported weights after checking their sha256 and tensors, whatever their status.

    Parameters
    ----------
    path : str or Path
        The ``.safetensors`` file with its ``.json`` sidecar.
    device : str or torch.device, optional
        Where to put the model.

    Returns
    -------
    ResNet18Audio
        In evaluation mode.

    Raises
    ------
    MissingInputError
        If the file or sidecar is missing.
    BadDataError
        If the sha256 differs from the sidecar's or the tensors do not fit the network.
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    for file in (path, sidecar):
        if not file.is_file():
            raise MissingInputError("The exported weights are incomplete", path=file,
                                    fix="copy both the .safetensors file and its .json sidecar")
    meta = json.loads(sidecar.read_text())
    if meta.get("sha256") != file_sha256(path):
        raise BadDataError("The weights file's sha256 does not match its sidecar", path=path,
                           fix="copy the file and its sidecar again")
    tensors = load_file(path, device="cpu")
    if {k: tuple(v.shape) for k, v in tensors.items()} != expected_tensors():
        raise BadDataError("The weights do not fit the study's ResNet-18", path=path,
                           fix="export them again with bidsapp evaluate --export")
    model = ResNet18Audio()
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval()


def distilled_training_data(real_manifest: dict, rendered: dict | None = None) -> dict:
    """Return the ``training_data`` record of weights distilled on the real-music corpus.

    Parameters
    ----------
    real_manifest : dict
        ``manifest.json`` of the corpus written by :mod:`bidsapp.training.realmusic`.
    rendered : dict, optional
        The rendered corpus's record (:data:`CORPUS_TRAINING_DATA` by default).

    Returns
    -------
    dict
        The rendered corpus, the Debian packages (name, version, sha256, licence), the
        teacher (model, versions, its training data) and the real split's size.
    """
    teacher = real_manifest.get("teacher", {})
    versions = teacher.get("versions", {})
    packages = [{"name": p["name"], "version": p["version"], "sha256": p["sha256"],
                 "licence": p.get("licences", {}).get("copyright", "unknown"),
                 "notices": sorted(set(p.get("licences", {}).get("notices", {}).values()))}
                for p in real_manifest.get("packages", [])]
    splits = real_manifest.get("splits", {})
    return {
        **(rendered or CORPUS_TRAINING_DATA),
        "dataset": "music21 corpus rendered with FluidSynth and FluidR3_GM, and real "
                   "recordings from Debian packages "
                   + ", ".join(f"{p['name']} {p['version']}" for p in packages)
                   + f" tagged by a teacher (musicnn {teacher.get('model', '?')}, trained on "
                   "MagnaTagATune)",
        "tags": "rendered clips: the 26 tags the renderer produces; real recordings: all 50, "
                "soft targets from the teacher",
        "real_music": {
            "packages": packages,
            "split": "by track: " + ", ".join(
                f"{name} {info.get('windows', 0)} windows ({len(info.get('tracks', []))} "
                "tracks)" for name, info in splits.items()),
        },
        "teacher": {
            "model": f"musicnn {versions.get('musicnn', '?')} {teacher.get('model', '?')}",
            "versions": versions,
            "training_data": teacher.get("training_data"),
        },
        "magnatagatune": "not used directly; the teacher was trained on it (CC BY-NC-SA)",
    }


def export_weights(model: torch.nn.Module, checkpoint: dict, folder: str | Path, *,
                   status: str, metrics: dict | None = None,
                   training_data: dict | None = None) -> Path:
    """Write the model and its sidecar into ``folder``.

    Parameters
    ----------
    model : torch.nn.Module
        The network to export.
    checkpoint : dict
        The checkpoint it came from (its ``config`` and ``step`` go into the sidecar).
    folder : str or Path
        Output folder.
    status : str
        ``trained`` for a release (written as ``resnet18_mtt50.safetensors``); anything
        else (``trained-partial``) marks weights that must not pass for a release (written
        as ``resnet18_mtt50_rendered.safetensors``).
    metrics : dict, optional
        Held-out evaluation (:func:`bidsapp.training.metrics.tag_metrics`).
    training_data : dict, optional
        What the network was trained on; :data:`CORPUS_TRAINING_DATA` by default.

    Returns
    -------
    Path
        The ``.safetensors`` file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (TRAINED_FILENAME if status == "trained" else EXPORT_FILENAME)
    config = checkpoint.get("config", {})
    recipe = ("Adam lr {lr}, betas ({beta1}, {beta2}), eps {eps}, batch {batch_size}, "
              "masked BCE, He init, no dropout".format(**config) if config else None)
    if recipe and config.get("real_fraction"):
        recipe += (f"; distillation: {config['real_fraction']:.2f} of each batch real music "
                   "with the teacher's probabilities as soft targets")
        if config.get("init_weights"):
            recipe += f", started from {Path(config['init_weights']).name}"
    training = {
        "recipe": recipe,
        "steps": checkpoint.get("step"),
        "samples": (checkpoint.get("step") or 0) * config.get("batch_size", 36),
        "seed": config.get("seed"),
        "initialisation": "He et al. (2015) normal, sqrt(2 / fan_in) (ResNet18Audio)",
        "generator": "bidsapp evaluate --export",
    }
    save_weights(model.state_dict(), path, status="trained", training=training,
                 metrics=metrics, training_data=training_data or CORPUS_TRAINING_DATA)
    if status != "trained":
        # save_weights knows only the statuses the app accepts; an unfinished run's file
        # gets its own status so that the app refuses it.
        meta = json.loads(sidecar_path(path).read_text())
        meta["status"] = status
        write_json(sidecar_path(path), meta)
    return path
