"""The real-music corpus: Debian's game music in network windows, labelled by the teacher.

``python -m bidsapp.training.realmusic build OUT --debs DEBS --check-audio CLIP`` fetches
and unpacks the packages of :mod:`bidsapp.training.debian`, decodes every track to 16 kHz
mono, cuts it into consecutive 50,176-sample windows (silent ones left out), splits by
track, checks the teacher against its documented outputs, and writes shards that
:func:`bidsapp.training.data.load_corpus_split` reads like the rendered corpus:
int16 audio, ``labels`` = the teacher's 50 probabilities in the network's tag order (soft
targets), ``mask`` all true.  ``manifest.json`` records the packages (name, version,
sha256, licences), the teacher (model, package versions, tag alignment, self-check) and
the split (tracks, windows and seconds per split).

The teacher is computed once, here; training never needs TensorFlow.  Needs the
``[distill]`` extra (:mod:`bidsapp.training.teacher`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bidsapp.audio.resnet import SAMPLE_RATE, WINDOW_SAMPLES
from bidsapp.errors import BidsAppError, UsageError

from . import debian
from .data import MANIFEST, load_corpus_split, read_manifest, write_shard

LOGGER = logging.getLogger("bidsapp.training.realmusic")

SOURCE = "debian-game-music"
SHARD_WINDOWS = 400
"""Windows per shard (about 40 MB of int16 audio before compression)."""


def collect_windows(unpacked: dict[str, Path]) -> tuple[list[debian.Track], dict, dict]:
    """Decode every track of the unpacked packages and cut it into windows.

    Parameters
    ----------
    unpacked : dict
        Unpacked folder by package name.

    Returns
    -------
    tracks : list of Track
    windows : dict
        ``(windows, starts)`` by track key (:func:`debian.track_windows`).
    seconds : dict
        Duration of each track, by key.
    """
    tracks, windows, seconds = [], {}, {}
    for package, root in unpacked.items():
        for track in debian.find_tracks(root, package):
            audio = debian.decode_track(track)
            seconds[track.key] = audio.size / SAMPLE_RATE
            windows[track.key] = debian.track_windows(audio)
            tracks.append(track)
            LOGGER.info("%s: %.0f s, %d windows", track.key, seconds[track.key],
                        len(windows[track.key][1]))
    return tracks, windows, seconds


def label_windows(teacher, windows: dict, batch: int = 256) -> dict:
    """Return the teacher's probabilities (network tag order) for every track's windows.

    Parameters
    ----------
    teacher : MusicnnTeacher
        The loaded teacher.
    windows : dict
        ``(windows, starts)`` by track key.
    batch : int, optional
        Windows per call.

    Returns
    -------
    dict
        (n, 50) float32 by track key.
    """
    labels, done, total = {}, 0, sum(len(s) for _, s in windows.values())
    started = time.monotonic()
    for key, (audio, _) in windows.items():
        labels[key] = np.concatenate(
            [teacher.predict_windows(audio[i:i + batch]) for i in range(0, len(audio), batch)]
        ) if len(audio) else np.zeros((0, 50), np.float32)
        done += len(audio)
        rate = done / max(time.monotonic() - started, 1e-9)
        LOGGER.info("teacher: %d/%d windows (%.0f%%), %.1f windows/s, %.0f s left", done, total,
                    100 * done / max(total, 1), rate, (total - done) / max(rate, 1e-9))
    return labels


def write_corpus(out_dir: str | Path, tracks: list[debian.Track], windows: dict,
                 labels: dict, split: dict, manifest: dict) -> dict:
    """Write the shards of each split and ``manifest.json``; return the manifest.

    Parameters
    ----------
    out_dir : str or Path
        The corpus folder.
    tracks : list of Track
    windows, labels : dict
        By track key.
    split : dict
        Split name by track key.
    manifest : dict
        Packages and teacher records; the split's counts are added.

    Returns
    -------
    dict
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in debian.SPLITS:
        keys = [t.key for t in tracks if split[t.key] == name]
        audio = [windows[k][0] for k in keys]
        names = [f"{k}@{s}" for k in keys for s in windows[k][1]]
        stacked = np.concatenate(audio) if audio else np.zeros((0, WINDOW_SAMPLES), np.float32)
        targets = np.concatenate([labels[k] for k in keys]) if keys else np.zeros((0, 50))
        for index, start in enumerate(range(0, len(stacked), SHARD_WINDOWS)):
            stop = start + SHARD_WINDOWS
            write_shard(out / f"{name}-{index:03d}.npz", stacked[start:stop], targets[start:stop],
                        np.ones_like(targets[start:stop], dtype=bool), names[start:stop])
        counts[name] = {"tracks": keys, "windows": len(names),
                        "seconds": round(len(names) * WINDOW_SAMPLES / SAMPLE_RATE, 1)}
    manifest = {**manifest, "splits": counts}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / MANIFEST)
    return manifest


