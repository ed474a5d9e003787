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
import torch

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


def binarised(clip_set: ClipSet, threshold: float = 0.5) -> ClipSet:
    """Return the clips with soft labels (a teacher's probabilities) cut at ``threshold``.

    Parameters
    ----------
    clip_set : ClipSet
        Clips whose labels are probabilities.
    threshold : float, optional
        A tag is present where its probability is at least this.

    Returns
    -------
    ClipSet
        The same clips, labels 0/1.
    """
    labels = (np.asarray(clip_set.labels) >= threshold).astype(np.float32)
    return ClipSet(clip_set.clips, labels, clip_set.mask, clip_set.names, clip_set.loader)


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
    return _crop(audio, _crop_start(audio.size, length, rng), length)


def _crop_start(size: int, length: int, rng: np.random.Generator) -> int:
    # A clip no longer than the crop is padded instead, and draws nothing from ``rng``.
    return 0 if size <= length else int(rng.integers(0, size - length + 1))


def _crop(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    if audio.size <= length:
        return np.pad(audio, (0, length - audio.size)).astype(np.float32)
    return audio[start:start + length].astype(np.float32, copy=False)


def batch_indices(n_clips: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Return the clips of batch ``step``: consecutive slices of per-epoch permutations.

    The draw depends only on ``(seed, step)``, so a resumed run sees exactly the batches
    an uninterrupted run would have seen.

    Parameters
    ----------
    n_clips : int
        Clips in the training set.
    batch_size : int
        Clips per batch (36 in the study).
    seed : int
        The run's seed.
    step : int
        Zero-based step number.

    Returns
    -------
    list of int
    """
    # Each pass over the clips is a fresh permutation, so every clip is used equally often.
    indices: list[int] = []
    position = step * batch_size
    while len(indices) < batch_size:
        epoch, offset = divmod(position, n_clips)
        order = np.random.default_rng([seed, 1 << 30, epoch]).permutation(n_clips)
        taken = order[offset:offset + batch_size - len(indices)]
        indices += [int(i) for i in taken]
        position += len(taken)
    return indices


def crop_starts(lengths: Sequence[int], seed: int, step: int,
                crop_samples: int = WINDOW_SAMPLES) -> list[int]:
    """Return the first sample of each crop of batch ``step`` (as :func:`random_crop` draws).

    Parameters
    ----------
    lengths : sequence of int
        Lengths of the batch's clips, in batch order.
    seed, step : int
        The run's seed and the step.
    crop_samples : int, optional
        Crop length.

    Returns
    -------
    list of int
        0 for a clip no longer than the crop (it is zero-padded instead).
    """
    rng = np.random.default_rng([seed, step])
    return [_crop_start(size, crop_samples, rng) for size in lengths]


def training_batch(clip_set: ClipSet, batch_size: int, seed: int, step: int,
                   crop_samples: int = WINDOW_SAMPLES
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw batch ``step`` of a training run: random clips, each randomly cropped.

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

    See Also
    --------
    batch_indices, crop_starts : the draw; :class:`DeviceClipBank` makes the same crops on
        a GPU.
    """
    indices = batch_indices(len(clip_set), batch_size, seed, step)
    if clip_set.loader is None:
        clips = [clip_set.audio(i) for i in indices]
    else:
        # Decoding (MTT mp3s) dominates a GPU step; libsndfile releases the GIL.
        with ThreadPoolExecutor(max_workers=8) as pool:
            clips = list(pool.map(clip_set.audio, indices))
    starts = crop_starts([c.size for c in clips], seed, step, crop_samples)
    audio = np.stack([_crop(c, start, crop_samples) for c, start in
                      zip(clips, starts, strict=True)])
    return (audio, clip_set.labels[indices].astype(np.float32),
            clip_set.mask[indices].astype(np.float32))


class DeviceClipBank:
    """Training clips of one length held on a device and cropped there.

    On a GPU the host cannot build 100 batches of 36 crops a second; with the int16
    clips on the device a batch is one gather.

    Parameters
    ----------
    clip_set : ClipSet
        int16 clips in memory, all of the same length (a rendered corpus).
    device : torch.device
        Where to hold them.
    """

    def __init__(self, clip_set: ClipSet, device) -> None:
        self.device = device
        self.bank = torch.from_numpy(np.stack([np.asarray(c) for c in clip_set.clips])).to(
            device)
        self.labels = torch.from_numpy(clip_set.labels.astype(np.float32)).to(device)
        self.mask = torch.from_numpy(clip_set.mask.astype(np.float32)).to(device)

    @staticmethod
    def supports(clip_set: ClipSet, crop_samples: int = WINDOW_SAMPLES) -> bool:
        """Return whether the clips are in-memory int16 arrays of one length >= the crop."""
        if clip_set.loader is not None or not len(clip_set):
            return False
        first = np.asarray(clip_set.clips[0])
        return (first.dtype == np.int16 and first.size >= crop_samples
                and all(np.asarray(c).shape == first.shape for c in clip_set.clips))

    def batch(self, batch_size: int, seed: int, step: int, crop_samples: int = WINDOW_SAMPLES):
        """Return the (audio, labels, mask) tensors that :func:`training_batch` would return.

        Parameters
        ----------
        batch_size, seed, step, crop_samples : int
            As for :func:`training_batch`.

        Returns
        -------
        tuple of torch.Tensor
            Audio (batch, crop) float32 scaled by 1/32768, labels and mask (batch, 50).
        """
        indices = batch_indices(self.bank.shape[0], batch_size, seed, step)
        starts = crop_starts([self.bank.shape[1]] * batch_size, seed, step, crop_samples)
        index = torch.tensor(indices, device=self.device)
        offsets = (torch.tensor(starts, device=self.device)[:, None]
                   + torch.arange(crop_samples, device=self.device)[None, :])
        audio = self.bank[index[:, None], offsets].float() / 32768.0
        return audio, self.labels[index], self.mask[index]


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
