"""Real recordings from Debian's game-music packages: fetch, unpack, find tracks, split.

Three packages of Debian 12 hold about 320 minutes of music under free licences:
``warzone2100-music`` (orchestral and electronic soundtracks, Opus), ``singularity-music``
(electronic, Ogg/Vorbis) and ``fretsonfire-songs-muldjord`` (metal with guitars and vocals,
Ogg/Vorbis stems).  :func:`fetch_packages` downloads them with ``apt-get download`` and
records each one's name, version and sha256; :func:`unpack` uses ``dpkg-deb -x``;
:func:`find_tracks` lists one track per recording (a Frets on Fire song is the sum of its
stems) and :func:`split_tracks` assigns whole tracks to train, validation and test, so no
track straddles two splits.  :func:`package_licence` reads each package's ``copyright``.

Only these packages are used (:data:`PACKAGES`): the model card names them and their
licences.  Nothing here runs in the app.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsapp.audio.decode import load_audio
from bidsapp.audio.resnet import WINDOW_SAMPLES
from bidsapp.errors import BadDataError, MissingInputError

PACKAGES = ("warzone2100-music", "singularity-music", "fretsonfire-songs-muldjord")
"""The Debian packages of the real-music corpus, and no others."""

AUDIO_SUFFIXES = (".ogg", ".opus", ".flac", ".wav", ".mp3")
STEM_NAMES = ("song", "guitar", "rhythm", "drums", "vocals")
"""Frets on Fire stems: a song folder's full mix is their sum."""

SPLITS = ("train", "validation", "test")
_APT_FIX = ("run on Debian 12 with apt sources reachable, or download the three .deb files "
            "by hand into the folder and pass --debs")


@dataclass(frozen=True)
class DebPackage:
    """One downloaded package.

    Attributes
    ----------
    name, version : str
        From the package's control file.
    path : Path
        The ``.deb`` file.
    sha256 : str
        Of the ``.deb`` file.
    """

    name: str
    version: str
    path: Path
    sha256: str


@dataclass
class Track:
    """One recording: a file, or the stems of one Frets on Fire song.

    Attributes
    ----------
    package : str
        The Debian package.
    key : str
        ``package/relative/path`` without the extension (the song folder for stems).
    files : list of Path
        The file, or the stems to sum.
    group : str
        Tracks of one group go to one split (a track and its "enhanced" version).
    """

    package: str
    key: str
    files: list[Path] = field(default_factory=list)
    group: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deb_info(path: str | Path) -> DebPackage:
    """Return the name, version and sha256 of a ``.deb`` file (``dpkg-deb -f``).

    Parameters
    ----------
    path : str or Path
        The package file.

    Returns
    -------
    DebPackage
    """
    path = Path(path)
    done = subprocess.run(["dpkg-deb", "-f", str(path), "Package", "Version"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BadDataError(f"Not a Debian package ({done.stderr.strip()})", path=path,
                           fix="download it again: apt-get download <package>")
    fields = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    return DebPackage(fields["Package"], fields["Version"], path, _sha256(path))


def fetch_packages(dest: str | Path, packages: tuple[str, ...] = PACKAGES) -> list[DebPackage]:
    """Download the packages with ``apt-get download`` (kept if already there).

    Parameters
    ----------
    dest : str or Path
        Folder of the ``.deb`` files.
    packages : tuple of str, optional
        Package names (:data:`PACKAGES`).

    Returns
    -------
    list of DebPackage
        In the order of ``packages``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    found = {}
    for deb in sorted(dest.glob("*.deb")):
        info = deb_info(deb)
        found[info.name] = info
    missing = [p for p in packages if p not in found]
    if missing:
        if shutil.which("apt-get") is None:
            raise MissingInputError(f"apt-get is not available to download {missing}",
                                    path=dest, fix=_APT_FIX)
        done = subprocess.run(["apt-get", "download", *missing], cwd=dest, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise MissingInputError(f"apt-get download failed: {done.stderr.strip()[-400:]}",
                                    path=dest, fix=_APT_FIX)
        for deb in sorted(dest.glob("*.deb")):
            info = deb_info(deb)
            found.setdefault(info.name, info)
    absent = [p for p in packages if p not in found]
    if absent:
        raise MissingInputError(f"No .deb file for {absent}", path=dest, fix=_APT_FIX)
    return [found[p] for p in packages]


def unpack(deb: DebPackage, dest: str | Path) -> Path:
    """Extract a package's files into ``dest/<name>`` (``dpkg-deb -x``); return that folder."""
    root = Path(dest) / deb.name
    if not (root / ".unpacked").is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb.path), str(root)], check=True)
        (root / ".unpacked").write_text(deb.sha256 + "\n")
    return root


