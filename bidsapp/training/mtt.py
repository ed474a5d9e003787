"""MagnaTagATune for users who have it: annotations, the top 50 tags and the study's split.

MTT ships ``annotations_final.csv``, which despite its name is tab-separated with every
field quoted: ``clip_id``, 188 tag columns of 0/1, and ``mp3_path`` (``<folder>/<name>.mp3``
relative to the audio root, the folder being one of ``0``-``9``, ``a``-``f``).  The study
trains on folders 0-b, validates on c and tests on d-f, and predicts the 50 most frequent
tags (Dieleman & Schrauwen, 2014), which are the names of the output layer
(:data:`~bidsapp.audio.weightfile.TAGS`).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bidsapp.audio.decode import load_audio
from bidsapp.audio.weightfile import TAGS
from bidsapp.errors import BadDataError, MissingInputError

from .data import ClipSet

LOGGER = logging.getLogger(__name__)

ANNOTATIONS = "annotations_final.csv"

SPLIT_FOLDERS = {"train": "0123456789ab", "validation": "c", "test": "def"}
"""The study's split: MTT parts 1-12 train, 13 validation, 14-16 test."""


@dataclass
class Annotations:
    """The content of ``annotations_final.csv``.

    Attributes
    ----------
    clip_ids : list of str
    tag_names : list of str
        The tag columns, in file order (188 in MTT).
    matrix : numpy.ndarray
        (n_clips, n_tags) uint8.
    mp3_paths : list of str
        Relative to the audio root.
    """

    clip_ids: list[str]
    tag_names: list[str]
    matrix: np.ndarray
    mp3_paths: list[str]


def read_annotations(path: str | Path) -> Annotations:
    """Read MTT's tab-separated, quoted annotation file.

    Parameters
    ----------
    path : str or Path
        ``annotations_final.csv``.

    Returns
    -------
    Annotations

    Raises
    ------
    MissingInputError
        If the file does not exist.
    BadDataError
        If ``clip_id`` or ``mp3_path`` is missing or a row is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            "MagnaTagATune's annotation file is missing", path=path,
            fix=f"pass the folder that holds {ANNOTATIONS} and the mp3 folders")
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream, delimiter="\t", quotechar='"'))
    header = rows[0] if rows else []
    if "clip_id" not in header or "mp3_path" not in header:
        raise BadDataError("The annotation file lacks the clip_id or mp3_path column", path=path,
                           fix="use MTT's annotations_final.csv (tab-separated)")
    id_col, path_col = header.index("clip_id"), header.index("mp3_path")
    tag_cols = [i for i in range(len(header)) if i not in (id_col, path_col)]
    matrix = np.zeros((len(rows) - 1, len(tag_cols)), dtype=np.uint8)
    for number, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise BadDataError(f"Row {number + 2} has {len(row)} fields, not {len(header)}",
                               path=path, fix="restore the original annotations_final.csv")
        matrix[number] = [int(row[i]) for i in tag_cols]
    return Annotations([r[id_col] for r in rows[1:]], [header[i] for i in tag_cols], matrix,
                       [r[path_col] for r in rows[1:]])


def top_tags(annotations: Annotations, count: int = 50) -> list[str]:
    """Return the ``count`` most frequent tags, most frequent first (ties in file order)."""
    frequency = annotations.matrix.sum(axis=0)
    order = sorted(range(len(frequency)), key=lambda i: (-int(frequency[i]), i))
    return [annotations.tag_names[i] for i in order[:count]]


def split_of_path(mp3_path: str) -> str | None:
    """Return the split of a clip from its folder (``'c/x.mp3'`` -> ``'validation'``)."""
    folder = mp3_path.split("/", 1)[0].lower()
    for split, folders in SPLIT_FOLDERS.items():
        if len(folder) == 1 and folder in folders:
            return split
    return None


def load_mtt(root: str | Path, split: str, *, annotations: str | Path | None = None,
             audio_root: str | Path | None = None) -> ClipSet:
    """Return one split of MagnaTagATune with targets for the 50 output tags.

    Parameters
    ----------
    root : str or Path
        Folder with ``annotations_final.csv`` (and, by default, the mp3 folders).
    split : {'train', 'validation', 'test'}
        The study's split (:data:`SPLIT_FOLDERS`).
    annotations : str or Path, optional
        Another annotation file.
    audio_root : str or Path, optional
        Folder the ``mp3_path`` column is relative to; ``root`` by default.

    Returns
    -------
    ClipSet
        Paths decoded on use with :func:`bidsapp.audio.decode.load_audio`; labels in the
        order of :data:`~bidsapp.audio.weightfile.TAGS`; every target known (mask all true).
        Missing and empty mp3 files are left out with a warning (MTT has a few).

    Raises
    ------
    BadDataError
        If one of the 50 output tags is not a column of the file.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {sorted(SPLIT_FOLDERS)}, not {split!r}")
    root = Path(root)
    audio_root = Path(audio_root) if audio_root is not None else root
    table = read_annotations(annotations or root / ANNOTATIONS)
    missing = [tag for tag in TAGS if tag not in table.tag_names]
    if missing:
        raise BadDataError(f"The annotations lack {len(missing)} output tag(s), e.g. "
                           f"{missing[0]!r}", path=annotations or root / ANNOTATIONS,
                           fix="use MTT's annotations_final.csv")
    top = top_tags(table, len(TAGS))
    if set(top) != set(TAGS):
        LOGGER.warning("The 50 most frequent tags of this file differ from the output layer's "
                       "(e.g. %s); training on the output layer's tags",
                       sorted(set(top) - set(TAGS))[:3])
    columns = [table.tag_names.index(tag) for tag in TAGS]
    keep, absent = [], 0
    for index, rel in enumerate(table.mp3_paths):
        if split_of_path(rel) != split:
            continue
        file = audio_root / rel
        if not file.is_file() or file.stat().st_size == 0:
            absent += 1
            continue
        keep.append(index)
    if absent:
        LOGGER.warning("%d %s clip(s) are missing or empty and left out", absent, split)
    labels = table.matrix[keep][:, columns].astype(np.float32)
    return ClipSet([str(audio_root / table.mp3_paths[i]) for i in keep], labels,
                   np.ones_like(labels, dtype=bool), [table.clip_ids[i] for i in keep],
                   loader=load_audio)
