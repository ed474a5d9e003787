"""Render tagged 16 kHz clips from note lists with FluidSynth and the FluidR3_GM soundfont.

Each clip is drawn from a seed: an excerpt of one work, one to three General MIDI
instruments (:data:`~bidsapp.training.tags.INSTRUMENTS`), drums or none, a tempo, a
dynamic level, a transposition, and small timing and velocity jitter.  The same seed
gives the same samples: the synthesizer's reverb and chorus are off (their tails would
carry over between clips) and it is flushed to silence before every clip.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bidsapp.audio.resnet import SAMPLE_RATE
from bidsapp.errors import MissingInputError

from .tags import DYNAMICS, INSTRUMENTS, clip_labels

SOUNDFONT_CANDIDATES = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
)
"""Where Debian's ``fluid-soundfont-gm`` (and other distributions) put FluidR3_GM."""

DRUM_CHANNEL = 9
OUTPUT_SCALE = 6.0
"""Fixed output scaling (FluidSynth's gain is 0.3): a loud trio peaks near full scale."""
_INSTALL_FIX = (
    "apt-get install fluidsynth libfluidsynth3 fluid-soundfont-gm; "
    "pip install music21 pyfluidsynth"
)
_DRUM_PATTERNS = (
    # (kick steps, snare steps, cymbal key, cymbal steps) on a grid of 8 eighths per bar
    ((0, 4), (2, 6), 42, tuple(range(8))),
    ((0, 3, 4), (2, 6), 42, tuple(range(8))),
    ((0, 2, 4, 6), (2, 6), 46, (1, 3, 5, 7)),
    ((0, 5), (2, 6), 51, (0, 2, 4, 6)),
)


class ClipSpec(NamedTuple):
    """Everything that decides one rendered clip (stored in the corpus manifest)."""

    work: str
    seed: int
    programs: tuple[int, ...]
    drums: bool
    bpm: float
    dynamic: str
    velocity: int
    gain: float
    transpose: int
    start: float


def find_soundfont() -> Path:
    """Return the FluidR3_GM soundfont, or raise :class:`MissingInputError` naming the fix."""
    for path in SOUNDFONT_CANDIDATES:
        if path.is_file():
            return path
    raise MissingInputError(
        "The FluidR3_GM soundfont is not installed", path=SOUNDFONT_CANDIDATES[0],
        fix=_INSTALL_FIX,
    )


def rendering_available() -> bool:
    """Return whether FluidSynth, pyfluidsynth, music21 and the soundfont are all present."""
    try:
        # optional extra (bidsapp[train]): only rendering the training corpus needs it
        import fluidsynth  # noqa: F401
        import music21  # noqa: F401

        find_soundfont()
    except (ImportError, OSError, MissingInputError):
        return False
    return True


def draw_spec(work: dict, seed: int, seconds: float) -> ClipSpec:
    """Draw a clip's instrumentation, tempo, dynamics and excerpt from ``seed``.

    Parameters
    ----------
    work : dict
        A record of :func:`bidsapp.training.corpus.read_work_list`.
    seed : int
        Seed of this clip; the same seed gives the same spec.
    seconds : float
        Clip length.

    Returns
    -------
    ClipSpec
    """
    rng = np.random.default_rng(seed)
    n_instruments = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    programs = tuple(
        int(INSTRUMENTS[i].program)
        for i in rng.choice(len(INSTRUMENTS), size=n_instruments, replace=False)
    )
    drums = bool(rng.random() < (0.2 if work["classical"] else 0.45))
    bpm = float(np.round(rng.choice([rng.uniform(50, 80), rng.uniform(80, 132),
                                     rng.uniform(132, 190)]), 1))
    dynamic = str(rng.choice(DYNAMICS))
    velocity = int({"quiet": rng.integers(25, 51), "medium": rng.integers(60, 91),
                    "loud": rng.integers(100, 128)}[dynamic])
    gain = float(np.round({"quiet": rng.uniform(0.15, 0.3), "medium": rng.uniform(0.45, 0.7),
                           "loud": rng.uniform(0.9, 1.2)}[dynamic], 3))
    end = max(n[0] + n[1] for part in work["parts"] for n in part)
    span = seconds * bpm / 60.0
    start = float(np.floor(rng.uniform(0, max(end - span, 0.0))))
    return ClipSpec(work["id"], int(seed), programs, drums, bpm, dynamic, velocity, gain,
                    int(rng.integers(-5, 7)), start)


