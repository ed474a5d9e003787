"""Synthetic music clips: scales, timbres, chords, bass and noise-burst drums.

Each clip is drawn from its own random stream, so clip 3 is the same whatever the number
of clips.  A clip has its own tempo, key, scale, lead timbre (harmonic roll-off, odd
harmonics only or all) and drum pattern, and changes arrangement and loudness every few
bars; that makes clips differ from each other and change within themselves, which is what
the network's layers and the RSA need.  Everything is generated here and released under
CC0; nothing is sampled from recordings.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import lfilter, resample_poly

from bidsapp.io import atomic_write

from .seeds import rng_for

SAMPLE_RATE = 16000
"""Samples per second of the clips: the network's rate, so no resampling happens."""

_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole-tone": (0, 2, 4, 6, 8, 10),
}
_NYQUIST_MARGIN = 0.45 * SAMPLE_RATE


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _tone(freq: float, seconds: float, harmonics: np.ndarray, attack: float, decay: float,
          vibrato: float = 0.0) -> np.ndarray:
    """Return one note: additive harmonics under an attack/exponential-decay envelope."""
    n = max(int(seconds * SAMPLE_RATE), 1)
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * freq * t
    if vibrato:
        phase += vibrato * np.sin(2 * np.pi * 5.5 * t)
    wave = np.zeros(n)
    for k, amp in enumerate(harmonics, start=1):
        if amp and k * freq < _NYQUIST_MARGIN:
            wave += amp * np.sin(k * phase)
    envelope = np.minimum(t / max(attack, 1e-3), 1.0) * np.exp(-t / max(decay, 1e-3))
    # A 5 ms release avoids clicks, which would add broadband energy no instrument has.
    release = min(n, int(0.005 * SAMPLE_RATE))
    envelope[n - release:] *= np.linspace(1.0, 0.0, release)
    return wave * envelope


def _noise_burst(rng: np.random.Generator, seconds: float, decay: float,
                 brightness: float) -> np.ndarray:
    """Return a decaying noise burst; ``brightness`` near 1 is hiss, near 0 a dull thud."""
    n = int(seconds * SAMPLE_RATE)
    noise = rng.standard_normal(n)
    # A one-pole low-pass (dull) or its complement (bright) shapes the spectrum cheaply.
    alpha = 0.15 + 0.8 * (1.0 - brightness)
    smooth = lfilter([1 - alpha], [1.0, -alpha], noise)
    shaped = noise - smooth if brightness > 0.5 else smooth
    return shaped * np.exp(-np.arange(n) / (decay * SAMPLE_RATE))


def _kick(seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    freq = 40.0 + 90.0 * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.08)


def _add(out: np.ndarray, start: int, sound: np.ndarray, gain: float) -> None:
    end = min(out.size, start + sound.size)
    if start < end:
        out[start:end] += gain * sound[: end - start]


