import numpy as np
import pytest
import torch

from bidsapp.audio.resnet import (
    FRAME_HOP,
    LAYER_NAMES,
    LAYERS,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    ResNet18Audio,
    frame_centres,
    n_frames,
)


@pytest.fixture(scope="module")
def model() -> ResNet18Audio:
    torch.manual_seed(0)
    return ResNet18Audio().eval()


def test_parameter_count_matches_the_independent_implementation(model):
    # Bias-free convolutions, batch norm (scale and shift) after every convolution and on
    # the three projection shortcuts, fc with bias.
    assert sum(p.numel() for p in model.parameters()) == 11_195_890


def test_output_shapes_for_one_window(model):
    audio = torch.randn(1, WINDOW_SAMPLES)
    with torch.inference_mode():
        acts = model.layer_activations(audio)
        pooled = model.pool(acts["conv1"])
        logits = model(audio)
    expected = {
        "conv1": (64, 12544),
        "conv2_1": (64, 3136),
        "conv2_2": (64, 3136),
        "conv3_1": (128, 784),
        "conv3_2": (128, 784),
        "conv4_1": (256, 196),
        "conv4_2": (256, 196),
        "conv5_1": (512, 49),
        "conv5_2": (512, 49),
    }
    assert {name: tuple(a.shape[1:]) for name, a in acts.items()} == expected
    assert tuple(pooled.shape[1:]) == (64, 3136)
    assert acts["conv5_2"].mean(-1).shape == (1, 512)
    assert logits.shape == (1, 50)


def test_layers_constant_is_the_study_list(model):
    assert LAYER_NAMES == (
        "conv1", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
        "conv4_1", "conv4_2", "conv5_1", "conv5_2", "fc",
    )  # fmt: skip
    assert [layer.width for layer in LAYERS] == [64, 64, 64, 128, 128, 256, 256, 512, 512, 50]
    n_samples = 3 * WINDOW_SAMPLES + 777
    with torch.inference_mode():
        acts = model.layer_activations(torch.randn(1, n_samples))
    for layer in LAYERS[:-1]:
        assert acts[layer.name].shape[1:] == (layer.width, n_frames(n_samples, layer.hop))


def _averaging_model() -> ResNet18Audio:
    # Every convolution a positive box filter: receptive fields are then symmetric, so the
    # response to an impulse is centred exactly where the frame centre says.
    model = ResNet18Audio().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv1d):
                module.weight.fill_(1.0 / module.weight[0].numel())
    return model


@pytest.mark.parametrize("impulse_at", [20 * FRAME_HOP, 20 * FRAME_HOP + 256])
def test_frame_centres_match_impulse_responses(impulse_at):
    model = _averaging_model()
    audio = torch.zeros(1, 48 * FRAME_HOP)
    audio[0, impulse_at] = 1.0
    with torch.inference_mode():
        acts = model.layer_activations(audio)
    for layer in LAYERS[:-1]:
        energy = acts[layer.name][0].sum(0).numpy()
        times = frame_centres(layer, energy.size)
        centre = (energy * times).sum() / energy.sum()
        # Exact for impulses on the frame grid, within a quarter of the hop otherwise.
        tolerance = 1e-6 if impulse_at % layer.hop == 0 else 0.25 * layer.hop / 16000
        assert centre == pytest.approx(impulse_at / 16000, abs=tolerance), layer.name


def test_whole_clip_run_equals_sliding_windows_away_from_edges(model):
    # A window starting k conv5 frames into the clip gives the same conv5 frames as the
    # whole-clip run wherever its receptive field (35,537 samples) stays inside the window.
    audio = torch.randn(1, 100 * FRAME_HOP)
    start = 37
    with torch.inference_mode():
        whole = model.layer_activations(audio)["conv5_2"]
        window_audio = audio[:, start * FRAME_HOP : start * FRAME_HOP + WINDOW_SAMPLES]
        window = model.layer_activations(window_audio)["conv5_2"]
    inner = slice(18, 32)
    torch.testing.assert_close(
        window[..., inner],
        whole[..., start + inner.start : start + inner.stop],
        rtol=1e-4,
        atol=1e-4 * whole.abs().max().item(),
    )
    assert not torch.allclose(window[..., :3], whole[..., start : start + 3])


def test_fc_frames_at_window_centre_is_the_forward_pass(model):
    audio = torch.randn(2, WINDOW_SAMPLES)
    with torch.inference_mode():
        conv5 = model.layer_activations(audio)["conv5_2"]
        frames = model.fc_frames(conv5)
        logits = model(audio)
    assert frames.shape == (2, 50, WINDOW_FRAMES)
    torch.testing.assert_close(frames[..., WINDOW_FRAMES // 2], logits, rtol=1e-5, atol=1e-5)


def test_fc_frames_cut_the_window_at_the_edges(model):
    conv5 = torch.rand(1, 512, 60)
    with torch.inference_mode():
        frames = model.fc_frames(conv5)
        first = model.fc(conv5[..., :25].mean(-1))
    torch.testing.assert_close(frames[..., 0], first)
    assert np.isfinite(frames.numpy()).all()
