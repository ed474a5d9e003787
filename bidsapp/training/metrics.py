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


def teacher_metrics(probabilities: np.ndarray, teacher: np.ndarray, *, threshold: float = 0.5,
                    min_count: int = 5, tags: tuple[str, ...] | list[str] = TAGS) -> dict:
    """Return how well the network agrees with a teacher's soft tags.

    Parameters
    ----------
    probabilities : numpy.ndarray
        The network's (n_windows, 50) probabilities.
    teacher : numpy.ndarray
        The teacher's (n_windows, 50) probabilities, same columns.
    threshold : float, optional
        The teacher's tags are binarised at ``p >= threshold`` for ROC-AUC.
    min_count : int, optional
        A tag is scored by ROC-AUC only with at least this many positive and negative windows.
    tags : sequence of str, optional
        Names of the 50 columns.

    Returns
    -------
    dict
        ``per_tag``: tag -> ``{"roc_auc", "pr_auc", "positives", "clips"}`` for the tags with
        enough of both classes; ``mean_roc_auc``, ``mean_pr_auc`` and ``min_roc_auc`` over
        them; ``spearman``: tag -> Spearman correlation of the two probabilities over all
        windows (every tag whose teacher output varies); ``mean_spearman``; ``n_clips``.
    """
    # scipy.stats takes a second to import and only evaluation needs it.
    from scipy.stats import spearmanr

    per_tag, spearman = {}, {}
    for column, tag in enumerate(tags):
        truth = teacher[:, column] >= threshold
        if min_count <= truth.sum() <= truth.size - min_count:
            score = probabilities[:, column]
            per_tag[tag] = {"roc_auc": float(roc_auc_score(truth, score)),
                            "pr_auc": float(average_precision_score(truth, score)),
                            "positives": int(truth.sum()), "clips": int(truth.size)}
        if np.ptp(teacher[:, column]) > 0 and np.ptp(probabilities[:, column]) > 0:
            spearman[tag] = float(spearmanr(probabilities[:, column], teacher[:, column])[0])
    roc = [m["roc_auc"] for m in per_tag.values()]
    return {
        "per_tag": per_tag,
        "mean_roc_auc": float(np.mean(roc)) if roc else float("nan"),
        "mean_pr_auc": float(np.mean([m["pr_auc"] for m in per_tag.values()]))
        if roc else float("nan"),
        "min_roc_auc": float(np.min(roc)) if roc else float("nan"),
        "spearman": spearman,
        "mean_spearman": float(np.mean(list(spearman.values()))) if spearman else float("nan"),
        "n_clips": int(len(teacher)),
    }
