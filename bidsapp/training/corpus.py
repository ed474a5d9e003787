"""Scores from the music21 corpus as plain note lists, and the split by musical work.

music21 parses slowly (about 0.1 to 0.6 s per work), so the works are parsed once into a
gzipped JSON-lines file of note lists: one record per work with its parts, each a list of
``[onset, duration, midi_pitch]`` in quarter notes.  Rendering reads only that file.

A *work* is one score file, or one tune of a multi-tune ABC file (the Essen and O'Neill
collections hold hundreds of tunes per file).  Train, validation and test are split by
work, with a hash of the work's id, so no excerpt of a test work is ever trained on and the
split does not depend on which other works were selected.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

from bidsapp._pool import starmap

LOGGER = logging.getLogger(__name__)

SOURCES: dict[str, tuple[int, bool]] = {
    "bach": (150, True),
    "palestrina": (110, True),
    "monteverdi": (25, True),
    "trecento": (25, True),
    "beethoven": (6, True),
    "mozart": (6, True),
    "haydn": (4, True),
    "corelli": (1, True),
    "handel": (1, True),
    "schubert": (1, True),
    "essenFolksong": (1, False),
    "oneills1850": (3, False),
    "ryansMammoth": (120, False),
}
"""music21 corpus folders used: how many files (the first N in sorted order), and whether
the repertoire counts as classical (folk tunes do not)."""

SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
"""Share of works in each split."""


def split_of(work_id: str) -> str:
    """Return ``'train'``, ``'validation'`` or ``'test'`` for a work, from a hash of its id.

    Parameters
    ----------
    work_id : str
        E.g. ``'bach/bwv66.6.mxl'`` or ``'essenFolksong/altdeu10.abc#17'``.

    Returns
    -------
    str
    """
    # sha256 rather than hash(): Python salts str hashes per process.
    value = int.from_bytes(hashlib.sha256(work_id.encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in SPLIT_FRACTIONS:
        edge += fraction
        if value < edge:
            return name
    return SPLIT_FRACTIONS[-1][0]


def corpus_files(sources: dict[str, tuple[int, bool]] | None = None) -> list[tuple[str, bool]]:
    """Return the corpus files to parse, as ``(path relative to the corpus, classical)``.

    Parameters
    ----------
    sources : dict, optional
        Folder to ``(number of files, classical)``; :data:`SOURCES` by default.

    Returns
    -------
    list of (str, bool)
    """
    # optional extra (bidsapp[train]): only rendering the training corpus needs it
    from music21 import corpus

    sources = SOURCES if sources is None else sources
    by_folder: dict[str, list[str]] = {}
    for path in corpus.getPaths():
        relative = str(path).split("/corpus/", 1)[-1]
        by_folder.setdefault(relative.split("/", 1)[0], []).append(relative)
    files = []
    for folder, (count, classical) in sources.items():
        files += [(rel, classical) for rel in sorted(by_folder.get(folder, []))[:count]]
    return files


def _score_parts(score) -> list[list[list[float]]]:
    # optional extra (bidsapp[train]): only rendering the training corpus needs it
    from music21 import harmony

    parts = []
    for part in score.parts:
        notes = []
        for element in part.flatten().notes:
            # Chord symbols are annotations in the folk ABC files, not written notes.
            if isinstance(element, harmony.ChordSymbol) or element.quarterLength <= 0:
                continue
            onset = float(element.offset)
            for pitch in element.pitches:
                notes.append([round(onset, 4), round(float(element.quarterLength), 4),
                              int(pitch.midi)])
        if notes:
            parts.append(sorted(notes))
    return parts


def parse_file(relative: str, classical: bool) -> list[dict]:
    """Parse one corpus file into work records (several for a multi-tune ABC file).

    Parameters
    ----------
    relative : str
        Path relative to the music21 corpus, e.g. ``'bach/bwv66.6.mxl'``.
    classical : bool
        Whether the repertoire is classical; stored in each record.

    Returns
    -------
    list of dict
        Records with ``id``, ``source`` (the folder), ``classical``, ``split`` and
        ``parts``; works without notes or shorter than 8 quarter notes are dropped.
    """
    # optional extra (bidsapp[train]): only rendering the training corpus needs it
    from music21 import corpus, stream

    try:
        parsed = corpus.parse(relative)
    except Exception as exc:  # noqa: BLE001 -- music21 raises many types on odd files
        LOGGER.warning("Skipping %s: %s", relative, exc)
        return []
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    records = []
    for index, score in enumerate(scores):
        work_id = relative if len(scores) == 1 else f"{relative}#{index}"
        parts = _score_parts(score)
        end = max((n[0] + n[1] for part in parts for n in part), default=0.0)
        if end < 8:
            continue
        records.append({
            "id": work_id,
            "source": relative.split("/", 1)[0],
            "classical": classical,
            "split": split_of(work_id),
            "parts": parts,
        })
    return records


def build_work_list(path: str | Path, processes: int = 1) -> Path:
    """Parse the selected corpus files into a gzipped JSON-lines work list.

    Parameters
    ----------
    path : str or Path
        Output file (``works.jsonl.gz``); left as is when it exists already.
    processes : int, optional
        Parallel parsing processes.

    Returns
    -------
    Path
    """
    path = Path(path)
    if path.is_file():
        return path
    files = corpus_files()
    LOGGER.info("Parsing %d music21 corpus files with %d process(es)", len(files), processes)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with gzip.open(tmp, "wt") as stream:
        for records in starmap(parse_file, files, processes, chunksize=4):
            for record in records:
                stream.write(json.dumps(record, separators=(",", ":")) + "\n")
                count += 1
    tmp.rename(path)
    LOGGER.info("Wrote %d works to %s", count, path)
    return path


def read_work_list(path: str | Path) -> list[dict]:
    """Return the work records written by :func:`build_work_list`, in file order."""
    with gzip.open(path, "rt") as stream:
        return [json.loads(line) for line in stream]
