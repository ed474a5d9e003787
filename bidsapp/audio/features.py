"""Layer features per TR for each stimulus: the network slid over the clip, HRF, cache.

The network is fully convolutional up to conv5, so conv1 ... conv5_2 run once over the
whole clip; this equals sliding the 50,176-sample window with a hop of one conv5 frame
(1,024 samples, 64 ms), except that frames near a window's edge see the real neighbouring
audio instead of zero padding.  The fc layer of a window centred on conv5 frame ``j`` is the
linear layer applied to the mean of the 49 conv5 frames around ``j``.  Every layer is
averaged onto that 64 ms grid, convolved with the canonical HRF and averaged within each
TR (:mod:`bidsapp.audio.timing`).  Results are cached in ``<output_dir>/features/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from bidsapp.device import resolve_device
from bidsapp.errors import BadDataError, MissingInputError
from bidsapp.io import atomic_write
from bidsapp.progress import Progress

from .decode import load_audio
from .resnet import LAYER_NAMES, LAYERS, SAMPLE_RATE, ResNet18Audio
from .timing import hrf_per_tr, to_grid, trial_trs
from .weights import file_sha256, load_model, weights_info

LOGGER = logging.getLogger(__name__)

FEATURE_VERSION = "1"
"""Bumped whenever a change to this code changes the features; part of every cache key."""


def grid_activations(model: ResNet18Audio, audio: np.ndarray) -> dict[str, np.ndarray]:
    """Return every layer's activations on the 64 ms grid for a batch of equal-length clips.

    Parameters
    ----------
    model : ResNet18Audio
        The network, in evaluation mode.
    audio : numpy.ndarray
        Shape (batch, samples), 16 kHz; clips must share one length so that no clip is
        padded (padding would change the frames near its end).

    Returns
    -------
    dict of str to numpy.ndarray
        One entry per layer of :data:`~bidsapp.audio.resnet.LAYERS`, shape
        (batch, width, n_grid) float32; grid frame ``j`` is centred on ``j * 64`` ms.
    """
    # Run where the model lives (load_model put it on the requested device); moving a
    # cached model here would move it for every other caller too.
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=device)
        activations = model.layer_activations(x)
        conv5 = activations["conv5_2"]
        n_grid = conv5.shape[-1]
        grid = {
            layer.name: to_grid(activations.pop(layer.name), layer.hop, n_grid)
            for layer in LAYERS[:-1]
        }
        grid["fc"] = model.fc_frames(conv5)
        return {name: grid[name].float().cpu().numpy() for name in LAYER_NAMES}


def features_from_audio(
    model: ResNet18Audio, audio: np.ndarray, tr: float
) -> list[dict[str, np.ndarray]]:
    """Return the HRF-convolved features per TR of equal-length clips.

    Parameters
    ----------
    model : ResNet18Audio
        The network, in evaluation mode.
    audio : numpy.ndarray
        Shape (batch, samples), 16 kHz.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    list of dict of str to numpy.ndarray
        Per clip, one (width, n_tr) float32 array per layer, in :data:`LAYER_NAMES` order;
        ``n_tr`` is :func:`~bidsapp.audio.timing.trial_trs` of the clip length.
    """
    grid = grid_activations(model, audio)
    n_tr = trial_trs(audio.shape[-1], tr)
    return [
        {name: hrf_per_tr(grid[name][i], tr, n_tr).astype(np.float32) for name in LAYER_NAMES}
        for i in range(audio.shape[0])
    ]


def cache_key(audio_sha256: str, weights_sha256: str, tr: float) -> str:
    """Return the hex sha256 that names a cached feature file.

    It covers the audio file's bytes, the weights file's bytes, the TR and
    :data:`FEATURE_VERSION`, so any change to one of them is a cache miss.
    """
    fields = {
        "audio_sha256": audio_sha256,
        "weights_sha256": weights_sha256,
        "tr": repr(float(tr)),
        "feature_version": FEATURE_VERSION,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir: str | Path, audio_path: str | Path, key: str) -> Path:
    """Return ``<cache_dir>/<audio stem>_<first 16 hex of key>_features.npz``."""
    stem = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(audio_path).stem)
    return Path(cache_dir) / f"{stem}_{key[:16]}_features.npz"


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("key") != key:
                return None
            return {name: data[name] for name in LAYER_NAMES}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        LOGGER.warning("Ignoring unreadable feature cache %s (%s); recomputing", path, exc)
        return None


def _write_cache(path: Path, features: Mapping[str, np.ndarray], meta: dict) -> None:
    # Each writer renames its own complete temporary file into place, so two processes
    # that compute the same stimulus at once both succeed and readers never see a
    # partial file; the contents are identical, so it does not matter who wins.
    with atomic_write(path) as tmp, open(tmp, "wb") as stream:
        np.savez(stream, meta=np.array(json.dumps(meta, sort_keys=True)), **features)


#: Audio per forward pass of :func:`compute_features_many` (4 of the study's 29-s clips).
MAX_BATCH_SECONDS = 120.0


def compute_features_many(
    audio_paths: Iterable[str | Path],
    tr: float,
    *,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 4,
) -> dict[Path, dict[str, np.ndarray]]:
    """Return the features per TR of many stimuli, batching clips of equal length.

    Parameters
    ----------
    audio_paths : iterable of str or Path
        Stimulus files (WAV, FLAC, OGG, MP3).
    tr : float
        Repetition time of the BOLD series in seconds (at least 0.064).
    weights : str or Path, optional
        The network's ``.safetensors`` file; the default weights when omitted.
    cache_dir : str or Path, optional
        Where features are cached (``<output_dir>/features``); no caching when omitted.
    device : {'auto', 'cpu', 'cuda'} or torch.device, optional
        Where to run the network; ``'auto'`` uses CUDA when available.
    batch_size : int, optional
        Clips per forward pass, at most; fewer for long clips, so that one pass holds at
        most :data:`MAX_BATCH_SECONDS` of audio (or one clip): the network's memory grows
        with the audio of a pass, not with the number or length of the stimuli.

    Returns
    -------
    dict of Path to dict of str to numpy.ndarray
        For each input path (in input order), one (width, n_tr) float32 array per layer of
        :data:`~bidsapp.audio.resnet.LAYER_NAMES`: each unit's activation, convolved with
        the canonical HRF and averaged within TR ``i`` = ``[i * tr, (i + 1) * tr)`` seconds
        after the stimulus onset.

    Raises
    ------
    MissingInputError
        If a stimulus or the weights are missing.
    UsageError
        If ``device`` is ``'cuda'`` and no GPU is usable.
    BadDataError
        If a stimulus cannot be decoded or is too short, the weights are corrupt, or the TR
        is below 64 ms.
    """
    if not tr >= 0.064:
        raise BadDataError(
            f"RepetitionTime {tr} s is below the 0.064 s frame grid of the network",
            fix="check RepetitionTime in the BOLD JSON sidecar (seconds, not ms)",
        )
    device = resolve_device(device)  # a bad device fails now, not after a cache hit
    paths = list(dict.fromkeys(Path(p) for p in audio_paths))
    info = weights_info(weights)
    results: dict[Path, dict[str, np.ndarray]] = {}
    keys: dict[Path, str] = {}
    for path in paths:
        if cache_dir is None:
            continue
        if not path.is_file():
            raise MissingInputError("The stimulus audio file does not exist", path=path)
        keys[path] = cache_key(file_sha256(path), info["sha256"], tr)
        cached = _read_cache(cache_path(cache_dir, path, keys[path]), keys[path])
        if cached is not None:
            results[path] = cached
    todo = [path for path in paths if path not in results]
    if paths:
        LOGGER.info(
            "Features: %d of %d stimuli cached; computing %d with %s weights",
            len(paths) - len(todo), len(paths), len(todo), info["status"],
        )  # fmt: skip
    if todo:
        model = load_model(info["path"], device)
        by_length: dict[int, list[tuple[Path, np.ndarray]]] = defaultdict(list)
        for path in todo:
            audio = load_audio(path)
            by_length[audio.size].append((path, audio))
        # Counted in seconds of audio: pieces of unequal length cost in proportion to it.
        progress = Progress(f"Features of {len(todo)} stimuli", sum(
            audio.size for clips in by_length.values() for _, audio in clips) / SAMPLE_RATE,
            "s of audio")
        for length, clips in by_length.items():
            per_pass = max(1, min(batch_size, int(MAX_BATCH_SECONDS * SAMPLE_RATE) // length))
            for start in range(0, len(clips), per_pass):
                batch = clips[start : start + per_pass]
                batch_audio = np.stack([audio for _, audio in batch])
                for (path, _), features in zip(
                    batch, features_from_audio(model, batch_audio, tr), strict=True
                ):
                    results[path] = features
                    if cache_dir is not None:
                        meta = {
                            "key": keys[path],
                            "audio": path.name,
                            "tr": float(tr),
                            "feature_version": FEATURE_VERSION,
                            "weights": info["name"],
                            "weights_sha256": info["sha256"],
                            "weights_status": info["status"],
                            "layers": list(LAYER_NAMES),
                        }
                        _write_cache(cache_path(cache_dir, path, keys[path]), features, meta)
                progress.advance(sum(audio.size for _, audio in batch) / SAMPLE_RATE)
    return {path: results[path] for path in paths}


def compute_features(
    audio_path: str | Path,
    tr: float,
    *,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "auto",
) -> dict[str, np.ndarray]:
    """Return one stimulus's features per TR for every layer.

    Parameters
    ----------
    audio_path : str or Path
        The stimulus file.
    tr : float
        Repetition time in seconds.
    weights : str or Path, optional
        The network's ``.safetensors`` file; the default weights when omitted.
    cache_dir : str or Path, optional
        Feature cache folder (``<output_dir>/features``); no caching when omitted.
    device : {'auto', 'cpu', 'cuda'} or torch.device, optional
        Where to run the network.

    Returns
    -------
    dict of str to numpy.ndarray
        Layer name to (width, n_tr) float32 array; see :func:`compute_features_many`.
    """
    path = Path(audio_path)
    many = compute_features_many([path], tr, weights=weights, cache_dir=cache_dir, device=device)
    return many[path]
