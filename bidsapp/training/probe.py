"""Hierarchy check: how linearly decodable the tags are from each of the ten layers.

For every clip, each layer's activations are averaged over time (``conv1`` ... ``conv5_2``)
or taken as the whole-clip logits (``fc``).  One logistic regression per supervised tag is
fitted on training clips' features (standardised) and scored by ROC-AUC on held-out clips.
If the layers form a hierarchy towards the tags, the mean probe ROC-AUC rises with depth.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from bidsapp.audio.resnet import LAYER_NAMES
from bidsapp.audio.weightfile import TAGS

from .data import ClipSet


@torch.no_grad()
def clip_layer_means(model: torch.nn.Module, clip_set: ClipSet, *,
                     device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Return each layer's time-averaged activations per clip.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~bidsapp.audio.resnet.ResNet18Audio`.
    clip_set : ClipSet
        The clips, each run whole.
    device : str or torch.device, optional
        Where to run.

    Returns
    -------
    dict of str to numpy.ndarray
        Layer name -> (n_clips, width); ``fc`` holds the whole-clip logits.
    """
    model.eval()
    features: dict[str, list[np.ndarray]] = {name: [] for name in LAYER_NAMES}
    for index in range(len(clip_set)):
        audio = torch.from_numpy(clip_set.audio(index))[None].to(device)
        activations = model.layer_activations(audio)
        for name, value in activations.items():
            features[name].append(value.mean(dim=-1)[0].float().cpu().numpy())
        features["fc"].append(model.fc(activations["conv5_2"].mean(dim=-1))[0].cpu().numpy())
    return {name: np.stack(rows) for name, rows in features.items()}


def probe_layers(model: torch.nn.Module, train_set: ClipSet, test_set: ClipSet, *,
                 device: str | torch.device = "cpu", train_clips: int = 600,
                 seed: int = 0, test_features: dict[str, np.ndarray] | None = None) -> dict:
    """Fit per-tag logistic-regression probes on every layer and score them on held-out clips.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    train_set : ClipSet
        Clips to fit the probes on (a random subset of ``train_clips`` is used).
    test_set : ClipSet
        Held-out clips to score them on.
    device : str or torch.device, optional
        Where to run the network.
    train_clips : int, optional
        Size of the fitting subset.
    seed : int, optional
        Picks the subset.
    test_features : dict, optional
        :func:`clip_layer_means` of ``test_set`` when already computed.

    Returns
    -------
    dict
        ``mean_roc_auc``: layer -> mean over tags; ``per_tag``: layer -> tag -> ROC-AUC;
        ``tags``: the tags scored (known, with both classes in both sets);
        ``train_clips``, ``test_clips``.
    """
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(train_set), size=min(train_clips, len(train_set)),
                                replace=False))
    fit_set = train_set.subset(chosen.tolist())
    fit_features = clip_layer_means(model, fit_set, device=device)
    if test_features is None:
        test_features = clip_layer_means(model, test_set, device=device)
    usable = []
    for column, tag in enumerate(TAGS):
        fit_known, test_known = fit_set.mask[:, column], test_set.mask[:, column]
        fit_y = fit_set.labels[fit_known, column] > 0.5
        test_y = test_set.labels[test_known, column] > 0.5
        if 0 < fit_y.sum() < fit_y.size and 0 < test_y.sum() < test_y.size:
            usable.append((column, tag))
    per_tag: dict[str, dict[str, float]] = {}
    for layer in LAYER_NAMES:
        scaler = StandardScaler().fit(fit_features[layer])
        x_fit = scaler.transform(fit_features[layer])
        x_test = scaler.transform(test_features[layer])
        per_tag[layer] = {}
        for column, tag in usable:
            fit_known, test_known = fit_set.mask[:, column], test_set.mask[:, column]
            probe = LogisticRegression(C=0.1, max_iter=2000)
            probe.fit(x_fit[fit_known], fit_set.labels[fit_known, column] > 0.5)
            score = probe.decision_function(x_test[test_known])
            per_tag[layer][tag] = float(roc_auc_score(test_set.labels[test_known, column] > 0.5,
                                                      score))
    return {
        "mean_roc_auc": {layer: float(np.mean(list(per_tag[layer].values())))
                         for layer in LAYER_NAMES},
        "per_tag": per_tag,
        "tags": [tag for _, tag in usable],
        "train_clips": len(fit_set),
        "test_clips": len(test_set),
    }
