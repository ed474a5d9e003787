import json
import subprocess
import sys

import numpy as np
import pytest

from bidsapp.audio.features import (
    cache_key,
    cache_path,
    compute_features,
    compute_features_many,
    grid_activations,
)
from bidsapp.audio.resnet import LAYER_NAMES, LAYERS
from bidsapp.audio.timing import average_per_tr, trial_trs
from bidsapp.audio.weights import load_model, weights_info
from bidsapp.errors import BadDataError, MissingInputError

TR = 0.735


@pytest.fixture
def count_forward(untrained_weights):
    """Count the network's forward passes (a hook on the cached model's first layer)."""
    calls = []
    handle = load_model(untrained_weights, "cpu").conv1.register_forward_hook(
        lambda *_: calls.append(1)
    )
    yield calls
    handle.remove()


def test_features_have_one_column_per_tr(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "clip.wav", signals.noise(6.0))
    features = compute_features(path, TR, weights=untrained_weights, device="cpu")
    assert list(features) == list(LAYER_NAMES)
    for layer in LAYERS:
        assert features[layer.name].shape == (layer.width, 9)  # ceil(6 / 0.735)
        assert features[layer.name].dtype == np.float32
        assert np.isfinite(features[layer.name]).all()


def test_clicks_land_in_their_tr_bins(untrained_weights, signals):
    # Untrained weights: no biases and identity batch norm, so silence gives exactly zero
    # in conv1 and a click gives energy only in the frames that see it.
    audio = signals.clicks(8.0, [2.5, 2.6, 5.5])  # TR 3 = [2.205, 2.94), TR 7 = [5.145, 5.88)
    model = load_model(untrained_weights, "cpu")
    grid = grid_activations(model, audio[None, :])
    per_tr = average_per_tr(grid["conv1"][0], TR, trial_trs(audio.size, TR))
    energy = per_tr.sum(axis=0)
    assert set(np.flatnonzero(energy > 1e-6 * energy.max())) == {3, 7}
    assert energy[3] > energy[7]  # two clicks against one


def test_click_response_peaks_5_s_later(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "click.wav", signals.clicks(12.0, [1.0]), subtype="FLOAT")
    features = compute_features(path, 0.5, weights=untrained_weights, device="cpu")
    response = features["conv1"].sum(axis=0)
    peak = response.argmax()
    assert 5.5 <= (peak + 0.5) * 0.5 <= 6.6
    assert response[:2].max() < 0.05 * response.max()


def test_cache_hit_does_not_recompute(
    untrained_weights, tmp_path, write_audio, signals, count_forward
):
    path = write_audio(tmp_path / "clip.wav", signals.noise(5.0))
    cache = tmp_path / "out" / "features"
    first = compute_features(path, TR, weights=untrained_weights, cache_dir=cache, device="cpu")
    assert len(count_forward) == 1
    second = compute_features(path, TR, weights=untrained_weights, cache_dir=cache, device="cpu")
    assert len(count_forward) == 1
    for name in LAYER_NAMES:
        np.testing.assert_array_equal(first[name], second[name])
    files = list(cache.iterdir())
    assert [f.name for f in files] == [cache_path(cache, path, _key(path, untrained_weights)).name]
    with np.load(files[0]) as data:
        meta = json.loads(str(data["meta"]))
    assert meta["weights_status"] == "untrained"
    assert meta["weights_sha256"] == weights_info(untrained_weights)["sha256"]
    # Another TR is another key.
    compute_features(path, 2.0, weights=untrained_weights, cache_dir=cache, device="cpu")
    assert len(count_forward) == 2
    assert len(list(cache.iterdir())) == 2


def _key(path, weights):
    from bidsapp.audio.weights import file_sha256

    return cache_key(file_sha256(path), weights_info(weights)["sha256"], TR)


