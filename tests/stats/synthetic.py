"""Synthetic searchlight data for the statistics tests (not collected by pytest).

A small, independent searchlight written with scipy (ranks and matrix products) stands
in for :func:`bidsapp.rsa.searchlight`.  The data imitate the study's pipeline:

- candidate features: per layer, 32 positive units driven by a mix of a component shared
  by all layers and one of their own, convolved with the canonical HRF from silence at
  each trial's onset, so every trial starts with the same ramp;
- target patterns: per voxel, AR(1) noise (``phi`` 0.6) smoothed in space (sigma 1 voxel)
  plus a response to sound onset that is the same in every trial (sustained plus a
  transient adapting with a 5-s time constant; random amplitude per voxel, ``onset_gain``
  times the noise level; 0 switches it off), and, in planted spheres
  only, a random mix of one layer's units (``gain``);
- the first 6 s of every trial are dropped, trials are stacked, voxels z-scored.

Under the null (no sphere) brain and features share only the trial-locked ramp and
their autocorrelation, which is what biases RDM correlations upward in real data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, stats
from scipy.spatial import cKDTree

from bidsapp.stats import participant_null, participant_seed

TR = 1.5
N_UNITS = 32


def reference_searchlight(patterns, neighbors, candidate_rdms, chunk=128):
    """Spearman(target RDM, candidate RDM) per center and candidate; scipy reference."""
    n_tr = patterns.shape[0]
    iu = np.triu_indices(n_tr, 1)
    # Spearman values over few voxels or units repeat; rounding makes float noise exact ties.
    cand = stats.rankdata(np.round(np.asarray(candidate_rdms)[:, iu[0], iu[1]], 9), axis=1)
    cand -= cand.mean(axis=1, keepdims=True)
    cand /= np.linalg.norm(cand, axis=1, keepdims=True)
    out = np.empty((len(neighbors), len(cand)), dtype=np.float32)
    for start in range(0, len(neighbors), chunk):
        idx = neighbors[start:start + chunk]
        x = stats.rankdata(patterns[:, idx].transpose(1, 2, 0), axis=1)  # (C, n, T)
        x -= x.mean(axis=1, keepdims=True)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        target = 1.0 - np.matmul(x.transpose(0, 2, 1), x)[:, iu[0], iu[1]]
        target = stats.rankdata(np.round(target, 9), axis=1)
        target -= target.mean(axis=1, keepdims=True)
        target /= np.linalg.norm(target, axis=1, keepdims=True)
        out[start:start + chunk] = target @ cand.T
    return out


def nearest_neighbors(mask, n):
    """The n nearest in-mask voxels (center first) of every in-mask voxel."""
    coords = np.argwhere(mask)
    _, idx = cKDTree(coords).query(coords, k=n)
    return idx


def rdm(features):
    """1 - Spearman between the TR columns of a units x TRs array."""
    ranks = stats.rankdata(features, axis=0)
    ranks -= ranks.mean(axis=0)
    ranks /= np.linalg.norm(ranks, axis=0)
    return 1.0 - ranks.T @ ranks


def hrf(tr=TR, length=30.0):
    t = np.arange(0, length, tr)
    h = stats.gamma.pdf(t, 6) - stats.gamma.pdf(t, 16) / 6.0
    return h / h.sum()


@dataclass
class Design:
    shape: tuple = (12, 12, 12)
    n_trials: int = 8
    trial_seconds: float | tuple = 24.0  # one length, or one per trial (unequal trials)
    drop_seconds: float = 6.0
    n_layers: int = 10
    n_neighbors: int = 19
    shared: float = 0.5
    planted: dict = field(default_factory=dict)  # layer (1-based) -> (center, radius)
    gain: float = 0.8
    onset_gain: float = 0.0
    phi: float = 0.6

    @property
    def n_trs(self):
        """TRs of each trial before the drop."""
        seconds = self.trial_seconds
        if np.ndim(seconds) == 0:
            seconds = [seconds] * self.n_trials
        if len(seconds) != self.n_trials:
            raise ValueError("give one trial length per trial")
        return [int(round(s / TR)) for s in seconds]

    @property
    def n_tr(self):
        """The longest trial: every trial is simulated this long, then cut to its own."""
        return max(self.n_trs)

    @property
    def n_drop(self):
        return int(np.ceil(self.drop_seconds / TR))

    @property
    def trial_lengths(self):
        return [n - self.n_drop for n in self.n_trs]

    def mask(self):
        grid = np.indices(self.shape).transpose(1, 2, 3, 0)
        center = (np.array(self.shape) - 1) / 2
        return np.linalg.norm(grid - center, axis=-1) <= min(self.shape) / 2 - 0.5

    def truth(self):
        """Planted layer per in-mask voxel (0 = null)."""
        coords = np.argwhere(self.mask())
        truth = np.zeros(len(coords), dtype=np.int16)
        for layer, (center, radius) in self.planted.items():
            truth[np.linalg.norm(coords - np.asarray(center), axis=1) <= radius] = layer
        return truth


def simulate_features(design, rng):
    """Per layer, per trial: (units, n_tr) features convolved from silence at onset.

    Every trial is drawn ``design.n_tr`` long, so that equal trials get the same draws
    whatever the lengths of the others; :func:`cut` gives each its own length.
    """
    kernel = hrf()
    out = []
    shared = rng.standard_normal((design.n_trials, N_UNITS, design.n_tr))
    for _ in range(design.n_layers):
        own = rng.standard_normal((design.n_trials, N_UNITS, design.n_tr))
        drive = np.sqrt(design.shared) * shared + np.sqrt(1 - design.shared) * own
        units = np.logaddexp(0, drive)  # softplus: positive like ReLU activations
        conv = np.stack([[np.convolve(u, kernel)[:design.n_tr] for u in trial]
                         for trial in units])
        out.append(conv)
    return out  # list over layers of (n_trials, units, n_tr)


def cut(design, trials):
    """Trials (n_trials, ..., n_tr) cut to their own lengths along the time (last) axis."""
    return [trial[..., :n] for trial, n in zip(trials, design.n_trs, strict=True)]


def simulate_participant(design, features, rng):
    """Stacked, z-scored patterns (T, V) of one participant."""
    mask = design.mask()
    n_tr, n_trials = design.n_tr, design.n_trials
    phi = design.phi
    noise = np.empty((n_trials, n_tr) + design.shape)
    noise[:, 0] = rng.standard_normal((n_trials,) + design.shape)
    for t in range(1, n_tr):
        noise[:, t] = phi * noise[:, t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(
            (n_trials,) + design.shape)
    noise = ndimage.gaussian_filter(noise, sigma=(0, 0, 1, 1, 1))
    noise /= noise.std()
    data = noise[..., mask]  # (n_trials, n_tr, V)
    # Sound onset: a sustained response plus a transient that adapts with a 5-s time
    # constant, so some of it outlasts the dropped first seconds.
    seconds = np.arange(n_tr) * TR
    onset = np.convolve(1.0 + 2.0 * np.exp(-seconds / 5.0), hrf())[:n_tr]
    onset /= onset[design.n_drop:].std()
    data += design.onset_gain * onset[None, :, None] * rng.standard_normal(data.shape[-1])
    truth = design.truth()
    for layer in np.unique(truth[truth > 0]):
        voxels = np.flatnonzero(truth == layer)
        feats = features[layer - 1]  # (n_trials, units, n_tr)
        feats = (feats - feats.mean(axis=(0, 2), keepdims=True)) / feats.std()
        weights = rng.standard_normal((N_UNITS, voxels.size)) / np.sqrt(N_UNITS)
        data[..., voxels] += design.gain * np.einsum("kut,uv->ktv", feats, weights)
    patterns = np.concatenate([trial[design.n_drop:n] for trial, n in
                               zip(data, design.n_trs, strict=True)], axis=0)
    return stats.zscore(patterns, axis=0)


def simulate_group(design, n_subjects, n_permutations, seed, searchlight=None):
    """r (n, L, V), null max r (n, K, V), truth (V,), the mask and the candidate RDMs."""
    searchlight = searchlight or reference_searchlight
    rng = np.random.default_rng(seed)
    features = simulate_features(design, rng)
    candidates = np.stack([rdm(np.concatenate([trial[:, design.n_drop:]
                                               for trial in cut(design, layer)], axis=1))
                           for layer in features])
    neighbors = nearest_neighbors(design.mask(), design.n_neighbors)
    r, nulls = [], []
    for s in range(n_subjects):
        patterns = simulate_participant(design, features, rng)
        r.append(searchlight(patterns, neighbors, candidates).T)
        if n_permutations:
            null = participant_null(patterns, neighbors, candidates, design.trial_lengths,
                                    n_permutations, participant_seed(seed, f"{s:02d}"),
                                    searchlight)
            nulls.append(null.max_r)
    return {
        "r": np.stack(r),
        "null": np.stack(nulls) if nulls else None,
        "truth": design.truth(),
        "mask": design.mask(),
        "candidates": candidates,
    }


SCENARIOS = {
    "white": {"phi": 0.0, "onset_gain": 0.0},
    "autocorrelated": {"phi": 0.6, "onset_gain": 0.0},
    "autocorrelated+onset": {"phi": 0.6, "onset_gain": 0.5},
}


def null_fpr(scenario, n_reps, n_subjects, n_permutations, q=0.05, seed=0, n_draws=10_000,
             design_kwargs=None):
    """False positives of both tests on null data, one row per replication.

    Each row: the fraction of voxels in each test's FDR mask (all voxels are null) and
    whether the mask is non-empty (under the complete null, the FDR equals that).
    """
    from bidsapp.stats import permutation_statistics, study_statistics

    rows = []
    for rep in range(n_reps):
        design = Design(**SCENARIOS[scenario], **(design_kwargs or {}))
        data = simulate_group(design, n_subjects, n_permutations, seed=seed + 1000 * rep)
        study = study_statistics(data["r"], q)
        perm = permutation_statistics(study.max_r, list(data["null"]), q, n_draws, seed + rep)
        rows.append({
            "scenario": scenario,
            "rep": rep,
            "mean_r": float(np.mean(data["r"])),
            "mean_max_r": float(study.mean_max_r.mean()),
            "study_fpr": float(study.significant.mean()),
            "perm_fpr": float(perm.significant.mean()),
            "study_any": bool(study.significant.any()),
            "perm_any": bool(perm.significant.any()),
            "study_uncorrected_05": float(np.mean(study.p < 0.05)),
            "perm_uncorrected_05": float(np.mean(perm.p < 0.05)),
        })
    return rows
