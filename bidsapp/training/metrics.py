"""Whole-clip tag predictions and per-tag ROC-AUC and PR-AUC.

As in the study, a clip is predicted by sliding the network over all of it: the
convolutional part runs over the whole clip, its conv5 frames are averaged (the global
average pool) and the fc layer turns the average into 50 logits.  Metrics come from
scikit-learn: ``roc_auc_score`` and ``average_precision_score`` (the usual estimate of the
area under the precision-recall curve), per tag over the clips whose target is known, and
their mean over the tags that have both positive and negative clips.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from bidsapp.audio.weightfile import TAGS

from .data import ClipSet


@torch.no_grad()
def predict_clips(model: torch.nn.Module, clip_set: ClipSet, *, device: str | torch.device = "cpu",
                  batch_size: int = 8) -> np.ndarray:
    """Return every clip's whole-clip tag probabilities.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~bidsapp.audio.resnet.ResNet18Audio`; switched to evaluation mode.
    clip_set : ClipSet
        The clips.
    device : str or torch.device, optional
        Where to run.
    batch_size : int, optional
        Consecutive clips of equal length run together in batches of up to this size.

    Returns
    -------
    numpy.ndarray
        Shape (n_clips, 50), sigmoid of the logits of the whole-clip average.
    """
    model.eval()
    probabilities = np.zeros((len(clip_set), len(TAGS)), dtype=np.float32)
    pending: list[tuple[int, np.ndarray]] = []

    def run() -> None:
        batch = torch.from_numpy(np.stack([audio for _, audio in pending])).to(device)
        probabilities[[i for i, _ in pending]] = torch.sigmoid(model(batch)).float().cpu().numpy()
        pending.clear()

    # Streamed in order, so memory stays bounded (an MTT split is hours of audio);
    # consecutive clips of equal length share a forward pass.
    for index in range(len(clip_set)):
        audio = clip_set.audio(index)
        if pending and (audio.size != pending[0][1].size or len(pending) == batch_size):
            run()
        pending.append((index, audio))
    if pending:
        run()
    return probabilities


def tag_metrics(probabilities: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                tags: tuple[str, ...] | list[str] = TAGS) -> dict:
    """Return per-tag and mean ROC-AUC and PR-AUC.

    Parameters
    ----------
    probabilities, labels : numpy.ndarray
        Shape (n_clips, 50).
    mask : numpy.ndarray
        Shape (n_clips, 50), true where the target is known.
    tags : sequence of str, optional
        Names of the 50 columns.

    Returns
    -------
    dict
        ``per_tag``: tag -> ``{"roc_auc", "pr_auc", "positives", "clips"}`` for every tag
        with at least one positive and one negative known clip; ``mean_roc_auc`` and
        ``mean_pr_auc`` over those tags (NaN when there are none); ``n_clips``.
    """
    per_tag = {}
    for column, tag in enumerate(tags):
        known = np.asarray(mask[:, column], dtype=bool)
        truth = labels[known, column] > 0.5
        if truth.all() or not truth.any():
            continue
        score = probabilities[known, column]
        per_tag[tag] = {
            "roc_auc": float(roc_auc_score(truth, score)),
            "pr_auc": float(average_precision_score(truth, score)),
            "positives": int(truth.sum()),
            "clips": int(known.sum()),
        }
    roc = [m["roc_auc"] for m in per_tag.values()]
    pr = [m["pr_auc"] for m in per_tag.values()]
    return {
        "per_tag": per_tag,
        "mean_roc_auc": float(np.mean(roc)) if roc else float("nan"),
        "mean_pr_auc": float(np.mean(pr)) if pr else float("nan"),
        "n_clips": int(len(labels)),
    }


def evaluate_clips(model: torch.nn.Module, clip_set: ClipSet, *,
                   device: str | torch.device = "cpu", batch_size: int = 8) -> dict:
    """Predict whole clips and return :func:`tag_metrics` of the predictions.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    clip_set : ClipSet
        Clips with labels and mask.
    device : str or torch.device, optional
        Where to run.
    batch_size : int, optional
        Clips per forward pass.

    Returns
    -------
    dict
        As :func:`tag_metrics`.
    """
    probabilities = predict_clips(model, clip_set, device=device, batch_size=batch_size)
    return tag_metrics(probabilities, clip_set.labels, clip_set.mask)
