"""Decode stimulus audio to what the network expects: 16 kHz mono float32."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from bidsapp.errors import BadDataError, MissingInputError

from .resnet import SAMPLE_RATE, WINDOW_SAMPLES

MIN_SAMPLES = WINDOW_SAMPLES
"""Shortest usable stimulus: one training window, 50,176 samples (3.136 s) at 16 kHz.

Shorter clips are rejected rather than padded: padding would invent silence the listener
never heard, and the fc layer needs a full window of conv5 frames to mean what it meant in
training.
"""

_FIX = "re-export the stimulus as WAV or FLAC (16 kHz or more) and check that it plays"


def load_audio(path: str | Path) -> np.ndarray:
    """Decode an audio file to 16 kHz mono.

    Parameters
    ----------
    path : str or Path
        A WAV, FLAC, OGG/Vorbis or MP3 file (anything libsndfile reads).

    Returns
    -------
    numpy.ndarray
        float32 samples at :data:`~bidsapp.audio.resnet.SAMPLE_RATE`, channels averaged,
        resampled with :func:`scipy.signal.resample_poly` when needed.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    BadDataError
        If it cannot be decoded, is empty, contains non-finite samples, or is shorter than
        :data:`MIN_SAMPLES` after resampling.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError("The stimulus audio file does not exist", path=path, fix=_FIX)
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        raise BadDataError(f"Cannot decode the audio file ({exc})", path=path, fix=_FIX) from exc
    if data.size == 0:
        raise BadDataError("The audio file contains no samples", path=path, fix=_FIX)
    mono = data.mean(axis=1, dtype=np.float64)
    if not np.isfinite(mono).all():
        raise BadDataError("The audio file contains NaN or infinite samples", path=path, fix=_FIX)
    if rate != SAMPLE_RATE:
        divisor = math.gcd(int(rate), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // divisor, int(rate) // divisor)
    if mono.size < MIN_SAMPLES:
        raise BadDataError(
            f"The audio is {mono.size / SAMPLE_RATE:.3f} s long; the network needs at least "
            f"{MIN_SAMPLES / SAMPLE_RATE:.3f} s (one {MIN_SAMPLES}-sample window at 16 kHz)",
            path=path,
            fix="use the full stimulus that was played",
        )
    return mono.astype(np.float32)