_CC_VERSION = re.compile(r"(?:by-sa/|attribution[- ]sharealike[^\n0-9]{0,40})(\d\.\d)",
                         re.IGNORECASE)


def package_licence(copyright_text: str) -> str:
    """Return a package's licence as its ``copyright`` file states it.

    A machine-readable (DEP-5) file gives the ``License`` of its ``Files: *`` stanza; an
    older free-text file is recognised when it carries a Creative Commons
    Attribution-ShareAlike licence (``CC-BY-SA-<version>``).

    Parameters
    ----------
    copyright_text : str
        The text of ``usr/share/doc/<package>/copyright``.

    Returns
    -------
    str
        A short licence name, or ``unknown``.
    """
    if copyright_text.startswith("Format:"):
        for stanza in re.split(r"\n\s*\n", copyright_text):
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.MULTILINE))
            if fields.get("Files", "").strip() == "*" and "License" in fields:
                return fields["License"].strip()
    flat = " ".join(copyright_text.split())
    if re.search(r"attribution[- ]share[- ]?alike", flat, re.IGNORECASE):
        match = _CC_VERSION.search(flat)
        return f"CC-BY-SA-{match.group(1)}" if match else "CC-BY-SA"
    return "unknown"


def package_licences(root: str | Path, name: str) -> dict:
    """Return the licence record of an unpacked package.

    Parameters
    ----------
    root : str or Path
        The folder :func:`unpack` returned.
    name : str
        The package name.

    Returns
    -------
    dict
        ``copyright`` (the licence in ``usr/share/doc/<name>/copyright``), ``copyright_sha256``
        and ``notices``: the first licence line of each ``license.txt`` shipped beside the
        music (Warzone 2100's albums carry their own), by folder.
    """
    root = Path(root)
    path = root / "usr" / "share" / "doc" / name / "copyright"
    if not path.is_file():
        raise BadDataError("The package has no copyright file", path=path,
                           fix="download the package again")
    text = path.read_text(errors="replace")
    notices = {}
    for notice in sorted(root.rglob("license.txt")):
        line = next((ln.strip() for ln in notice.read_text(errors="replace").splitlines()
                     if re.search(r"\bCC[- ]BY|creative commons|GPL", ln, re.IGNORECASE)), "")
        if line:
            notices[str(notice.parent.relative_to(root))] = line
    return {"copyright": package_licence(text), "copyright_sha256": _sha256(path),
            "notices": notices}


def track_group(key: str) -> str:
    """Return the split group of a track: its package and file name without ``_enhanced``.

    Warzone 2100's "Track 3 - Enhanced" and "Menu Theme - Enhanced" sit in another album
    than the originals: grouped by name, a remaster never meets its original across splits.
    """
    package, _, rest = key.partition("/")
    return f"{package}/{re.sub(r'_enhanced$', '', rest.rsplit('/', 1)[-1])}"


