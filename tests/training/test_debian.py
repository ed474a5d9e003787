"""The Debian real-music source, on fake packages built with dpkg-deb: the layout of the
three game-music packages (Opus/Vorbis files, album license.txt, Frets on Fire stems)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bidsapp.audio.resnet import WINDOW_SAMPLES
from bidsapp.errors import BadDataError
from bidsapp.training import debian

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None,
                                reason="dpkg-deb is not installed (not a Debian system)")

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Fake Game

Files: *
Copyright: 2020, Someone
License: GPL-2+

Files: debian/*
Copyright: 2021, A Maintainer
License: GPL-3+

License: GPL-2+
 This program is free software.
"""

FREE_TEXT = """This package was debianized by Someone.

The songs are Copyright (c) 2009 A Band and are licenced under the terms of the Creative
Commons Attribution ShareAlike licence 3.0:
http://creativecommons.org/licenses/by-sa/3.0
"""


def tone(seconds: float, freq: float, rate: int = 44_100, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    left = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([left, 0.5 * left], axis=1).astype(np.float32)


def build_deb(tmp: Path, name: str, copyright_text: str, files: dict[str, np.ndarray | str],
              version: str = "1.0-1") -> Path:
    root = tmp / f"{name}-src"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: fake music\n")
    doc = root / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        elif path.suffix == ".opus":
            soundfile.write(path, content, 48_000, format="OGG", subtype="OPUS")
        else:
            soundfile.write(path, content, 44_100, format="OGG", subtype="VORBIS")
    deb = tmp / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("debs")
    folder = tmp / "debs"
    folder.mkdir()
    music = "usr/share/games/fakewar/music"
    silence = np.zeros((int(5 * 44_100), 2), np.float32)
    game = build_deb(tmp, "fakewar-music", DEP5, {
        f"{music}/menu.ogg": tone(7.0, 440),
        f"{music}/albums/remaster/menu_enhanced.ogg": tone(7.0, 660),
        f"{music}/albums/remaster/track9.ogg": np.concatenate([tone(3.0, 220), silence]),
        f"{music}/albums/remaster/license.txt": "Remaster - (C) 2021\n\nlicensed under:\n"
                                                 "CC-BY-SA-3.0 (or any later version)\n",
    })
    songs = "usr/share/games/fakefret/data/songs/band"
    rock = build_deb(tmp, "fakefret-songs", FREE_TEXT, {
        f"{songs}/anthem/song.ogg": tone(6.0, 110, amp=0.6),
        f"{songs}/anthem/guitar.ogg": tone(6.0, 330, amp=0.6),
        f"{songs}/anthem/song.ini": "[song]\nname = Anthem\n",
        f"{songs}/ballad/song.ogg": tone(5.0, 150),
        f"{songs}/ballad/guitar.ogg": tone(5.0, 300),
    })
    for deb in (game, rock):
        shutil.copy(deb, folder)
    return folder, tmp


def test_fetch_uses_the_debs_in_the_folder_and_records_versions(debs):
    folder, _ = debs
    found = debian.fetch_packages(folder, ("fakewar-music", "fakefret-songs"))
    assert [(d.name, d.version) for d in found] == [("fakewar-music", "1.0-1"),
                                                    ("fakefret-songs", "1.0-1")]
    assert all(len(d.sha256) == 64 for d in found)
    with pytest.raises(BadDataError, match="Not a Debian package"):
        bad = folder.parent / "bad.deb"
        bad.write_bytes(b"not an archive")
        debian.deb_info(bad)


def test_tracks_licences_decoding_and_windows(debs):
    folder, tmp = debs
    game, rock = debian.fetch_packages(folder, ("fakewar-music", "fakefret-songs"))
    game_root = debian.unpack(game, tmp / "unpacked")
    rock_root = debian.unpack(rock, tmp / "unpacked")

    licences = debian.package_licences(game_root, "fakewar-music")
    assert licences["copyright"] == "GPL-2+"
    assert list(licences["notices"].values()) == ["CC-BY-SA-3.0 (or any later version)"]
    assert debian.package_licences(rock_root, "fakefret-songs")["copyright"] == "CC-BY-SA-3.0"

    tracks = debian.find_tracks(game_root, "fakewar-music")
    assert [t.key for t in tracks] == ["fakewar-music/albums/remaster/menu_enhanced",
                                       "fakewar-music/albums/remaster/track9",
                                       "fakewar-music/menu"]
    # A remaster goes with its original.
    assert tracks[0].group == tracks[2].group == "fakewar-music/menu"
    songs = debian.find_tracks(rock_root, "fakefret-songs")
    assert [t.key for t in songs] == ["fakefret-songs/anthem", "fakefret-songs/ballad"]
    assert [p.name for p in songs[0].files] == ["guitar.ogg", "song.ogg"]

    # Stems are summed (then scaled to a peak of 1): both tones are in the mix.
    mix = debian.decode_track(songs[0])
    assert mix.size == pytest.approx(6.0 * 16_000, abs=16)
    assert np.abs(mix).max() <= 1.0 + 1e-6
    spectrum = np.abs(np.fft.rfft(mix[:16_000]))
    freqs = np.fft.rfftfreq(16_000, 1 / 16_000)
    peaks = set(np.round(freqs[np.argsort(spectrum)[-2:]]).astype(int))
    assert peaks == {110, 330}

    # Windows are the network's length; the silent second half of track9 is left out.
    audio = debian.decode_track(tracks[1])
    windows, starts = debian.track_windows(audio)
    assert windows.shape == (1, WINDOW_SAMPLES) and starts == [0]
    assert debian.track_windows(audio, min_rms_db=-300)[0].shape[0] == 2


def test_split_keeps_tracks_and_their_remasters_together(debs):
    folder, tmp = debs
    game = debian.fetch_packages(folder, ("fakewar-music",))[0]
    tracks = debian.find_tracks(debian.unpack(game, tmp / "unpacked"), "fakewar-music")
    extra = [debian.Track("other", f"other/t{i:02d}", [], f"other/t{i:02d}") for i in range(20)]
    everything = tracks + extra
    seconds = {t.key: 60.0 + i for i, t in enumerate(everything)}
    split = debian.split_tracks(everything, seconds)
    assert set(split.values()) <= set(debian.SPLITS)
    by_group = {}
    for track in everything:
        by_group.setdefault(track.group, set()).add(split[track.key])
    assert all(len(names) == 1 for names in by_group.values())
    # Every package has held-out music; the bigger one also validation music.
    assert "test" in {split[t.key] for t in tracks}
    other = [split[t.key] for t in extra]
    assert {"train", "validation", "test"} <= set(other)
    test_share = sum(seconds[t.key] for t in extra if split[t.key] == "test") / sum(
        seconds[t.key] for t in extra)
    assert 0.15 <= test_share < 0.15 + 80 / sum(seconds[t.key] for t in extra)
    # The split does not depend on the order the tracks were found in.
    assert debian.split_tracks(everything[::-1], seconds) == split


def test_free_text_and_unknown_licences():
    assert debian.package_licence(FREE_TEXT) == "CC-BY-SA-3.0"
    assert debian.package_licence(DEP5) == "GPL-2+"
    assert debian.package_licence("All rights reserved.") == "unknown"
