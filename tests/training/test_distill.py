"""Distillation: the teacher's tags aligned by name, mixed batches, soft targets, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from test_train import tiny_set

from bidsapp.audio.weightfile import TAGS
from bidsapp.errors import BadDataError
from bidsapp.training.data import ClipSet, binarised
from bidsapp.training.metrics import teacher_metrics
from bidsapp.training.teacher import align_tags, input_frames
from bidsapp.training.train import TrainConfig, masked_bce, mixed_batch, train

# musicnn 0.1.0's configuration.MTT_LABELS, in its order (a fixture: musicnn is not installed
# in the test environment).
MUSICNN_MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir",
    "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral"]


def test_teacher_tags_are_aligned_by_name():
    # musicnn lists the tags in the network's order (both by MTT frequency): identity.
    np.testing.assert_array_equal(align_tags(MUSICNN_MTT_LABELS), np.arange(50))
    # A teacher in another order is matched by name, not by position.
    shuffled = list(np.random.default_rng(0).permutation(MUSICNN_MTT_LABELS))
    order = align_tags(shuffled)
    assert [shuffled[i] for i in order] == list(TAGS)
    teacher_outputs = np.array([[shuffled.index(t) / 50 for t in shuffled]])  # by column
    aligned = teacher_outputs[:, order]
    assert aligned[0, TAGS.index("metal")] == shuffled.index("metal") / 50
    assert align_tags([t.upper() + " " for t in shuffled]).tolist() == order.tolist()


def test_teacher_alignment_rejects_another_vocabulary():
    with pytest.raises(BadDataError, match="missing"):
        align_tags(MUSICNN_MTT_LABELS[:-1] + ["jazz"])
    with pytest.raises(BadDataError):
        align_tags(MUSICNN_MTT_LABELS + ["guitar"])


def test_teacher_input_is_musicnns_three_seconds():
    # musicnn: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1.
    assert input_frames(3.0) == 187


def soft_set(n: int = 4, samples: int = 6_000, seed: int = 1) -> ClipSet:
    rng = np.random.default_rng(seed)
    clips = [(0.3 * rng.standard_normal(samples)).astype(np.float32) for _ in range(n)]
    labels = rng.uniform(0.05, 0.95, (n, 50)).astype(np.float32)
    return ClipSet(clips, labels, np.ones((n, 50), bool), [f"r{i}" for i in range(n)])


def test_mixed_batch_takes_its_share_of_real_windows():
    config = TrainConfig(out_dir=".", batch_size=6, crop_samples=1_000, real_fraction=0.5)
    audio, labels, mask = mixed_batch(tiny_set(), soft_set(), config, step=3)
    assert audio.shape == (6, 1_000) and labels.shape == mask.shape == (6, 50)
    # Rendered clips first (hard 0/1 targets, 2 tags known), then real windows (soft, all known).
    assert mask[:3].sum(axis=1).tolist() == [2, 2, 2] and mask[3:].all()
    assert np.isin(labels[:3, :2], (0.0, 1.0)).all()
    assert ((labels[3:] > 0.05) & (labels[3:] < 0.95)).all()
    again = mixed_batch(tiny_set(), soft_set(), config, step=3)
    np.testing.assert_array_equal(audio, again[0])
    # Without a real set the batch is the rendered one of before (resumed runs unchanged).
    plain = mixed_batch(tiny_set(), None, TrainConfig(out_dir=".", batch_size=6,
                                                      crop_samples=1_000), step=3)
    assert plain[0].shape == (6, 1_000) and mask.dtype == plain[2].dtype


def test_soft_target_loss_is_bce_against_the_teachers_probabilities():
    logits = torch.tensor([[0.3, -1.2]])
    teacher = torch.tensor([[0.8, 0.1]])
    expected = -(teacher * torch.log(torch.sigmoid(logits))
                 + (1 - teacher) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert torch.isclose(masked_bce(logits, teacher, torch.ones_like(teacher)), expected)


def test_a_few_distillation_steps_reduce_the_loss(tmp_path):
    rendered, real = tiny_set(n=2), soft_set(n=2)
    config = TrainConfig(out_dir=str(tmp_path), batch_size=4, max_steps=16, eval_every=100,
                         checkpoint_every=16, log_every=4, device="cpu", crop_samples=2_048,
                         lr=1e-3, real_fraction=0.5)

    def loss_of(state_dict) -> float:
        from bidsapp.audio.resnet import ResNet18Audio
        torch.manual_seed(0)
        model = ResNet18Audio()
        if state_dict is not None:
            model.load_state_dict(state_dict)
        model.train()  # the batch statistics the steps used
        audio, labels, mask = (torch.from_numpy(a) for a in mixed_batch(rendered, real,
                                                                         config, step=0))
        with torch.no_grad():
            return float(masked_bce(model(audio), labels, mask))

    # Soft targets cannot be fitted below their own entropy: compare the loss above it.
    _, labels, mask = mixed_batch(rendered, real, config, step=0)
    p = np.clip(labels, 1e-7, 1 - 1e-7)
    floor = float((-(p * np.log(p) + (1 - p) * np.log(1 - p)) * mask).sum() / mask.sum())
    before = loss_of(None)
    summary = train(rendered, None, config, real_set=real)
    assert summary["steps"] == 16
    after = loss_of(torch.load(tmp_path / "last.pt", weights_only=False)["model"])
    assert after - floor < 0.5 * (before - floor), (before, after, floor)
    record = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[0])
    assert record["step"] == 4 and np.isfinite(record["loss"])


def test_teacher_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(3)
    teacher = rng.uniform(0, 1, (60, 50)).astype(np.float32)
    teacher[:, 1] = 0.1          # never positive: no ROC-AUC, no Spearman (constant)
    teacher[:3, 2] = 0.9         # 3 positives: below the 5 needed for a ROC-AUC
    teacher[3:, 2] = 0.2
    student = (teacher + rng.normal(0, 0.3, teacher.shape)).astype(np.float32)
    result = teacher_metrics(student, teacher)
    assert TAGS[1] not in result["per_tag"] and TAGS[1] not in result["spearman"]
    assert TAGS[2] not in result["per_tag"] and TAGS[2] in result["spearman"]
    truth = teacher[:, 0] >= 0.5
    assert result["per_tag"][TAGS[0]]["roc_auc"] == pytest.approx(
        roc_auc_score(truth, student[:, 0]))
    assert result["spearman"][TAGS[0]] == pytest.approx(
        spearmanr(student[:, 0], teacher[:, 0])[0])
    assert result["min_roc_auc"] <= result["mean_roc_auc"] < 1.0
    assert teacher_metrics(teacher, teacher)["mean_roc_auc"] == 1.0


def test_binarised_cuts_soft_labels_at_one_half():
    real = soft_set(n=3)
    cut = binarised(real)
    np.testing.assert_array_equal(cut.labels, (real.labels >= 0.5).astype(np.float32))
    assert cut.names == real.names and cut.clips is real.clips
