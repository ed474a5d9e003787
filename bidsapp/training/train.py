"""Train the study's ResNet-18 on tagged clips: the study's recipe, checkpoints, resume.

The recipe is the study's: He initialisation (the model's own), Adam with lr 2e-4,
beta1 0.5, beta2 0.999, eps 1e-8, mini-batches of 36 random 50,176-sample crops, binary
cross-entropy on the 50 sigmoid outputs and no dropout.  The loss is averaged over the
targets that are known (the mask), so tags a data set says nothing about do not pull the
outputs towards "absent".

A run writes into one folder: ``last.pt`` (model, optimiser and step, written every
``checkpoint_every`` steps and at the end), ``best.pt`` (the weights with the best
validation mean ROC-AUC so far), ``history.jsonl`` (one line per logged step and per
validation) and ``train.log``.  Starting again with the same folder resumes from
``last.pt``; the batches depend only on the seed and the step, so a resumed run sees the
same data as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from bidsapp.audio.resnet import WINDOW_SAMPLES, ResNet18Audio
from bidsapp.device import resolve_device

from .data import ClipSet, DeviceClipBank, training_batch
from .export import load_exported_model
from .metrics import evaluate_clips, predict_clips, teacher_metrics

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (saved in every checkpoint).

    Attributes
    ----------
    out_dir : str
        Folder of checkpoints and logs.
    batch_size : int
        Crops per step (the study: 36).
    lr, beta1, beta2, eps : float
        Adam's parameters (the study: 2e-4, 0.5, 0.999, 1e-8).
    seed : int
        Fixes the initial weights and every batch.
    max_steps : int
        Stop after this many steps.
    stop_at : str or None
        Stop at this local wall-clock time (ISO ``YYYY-MM-DDTHH:MM``) even if steps remain.
    eval_every, checkpoint_every, log_every : int
        Steps between validations, checkpoints and progress lines.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    threads : int
        CPU threads for torch (0 keeps torch's default).
    crop_samples : int
        Length of the random training crops (the study: 50,176 samples).
    amp : str
        ``none`` (float32) or ``bf16``: bfloat16 autocast of the forward pass where the
        device computes bfloat16 natively (:func:`native_bf16`), about twice as fast on
        Hopper GPUs and on AVX512-BF16 CPUs; weights, optimiser and loss stay float32.
    real_fraction : float
        Share of each batch drawn from the real-music set (distillation), 0 without one.
    init_weights : str or None
        Exported weights (``.safetensors``) to start from instead of He initialisation;
        ignored when the run resumes from ``last.pt``.
    """

    out_dir: str
    batch_size: int = 36
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    max_steps: int = 100_000
    stop_at: str | None = None
    eval_every: int = 200
    checkpoint_every: int = 25
    log_every: int = 5
    device: str = "auto"
    threads: int = 0
    crop_samples: int = WINDOW_SAMPLES
    amp: str = "none"
    real_fraction: float = 0.0
    init_weights: str | None = None


