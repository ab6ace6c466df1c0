#!/usr/bin/env bash
# The main job on the embedded default model: set up (if needed), train, then evaluate.
#   bash scripts/main.sh                 ~25 min of training + ~10 min of evaluation on 2 CPU cores
#   CONFIG=configs/x.toml EVAL_LIMIT=300 bash scripts/main.sh
# Re-running continues the run from its newest checkpoint (a finished run only re-saves its adapter)
# and reuses the cached baseline completions, so only the trained adapter is evaluated again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
CONFIG="${CONFIG:-configs/smollm2-135m-cpu.toml}"
RUN_DIR="$(.venv/bin/python -c "import sys; from grpo.config import load_config; print(load_config(sys.argv[1]).run_dir)" "$CONFIG")"

.venv/bin/grpo-train "$CONFIG" --resume
# Baseline (cached) vs the trained adapter on the held-out synthetic JSON prompts, strict = schema-valid.
.venv/bin/grpo-eval --pass-at-1 "$CONFIG" --adapter "$RUN_DIR/adapter" --bench synthetic \
    --limit "${EVAL_LIMIT:-90}" --max-tokens 256 --out "$RUN_DIR/eval"
echo "[main] report: $RUN_DIR/eval/report.md   TensorBoard: .venv/bin/tensorboard --logdir $RUN_DIR/tb"
