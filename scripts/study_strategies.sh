#!/usr/bin/env bash
# docs/study.md, section 11: the seed's four strategies (no-think / think x standard / fixed curriculum) at
# 100 GRPO steps each, all from one SFT warm start, beside the two baselines (SFT only; GRPO from the base
# model, also 100 steps). Every run gets the main job's whole evaluation (both held-out families,
# Glaiveai2K, Github_easy, GSM8K; 200 prompts each; the baselines from the committed cache where the
# machine's dtype has one) and is paired with the SFT-only adapter prompt by prompt.
#   bash scripts/study_strategies.sh                 every arm (per arm on 2 AVX512-BF16 cores: ~30 min of GRPO, ~8 of evaluation)
#   ARMS="standard curriculum" bash scripts/study_strategies.sh
#   ARMS=standard-s1 bash scripts/study_strategies.sh   the standard arm again at GRPO seed 1
# The warm start is adapters/smollm2-135m-study-sft (committed: the main job's SFT stage, 150 steps, seed 0); without
# it the script trains it first (runs/study-sft). The think arms start from the think bootstrap (32 steps
# of think-formatted SFT on top of the warm start: configs/smollm2-135m-cpu-sft-think-bootstrap.toml).
# Re-running skips finished evaluations and resumes a run from its newest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
GRPO=configs/smollm2-135m-cpu-sft-grpo.toml
CURRICULUM=configs/smollm2-135m-cpu-sft-grpo-curriculum.toml
THINK="reward.thinking=true rollout.think_prefill=true rollout.max_new_tokens=384"   # the plan adds ~60-150 tokens
BOOTSTRAP=runs/study-think-bootstrap/adapter
WARM=adapters/smollm2-135m-study-sft
if [[ ! -f "$WARM/adapter_config.json" ]]; then
    .venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml --resume --set run.name=study-sft
    WARM=runs/study-sft/adapter
fi
# arm -> "config init_adapter extra --set overrides"
declare -A ARM_RUNS=(
    [standard]="$GRPO $WARM"
    [standard-s1]="$GRPO $WARM run.seed=1"   # the same arm at GRPO seed 1: the training run's own noise
    [curriculum]="$CURRICULUM $WARM"
    [think-standard]="$GRPO $BOOTSTRAP $THINK"
    [think-curriculum]="$CURRICULUM $BOOTSTRAP $THINK"
    [grpo-base]="$GRPO none"                  # no warm start: GRPO from the base model
)
ARMS="${ARMS:-standard curriculum think-standard think-curriculum grpo-base}"

source scripts/main_eval.sh
evaluate() {  # evaluate LABEL ADAPTER OUT [think]: the main job's evaluation of one adapter
    local mode=(--no-thinking)
    [[ "${4:-}" == think ]] && mode=(--thinking --max-tokens 640)   # the plan comes before the JSON
    [[ -f "$3/metrics.json" ]] && return 0
    main_eval "$GRPO" "$1=$2" "$3" "${mode[@]}"
}

evaluate sft "$WARM" runs/study-sft-eval
for arm in $ARMS; do
    [[ -v ARM_RUNS[$arm] ]] || { echo "study_strategies: unknown arm '$arm' (known: ${!ARM_RUNS[*]})" >&2; exit 2; }
    read -r config init extra <<< "${ARM_RUNS[$arm]}"
    mode=""; [[ "$arm" == think-* ]] && mode=think
    if [[ -n "$mode" && ! -f "$BOOTSTRAP/adapter_config.json" ]]; then
        .venv/bin/grpo-train configs/smollm2-135m-cpu-sft-think-bootstrap.toml --resume \
            --set run.name=study-think-bootstrap --set "model.init_adapter=$WARM"
    fi
    args=(--set "run.name=study-$arm" --set run.num_steps=100 --set "model.init_adapter=${init/#none/}")
    for kv in $extra; do args+=(--set "$kv"); done
    .venv/bin/grpo-train "$config" --resume "${args[@]}"
    out="runs/study-$arm"
    evaluate "$arm" "$out/adapter" "$out/eval" "$mode"
    .venv/bin/python scripts/paired_labels.py runs/study-sft-eval sft "$arm" --second-from "$out/eval" --out "$out/eval/vs-sft.json"
done