def mixed_batch(train_set: ClipSet, real_set: ClipSet | None, config: TrainConfig, step: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw batch ``step``: ``real_fraction`` of it from the real-music set, the rest rendered.

    Each part is a :func:`~bidsapp.training.data.training_batch` of its own set with its own
    seed stream, so each set is still walked through in per-epoch permutations and a resumed
    run sees the same batches.

    Parameters
    ----------
    train_set : ClipSet
        The rendered (or MTT) training clips, with true tags.
    real_set : ClipSet or None
        Real-music windows with the teacher's probabilities as labels.
    config : TrainConfig
        Batch size, seed, crop length and ``real_fraction``.
    step : int
        Zero-based step.

    Returns
    -------
    audio, labels, mask : numpy.ndarray
        As :func:`~bidsapp.training.data.training_batch`, real windows last.
    """
    n_real = 0 if real_set is None else int(round(config.batch_size * config.real_fraction))
    parts = []
    if n_real < config.batch_size:
        parts.append(training_batch(train_set, config.batch_size - n_real, config.seed, step,
                                    config.crop_samples))
    if n_real:
        parts.append(training_batch(real_set, n_real, config.seed + REAL_SEED_OFFSET, step,
                                    config.crop_samples))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))


REAL_SEED_OFFSET = 1_000_003
"""Keeps the real-music draws apart from the rendered ones of the same seed."""


def native_bf16(device: torch.device) -> bool:
    """Return whether ``device`` computes bfloat16 natively.

    Elsewhere torch emulates it, and autocast makes training slower instead of faster.

    Parameters
    ----------
    device : torch.device
        A CUDA device, or the CPU (oneDNN's check for AVX512-BF16 or AMX).

    Returns
    -------
    bool
        True for a CUDA GPU with bfloat16 support or a CPU with native bfloat16 kernels.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def optimisation_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      audio: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, *,
                      bf16: bool = False) -> torch.Tensor:
    """Run one Adam update of the study's recipe on a batch; return its loss (on the device).

    Parameters
    ----------
    model : torch.nn.Module
        The network, in training mode.
    optimizer : torch.optim.Optimizer
        Its optimiser (:func:`make_optimizer`).
    audio, labels, mask : torch.Tensor
        The batch (:func:`mixed_batch` or :func:`~bidsapp.training.data.training_batch`).
    bf16 : bool, optional
        bfloat16 autocast of the forward pass; the loss and the update stay float32.

    Returns
    -------
    torch.Tensor
        The masked BCE of the batch, not detached from the device.
    """
    with torch.autocast(audio.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(audio)
    loss = masked_bce(logits.float(), labels, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return binary cross-entropy averaged over the known targets only.

    Parameters
    ----------
    logits, labels, mask : torch.Tensor
        Shape (batch, 50); ``mask`` is 1 where the target is known.

    Returns
    -------
    torch.Tensor
        A scalar; 0 when nothing is known.
    """
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Return Adam with the study's parameters (from ``config``)."""
    return torch.optim.Adam(model.parameters(), lr=config.lr,
                            betas=(config.beta1, config.beta2), eps=config.eps)


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _deadline(stop_at: str | None) -> float | None:
    if not stop_at:
        return None
    return datetime.fromisoformat(stop_at).timestamp()


def train(train_set: ClipSet, validation_set: ClipSet | None, config: TrainConfig, *,
          real_set: ClipSet | None = None, real_validation: ClipSet | None = None) -> dict:
    """Train (or resume training) and return a summary.

    With ``real_set`` (distillation) each batch mixes rendered clips and real-music windows
    (:func:`mixed_batch`); the real windows' labels are the teacher's probabilities, so the
    same masked binary cross-entropy is the soft-target loss on them.  With
    ``real_validation``, ``best.pt`` is picked by the mean of the rendered validation
    ROC-AUC and the ROC-AUC against the teacher's binarised tags on the real validation
    windows (:func:`~bidsapp.training.metrics.teacher_metrics`), so neither may fall for the
    other.

    Parameters
    ----------
    train_set : ClipSet
        Training clips.
    validation_set : ClipSet or None
        Clips whose mean ROC-AUC picks ``best.pt``; without it, ``best.pt`` is the last.
    config : TrainConfig
        The run's options.
    real_set, real_validation : ClipSet, optional
        Real-music windows labelled by the teacher, for training and validation.

    Returns
    -------
    dict
        ``steps``, ``samples``, ``seconds`` (training wall time of all sessions),
        ``best_step``, ``best_validation`` and ``stopped`` (why it stopped).
    """
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.amp not in ("none", "bf16"):
        raise ValueError(f"amp must be 'none' or 'bf16', not {config.amp!r}")
    torch.manual_seed(config.seed)
    model = ResNet18Audio().to(device)
    if config.init_weights and not (out / "last.pt").is_file():
        start = load_exported_model(config.init_weights, device)
        model.load_state_dict(start.state_dict())
        LOGGER.info("Starting from %s", config.init_weights)
    bank = None
    if device.type == "cuda":
        # Fixed input shapes (every clip, rendered or real, is cropped to crop_samples): let
        # cuDNN pick its fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True
        if real_set is None and DeviceClipBank.supports(train_set, config.crop_samples):
            bank = DeviceClipBank(train_set, device)
            LOGGER.info("Training clips held on %s (%.0f MB)", device,
                        bank.bank.numel() * 2 / 1e6)
    use_bf16 = config.amp == "bf16" and native_bf16(device)
    if config.amp == "bf16" and not use_bf16:
        LOGGER.warning("--amp bf16: %s has no native bfloat16 arithmetic, where autocast would "
                       "be slower than float32; training in float32", device)
    optimizer = make_optimizer(model, config)
    state = {"step": 0, "seconds": 0.0, "best_score": -1.0, "best_step": -1, "validated": -1}
    if (out / "last.pt").is_file():
        checkpoint = torch.load(out / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state.update({k: checkpoint[k] for k in ("step", "seconds", "best_score", "best_step")})
        LOGGER.info("Resuming from step %d (%s)", state["step"], out / "last.pt")
    deadline = _deadline(config.stop_at)
    started_at = time.time()
    history = open(out / "history.jsonl", "a")  # noqa: SIM115 -- closed in finally
    session_start, stopped = time.monotonic(), "max_steps"
    seconds_before = state["seconds"]
    recent: list[torch.Tensor] = []
    logged_at, logged_step = time.monotonic(), state["step"]

    def checkpoint() -> None:
        state["seconds"] = seconds_before + time.monotonic() - session_start
        _save(out / "last.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "config": asdict(config), **{k: state[k] for k in
                                ("step", "seconds", "best_score", "best_step")}})

    def validate() -> None:
        if validation_set is None or state["validated"] == state["step"]:
            return
        state["validated"] = state["step"]
        result = evaluate_clips(model, validation_set, device=device)
        score = result["mean_roc_auc"]
        record = {"step": state["step"], "validation_mean_roc_auc": score,
                  "validation_mean_pr_auc": result["mean_pr_auc"], "time": time.time()}
        if real_validation is not None:
            real = teacher_metrics(predict_clips(model, real_validation, device=device),
                                   real_validation.labels)
            record["real_validation_mean_roc_auc"] = real["mean_roc_auc"]
            record["real_validation_mean_spearman"] = real["mean_spearman"]
            result["real"] = real
            LOGGER.info("step %d real-music validation: ROC-AUC against the teacher %.4f, "
                        "Spearman %.4f", state["step"], real["mean_roc_auc"],
                        real["mean_spearman"])
            score = (score + real["mean_roc_auc"]) / 2
        model.train()
        history.write(json.dumps(record) + "\n")
        history.flush()
        LOGGER.info("step %d validation: mean ROC-AUC %.4f, PR-AUC %.4f", state["step"], score,
                    result["mean_pr_auc"])
        if score > state["best_score"]:
            state["best_score"], state["best_step"] = score, state["step"]
            _save(out / "best.pt", {"model": model.state_dict(), "step": state["step"],
                                    "validation": result, "config": asdict(config)})

    try:
        model.train()
        while state["step"] < config.max_steps:
            if deadline is not None and time.time() >= deadline:
                stopped = "stop_at"
                break
            if bank is not None:
                audio, labels, mask = bank.batch(config.batch_size, config.seed, state["step"],
                                                 config.crop_samples)
            else:
                audio, labels, mask = (torch.from_numpy(x).to(device) for x in mixed_batch(
                    train_set, real_set, config, state["step"]))
            loss = optimisation_step(model, optimizer, audio, labels, mask, bf16=use_bf16)
            state["step"] += 1
            # Kept on the device: reading the loss every step would stall a GPU.
            recent.append(loss.detach())
            if state["step"] % config.log_every == 0:
                mean_loss = float(torch.stack(recent).mean())
                now = time.monotonic()
                rate = (state["step"] - logged_step) * config.batch_size / max(
                    now - logged_at, 1e-9)
                logged_at, logged_step = now, state["step"]
                fraction = state["step"] / config.max_steps
                if deadline is not None:
                    fraction = max(fraction, (time.time() - started_at) / max(
                        deadline - started_at, 1e-9))
                _progress(state["step"], fraction, mean_loss, rate)
                history.write(json.dumps({"step": state["step"], "loss": mean_loss,
                                          "samples_per_s": rate, "time": time.time()}) + "\n")
                history.flush()
                recent.clear()
            if state["step"] % config.checkpoint_every == 0:
                checkpoint()
            if state["step"] % config.eval_every == 0:
                validate()
                logged_at = time.monotonic()
        validate()
        if validation_set is None:
            _save(out / "best.pt", {"model": model.state_dict(), "step": state["step"],
                                    "validation": None, "config": asdict(config)})
        checkpoint()
    finally:
        history.close()
    summary = {"steps": state["step"], "samples": state["step"] * config.batch_size,
               "seconds": round(state["seconds"], 1), "best_step": state["best_step"],
               "best_validation": state["best_score"], "stopped": stopped}
    LOGGER.info("Training stopped (%s): %s", stopped, summary)
    return summary


def _progress(step: int, fraction: float, loss: float, rate: float) -> None:
    # A text bar in the log (steps or wall-clock budget used, whichever is further), so a
    # run under nohup shows its progress in train.log.
    width = 30
    done = int(width * min(max(fraction, 0.0), 1.0))
    LOGGER.info("[%s%s] %3.0f%% step %d loss %.4f %.1f samples/s", "#" * done,
                "." * (width - done), 100 * min(fraction, 1.0), step, loss, rate)
