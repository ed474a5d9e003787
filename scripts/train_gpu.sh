#!/usr/bin/env bash
# Train the bundled network on a GPU machine from a packed corpus (docs/training.md).
#
#   OUT=/results bash scripts/train_gpu.sh PACK_DIR MINUTES
#
# PACK_DIR comes from `python -m bidsapp.training.transport pack`; wheels the machine lacks
# (soundfile and its needs) may sit in .whl/.  Writes under $OUT: info.txt (GPU, torch,
# sha256 of best.pt), train.log, history.jsonl and best.pt split into 15 MiB parts
# (best.pt.part-aa, ...),
# which `cat best.pt.part-* > best.pt` joins again.  Evaluation on the lossless test split
# and the export happen back home (`bidsapp evaluate --checkpoint best.pt ...`).
#
# Distillation (docs/training.md): REAL_PACK=DIR adds a packed real-music corpus (its train
# and validation splits, packed like the rendered one) with --real-fraction REAL_FRACTION
# (default 0.67); INIT_WEIGHTS=FILE starts from exported weights (default: from scratch).
set -euo pipefail
PACK=${1:?usage: train_gpu.sh PACK_DIR MINUTES}
MINUTES=${2:-6}
OUT=${OUT:-/tmp/train_gpu_out}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/train_gpu}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" .whl/*.whl
    export PYTHONPATH="$WORK/site:$PWD"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  nproc; } | tee "$OUT/info.txt"
if [ ! -f "$WORK/corpus/manifest.json" ]; then
    "$PY" -m bidsapp.training.transport unpack "$PACK" "$WORK/corpus" --processes "$(nproc)" \
        2>&1 | tee "$OUT/train.log"
fi
distill=()
if [ -n "${REAL_PACK:-}" ]; then
    if [ ! -f "$WORK/realmusic/manifest.json" ]; then
        "$PY" -m bidsapp.training.transport unpack "$REAL_PACK" "$WORK/realmusic" \
            --processes "$(nproc)" 2>&1 | tee -a "$OUT/train.log"
    fi
    distill+=(--real-corpus "$WORK/realmusic" --real-fraction "${REAL_FRACTION:-0.67}")
fi
if [ -n "${INIT_WEIGHTS:-}" ]; then distill+=(--init-weights "$INIT_WEIGHTS"); fi
# Validation every 1,000 steps picks best.pt; --max-minutes stops cleanly before the
# caller's limit.  A rerun with the same $WORK resumes from last.pt.
"$PY" -m bidsapp.training.cli train --corpus "$WORK/corpus" --out "$WORK/run" \
    --device "${DEVICE:-cuda}" --amp "${AMP:-bf16}" --max-minutes "$MINUTES" \
    --eval-every "${EVAL_EVERY:-1000}" --checkpoint-every "${EVAL_EVERY:-1000}" \
    --log-every "${LOG_EVERY:-100}" ${STEPS:+--steps "$STEPS"} "${distill[@]}" \
    2>&1 | tee -a "$OUT/train.log"
cp "$WORK/run/history.jsonl" "$OUT/"
split -b 15M "$WORK/run/best.pt" "$OUT/best.pt.part-"
sha256sum "$WORK/run/best.pt" | tee -a "$OUT/info.txt"
ls -la "$OUT"