def synthesize_clip(seed: int, index: int, seconds: float) -> np.ndarray:
    """Return one synthetic music clip, 16 kHz mono, peak 0.9.

    Parameters
    ----------
    seed : int
        The simulation seed.
    index : int
        Which clip (0-based); each index has its own random stream.
    seconds : float
        Duration.

    Returns
    -------
    numpy.ndarray
        float64 samples in [-0.9, 0.9].
    """
    rng = rng_for(seed, "stimulus", index)
    n = int(round(seconds * SAMPLE_RATE))
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(70, 160)
    scale = _SCALES[list(_SCALES)[rng.integers(len(_SCALES))]]
    root = int(rng.integers(45, 58))
    n_harm = 12
    rolloff = rng.uniform(0.6, 2.5)
    lead = 1.0 / np.arange(1, n_harm + 1) ** rolloff
    if rng.random() < 0.5:
        lead[1::2] = 0.0  # odd harmonics only: a clarinet- or square-like colour
    pad = 1.0 / np.arange(1, 7) ** 2.5
    lead_decay = rng.uniform(0.15, 1.5)
    subdivision = int(rng.choice([1, 2, 4]))
    hat_every = int(rng.choice([1, 2]))
    bar = 4 * beat
    section_bars = int(rng.integers(2, 5))
    t0 = 0.0
    degree = 0
    while t0 < seconds:
        # Each section re-draws the arrangement and loudness, so features vary within a clip.
        parts = rng.random(4) < (0.8, 0.6, 0.6, 0.6)  # melody, chords, bass, drums
        gain = rng.uniform(0.3, 1.0)
        section_end = min(seconds, t0 + section_bars * bar)
        t = t0
        while t < section_end:
            chord_root = int(rng.choice([0, 3, 4, 5])) % len(scale)
            if parts[1]:
                for step in (0, 2, 4):
                    semis = scale[(chord_root + step) % len(scale)] + 12 * (
                        (chord_root + step) // len(scale))
                    _add(out, int(t * SAMPLE_RATE),
                         _tone(_hz(root + 12 + semis), bar, pad, 0.08, 2.0), 0.12 * gain)
            if parts[2]:
                for b in range(4):
                    _add(out, int((t + b * beat) * SAMPLE_RATE),
                         _tone(_hz(root - 12 + scale[chord_root]), beat * 0.9,
                               np.array([1.0, 0.5, 0.2]), 0.01, 0.3), 0.35 * gain)
            if parts[0]:
                step = beat / subdivision
                for k in range(4 * subdivision):
                    if rng.random() < 0.2:
                        continue  # rests give the melody a rhythm
                    degree = int(np.clip(degree + rng.integers(-2, 3), -3, 2 * len(scale)))
                    semis = scale[degree % len(scale)] + 12 * (degree // len(scale))
                    _add(out, int((t + k * step) * SAMPLE_RATE),
                         _tone(_hz(root + 24 + semis), step * 1.5, lead, 0.01, lead_decay,
                               vibrato=0.3 * lead_decay), 0.25 * gain)
            if parts[3]:
                for b in range(4):
                    start = t + b * beat
                    if b % 2 == 0:
                        _add(out, int(start * SAMPLE_RATE), _kick(), 0.6 * gain)
                    else:
                        _add(out, int(start * SAMPLE_RATE),
                             _noise_burst(rng, 0.18, 0.05, 0.3), 0.4 * gain)
                    for h in range(0, 2, hat_every):
                        _add(out, int((start + h * beat / 2) * SAMPLE_RATE),
                             _noise_burst(rng, 0.05, 0.012, 0.9), 0.15 * gain)
            t += bar
        t0 = section_end
    out = np.tanh(1.5 * out)  # a soft limiter, as mastering would
    peak = np.max(np.abs(out))
    return out * (0.9 / peak) if peak > 0 else out


def clip_name(index: int) -> str:
    """Return the file name of a clip under ``stimuli/``.

    Parameters
    ----------
    index : int
        0-based clip number.

    Returns
    -------
    str
        ``synth-001.wav`` for index 0.
    """
    return f"synth-{index + 1:03d}.wav"


def write_stimuli(folder: str | Path, seed: int, durations: list[float] | tuple[float, ...],
                  rate: int = SAMPLE_RATE, channels: int = 1) -> list[Path]:
    """Synthesize one clip per duration and write them as 16-bit PCM WAV files.

    Parameters
    ----------
    folder : str or Path
        The dataset's ``stimuli/`` folder.
    seed : int
        The simulation seed.
    durations : sequence of float
        Seconds of each clip, in clip order.
    rate : int, optional
        Sample rate of the files; clips are made at 16 kHz and resampled (44,100 Hz as on a
        CD, for example), so the app resamples them back as it would a recording.
    channels : int, optional
        1 (mono) or 2 (stereo: the right channel is the left one at 80 %, panned left).

    Returns
    -------
    list of Path
        The files, in clip order.
    """
    paths = []
    step = math.gcd(int(rate), SAMPLE_RATE)
    for index, seconds in enumerate(durations):
        clip = synthesize_clip(seed, index, seconds)
        if rate != SAMPLE_RATE:
            clip = np.clip(resample_poly(clip, int(rate) // step, SAMPLE_RATE // step), -1, 1)
        if channels == 2:
            clip = np.stack([clip, 0.8 * clip], axis=1)
        samples = np.round(clip * 32767).astype(np.int16)
        path = Path(folder) / clip_name(index)
        # scipy's writer puts no date or encoder version in the header (byte-reproducible).
        with atomic_write(path) as tmp:
            wavfile.write(tmp, int(rate), samples)
        paths.append(path)
    return paths
