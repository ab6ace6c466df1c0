#!/usr/bin/env bash
# The main job on the embedded default model: set up (if needed), train with the best recipe measured
# (docs/study.md: SFT warm start on gold replies, then GRPO from it), then evaluate the trained adapter
# against the untrained baseline on held-out prompts and the external benchmarks, and write
# benchmarks/outcome.json.
#   bash scripts/main.sh                 ~60 min on 2 idle AMX cores (native bf16), clocked on a fresh clone (docs/study.md,
#                                        section 11); ~3 h on an AVX2-only CPU, in float32 (docs/performance.md)
#   EVAL_LIMIT=60 bash scripts/main.sh   a smaller evaluation
#   MAIN_SET="run.seed=1" bash scripts/main.sh   config overrides for both stages (--set), e.g. another seed
# Re-running continues each stage from its newest checkpoint (a finished stage only re-saves its
# adapter) and reuses the cached baseline completions, so only the trained adapter is evaluated again.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
SFT_CONFIG="${SFT_CONFIG:-configs/smollm2-135m-cpu-sft.toml}"
GRPO_CONFIG="${GRPO_CONFIG:-configs/smollm2-135m-cpu-sft-grpo.toml}"
run_dir() { .venv/bin/python -c "import sys; from grpo.config import load_config; print(load_config(sys.argv[1]).run_dir)" "$1"; }
RUN_DIR="$(run_dir "$GRPO_CONFIG")"
SET=()
for kv in ${MAIN_SET:-}; do SET+=(--set "$kv"); done

.venv/bin/grpo-train "$SFT_CONFIG" --resume "${SET[@]}"    # supervised warm start -> runs/<sft>/adapter
.venv/bin/grpo-train "$GRPO_CONFIG" --resume "${SET[@]}"   # GRPO from that adapter (model.init_adapter)
# The trained adapter vs the untrained baseline (scripts/main_eval.sh says how, and why 512 new tokens).
source scripts/main_eval.sh
main_eval "$GRPO_CONFIG" "json=$RUN_DIR/adapter" "$RUN_DIR/eval"
wall_min=$(.venv/bin/python -c "import sys; print((int(sys.argv[2]) - int(sys.argv[1])) / 60)" "$start" "$(date +%s)")
.venv/bin/python scripts/outcome.py --eval "$RUN_DIR/eval" --label json --wall-min "$wall_min" \
    --command "${MAIN_SET:+MAIN_SET=\"$MAIN_SET\" }bash scripts/main.sh" --out "${OUTCOME:-benchmarks/outcome.json}" >/dev/null
echo "[main] $wall_min min; report: $RUN_DIR/eval/report.md, outcome: ${OUTCOME:-benchmarks/outcome.json}"
echo "[main] TensorBoard: .venv/bin/tensorboard --logdir $RUN_DIR/tb"
