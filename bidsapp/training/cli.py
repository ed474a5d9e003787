"""``bidsapp train`` and ``bidsapp evaluate``.

Usage::

    bidsapp train --corpus DIR [--render] --out RUN_DIR [--steps N] [--stop-at HH:MM]
    bidsapp train --mtt MTT_DIR --out RUN_DIR ...
    bidsapp train --corpus DIR --real-corpus REAL_DIR --init-weights W.safetensors --out RUN_DIR
    bidsapp evaluate --weights W.safetensors --real-corpus REAL_DIR [--split test] [--probe]
    bidsapp evaluate --checkpoint RUN_DIR/best.pt --corpus DIR [--split test] [--probe]
    bidsapp evaluate --weights W.safetensors --clips CHECKSET_DIR [--json OUT.json]
    bidsapp evaluate --checkpoint RUN_DIR/best.pt --mtt MTT_DIR --export DIR --status S
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch

from bidsapp.device import resolve_device
from bidsapp.errors import BidsAppError, UsageError
from bidsapp.io import write_json

from .checkset import check_set_targets, load_check_set
from .data import binarised, load_corpus_split, read_manifest
from .export import (
    CORPUS_TRAINING_DATA,
    distilled_training_data,
    export_weights,
    load_checkpoint_model,
    load_exported_model,
)
from .metrics import predict_clips, tag_metrics, teacher_metrics
from .mtt import load_mtt
from .probe import clip_layer_means, probe_layers
from .shards import render_corpus
from .train import TrainConfig, train

LOGGER = logging.getLogger("bidsapp.training")


def _data_arguments(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    data = parser.add_argument_group("data (one of)")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", type=Path,
                        help="rendered corpus folder (python -m bidsapp.training.shards)")
    source.add_argument("--mtt", type=Path,
                        help="MagnaTagATune folder with annotations_final.csv and 0/ ... f/")
    return source


def _load_split(args: argparse.Namespace, split: str):
    if getattr(args, "clips", None) is not None:
        return load_check_set(args.clips)
    if args.mtt is not None:
        return load_mtt(args.mtt, split)

    return load_corpus_split(args.corpus, split)


def _stop_time(text: str | None) -> str | None:
    # "HH:MM" means the next such time on this machine's clock; ISO dates pass through.
    if not text:
        return None
    try:
        if len(text) <= 5:
            now = datetime.now()
            hour, minute = (int(x) for x in text.split(":"))
            stop = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if stop <= now:
                stop += timedelta(days=1)
            return stop.isoformat(timespec="minutes")
        return datetime.fromisoformat(text).isoformat(timespec="minutes")
    except ValueError as exc:
        raise UsageError(f"--stop-at {text!r} is not HH:MM or an ISO time",
                         fix="e.g. --stop-at 13:45") from exc


def build_train_parser() -> argparse.ArgumentParser:
    """Return the parser of ``bidsapp train``."""
    parser = argparse.ArgumentParser(prog="bidsapp train", description=(
        "Train the study's ResNet-18 (Adam lr 2e-4, betas 0.5/0.999, batch 36, BCE, He init)."))
    _data_arguments(parser)
    parser.add_argument("--render", action="store_true",
                        help="render the corpus into --corpus first if it is not there")
    parser.add_argument("--out", type=Path, required=True,
                        help="run folder: checkpoints, history.jsonl; resumes if present")
    run = parser.add_argument_group("run")
    run.add_argument("--steps", type=int, default=100_000, help="maximum steps")
    run.add_argument("--stop-at", default=None, help="stop at this clock time (HH:MM or ISO)")
    run.add_argument("--max-minutes", type=float, default=None,
                     help="stop after this many minutes from now")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--batch-size", type=int, default=36)
    run.add_argument("--lr", type=float, default=2e-4)
    run.add_argument("--eval-every", type=int, default=200, help="steps between validations")
    run.add_argument("--checkpoint-every", type=int, default=25)
    run.add_argument("--log-every", type=int, default=5)
    run.add_argument("--max-validation-clips", type=int, default=None,
                     help="validate on the first N validation clips only (faster)")
    distill = parser.add_argument_group("distillation (docs/training.md)")
    distill.add_argument("--real-corpus", type=Path, default=None,
                         help="real-music corpus labelled by the teacher "
                              "(python -m bidsapp.training.realmusic build)")
    distill.add_argument("--real-fraction", type=float, default=0.5,
                         help="share of each batch from --real-corpus (default 0.5)")
    distill.add_argument("--init-weights", type=Path, default=None,
                         help="start from these exported weights (e.g. the release)")
    distill.add_argument("--max-real-validation", type=int, default=None,
                         help="validate on every k-th real validation window up to N (faster)")
    perf = parser.add_argument_group("performance")
    perf.add_argument("--device", default="auto", help="auto, cpu or cuda")
    perf.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    perf.add_argument("--amp", choices=("none", "bf16"), default="none",
                      help="bf16: bfloat16 autocast of the forward pass, on a GPU or a CPU "
                      "with native bfloat16 (AVX512-BF16, AMX), about 2x faster")
    return parser


def train_main(argv: list[str] | None = None) -> int:
    """Run ``bidsapp train``; return the exit code."""
    args = build_train_parser().parse_args(argv)

    if args.render and args.corpus is not None:
        render_corpus(args.corpus, processes=max(args.threads, 1))
    stop_at = _stop_time(args.stop_at)
    if args.max_minutes is not None:
        limit = (datetime.now() + timedelta(minutes=args.max_minutes)).isoformat(
            timespec="seconds")
        stop_at = min(filter(None, (stop_at, limit)))
    train_set = _load_split(args, "train")
    validation = _load_split(args, "validation")
    if args.max_validation_clips:
        validation = validation.subset(range(min(args.max_validation_clips, len(validation))))
    real_set = real_validation = None
    if args.real_corpus is not None:
        if not 0.0 < args.real_fraction <= 1.0:
            raise UsageError(f"--real-fraction {args.real_fraction} is not in (0, 1]",
                             fix="e.g. --real-fraction 0.5")
        real_set = load_corpus_split(args.real_corpus, "train")
        real_validation = load_corpus_split(args.real_corpus, "validation")
        if args.max_real_validation:
            real_validation = _spread(real_validation, args.max_real_validation)
        LOGGER.info("Distilling: %d real-music windows (%.0f%% of each batch), validating on "
                    "%d", len(real_set), 100 * args.real_fraction, len(real_validation))
    LOGGER.info("Training on %d clips, validating on %d; stop at %s", len(train_set),
                len(validation), stop_at or "max steps")
    config = TrainConfig(out_dir=str(args.out), batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, max_steps=args.steps, stop_at=stop_at,
                         eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                         log_every=args.log_every, device=args.device, threads=args.threads,
                         amp=args.amp,
                         real_fraction=args.real_fraction if real_set is not None else 0.0,
                         init_weights=str(args.init_weights) if args.init_weights else None)
    summary = train(train_set, validation, config, real_set=real_set,
                    real_validation=real_validation)
    print(summary)
    return 0


def _evaluate_split(args: argparse.Namespace, split: str):
    if args.real_corpus is not None:
        return load_corpus_split(args.real_corpus, split)
    return _load_split(args, split)


def _spread(clip_set, limit: int):
    # Every k-th window keeps all tracks in a shortened validation set.
    step = max(1, len(clip_set) // max(limit, 1))
    return clip_set.subset(range(0, len(clip_set), step)[:limit])


def build_evaluate_parser() -> argparse.ArgumentParser:
    """Return the parser of ``bidsapp evaluate``."""
    parser = argparse.ArgumentParser(prog="bidsapp evaluate", description=(
        "Per-tag and mean ROC-AUC and PR-AUC of whole-clip predictions."))
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="best.pt or last.pt of a run")
    model.add_argument("--weights", type=Path, help="a .safetensors file with its .json sidecar")
    source = _data_arguments(parser)
    source.add_argument("--clips", type=Path,
                        help="a check-set folder (FLAC clips + labels.json)")
    source.add_argument("--real-corpus", type=Path,
                        help="real-music corpus: scored against the teacher's tags")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    parser.add_argument("--probe", action="store_true",
                        help="also fit linear probes on each layer (hierarchy check)")
    parser.add_argument("--probe-train-clips", type=int, default=600)
    parser.add_argument("--export", type=Path, default=None,
                        help="write the weights (safetensors + sidecar) into this folder")
    parser.add_argument("--status", default="trained-partial",
                        help="status recorded in the exported sidecar ('trained' for a release)")
    parser.add_argument("--training-note", default=None,
                        help="free text added to the sidecar's training_data (e.g. the codec "
                             "the training audio went through)")
    parser.add_argument("--distilled-from", type=Path, default=None,
                        help="the real-music corpus the weights were distilled on: recorded "
                             "in the exported sidecar's training_data")
    parser.add_argument("--real-metrics", type=Path, default=None,
                        help="the --json of an earlier evaluate --real-corpus run on the "
                             "held-out tracks: recorded beside this run's metrics in the "
                             "exported sidecar (metrics.real_music)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    return parser


def evaluate_main(argv: list[str] | None = None) -> int:
    """Run ``bidsapp evaluate``; return the exit code."""
    args = build_evaluate_parser().parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.checkpoint is not None:
        model, checkpoint = load_checkpoint_model(args.checkpoint, device)
    else:
        model, checkpoint = load_exported_model(args.weights, device), None
    clip_set = _evaluate_split(args, args.split)
    if args.max_clips:
        clip_set = clip_set.subset(range(min(args.max_clips, len(clip_set))))
    real = args.real_corpus is not None or (args.clips is not None
                                            and check_set_targets(args.clips) == "teacher")
    if args.probe:
        # One pass gives both: the fc features of the probe are the whole-clip logits.
        test_features = clip_layer_means(model, clip_set, device=device)
        probabilities = 1.0 / (1.0 + np.exp(-test_features["fc"]))
    else:
        probabilities = predict_clips(model, clip_set, device=device)
    if real:
        result = teacher_metrics(probabilities, clip_set.labels)
    else:
        result = tag_metrics(probabilities, clip_set.labels, clip_set.mask)
    result["split"] = args.split
    result["source"] = str(args.clips or args.corpus or args.mtt or args.real_corpus)
    if args.clips is not None:
        # A check set is small: keep every prediction so a test can compare them exactly.
        result["predictions"] = dict(zip(clip_set.names, _predictions(model, clip_set,
                                                                      device), strict=True))
    for tag, m in sorted(result["per_tag"].items()):
        print(f"{tag:>12s}  ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  "
              f"({m['positives']}/{m['clips']})")
    print(f"mean over {len(result['per_tag'])} tags: ROC-AUC {result['mean_roc_auc']:.4f}  "
          f"PR-AUC {result['mean_pr_auc']:.4f}  ({result['n_clips']} clips)")
    if real:
        print(f"against the teacher: min ROC-AUC {result['min_roc_auc']:.4f}, mean Spearman "
              f"{result['mean_spearman']:.4f} over {len(result['spearman'])} tags")
    if args.probe:
        train_set = _evaluate_split(args, "train")
        if real:
            # The probes predict the teacher's binarised tags, as the ROC-AUC above.
            train_set, clip_set = (binarised(s) for s in (train_set, clip_set))
        result["probe"] = probe_layers(model, train_set, clip_set, device=device,
                                       train_clips=args.probe_train_clips,
                                       test_features=test_features)
        for layer, score in result["probe"]["mean_roc_auc"].items():
            print(f"probe {layer:>8s}: mean ROC-AUC {score:.4f}")
    if args.export is not None:
        if checkpoint is None:
            raise UsageError("--export needs --checkpoint", fix="export from a run's best.pt")
        training_data = None
        if args.training_note:
            training_data = {**CORPUS_TRAINING_DATA, "note": args.training_note}
        if args.distilled_from is not None:
            training_data = distilled_training_data(read_manifest(args.distilled_from),
                                                    training_data)
        metrics = dict(result)
        if args.real_metrics is not None:
            # Both held-out figures travel with the weights: the renderer's tags and the
            # teacher's on real recordings (the per-window predictions stay out).
            real_result = json.loads(Path(args.real_metrics).read_text())
            metrics["real_music"] = {k: v for k, v in real_result.items()
                                     if k not in ("predictions", "export")}
        path = export_weights(model, checkpoint, args.export, status=args.status,
                              metrics=metrics, training_data=training_data)
        result["export"] = str(path)
        print(f"exported {path}")
    if args.json is not None:
        write_json(args.json, _finite(result))
    return 0


def _predictions(model, clip_set, device) -> list[list[float]]:
    return [[round(float(p), 6) for p in row]
            for row in predict_clips(model, clip_set, device=device)]


def _finite(obj):
    # JSON has no NaN; write null instead.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _main(function, argv: list[str] | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        return function(argv)
    except BidsAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in ("train", "evaluate"):
        print("usage: python -m bidsapp.training.cli {train,evaluate} ...", file=sys.stderr)
        sys.exit(64)
    sys.exit(_main(train_main if command == "train" else evaluate_main, sys.argv[2:]))
