#!/usr/bin/env bash
# LoRA-Gen's GPU work on one H200 in stages of < 8 minutes each, every stage resumable; outputs under
# $OUT mirror the repository (copy them back with `cp -r <files>/assets/. assets/`, then the next stage
# sees them). Assumes the session's set-up: PYTHONPATH=/tmp/site:/tmp/whl:$PWD LOGO_CACHE=/tmp/cache and
# `python -m zoo.build_tasks` already run.
#
#   STAGE=train  bash zoo/loragen_gpu_eval.sh   # row 6's multi-task LoRA (2.5 min) + the zoo-experts generator (3 min)
#   STAGE=eval   bash zoo/loragen_gpu_eval.sh   # GPU latency card + the test evaluation, 5.5 minutes of it
#   STAGE=finish bash zoo/loragen_gpu_eval.sh   # the rest of the evaluation (3 min) + trained vs zoo experts on dev (1 + 1)
#
# A stage may be repeated: each part skips what its outputs (here or in $OUT) already hold.
# assets/loragen_zoo (the zoo-experts generator) is copied back for `finish` but not committed: on dev it
# scored below the trained experts and did not read its description (README, LoRA-Gen).
set -euo pipefail
: "${OUT:?set OUT}" "${STAGE:?set STAGE to train, eval or finish}"
export PYTHONUNBUFFERED=1
RESULTS=assets/results/loragen
UNSEEN_LIMIT=${UNSEEN_LIMIT:-100}
SEEN_LIMIT=${SEEN_LIMIT:-40}
DEV_LIMIT=${DEV_LIMIT:-30}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu with small limits and EVAL_MINUTES is this script's smoke test
EVAL_MINUTES=${EVAL_MINUTES:-}
mkdir -p "$OUT/assets" "$OUT/$RESULTS"

multitask_dir() {  # row 6's adapter: from this run's $OUT, else the copy brought back into the repository
  if [ -f "$OUT/assets/loragen_multitask/adapter_config.json" ]; then echo "$OUT/assets/loragen_multitask"
  else echo assets/loragen_multitask; fi
}

quiet() { tr '\r' '\n' | { grep -v -e "^multitask:" -e "^loragen:" -e "Loading weights" || true; } | tail -"$1"; }

evaluate() {  # $1: minutes after which no further task starts
  python -m analysis.loragen_eval --device "$DEVICE" --unseen-limit "$UNSEEN_LIMIT" --seen-limit "$SEEN_LIMIT" \
    --multitask "$(multitask_dir)" --resume-from "$RESULTS" --out "$OUT/$RESULTS" --budget-minutes "${EVAL_MINUTES:-$1}" \
    2>&1 >/dev/null | quiet 40  # the log; the tables follow from results.md
  sed -n '/^### unseen$/,/^### unseen tasks/p' "$OUT/$RESULTS/results.md" | head -60
  grep -o "Tasks finished: [0-9]* of [0-9]*" "$OUT/$RESULTS/results.md" || true
}

dev_compare() {  # $1: generator folder, $2: name, $3: minutes
  python -m analysis.loragen_eval --device "$DEVICE" --generator "$1" --split dev \
    --conditions gen_desc0 gen_desc5 ctl_mismatch --unseen-limit "$DEV_LIMIT" --seen-limit "$DEV_LIMIT" \
    --resume-from "$RESULTS/dev_$2" --out "$OUT/$RESULTS/dev_$2" --budget-minutes "${EVAL_MINUTES:-$3}" 2>&1 | quiet 400 \
    | { grep -e "^| [0-9c]" -e "^### [a-z]*$" -e "Tasks finished" || true; } | head -40
}

nvidia-smi --query-gpu=name,memory.used --format=csv,noheader 2>/dev/null || echo "no nvidia-smi: device $DEVICE"
case "$STAGE" in
  train)
    if [ ! -f assets/loragen_multitask/adapter_config.json ] && [ ! -f "$(multitask_dir)/adapter_config.json" ]; then
      timeout 210 python -m zoo.loragen_multitask --device "$DEVICE" --per-task 1000 --max-minutes 2.5 \
        --out "$OUT/assets/loragen_multitask" 2>&1 | quiet 20 || echo "multitask training stopped: $?"
    fi
    if [ ! -f assets/loragen_zoo/generator_config.json ] && [ ! -f "$OUT/assets/loragen_zoo/generator_config.json" ]; then
      timeout 240 python -m zoo.loragen_train --experts zoo --device "$DEVICE" --per-task 1000 --steps 260 \
        --max-minutes 2.75 --out "$OUT/assets/loragen_zoo" 2>&1 | quiet 20 || echo "zoo-experts training stopped: $?"
      rm -f "$OUT/assets/loragen_zoo/trainer.pt"  # optimiser state: too large to bring back
    fi
    du -b "$OUT"/assets/loragen_*/*.safetensors || true ;;
  eval)
    evaluate 5.5 ;;
  finish)
    evaluate 3
    dev_compare assets/loragen trained 1
    if [ -f assets/loragen_zoo/generator_config.json ]; then dev_compare assets/loragen_zoo zoo 1
    else echo "no assets/loragen_zoo: run STAGE=train and copy its outputs back first"; fi ;;
  *) echo "unknown STAGE=$STAGE: use train, eval or finish" >&2; exit 2 ;;
esac
find "$OUT" -type f -size +19M -print -delete  # nothing that large comes back
