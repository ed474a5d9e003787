"""The weights file format: safetensors plus a JSON sidecar, verified on every read.

A weights file ``<name>.safetensors`` always travels with ``<name>.json``, which records the
file's sha256, its status (``trained`` or ``untrained``), the 50 tag names, the sample
rate, the layer names, the training data and the evaluation metrics.  Reading verifies
the sha256 and every tensor name and shape, so a truncated download, a file from another
architecture or a sidecar that belongs to another file stops the run with exit code 65.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import safetensors
import torch
from safetensors.torch import load_file, save_file

from bidsapp.errors import BadDataError, MissingInputError
from bidsapp.io import atomic_write, write_json

from .resnet import LAYERS, SAMPLE_RATE, WINDOW_SAMPLES, ResNet18Audio

TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock",
    "fast", "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian",
    "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet",
    "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats",
    "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
"""The 50 most frequent MagnaTagATune tags (Dieleman & Schrauwen, 2014), output order."""

TRAINED_FILENAME = "resnet18_mtt50.safetensors"
UNTRAINED_FILENAME = "resnet18_mtt50_untrained.safetensors"
STATUSES = ("trained", "untrained")

INIT_FIX = "run scripts/install.sh, or: python -m bidsapp.audio.weights init-untrained models/"
_TRAINING_DATA = {
    "dataset": "MagnaTagATune (Law et al., 2009)",
    "tags": "50 most frequent (Dieleman & Schrauwen, 2014)",
    "split": "parts 1-12 train, 13 validation, 14-16 test",
}


def sidecar_path(weights_path: str | Path) -> Path:
    """Return the JSON sidecar that belongs to a ``.safetensors`` file."""
    return Path(weights_path).with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def expected_tensors() -> dict[str, tuple[int, ...]]:
    """Return the name and shape of every tensor a weights file must hold.

    These are the network's parameters and batch-normalization running statistics;
    ``num_batches_tracked`` counters are training bookkeeping and are not stored.
    """
    # Built on the CPU, not the meta device: initialising weights on the meta device
    # imports torch's compiler stack (3 s and more), and every participant run checks its
    # weights before computing; the CPU model costs a few tenths of a second.
    state = ResNet18Audio().state_dict()
    return {
        name: tuple(tensor.shape)
        for name, tensor in state.items()
        if not name.endswith("num_batches_tracked")
    }


@functools.lru_cache(maxsize=8)
def _verified_sidecar(path: Path, stamp: tuple) -> dict:
    # Keyed on both files' size and mtime so a file replaced on disk is verified again.
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise MissingInputError(
            "The weights file has no JSON sidecar", path=sidecar, fix=_fix_for(path)
        )
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadDataError(
            f"The weights sidecar is not valid JSON ({exc})", path=sidecar, fix=_fix_for(path)
        ) from exc
    if not isinstance(meta, dict) or meta.get("status") not in STATUSES:
        raise BadDataError(
            f"The weights sidecar lacks a status ({' or '.join(STATUSES)})",
            path=sidecar,
            fix=_fix_for(path),
        )
    actual = file_sha256(path)
    if meta.get("sha256") != actual:
        raise BadDataError(
            f"The weights file's sha256 {actual[:12]}... does not match its sidecar "
            f"({str(meta.get('sha256'))[:12]}...): the file is corrupt, truncated or replaced",
            path=path,
            fix=_fix_for(path),
        )
    return meta


def _fix_for(path: Path) -> str:
    if path.name == UNTRAINED_FILENAME:
        return f"delete it and {INIT_FIX}"
    return "restore the weights file and its .json sidecar from the release, or delete both"


def read_sidecar(path: str | Path) -> dict:
    """Return a weights file's sidecar after checking the file's sha256 against it.

    Parameters
    ----------
    path : str or Path
        The ``.safetensors`` file.

    Returns
    -------
    dict
        The sidecar's content.

    Raises
    ------
    MissingInputError
        If the file or its sidecar does not exist.
    BadDataError
        If the sidecar is unreadable or its sha256 differs from the file's.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise MissingInputError("The weights file does not exist", path=path, fix=INIT_FIX)
    stamp = tuple(
        (st.st_size, st.st_mtime_ns)
        for st in (p.stat() for p in (path, sidecar_path(path)) if p.exists())
    )
    return dict(_verified_sidecar(path, stamp))


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read and check a weights file.

    Parameters
    ----------
    path : str or Path
        The ``.safetensors`` file, with its sidecar next to it.

    Returns
    -------
    dict of str to torch.Tensor
        Tensors on the CPU, exactly the names and shapes of :func:`expected_tensors`.

    Raises
    ------
    MissingInputError
        If the file or its sidecar is missing.
    BadDataError
        If the sha256 does not match, the file cannot be parsed, or a tensor is missing,
        extra, of the wrong shape or not float32.
    """
    path = Path(path)
    read_sidecar(path)
    try:
        tensors = load_file(path, device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise BadDataError(
            f"Cannot read the weights file ({exc})", path=path, fix=_fix_for(path)
        ) from exc
    expected = expected_tensors()
    known = {name: t for name, t in tensors.items() if name in expected}
    problems = [
        f"{name} has shape {tuple(t.shape)}, expected {expected[name]}"
        for name, t in known.items()
        if tuple(t.shape) != expected[name]
    ]
    problems += [
        f"{name} is {t.dtype}, not float32"
        for name, t in known.items()
        if t.dtype != torch.float32
    ]
    problems += [f"unexpected tensor {name}" for name in tensors if name not in expected]
    missing = [name for name in expected if name not in tensors]
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing, e.g. {missing[0]}")
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        shown = "; ".join(problems[:3]) + more
        raise BadDataError(
            f"The weights file does not fit the study's ResNet-18: {shown}",
            path=path,
            fix=_fix_for(path),
        )
    return tensors


def save_weights(
    state: dict[str, torch.Tensor],
    path: str | Path,
    *,
    status: str,
    training: dict | None = None,
    metrics: dict | None = None,
    training_data: dict | None = None,
) -> Path:
    """Write weights and their sidecar, each atomically.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        A state dict of :class:`ResNet18Audio`; ``num_batches_tracked`` entries are dropped.
    path : str or Path
        The ``.safetensors`` file to write.
    status : {'trained', 'untrained'}
        Recorded in the sidecar and in every output made with these weights.
    training : dict, optional
        How the weights were made (data, initialisation, seed, optimiser).
    metrics : dict, optional
        Evaluation results, e.g. ``{"test_auc": 0.89}``; ``None`` for untrained weights.
    training_data : dict, optional
        What trained weights were trained on (``dataset``, ``tags``, ``split``, ...);
        MagnaTagATune with the study's split by default.  Ignored for untrained weights.

    Returns
    -------
    Path
        ``path``.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    path = Path(path)
    tensors = {
        name: tensor.detach().to("cpu", torch.float32).contiguous()
        for name, tensor in state.items()
        if name in expected_tensors()
    }
    with atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
        # safetensors creates the file private (0600); a container may run as another user.
        tmp.chmod(0o644)
    sidecar = {
        "name": path.stem,
        "architecture": "1D ResNet-18 of the study's Table 1 (bidsapp.audio.resnet)",
        "status": status,
        "sha256": file_sha256(path),
        "sample_rate": SAMPLE_RATE,
        "window_samples": WINDOW_SAMPLES,
        "layers": [{"name": layer.name, "width": layer.width} for layer in LAYERS],
        "output": "logits; sigmoid gives tag probabilities",
        "tags": list(TAGS),
        "training_data": (training_data or _TRAINING_DATA) if status == "trained" else None,
        "training": training,
        "metrics": metrics,
    }
    write_json(sidecar_path(path), sidecar)
    return path
