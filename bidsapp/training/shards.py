"""Render the whole tagged corpus into compressed shards, split by musical work.

    python -m bidsapp.training.shards OUT_DIR [--seconds 6] [--processes 2]
        [--clips-per-work 4 2 2]

writes ``works.jsonl.gz`` (parsed scores), ``train-000.npz`` ... ``test-000.npz`` and a
``manifest.json`` that records every clip's spec, the sources, the split and the tags
supervised.  Clip seeds derive from the corpus seed, the work's id and the clip number, so
the corpus is the same on every machine with the same music21 and FluidR3_GM versions.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bidsapp._pool import starmap
from bidsapp.audio.weightfile import TAGS
from bidsapp.io import write_json

from .corpus import SOURCES, SPLIT_FRACTIONS, build_work_list, read_work_list
from .data import MANIFEST, write_shard
from .render import Renderer, draw_spec, find_soundfont, spec_labels
from .tags import SUPERVISED_TAGS

LOGGER = logging.getLogger(__name__)

CLIPS_PER_WORK = {"train": 4, "validation": 2, "test": 2}
"""Excerpts rendered per work: several for training (each with other instruments), fewer
for the held-out works, which only need to be covered."""

SHARD_CLIPS = 400
"""Clips per shard file."""


def clip_seed(corpus_seed: int, work_id: str, number: int) -> int:
    """Return the seed of clip ``number`` of a work (stable across processes and runs)."""
    text = f"{corpus_seed}:{work_id}:{number}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big")


def _render_chunk(works: list[dict], seeds: list[int], seconds: float):
    renderer = Renderer(seconds)
    audio, labels, masks, specs = [], [], [], []
    for work, seed in zip(works, seeds, strict=True):
        spec = draw_spec(work, seed, seconds)
        label, mask = spec_labels(spec, work["classical"])
        audio.append(renderer.render(work, spec))
        labels.append(label)
        masks.append(mask)
        specs.append(spec._asdict())
    return np.stack(audio), np.stack(labels), np.stack(masks), specs


def render_corpus(out_dir: str | Path, *, seconds: float = 6.0, seed: int = 0,
                  processes: int = 1, clips_per_work: dict[str, int] | None = None,
                  max_works: int | None = None) -> Path:
    """Parse the corpus, render every clip of every split and write shards and manifest.

    Parameters
    ----------
    out_dir : str or Path
        Output folder; a finished corpus there (with a manifest) is left as is.
    seconds : float, optional
        Clip length (at least 3.136 s, one training window).
    seed : int, optional
        Corpus seed.
    processes : int, optional
        Parallel rendering processes.
    clips_per_work : dict, optional
        Clips per work per split; :data:`CLIPS_PER_WORK` by default.
    max_works : int, optional
        Use only the first works of the list (for quick checks).

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).is_file():
        LOGGER.info("Corpus already rendered: %s", out_dir)
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    works = read_work_list(build_work_list(out_dir / "works.jsonl.gz", processes))
    works = works[:max_works] if max_works else works
    clips_per_work = clips_per_work or CLIPS_PER_WORK
    started = time.monotonic()
    manifest_splits = {}
    for split, _ in SPLIT_FRACTIONS:
        jobs = [(work, clip_seed(seed, work["id"], k)) for work in works
                if work["split"] == split for k in range(clips_per_work[split])]
        chunks = [jobs[i:i + SHARD_CLIPS] for i in range(0, len(jobs), SHARD_CLIPS)]
        arguments = [([w for w, _ in chunk], [s for _, s in chunk], seconds) for chunk in chunks]
        specs_all = []
        results = starmap(_render_chunk, arguments, processes)
        for number, (audio, labels, masks, specs) in enumerate(results):
            names = [f"{s['work']}@{s['seed']}" for s in specs]
            write_shard(out_dir / f"{split}-{number:03d}.npz", audio, labels, masks, names)
            specs_all += specs
            LOGGER.info("%s shard %d: %d clips (%.0f s so far)", split, number, len(specs),
                        time.monotonic() - started)
        manifest_splits[split] = {
            "works": sorted({w["id"] for w, _ in jobs}),
            "clips": len(specs_all),
            "positives": _positives(out_dir, split),
            "specs": specs_all,
        }
    manifest = {
        "format": "bidsapp rendered corpus 1",
        "sample_rate": 16000,
        "seconds": seconds,
        "seed": seed,
        "soundfont": find_soundfont().name,
        "sources": {k: {"files": n, "classical": c} for k, (n, c) in SOURCES.items()},
        "tags": list(TAGS),
        "supervised_tags": list(SUPERVISED_TAGS),
        "splits": manifest_splits,
    }
    write_json(out_dir / MANIFEST, manifest)
    LOGGER.info("Rendered corpus in %.0f s: %s", time.monotonic() - started,
                {k: v["clips"] for k, v in manifest_splits.items()})
    return out_dir


def _positives(out_dir: Path, split: str) -> dict[str, list[int]]:
    # [positives, known] per supervised tag: the figures the model card quotes.
    total_pos = np.zeros(len(TAGS), dtype=int)
    total_known = np.zeros(len(TAGS), dtype=int)
    for shard in sorted(out_dir.glob(f"{split}-*.npz")):
        with np.load(shard) as data:
            total_pos += (data["labels"] * data["mask"]).sum(axis=0).astype(int)
            total_known += data["mask"].sum(axis=0)
    return {tag: [int(total_pos[i]), int(total_known[i])] for i, tag in enumerate(TAGS)
            if tag in SUPERVISED_TAGS}


def main(argv: list[str] | None = None) -> int:
    """Command line: render the corpus into a folder (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bidsapp.training.shards",
                                     description="Render the tagged training corpus.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--max-works", type=int, default=None)
    parser.add_argument("--clips-per-work", type=int, nargs=3, default=None,
                        metavar=("TRAIN", "VALIDATION", "TEST"),
                        help="excerpts rendered per work in each split (default 4 2 2)")
    args = parser.parse_args(argv)
    clips_per_work = None
    if args.clips_per_work:
        clips_per_work = dict(zip(("train", "validation", "test"), args.clips_per_work,
                                  strict=True))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    render_corpus(args.out_dir, seconds=args.seconds, seed=args.seed,
                  processes=args.processes, max_works=args.max_works,
                  clips_per_work=clips_per_work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