def build(out_dir: str | Path, debs_dir: str | Path, work_dir: str | Path,
          check_audio: str | None, skip_check: bool = False) -> dict:
    """Build the real-music corpus (see the module docstring).

    Parameters
    ----------
    out_dir : str or Path
        Where the shards and the manifest go.
    debs_dir : str or Path
        Folder of the ``.deb`` files (downloaded there when missing).
    work_dir : str or Path
        Where the packages are unpacked.
    check_audio : str or None
        musicnn's documented example clip (``joram-moments_of_clarity-08-solipsism-59-88.mp3``
        from github.com/jordipons/musicnn, ``audio/``).
    skip_check : bool, optional
        Label without the self-check (recorded as skipped in the manifest).

    Returns
    -------
    dict
        The manifest.
    """
    # The teacher module pulls in the optional [distill] extra; resplit needs none of it.
    from .teacher import (
        DOCUMENTED_TOP10,
        TEACHER_MODEL,
        MusicnnTeacher,
        self_check,
        teacher_versions,
    )

    teacher = MusicnnTeacher()
    if check_audio:
        name = Path(check_audio).name
        if name not in DOCUMENTED_TOP10:
            raise UsageError(f"No documented teacher output for {name}",
                             fix=f"pass one of {sorted(DOCUMENTED_TOP10)}")
        check = self_check(teacher, check_audio, DOCUMENTED_TOP10[name])
        LOGGER.info("teacher self-check: %s", check)
        if not check["passed"]:
            raise BidsAppError(f"The teacher does not reproduce its documented top tags on "
                               f"{name}: expected {check['expected']}, got {check['got']}",
                               fix="check the TensorFlow, tf-keras and librosa versions "
                                   "(the [distill] extra pins them)")
    elif not skip_check:
        raise UsageError("The teacher must be checked before it labels a corpus",
                         fix="pass --check-audio joram-moments_of_clarity-08-solipsism-59-88.mp3"
                             " (musicnn's repository, audio/), or --skip-teacher-check")
    else:
        check = {"skipped": True}
    debs = debian.fetch_packages(debs_dir)
    unpacked = {d.name: debian.unpack(d, work_dir) for d in debs}
    packages = [{"name": d.name, "version": d.version, "sha256": d.sha256,
                 "file": d.path.name, "licences": debian.package_licences(unpacked[d.name],
                                                                          d.name)}
                for d in debs]
    tracks, windows, seconds = collect_windows(unpacked)
    split = debian.split_tracks(tracks, seconds)
    labels = label_windows(teacher, windows)
    manifest = {
        "source": SOURCE,
        "packages": packages,
        "window_samples": WINDOW_SAMPLES, "sample_rate": SAMPLE_RATE,
        "min_rms_db": -50.0,
        "teacher": {"model": TEACHER_MODEL, "versions": teacher_versions(),
                    "tags": teacher.tags, "alignment": teacher.order.tolist(),
                    "input": "central 187 log-mel frames (3.0 s) of each window",
                    "self_check": check,
                    "training_data": "MagnaTagATune (CC BY-NC-SA), top 50 tags"},
        "track_seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    return write_corpus(out_dir, tracks, windows, labels, split, manifest)


def resplit(corpus_dir: str | Path) -> dict:
    """Split a built corpus again with :func:`debian.split_tracks`, keeping its labels.

    The teacher's labels are the expensive part of a build; this rewrites the shards of a
    corpus in the current split without recomputing them (the int16 audio is rewritten
    bit for bit).

    Parameters
    ----------
    corpus_dir : str or Path
        A corpus written by :func:`build`.

    Returns
    -------
    dict
        The new manifest.
    """
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    windows: dict[str, tuple[list, list]] = {}
    labels: dict[str, list] = {}
    for name in debian.SPLITS:
        if not list(corpus_dir.glob(f"{name}-*.npz")):
            continue
        clip_set = load_corpus_split(corpus_dir, name)
        for clip, label, window in zip(clip_set.clips, clip_set.labels, clip_set.names,
                                       strict=True):
            key, start = window.rsplit("@", 1)
            # /32767 undoes write_shard's scaling exactly, so the int16 samples are kept.
            windows.setdefault(key, ([], []))[0].append(np.asarray(clip) / 32767.0)
            windows[key][1].append(int(start))
            labels.setdefault(key, []).append(label)
    tracks = [debian.Track(key.split("/", 1)[0], key, [], debian.track_group(key))
              for key in sorted(manifest["track_seconds"])]
    for track in tracks:
        audio, starts = windows.get(track.key, ([], []))
        order = np.argsort(starts)
        windows[track.key] = (np.asarray(audio, np.float32)[order].reshape(-1, WINDOW_SAMPLES),
                              [starts[i] for i in order])
        labels[track.key] = np.asarray(labels.get(track.key, []), np.float32)[order].reshape(
            -1, 50)
    split = debian.split_tracks(tracks, manifest["track_seconds"])
    for old in corpus_dir.glob("*.npz"):
        old.unlink()
    manifest.pop("splits", None)
    return write_corpus(corpus_dir, tracks, windows, labels, split, manifest)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bidsapp.training.realmusic build OUT ...``."""
    parser = argparse.ArgumentParser(prog="python -m bidsapp.training.realmusic")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="fetch, decode, label and write the corpus")
    make.add_argument("out", type=Path, help="corpus folder")
    make.add_argument("--debs", type=Path, required=True, help="folder of the .deb files")
    make.add_argument("--work", type=Path, default=None,
                      help="where to unpack (default: OUT/../unpacked)")
    make.add_argument("--check-audio", default=None,
                      help="musicnn's documented example clip, to check the teacher")
    make.add_argument("--skip-teacher-check", action="store_true")
    again = sub.add_parser("resplit", help="split a built corpus again, keeping its labels")
    again.add_argument("out", type=Path, help="corpus folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        if args.command == "resplit":
            manifest = resplit(args.out)
        else:
            manifest = build(args.out, args.debs, args.work or args.out.parent / "unpacked",
                             args.check_audio, args.skip_teacher_check)
    except BidsAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(manifest["splits"], indent=1)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