def test_unreadable_cache_is_recomputed(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "clip.wav", signals.noise(4.0))
    cache = tmp_path / "features"
    first = compute_features(path, TR, weights=untrained_weights, cache_dir=cache, device="cpu")
    (cached,) = cache.iterdir()
    cached.write_bytes(b"garbage")
    again = compute_features(path, TR, weights=untrained_weights, cache_dir=cache, device="cpu")
    np.testing.assert_array_equal(first["fc"], again["fc"])
    with np.load(cached) as data:
        assert data["fc"].shape == first["fc"].shape


def test_cache_key_covers_audio_weights_tr_and_version():
    base = cache_key("a" * 64, "b" * 64, 0.735)
    assert len({base, cache_key("c" * 64, "b" * 64, 0.735), cache_key("a" * 64, "c" * 64, 0.735),
                cache_key("a" * 64, "b" * 64, 0.7350001)}) == 4  # fmt: skip
    assert cache_key("a" * 64, "b" * 64, 0.735) == base


def test_two_processes_computing_at_once(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "clip.wav", signals.noise(4.0))
    cache = tmp_path / "features"
    script = (
        "import sys, numpy as np; from bidsapp.audio.features import compute_features; "
        "f = compute_features(sys.argv[1], 0.735, weights=sys.argv[2], cache_dir=sys.argv[3],"
        " device='cpu'); print(float(np.abs(f['fc']).sum()))"
    )
    command = [sys.executable, "-c", script, str(path), str(untrained_weights), str(cache)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    assert len(list(cache.iterdir())) == 1  # no temporary files left behind
    local = compute_features(path, TR, weights=untrained_weights, cache_dir=cache, device="cpu")
    assert float(np.abs(local["fc"]).sum()) == pytest.approx(float(outputs[0]))


def test_many_stimuli_batched_by_length_match_one_by_one(
    untrained_weights, tmp_path, write_audio, signals
):
    paths = [
        write_audio(tmp_path / f"clip{i}.wav", signals.noise(seconds, seed=i))
        for i, seconds in enumerate([4.0, 4.5, 4.0, 4.0])
    ]
    many = compute_features_many(paths, TR, weights=untrained_weights, device="cpu", batch_size=2)
    assert list(many) == paths
    for path in paths[:2]:
        single = compute_features(path, TR, weights=untrained_weights, device="cpu")
        for name in LAYER_NAMES:
            scale = np.abs(single[name]).max()
            np.testing.assert_allclose(many[path][name], single[name], atol=1e-4 * scale)
    assert many[paths[1]]["conv1"].shape[1] == 7 and many[paths[0]]["conv1"].shape[1] == 6


@pytest.mark.parametrize("content", [b"", b"RIFF....WAVEfmt garbage"])
def test_bad_audio_is_exit_65(untrained_weights, tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(BadDataError) as info:
        compute_features(path, TR, weights=untrained_weights, cache_dir=tmp_path / "f")
    assert info.value.exit_code == 65
    assert info.value.path == path


def test_short_audio_and_missing_audio(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "short.wav", signals.noise(2.0))
    with pytest.raises(BadDataError, match="at least") as info:
        compute_features(path, TR, weights=untrained_weights, device="cpu")
    assert info.value.exit_code == 65
    with pytest.raises(MissingInputError):
        compute_features(tmp_path / "none.wav", TR, weights=untrained_weights, cache_dir=tmp_path)


def test_tr_below_the_frame_grid_is_rejected(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "clip.wav", signals.noise(4.0))
    with pytest.raises(BadDataError, match="RepetitionTime"):
        compute_features(path, 0.0, weights=untrained_weights)


def test_corrupt_weights_are_exit_65(untrained_weights, tmp_path, write_audio, signals):
    path = write_audio(tmp_path / "clip.wav", signals.noise(4.0))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(untrained_weights.read_bytes()[:1000])
    (tmp_path / "w.json").write_text(untrained_weights.with_suffix(".json").read_text())
    with pytest.raises(BadDataError) as info:
        compute_features(path, TR, weights=weights, device="cpu")
    assert info.value.exit_code == 65
    assert info.value.path.name == "w.safetensors"