def spec_labels(spec: ClipSpec, classical_source: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return the (50,) labels and mask of a clip spec (see :func:`~.tags.clip_labels`)."""
    return clip_labels(list(spec.programs), drums=spec.drums, bpm=spec.bpm,
                       dynamic=spec.dynamic, classical_source=classical_source)


def _fold(pitch: int, low: int, high: int) -> int:
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def _events(work: dict, spec: ClipSpec, seconds: float) -> list[tuple[float, int, int, int, int]]:
    """Return ``(time s, on=1/off=0, channel, key, velocity)`` events of the clip."""
    rng = np.random.default_rng(spec.seed + 1)
    by_program = {inst.program: inst for inst in INSTRUMENTS}
    parts = work["parts"]
    beat = 60.0 / spec.bpm
    end_ql = max(n[0] + n[1] for part in parts for n in part)
    span_ql = seconds / beat
    # More instruments than parts: extra instruments double a part in their own octave,
    # so a single-line folk tune still becomes an ensemble.
    order = sorted(range(len(parts)), key=lambda i: -len(parts[i]))
    events = []
    for channel, program in enumerate(spec.programs):
        inst = by_program[program]
        part = parts[order[channel % len(order)]]
        for loop in range(int(np.ceil((spec.start + span_ql) / end_ql)) + 1):
            for onset, duration, pitch in part:
                t = onset + loop * end_ql - spec.start
                if t < 0 or t >= span_ql:
                    continue
                key = _fold(pitch + spec.transpose, inst.low, inst.high)
                on = max(t * beat + rng.normal(0, 0.008), 0.0)
                vel = int(np.clip(spec.velocity + rng.integers(-8, 9), 1, 127))
                events.append((on, 1, channel, key, vel))
                events.append((on + max(duration * beat * 0.95, 0.03), 0, channel, key, 0))
    if spec.drums:
        kick, snare, cymbal, cymbal_steps = _DRUM_PATTERNS[spec.seed % len(_DRUM_PATTERNS)]
        step = beat / 2
        for i in range(int(seconds / step) + 1):
            for key, steps in ((36, kick), (38, snare), (cymbal, cymbal_steps)):
                if i % 8 in steps:
                    vel = int(np.clip(spec.velocity + rng.integers(-10, 11), 1, 127))
                    events.append((i * step, 1, DRUM_CHANNEL, key, vel))
    # note-offs before note-ons at the same time, so a repeated key is re-struck
    return sorted(events, key=lambda e: (e[0], e[1]))


class Renderer:
    """A FluidSynth instance with FluidR3_GM loaded, reused for many clips.

    Parameters
    ----------
    seconds : float
        Length of every clip.
    soundfont : str or Path, optional
        A GM soundfont; :func:`find_soundfont` by default.
    """

    def __init__(self, seconds: float, soundfont: str | Path | None = None):
        try:
            # optional extra (bidsapp[train]): only rendering the training corpus needs it
            import fluidsynth
        except ImportError as exc:
            raise MissingInputError("pyfluidsynth or libfluidsynth is missing",
                                    fix=_INSTALL_FIX) from exc
        self.seconds = float(seconds)
        self.synth = fluidsynth.Synth(
            gain=0.3, samplerate=float(SAMPLE_RATE),
            **{"synth.reverb.active": 0, "synth.chorus.active": 0},
        )
        self.sfid = self.synth.sfload(str(soundfont or find_soundfont()))
        # The very first note of a new synthesizer differs slightly from later ones; play
        # one of every instrument now so every clip is rendered from the same warm state.
        self.synth.program_select(DRUM_CHANNEL, self.sfid, 128, 0)
        for program in sorted({inst.program for inst in INSTRUMENTS}):
            for channel in (0, 1, 2):
                self.synth.program_select(channel, self.sfid, 0, program)
                for key in range(36, 96, 5):
                    self.synth.noteon(channel, key, 64)
            for key in (36, 38, 42, 46, 51):
                self.synth.noteon(DRUM_CHANNEL, key, 64)
            self._samples(512)
            self.synth.system_reset()
        self._flush()

    def _samples(self, count: int) -> np.ndarray:
        # Float output via libfluidsynth directly: pyfluidsynth's int16 path dithers with a
        # counter that persists between clips, which would make a clip depend on its order.
        import fluidsynth

        buffer = np.zeros(2 * count, dtype=np.float32)
        pointer = buffer.ctypes.data_as(ctypes.c_void_p)
        fluidsynth._fl.fluid_synth_write_float(
            ctypes.c_void_p(self.synth.synth), ctypes.c_int(count), pointer, ctypes.c_int(0),
            ctypes.c_int(2), pointer, ctypes.c_int(1), ctypes.c_int(2))
        return buffer

    def _flush(self) -> None:
        self.synth.system_reset()
        for _ in range(50):
            if np.abs(self._samples(SAMPLE_RATE // 10)).max() == 0:
                return

    def render(self, work: dict, spec: ClipSpec) -> np.ndarray:
        """Return the clip as float32 mono samples at 16 kHz, in [-1, 1].

        Parameters
        ----------
        work : dict
            The work record the spec was drawn from.
        spec : ClipSpec
            From :func:`draw_spec`.

        Returns
        -------
        numpy.ndarray
            Shape ``(round(seconds * 16000),)``.
        """
        self._flush()
        for channel, program in enumerate(spec.programs):
            self.synth.program_select(channel, self.sfid, 0, program)
        self.synth.program_select(DRUM_CHANNEL, self.sfid, 128, 0)
        total = int(round(self.seconds * SAMPLE_RATE))
        chunks, done = [], 0
        for time, on, channel, key, velocity in _events(work, spec, self.seconds):
            at = min(int(round(time * SAMPLE_RATE)), total)
            if at > done:
                chunks.append(self._samples(at - done))
                done = at
            if on:
                self.synth.noteon(channel, key, velocity)
            else:
                self.synth.noteoff(channel, key)
        if total > done:
            chunks.append(self._samples(total - done))
        stereo = np.concatenate(chunks).reshape(-1, 2)
        mono = stereo.mean(axis=1) * spec.gain * OUTPUT_SCALE
        # a soft limiter instead of peak normalization: loud must stay louder than quiet
        return np.tanh(mono).astype(np.float32)
