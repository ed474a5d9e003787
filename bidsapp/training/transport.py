"""Pack a rendered corpus into Ogg/Opus for a machine it cannot be rendered on, and unpack it.

    python -m bidsapp.training.transport pack CORPUS PACK [--splits train validation]
        [--compression-level 0.96] [--processes 2]
    python -m bidsapp.training.transport unpack PACK CORPUS [--processes 16]

A GPU machine that trains the network may have neither FluidSynth nor the 141 MB
soundfont, and may accept only a few tens of MB of input.  The int16 shards of
:mod:`bidsapp.training.shards` need 32 kB per second of audio; Opus at about 17 kbit/s
needs 2 kB.  ``pack`` encodes every clip of the chosen splits (labels, masks and names
unchanged) into ``SPLIT-NNN.opus.npz`` and copies the manifest with a ``transport``
record; ``unpack`` decodes them back into ordinary shards that
:func:`bidsapp.training.data.load_corpus_split` reads.  The audio is lossy after the round
trip, so the manifest's ``transport`` record travels with the corpus and the model card
says which splits were trained through the codec.  Held-out evaluation should use the
lossless shards.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

from bidsapp._pool import starmap
from bidsapp.errors import MissingInputError
from bidsapp.io import write_json

from .cli import _main
from .data import MANIFEST, read_manifest, write_shard

LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SUFFIX = ".opus.npz"


def encode_clip(audio: np.ndarray, compression_level: float) -> bytes:
    """Return one clip as an Ogg/Opus file in memory.

    Parameters
    ----------
    audio : numpy.ndarray
        1D float32 samples at 16 kHz in [-1, 1].
    compression_level : float
        libsndfile's Opus setting, 0 (highest bitrate) to 1 (lowest); 0.96 gives about
        17 kbit/s for rendered music at 16 kHz.

    Returns
    -------
    bytes
    """
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="OGG", subtype="OPUS",
                    compression_level=compression_level)
    return buffer.getvalue()


def decode_clip(data: bytes, n_samples: int) -> np.ndarray:
    """Return the float32 samples of an Ogg/Opus clip, trimmed or padded to ``n_samples``.

    Parameters
    ----------
    data : bytes
        The file's bytes (from :func:`encode_clip`).
    n_samples : int
        The clip's length before encoding.

    Returns
    -------
    numpy.ndarray
        float32, shape (n_samples,).
    """
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    if rate != SAMPLE_RATE:
        raise ValueError(f"decoded Opus at {rate} Hz, expected {SAMPLE_RATE}")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    # Opus frames are 20 ms; the decoder can end a few samples early or late.
    if audio.size < n_samples:
        audio = np.pad(audio, (0, n_samples - audio.size))
    return audio[:n_samples]


def _pack_shard(source: Path, target: Path, compression_level: float) -> tuple[int, int, int]:
    with np.load(source) as data:
        pcm, labels, mask, names = data["audio"], data["labels"], data["mask"], data["names"]
    encoded = [encode_clip(clip.astype(np.float32) / 32768.0, compression_level)
               for clip in pcm]
    offsets = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
    tmp = target.with_name(target.name + ".tmp.npz")
    np.savez(tmp, opus=np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets=offsets,
             samples=np.int64(pcm.shape[1]), labels=labels, mask=mask, names=names)
    tmp.rename(target)
    return len(encoded), int(offsets[-1]), int(pcm.shape[0] * pcm.shape[1])


def _unpack_shard(source: Path, target: Path) -> int:
    with np.load(source) as data:
        blob, offsets, samples = data["opus"], data["offsets"], int(data["samples"])
        labels, mask, names = data["labels"], data["mask"], [str(n) for n in data["names"]]
    audio = np.stack([decode_clip(blob[offsets[i]:offsets[i + 1]].tobytes(), samples)
                      for i in range(len(names))])
    write_shard(target, audio, labels, mask, names)
    return len(names)


def pack_corpus(corpus_dir: str | Path, pack_dir: str | Path, *,
                splits: tuple[str, ...] = ("train", "validation"),
                compression_level: float = 0.96, processes: int = 1) -> dict:
    """Encode the shards of some splits of a corpus (rendered or real music) into Ogg/Opus.

    Parameters
    ----------
    corpus_dir : str or Path
        A corpus written by :func:`bidsapp.training.shards.render_corpus` or
        :func:`bidsapp.training.realmusic.build`; soft teacher labels travel unchanged.
    pack_dir : str or Path
        Output folder (created): ``SPLIT-NNN.opus.npz`` and ``manifest.json``.
    splits : tuple of str, optional
        Which splits to pack; the test split stays lossless at home by default.
    compression_level : float, optional
        See :func:`encode_clip`.
    processes : int, optional
        Parallel encoding processes.

    Returns
    -------
    dict
        The ``transport`` record written into the packed manifest (codec, level, splits,
        clips, bytes, seconds of audio, kbit/s).
    """
    corpus_dir, pack_dir = Path(corpus_dir), Path(pack_dir)
    manifest = read_manifest(corpus_dir)
    pack_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for split in splits:
        shards = sorted(corpus_dir.glob(f"{split}-*.npz"))
        if not shards:
            raise MissingInputError(f"The corpus has no {split} shards", path=corpus_dir,
                                    fix="render the corpus first (python -m "
                                        "bidsapp.training.shards)")
        jobs += [(s, pack_dir / (s.name[:-len(".npz")] + SUFFIX), compression_level)
                 for s in shards]
    started = time.monotonic()
    results = list(starmap(_pack_shard, jobs, processes))
    clips = sum(n for n, _, _ in results)
    size = sum(b for _, b, _ in results)
    # Counted from the shards: a real-music corpus's manifest has no clip length in
    # seconds (its windows are WINDOW_SAMPLES long), a rendered one has.
    seconds = sum(s for _, _, s in results) / SAMPLE_RATE
    record = {"codec": "Ogg/Opus (libsndfile)", "compression_level": compression_level,
              "splits": list(splits), "clips": clips, "bytes": size,
              "seconds": round(seconds, 2),
              "kbit_per_s": round(8 * size / max(seconds, 1e-9) / 1000, 2)}
    manifest["transport"] = record
    write_json(pack_dir / MANIFEST, manifest)
    LOGGER.info("Packed %d clips into %.1f MB (%.1f kbit/s) in %.0f s", clips, size / 1e6,
                record["kbit_per_s"], time.monotonic() - started)
    return record


def unpack_corpus(pack_dir: str | Path, corpus_dir: str | Path, *, processes: int = 1) -> Path:
    """Decode a packed corpus into ordinary int16 shards.

    Parameters
    ----------
    pack_dir : str or Path
        A folder written by :func:`pack_corpus`.
    corpus_dir : str or Path
        Output folder: ``SPLIT-NNN.npz`` and the manifest (with its ``transport`` record).
    processes : int, optional
        Parallel decoding processes.

    Returns
    -------
    Path
        ``corpus_dir``.
    """
    pack_dir, corpus_dir = Path(pack_dir), Path(corpus_dir)
    if not (pack_dir / MANIFEST).is_file():
        raise MissingInputError("Not a packed corpus (no manifest.json)", path=pack_dir,
                                fix="python -m bidsapp.training.transport pack CORPUS PACK")
    corpus_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(s, corpus_dir / (s.name[:-len(SUFFIX)] + ".npz"))
            for s in sorted(pack_dir.glob(f"*{SUFFIX}"))]
    started = time.monotonic()
    clips = sum(starmap(_unpack_shard, jobs, processes))
    write_json(corpus_dir / MANIFEST, read_manifest(pack_dir))
    LOGGER.info("Unpacked %d clips from %d shards in %.0f s", clips, len(jobs),
                time.monotonic() - started)
    return corpus_dir


def main(argv: list[str] | None = None) -> int:
    """Command line: ``pack`` or ``unpack`` (see the module docstring); return the exit code.

    Errors print one ``error:`` line with the file and the fix, as ``bidsapp train`` does.
    """
    return _main(_transport_main, argv)


def _transport_main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bidsapp.training.transport",
                                     description="Move a rendered corpus as Ogg/Opus.")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="encode a corpus")
    pack.add_argument("corpus", type=Path)
    pack.add_argument("pack", type=Path)
    pack.add_argument("--splits", nargs="+", default=["train", "validation"])
    pack.add_argument("--compression-level", type=float, default=0.96)
    pack.add_argument("--processes", type=int, default=1)
    unpack = commands.add_parser("unpack", help="decode a packed corpus")
    unpack.add_argument("pack", type=Path)
    unpack.add_argument("corpus", type=Path)
    unpack.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack_corpus(args.corpus, args.pack, splits=tuple(args.splits),
                    compression_level=args.compression_level, processes=args.processes)
    else:
        unpack_corpus(args.pack, args.corpus, processes=args.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