def find_tracks(root: str | Path, package: str) -> list[Track]:
    """Return the recordings of an unpacked package, sorted by key.

    Parameters
    ----------
    root : str or Path
        The folder :func:`unpack` returned.
    package : str
        Its name.

    Returns
    -------
    list of Track
        A folder whose audio files are all stems (:data:`STEM_NAMES`) is one track, the
        sum of its stems; any other audio file is a track of its own.
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    by_folder: dict[Path, list[Path]] = {}
    for path in files:
        by_folder.setdefault(path.parent, []).append(path)
    # Keys are relative to the folder that holds all of the package's music, so they read
    # "warzone2100-music/albums/legacy_soundtrack/track4", not the installed path.
    base = Path(os.path.commonpath([str(f) for f in by_folder])) if by_folder else root
    if base in by_folder and all(p.stem.lower() in STEM_NAMES for p in by_folder[base]):
        base = base.parent
    tracks = []
    for folder, paths in sorted(by_folder.items()):
        if all(p.stem.lower() in STEM_NAMES for p in paths):
            key = f"{package}/{folder.relative_to(base).as_posix()}"
            tracks.append(Track(package, key, paths))
            continue
        for path in paths:
            key = f"{package}/{path.relative_to(base).with_suffix('').as_posix()}"
            tracks.append(Track(package, key, [path]))
    for track in tracks:
        track.group = track_group(track.key)
    return sorted(tracks, key=lambda t: t.key)


def _rank(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def split_tracks(tracks: list[Track], seconds: dict[str, float], *, test: float = 0.15,
                 validation: float = 0.10, min_groups_for_validation: int = 8
                 ) -> dict[str, str]:
    """Assign whole track groups to ``train``, ``validation`` and ``test``, per package.

    Within each package the groups are ordered by a hash of their name; groups go to test
    until it holds ``test`` of the package's duration, then to validation (only in packages
    with at least ``min_groups_for_validation`` groups), and the rest to train.  Every
    package so has music in test, and the split does not depend on the order of discovery.

    Parameters
    ----------
    tracks : list of Track
        All tracks.
    seconds : dict
        Duration of each track, by key.
    test, validation : float, optional
        Target fractions of each package's duration.
    min_groups_for_validation : int, optional
        Smaller packages give no validation music (it would leave too little to train on).

    Returns
    -------
    dict
        Split name by track key.
    """
    split: dict[str, str] = {}
    for package in sorted({t.package for t in tracks}):
        groups: dict[str, list[Track]] = {}
        for track in tracks:
            if track.package == package:
                groups.setdefault(track.group, []).append(track)
        total = sum(seconds[t.key] for members in groups.values() for t in members)
        filled = {"test": 0.0, "validation": 0.0}
        targets = {"test": test * total, "validation": validation * total
                   if len(groups) >= min_groups_for_validation else 0.0}
        for group in sorted(groups, key=_rank):
            duration = sum(seconds[t.key] for t in groups[group])
            name = next((s for s in ("test", "validation") if filled[s] < targets[s]),
                        "train")
            if name != "train":
                filled[name] += duration
            for track in groups[group]:
                split[track.key] = name
    return split


def decode_track(track: Track) -> np.ndarray:
    """Return a track as 16 kHz mono float32; stems are summed, then scaled to peak <= 1.

    Parameters
    ----------
    track : Track
        The recording.

    Returns
    -------
    numpy.ndarray
    """
    parts = [load_audio(path) for path in track.files]
    length = max(p.size for p in parts)
    audio = np.zeros(length, dtype=np.float32)
    for part in parts:
        audio[:part.size] += part
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return audio / peak if peak > 1.0 else audio


def track_windows(audio: np.ndarray, length: int = WINDOW_SAMPLES,
                  min_rms_db: float = -50.0) -> tuple[np.ndarray, list[int]]:
    """Cut a track into consecutive windows of the network's length, dropping silent ones.

    Parameters
    ----------
    audio : numpy.ndarray
        16 kHz mono samples.
    length : int, optional
        Window length (the network's 50,176 samples).
    min_rms_db : float, optional
        Windows quieter than this RMS (dB re full scale) are left out: a tag for silence,
        from the teacher or anyone, means nothing.

    Returns
    -------
    windows : numpy.ndarray
        (n, length) float32.
    starts : list of int
        The first sample of each window.
    """
    n = audio.size // length
    if n == 0:
        return np.zeros((0, length), np.float32), []
    blocks = audio[:n * length].reshape(n, length)
    rms = np.sqrt(np.mean(blocks.astype(np.float64) ** 2, axis=1))
    keep = 20 * np.log10(np.maximum(rms, 1e-12)) >= min_rms_db
    return blocks[keep].astype(np.float32), [int(i) * length for i in np.flatnonzero(keep)]
