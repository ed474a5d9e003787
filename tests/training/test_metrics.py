"""Whole-clip prediction and the per-tag metrics."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from bidsapp.audio.resnet import ResNet18Audio
from bidsapp.audio.weightfile import TAGS
from bidsapp.training.data import ClipSet
from bidsapp.training.metrics import predict_clips, tag_metrics


def test_tag_metrics_match_sklearn_on_known_targets():
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 50)) < 0.3).astype(np.float32)
    scores = np.clip(labels * 0.4 + rng.random((40, 50)) * 0.6, 0, 1)
    mask = np.ones((40, 50), bool)
    mask[:10, 0] = False
    mask[:, 1] = False  # never known: no metric
    labels[:, 2] = 1.0  # one class only: no metric
    result = tag_metrics(scores, labels, mask)
    assert TAGS[1] not in result["per_tag"] and TAGS[2] not in result["per_tag"]
    first = result["per_tag"][TAGS[0]]
    assert np.isclose(first["roc_auc"], roc_auc_score(labels[10:, 0], scores[10:, 0]))
    assert np.isclose(first["pr_auc"], average_precision_score(labels[10:, 0], scores[10:, 0]))
    assert first["clips"] == 30
    assert np.isclose(result["mean_roc_auc"],
                      np.mean([m["roc_auc"] for m in result["per_tag"].values()]))


def test_whole_clip_prediction_is_the_average_pool_over_the_clip():
    torch.manual_seed(0)
    model = ResNet18Audio().eval()
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (5_000, 5_000, 7_000)]
    clip_set = ClipSet(clips, np.zeros((3, 50), np.float32), np.ones((3, 50), bool),
                       ["a", "b", "c"])
    probabilities = predict_clips(model, clip_set, batch_size=2)
    with torch.no_grad():
        conv5 = model.layer_activations(torch.from_numpy(clips[2])[None])["conv5_2"]
        expected = torch.sigmoid(model.fc(conv5.mean(dim=-1)))[0].numpy()
    np.testing.assert_allclose(probabilities[2], expected, atol=1e-5)
    assert probabilities.shape == (3, 50)
