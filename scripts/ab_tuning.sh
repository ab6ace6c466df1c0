#!/usr/bin/env bash
# docs/study.md, section 10: the tuning table of issue 17 at the main job's length. One SFT adapter (the
# main job's first stage, seed 0), then the main job's 20 GRPO steps from it once per arm, each arm
# changing one setting of configs/smollm2-135m-cpu-sft-grpo.toml; every arm gets the same evaluation
# (200 prompts each of both held-out families and Glaiveai2K, the main job's decoding, baseline from the
# committed cache), then is paired with the ctrl arm prompt by prompt (scripts/paired_labels.py).
#   bash scripts/ab_tuning.sh                  all arms (SFT ~23 min, then ~10.5 min per arm on 2 AVX512-BF16 cores)
#   ARMS="ctrl adv-none" bash scripts/ab_tuning.sh
# Re-running skips finished evaluations and resumes an arm's training from its newest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
GRPO=configs/smollm2-135m-cpu-sft-grpo.toml
GEN_GRPO="data.schema_prompt_share=0.25 data.generated_share=0.25"    # the generated family in GRPO only
declare -A SETS=(
    [ctrl]=""
    [adv-batch]="grpo.adv_scale=batch"
    [adv-none]="grpo.adv_scale=none"
    [lr2e-4]="optim.lr=2e-4"
    [g16p2]="rollout.group_size=16 rollout.prompts_per_step=2"       # the same 32 completions per step
    [temp1.0]="rollout.temperature=1.0"                               # training only; the evaluation keeps 0.8
    [gen-grpo]="$GEN_GRPO"
    [gated]="reward.mode=weighted reward.gated=true"                  # seed 002's gated reward instead of 1[valid]
    [ctrl-s1]="run.seed=1"                                            # the training run's own noise: GRPO seed 1
    [gen-grpo-s1]="run.seed=1 $GEN_GRPO"                             # paired with ctrl and with ctrl-s1
)
ARMS="${ARMS:-ctrl adv-none adv-batch lr2e-4 g16p2 temp1.0 gen-grpo gated ctrl-s1 gen-grpo-s1}"

.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml --resume --set run.name=tune-sft
for arm in $ARMS; do
    [[ -v SETS[$arm] ]] || { echo "ab_tuning: unknown arm '$arm' (known: ${!SETS[*]})" >&2; exit 2; }
    out="runs/tune-$arm"
    [[ -f "$out/eval/metrics.json" ]] && continue
    args=(--set "run.name=tune-$arm" --set run.num_steps=20 --set model.init_adapter=runs/tune-sft/adapter)
    for kv in ${SETS[$arm]}; do args+=(--set "$kv"); done
    .venv/bin/grpo-train "$GRPO" --resume "${args[@]}"
    .venv/bin/grpo-eval --pass-at-1 "$GRPO" --adapter "$arm=$out/adapter" \
        --bench synthetic synthetic-schema Glaiveai2K --limit 200 \
        --max-tokens 512 --max-model-len 2048 --cache-dir docs/baseline/cache --out "$out/eval"
    if [[ "$arm" != ctrl && -f runs/tune-ctrl/eval/metrics.json ]]; then
        .venv/bin/python scripts/paired_labels.py runs/tune-ctrl/eval ctrl "$arm" --second-from "$out/eval" \
            --out "$out/eval/vs-ctrl.json"
    fi
    if [[ "$arm" == *-s1 && "$arm" != ctrl-s1 && -f runs/tune-ctrl-s1/eval/metrics.json ]]; then
        .venv/bin/python scripts/paired_labels.py runs/tune-ctrl-s1/eval ctrl-s1 "$arm" --second-from "$out/eval" \
            --out "$out/eval/vs-ctrl-s1.json"
    fi
done
