import numpy as np
import pytest

from bidsapp.audio.decode import MIN_SAMPLES, load_audio
from bidsapp.errors import BadDataError, MissingInputError


def _tone(seconds, rate, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [(".wav", None), (".flac", None), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")],
)
def test_formats_decode_to_16k_mono(tmp_path, write_audio, suffix, subtype):
    tone = _tone(4.0, 44100)
    stereo = np.stack([tone, tone], axis=1)
    path = write_audio(tmp_path / f"tone{suffix}", stereo, 44100, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32
    # mp3 adds encoder delay and padding; the rest is exact up to resampling.
    assert abs(audio.size - 4 * 16000) < (3000 if suffix == ".mp3" else 2)
    spectrum = np.abs(np.fft.rfft(audio[4000:-4000]))
    peak = np.fft.rfftfreq(audio.size - 8000, 1 / 16000)[spectrum.argmax()]
    assert peak == pytest.approx(440, abs=2)


def test_channels_are_averaged(tmp_path, write_audio):
    left, right = _tone(4.0, 16000), _tone(4.0, 16000, freq=1000.0)
    path = write_audio(tmp_path / "two.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


def test_resampling_keeps_duration_and_content(tmp_path, write_audio):
    tone = _tone(5.0, 22050, freq=300.0)
    audio = load_audio(write_audio(tmp_path / "t.wav", tone, 22050, subtype="FLOAT"))
    assert audio.size == 5 * 16000
    np.testing.assert_allclose(audio[1000:-1000], _tone(5.0, 16000, 300.0)[1000:-1000], atol=2e-3)


def test_corrupt_audio_is_bad_data(tmp_path):
    path = tmp_path / "broken.flac"
    path.write_bytes(b"fLaC" + bytes(range(256)) * 20)
    with pytest.raises(BadDataError) as info:
        load_audio(path)
    assert info.value.exit_code == 65
    assert info.value.path == path
    assert "broken.flac" in str(info.value)


@pytest.mark.parametrize("content", [b"", None])
def test_empty_audio_is_bad_data(tmp_path, write_audio, content):
    path = tmp_path / "empty.wav"
    if content is None:
        write_audio(path, np.zeros(0))
    else:
        path.write_bytes(content)
    with pytest.raises(BadDataError) as info:
        load_audio(path)
    assert info.value.exit_code == 65


def test_too_short_audio_is_bad_data(tmp_path, write_audio):
    path = write_audio(tmp_path / "short.wav", _tone(MIN_SAMPLES / 16000 - 0.01, 16000))
    with pytest.raises(BadDataError, match="3.136 s") as info:
        load_audio(path)
    assert info.value.exit_code == 65
    assert load_audio(write_audio(tmp_path / "ok.wav", np.zeros(MIN_SAMPLES))).size == MIN_SAMPLES


def test_missing_audio_is_missing_input(tmp_path):
    with pytest.raises(MissingInputError) as info:
        load_audio(tmp_path / "nope.wav")
    assert info.value.exit_code == 66
