"""Training: the masked loss, a few steps on a tiny batch, checkpoints and resume, bf16."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bidsapp.training.train as train_module
from bidsapp.audio.resnet import ResNet18Audio
from bidsapp.training.data import ClipSet, training_batch
from bidsapp.training.train import TrainConfig, make_optimizer, masked_bce, native_bf16, train


def tiny_set(n: int = 4, samples: int = 6_000) -> ClipSet:
    rng = np.random.default_rng(0)
    t = np.arange(samples) / 16_000
    clips, labels = [], np.zeros((n, 50), np.float32)
    for i in range(n):
        tone = np.sin(2 * np.pi * (200 if i % 2 else 1_500) * t)
        clips.append((0.3 * tone + 0.01 * rng.standard_normal(samples)).astype(np.float32))
        labels[i, 0] = i % 2
    mask = np.zeros((n, 50), bool)
    mask[:, :2] = True
    return ClipSet(clips, labels, mask, [f"c{i}" for i in range(n)])


def test_masked_bce_ignores_unknown_targets():
    logits = torch.tensor([[5.0, -3.0], [0.0, 9.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], labels[:, 0])
    assert torch.isclose(masked_bce(logits, labels, mask), expected)
    assert masked_bce(logits, labels, torch.zeros_like(mask)) == 0


def test_study_optimizer():
    optimizer = make_optimizer(ResNet18Audio(), TrainConfig(out_dir="."))
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (2e-4, (0.5, 0.999), 1e-8)


def test_a_few_steps_reduce_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = ResNet18Audio().train()
    optimizer = make_optimizer(model, TrainConfig(out_dir="."))
    clip_set = tiny_set()
    audio, labels, mask = (torch.from_numpy(a) for a in
                           training_batch(clip_set, 4, seed=0, step=0, crop_samples=2_048))
    losses = []
    for _ in range(5):
        loss = masked_bce(model(audio), labels, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_batches_depend_only_on_seed_and_step():
    clip_set = tiny_set(n=5)
    a = training_batch(clip_set, 3, seed=7, step=4, crop_samples=1_000)
    b = training_batch(clip_set, 3, seed=7, step=4, crop_samples=1_000)
    c = training_batch(clip_set, 3, seed=7, step=5, crop_samples=1_000)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    # a larger batch than the set still works (several passes)
    assert training_batch(clip_set, 12, seed=7, step=0, crop_samples=100)[0].shape == (12, 100)


def test_train_checkpoints_and_resumes(tmp_path):
    clip_set = tiny_set()
    config = TrainConfig(out_dir=str(tmp_path), batch_size=2, max_steps=2, eval_every=2,
                         checkpoint_every=1, log_every=1, device="cpu", crop_samples=1_024)
    first = train(clip_set, clip_set, config)
    assert first["steps"] == 2 and first["stopped"] == "max_steps"
    assert {p.name for p in tmp_path.iterdir()} >= {"last.pt", "best.pt", "history.jsonl"}
    resumed = train(clip_set, clip_set, TrainConfig(**{**config.__dict__, "max_steps": 3}))
    assert resumed["steps"] == 3 and resumed["samples"] == 6
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().split("\n")
               if line]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    stopped = train(clip_set, None, TrainConfig(**{**config.__dict__, "max_steps": 9,
                                                   "stop_at": "2000-01-01T00:00"}))
    assert stopped["stopped"] == "stop_at" and stopped["steps"] == 3


def _two_steps(tmp_path, name, amp):
    config = TrainConfig(out_dir=str(tmp_path / name), batch_size=2, max_steps=2, eval_every=99,
                         checkpoint_every=2, log_every=1, device="cpu", crop_samples=1_024,
                         amp=amp)
    train(tiny_set(), None, config)
    return torch.load(tmp_path / name / "last.pt", weights_only=False)["model"]


def test_bf16_without_native_support_trains_exactly_as_float32(tmp_path, monkeypatch, caplog):
    reference = _two_steps(tmp_path, "float32", "none")
    monkeypatch.setattr(train_module, "native_bf16", lambda device: False)
    fallback = _two_steps(tmp_path, "fallback", "bf16")
    assert "no native bfloat16" in caplog.text
    assert all(torch.equal(reference[k], fallback[k]) for k in reference)


def test_bf16_on_a_native_cpu_autocasts_the_forward_pass(tmp_path):
    if not native_bf16(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
    reference = _two_steps(tmp_path, "float32", "none")
    autocast = _two_steps(tmp_path, "bf16", "bf16")
    weights = [k for k in reference if k.endswith("weight")]
    # Adam's first steps move each weight by about lr whatever the gradient's size, so the
    # two runs stay within a few lr of each other, yet bfloat16 gradients are not float32's.
    assert not all(torch.equal(reference[k], autocast[k]) for k in weights)
    assert max(float((reference[k] - autocast[k]).abs().max()) for k in weights) < 1e-3
