import numpy as np

from bidsapp.audio import load_audio
from bidsapp.simulate.stimuli import SAMPLE_RATE, synthesize_clip, write_stimuli


def test_clips_are_deterministic_and_distinct():
    a = synthesize_clip(0, 0, 4.0)
    assert a.shape == (4 * SAMPLE_RATE,)
    assert np.isclose(np.abs(a).max(), 0.9)
    np.testing.assert_array_equal(a, synthesize_clip(0, 0, 4.0))
    assert not np.allclose(a, synthesize_clip(0, 1, 4.0))
    assert not np.allclose(a, synthesize_clip(1, 0, 4.0))


def test_written_clips_decode_and_are_byte_identical(tmp_path):
    first = write_stimuli(tmp_path / "a", 0, [3.5, 3.5])
    second = write_stimuli(tmp_path / "b", 0, [3.5, 3.5])
    for p, q in zip(first, second, strict=True):
        assert p.read_bytes() == q.read_bytes()
        audio = load_audio(p)
        assert audio.shape == (int(3.5 * SAMPLE_RATE),) and audio.std() > 0.05
