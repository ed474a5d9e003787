"""Tagged clip sets: the rendered corpus in compressed shards, and random training crops.

A :class:`ClipSet` holds whole clips with their 50 tag targets and a mask of the targets
that are known.  Both the rendered corpus (:func:`load_corpus_split`) and MagnaTagATune
(:mod:`bidsapp.training.mtt`) produce one, so training and evaluation do not care where
the audio came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsapp.audio.resnet import WINDOW_SAMPLES
from bidsapp.errors import MissingInputError

MANIFEST = "manifest.json"
"""Name of the corpus manifest next to the shards."""


@dataclass
class ClipSet:
    """Whole clips with tag targets.

    Attributes
    ----------
    clips : sequence
        Either float32 arrays, int16 arrays (scaled by 1/32768 on use) or anything
        :attr:`loader` turns into a float32 array (e.g. MTT mp3 paths).
    labels : numpy.ndarray
        Shape (n, 50), float32 0/1.
    mask : numpy.ndarray
        Shape (n, 50), bool: which targets are known.
    names : list of str
        One identifier per clip (a file name, or ``work@seed``).
    loader : callable, optional
        Turns an element of ``clips`` into float32 audio; identity by default.
    """

    clips: Sequence
    labels: np.ndarray
    mask: np.ndarray
    names: list[str]
    loader: Callable[[object], np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def audio(self, index: int) -> np.ndarray:
        """Return clip ``index`` as float32 samples at 16 kHz."""
        clip = self.clips[index]
        if self.loader is not None:
            return self.loader(clip)
        clip = np.asarray(clip)
        if clip.dtype == np.int16:
            return clip.astype(np.float32) / 32768.0
        return clip.astype(np.float32, copy=False)

    def subset(self, indices: Sequence[int]) -> ClipSet:
        """Return a new set with the clips at ``indices``."""
        indices = list(indices)
        return ClipSet([self.clips[i] for i in indices], self.labels[indices],
                       self.mask[indices], [self.names[i] for i in indices], self.loader)


def random_crop(audio: np.ndarray, rng: np.random.Generator,
                length: int = WINDOW_SAMPLES) -> np.ndarray:
    """Return a random ``length``-sample excerpt; shorter audio is zero-padded at the end.

    Parameters
    ----------
    audio : numpy.ndarray
        1D samples.
    rng : numpy.random.Generator
        Source of the crop position.
    length : int, optional
        Crop length, 50,176 samples (the study's 3.136 s) by default.

    Returns
    -------
    numpy.ndarray
        float32, shape (length,).
    """
    if audio.size <= length:
        return np.pad(audio, (0, length - audio.size)).astype(np.float32)
    start = int(rng.integers(0, audio.size - length + 1))
    return audio[start:start + length].astype(np.float32, copy=False)


def training_batch(clip_set: ClipSet, batch_size: int, seed: int, step: int,
                   crop_samples: int = WINDOW_SAMPLES
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw batch ``step`` of a training run: random clips, each randomly cropped.

    The draw depends only on ``(seed, step)``, so a resumed run sees exactly the batches
    an uninterrupted run would have seen.

    Parameters
    ----------
    clip_set : ClipSet
        The training clips.
    batch_size : int
        Clips per batch (36 in the study).
    seed : int
        The run's seed.
    step : int
        Zero-based step number.
    crop_samples : int, optional
        Crop length (the study's 50,176 samples by default).

    Returns
    -------
    audio : numpy.ndarray
        (batch, 50176) float32.
    labels, mask : numpy.ndarray
        (batch, 50) float32.
    """
    rng = np.random.default_rng([seed, step])
    # Each pass over the clips is a fresh permutation, so every clip is used equally often.
    n = len(clip_set)
    indices: list[int] = []
    position = step * batch_size
    while len(indices) < batch_size:
        epoch, offset = divmod(position, n)
        order = np.random.default_rng([seed, 1 << 30, epoch]).permutation(n)
        taken = order[offset:offset + batch_size - len(indices)]
        indices += [int(i) for i in taken]
        position += len(taken)
    if clip_set.loader is None:
        clips = [clip_set.audio(i) for i in indices]
    else:
        # Decoding (MTT mp3s) dominates a GPU step; libsndfile releases the GIL.
        with ThreadPoolExecutor(max_workers=8) as pool:
            clips = list(pool.map(clip_set.audio, indices))
    audio = np.stack([random_crop(clip, rng, crop_samples) for clip in clips])
    return (audio, clip_set.labels[indices].astype(np.float32),
            clip_set.mask[indices].astype(np.float32))


def write_shard(path: str | Path, audio: np.ndarray, labels: np.ndarray,
                mask: np.ndarray, names: list[str]) -> Path:
    """Write clips as one compressed ``.npz`` shard (int16 audio).

    Parameters
    ----------
    path : str or Path
        The shard file.
    audio : numpy.ndarray
        (n, samples) float32 in [-1, 1].
    labels, mask : numpy.ndarray
        (n, 50).
    names : list of str
        Clip identifiers.

    Returns
    -------
    Path
    """
    path = Path(path)
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, audio=pcm, labels=labels.astype(np.float32),
                        mask=mask.astype(bool), names=np.array(names))
    tmp.rename(path)
    return path


def load_corpus_split(corpus_dir: str | Path, split: str) -> ClipSet:
    """Load every shard of one split of a rendered corpus.

    Parameters
    ----------
    corpus_dir : str or Path
        The folder written by :func:`bidsapp.training.shards.render_corpus`.
    split : {'train', 'validation', 'test'}
        Which split.

    Returns
    -------
    ClipSet
        int16 clips in memory.

    Raises
    ------
    MissingInputError
        If the folder has no manifest or no shard of that split.
    """
    corpus_dir = Path(corpus_dir)
    if not (corpus_dir / MANIFEST).is_file():
        raise MissingInputError("Not a rendered corpus (no manifest.json)", path=corpus_dir,
                                fix="bidsapp train --corpus DIR --render, or use --mtt")
    shards = sorted(corpus_dir.glob(f"{split}-*.npz"))
    if not shards:
        raise MissingInputError(f"The corpus has no {split} shards", path=corpus_dir,
                                fix="render the corpus again")
    clips, labels, masks, names = [], [], [], []
    for shard in shards:
        with np.load(shard) as data:
            clips += list(data["audio"])
            labels.append(data["labels"])
            masks.append(data["mask"])
            names += [str(n) for n in data["names"]]
    return ClipSet(clips, np.concatenate(labels), np.concatenate(masks), names)


def read_manifest(corpus_dir: str | Path) -> dict:
    """Return the corpus manifest (sources, tags, counts, clip specs)."""
    return json.loads((Path(corpus_dir) / MANIFEST).read_text())
