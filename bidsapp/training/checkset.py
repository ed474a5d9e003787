"""A small check set: a few held-out clips as FLAC with their targets, and expected figures.

``bidsapp evaluate --clips FOLDER`` reads it.  The test suite ships one
(``tests/training/data/checkset``) with the predictions and metrics the exported weights
gave on it, so anyone can confirm that the weights they have reproduce the model card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile

from bidsapp.audio.decode import load_audio
from bidsapp.audio.resnet import SAMPLE_RATE
from bidsapp.errors import MissingInputError
from bidsapp.io import write_json

from .data import ClipSet

LABELS_FILE = "labels.json"


def write_check_set(clip_set: ClipSet, indices: list[int], folder: str | Path,
                    samples: int) -> Path:
    """Write the first ``samples`` of some clips as 16-bit FLAC plus ``labels.json``.

    Parameters
    ----------
    clip_set : ClipSet
        Source clips (e.g. the corpus test split); soft labels (a teacher's probabilities)
        are kept as they are and the set is marked ``"targets": "teacher"``.
    indices : list of int
        Which clips.
    folder : str or Path
        Output folder.
    samples : int
        Samples kept per clip (at least one window, 50,176).

    Returns
    -------
    Path
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    soft = not np.isin(clip_set.labels[indices], (0.0, 1.0)).all()
    for number, index in enumerate(indices):
        name = f"clip{number:02d}.flac"
        soundfile.write(folder / name, clip_set.audio(index)[:samples], SAMPLE_RATE,
                        subtype="PCM_16")
        labels = ([round(float(x), 5) for x in clip_set.labels[index]] if soft
                  else clip_set.labels[index].astype(int).tolist())
        records.append({"file": name, "source": clip_set.names[index], "labels": labels,
                        "mask": clip_set.mask[index].astype(int).tolist()})
    write_json(folder / LABELS_FILE, {"sample_rate": SAMPLE_RATE,
                                      "targets": "teacher" if soft else "truth",
                                      "clips": records})
    return folder


def check_set_targets(folder: str | Path) -> str:
    """Return what a check set's labels are: ``truth`` (0/1 tags) or ``teacher`` (soft)."""
    return json.loads((Path(folder) / LABELS_FILE).read_text()).get("targets", "truth")


def load_check_set(folder: str | Path) -> ClipSet:
    """Return the clips of a check-set folder, decoded to float32 at 16 kHz.

    Raises
    ------
    MissingInputError
        If ``labels.json`` is missing.
    """
    folder = Path(folder)
    if not (folder / LABELS_FILE).is_file():
        raise MissingInputError("Not a check set (no labels.json)", path=folder,
                                fix="pass the folder tests/training/data/checkset")
    records = json.loads((folder / LABELS_FILE).read_text())["clips"]
    clips = [load_audio(folder / r["file"]) for r in records]
    return ClipSet(clips, np.array([r["labels"] for r in records], dtype=np.float32),
                   np.array([r["mask"] for r in records], dtype=bool),
                   [r["source"] for r in records])
