"""Which of the 50 MagnaTagATune tags the rendered corpus supervises, and how.

The output layer keeps all 50 MTT tags in the order of
:data:`bidsapp.audio.weightfile.TAGS`, so the network can be fine-tuned on MagnaTagATune
without surgery.  A rendered clip only carries evidence for some of them: the instruments
it was rendered with, whether drums play, its tempo and loudness, solo against ensemble,
and whether the score is from the classical repertoire.  Every other tag (genres such as
rock or techno, sung vocals, male/female voices) is masked out of the loss, and even a
supervised tag is masked for a clip whose rendering leaves it ambiguous (a middling tempo
is neither ``fast`` nor ``slow``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bidsapp.audio.weightfile import TAGS


class Instrument(NamedTuple):
    """A General MIDI melodic program and the MTT tags it makes positive.

    Attributes
    ----------
    program : int
        General MIDI program number, 0-based (0 is Acoustic Grand Piano).
    name : str
        The GM name.
    tags : tuple of str
        MTT tags that are true whenever this instrument plays.
    classical : bool
        Whether it belongs to the orchestra, chamber or church sound of classical music.
    low, high : int
        MIDI pitch range the part is folded into by octaves, so it sounds idiomatic.
    """

    program: int
    name: str
    tags: tuple[str, ...]
    classical: bool
    low: int
    high: int


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "Acoustic Grand Piano", ("piano",), True, 28, 100),
    Instrument(1, "Bright Acoustic Piano", ("piano",), True, 28, 100),
    Instrument(2, "Electric Grand Piano", ("piano",), False, 28, 100),
    Instrument(6, "Harpsichord", ("harpsichord",), True, 29, 89),
    Instrument(24, "Acoustic Guitar (nylon)", ("guitar",), False, 40, 84),
    Instrument(25, "Acoustic Guitar (steel)", ("guitar",), False, 40, 84),
    Instrument(26, "Electric Guitar (jazz)", ("guitar",), False, 40, 84),
    Instrument(27, "Electric Guitar (clean)", ("guitar",), False, 40, 84),
    Instrument(40, "Violin", ("violin", "strings"), True, 55, 100),
    Instrument(41, "Viola", ("strings",), True, 48, 88),
    Instrument(42, "Cello", ("cello", "strings"), True, 36, 76),
    Instrument(43, "Contrabass", ("strings",), True, 28, 60),
    Instrument(45, "Pizzicato Strings", ("strings",), True, 36, 96),
    Instrument(48, "String Ensemble 1", ("strings",), True, 36, 96),
    Instrument(49, "String Ensemble 2", ("strings",), True, 36, 96),
    Instrument(46, "Orchestral Harp", ("harp",), True, 24, 103),
    Instrument(73, "Flute", ("flute",), True, 60, 96),
    Instrument(104, "Sitar", ("sitar",), False, 48, 84),
    Instrument(38, "Synth Bass 1", ("synth",), False, 28, 60),
    Instrument(80, "Lead 1 (square)", ("synth",), False, 48, 96),
    Instrument(81, "Lead 2 (sawtooth)", ("synth",), False, 48, 96),
    Instrument(88, "Pad 1 (new age)", ("synth",), False, 36, 96),
    Instrument(89, "Pad 2 (warm)", ("synth",), False, 36, 96),
    Instrument(90, "Pad 3 (polysynth)", ("synth",), False, 36, 96),
    Instrument(52, "Choir Aahs", ("choir", "choral"), True, 48, 81),
    Instrument(53, "Voice Oohs", ("choir", "choral"), True, 48, 81),
    # Distractors: they carry no supervised tag, so the network must learn what is *not*
    # a piano, a violin or a flute rather than "any sound means tag X".
    Instrument(19, "Church Organ", (), True, 36, 96),
    Instrument(16, "Drawbar Organ", (), False, 36, 96),
    Instrument(11, "Vibraphone", (), False, 53, 89),
    Instrument(12, "Marimba", (), False, 45, 96),
    Instrument(21, "Accordion", (), False, 53, 89),
    Instrument(33, "Electric Bass (finger)", (), False, 28, 60),
    Instrument(56, "Trumpet", (), True, 55, 82),
    Instrument(60, "French Horn", (), True, 41, 77),
    Instrument(68, "Oboe", (), True, 58, 91),
    Instrument(70, "Bassoon", (), True, 34, 72),
    Instrument(71, "Clarinet", (), True, 50, 91),
)
"""The melodic instruments the renderer draws from (FluidR3_GM bank 0)."""

INSTRUMENT_TAGS: tuple[str, ...] = (
    "guitar", "piano", "harpsichord", "violin", "cello", "strings", "harp", "flute", "sitar",
    "synth", "choir", "choral",
)  # fmt: skip
"""Tags decided by which instruments play: true if one plays, false otherwise."""

NO_VOCAL_TAGS: tuple[str, ...] = ("no vocals", "no vocal", "no voice")
"""True unless a choir program plays (the only voice-like sound the renderer makes)."""

SUPERVISED_TAGS: tuple[str, ...] = tuple(
    tag
    for tag in TAGS
    if tag
    in INSTRUMENT_TAGS
    + NO_VOCAL_TAGS
    + ("drums", "beat", "beats", "fast", "slow", "loud", "quiet", "soft", "solo")
    + ("classical", "classic")
)
"""The 26 tags the corpus supervises, in output-layer order; the other 24 are always masked."""

FAST_BPM = 132.0
"""Quarter-note tempo at or above which a clip is ``fast``."""

SLOW_BPM = 80.0
"""Quarter-note tempo at or below which a clip is ``slow``; in between both are masked."""

DYNAMICS = ("quiet", "medium", "loud")
"""Dynamic levels: velocity and output gain together; ``medium`` masks the loudness tags."""

_INDEX = {tag: i for i, tag in enumerate(TAGS)}


def supervised_mask() -> np.ndarray:
    """Return a (50,) bool array that is true for the tags of :data:`SUPERVISED_TAGS`."""
    mask = np.zeros(len(TAGS), dtype=bool)
    mask[[_INDEX[tag] for tag in SUPERVISED_TAGS]] = True
    return mask


def clip_labels(
    programs: list[int],
    *,
    drums: bool,
    bpm: float,
    dynamic: str,
    classical_source: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Derive a rendered clip's tag targets and which of them are trustworthy.

    Parameters
    ----------
    programs : list of int
        GM programs of the melodic instruments (from :data:`INSTRUMENTS`).
    drums : bool
        Whether a drum kit plays (GM channel 10).
    bpm : float
        Quarter-note tempo the score was rendered at.
    dynamic : {'quiet', 'medium', 'loud'}
        The dynamic level (see :data:`DYNAMICS`).
    classical_source : bool
        Whether the score comes from the classical repertoire (Bach, Palestrina, ...), as
        opposed to folk tunes.

    Returns
    -------
    labels : numpy.ndarray
        Shape (50,), float32 0/1 in :data:`~bidsapp.audio.weightfile.TAGS` order.
    mask : numpy.ndarray
        Shape (50,), bool; false for tags the clip says nothing about.
    """
    by_program = {inst.program: inst for inst in INSTRUMENTS}
    played = [by_program[p] for p in programs]
    positive: set[str] = {tag for inst in played for tag in inst.tags}
    mask = supervised_mask()
    if not positive & {"choir"}:
        positive.update(NO_VOCAL_TAGS)
    if drums:
        positive.update(("drums", "beat", "beats"))
    if bpm >= FAST_BPM:
        positive.add("fast")
    elif bpm <= SLOW_BPM:
        positive.add("slow")
    else:
        mask[[_INDEX["fast"], _INDEX["slow"]]] = False
    if dynamic == "loud":
        positive.add("loud")
    elif dynamic == "quiet":
        positive.update(("quiet", "soft"))
    else:
        mask[[_INDEX["loud"], _INDEX["quiet"], _INDEX["soft"]]] = False
    if len(played) == 1 and not drums:
        positive.add("solo")
    # "classical" is true for classical scores on classical instruments, false for folk
    # tunes or any clip with drums or a modern instrument, and ambiguous otherwise.
    classical_sound = not drums and all(inst.classical for inst in played)
    if classical_source and classical_sound:
        positive.update(("classical", "classic"))
    elif classical_source or classical_sound:
        mask[[_INDEX["classical"], _INDEX["classic"]]] = False
    labels = np.zeros(len(TAGS), dtype=np.float32)
    labels[[_INDEX[tag] for tag in positive]] = 1.0
    return labels * mask, mask
