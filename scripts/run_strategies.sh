#!/usr/bin/env bash
# The short strategy runs of docs/strategies.md, then their evaluation against one cached baseline.
#   bash scripts/run_strategies.sh            (~50 min on 2 CPU cores; each step resumes if re-run)
# The no-think standard run is the 10-step checkpoint of the training run of docs/training-run.md
# (grpo-train configs/smollm2-135m-cpu.toml --set run.num_steps=30 --set run.name=smollm2-135m-cpu-30
#  --set run.save_every=5 --set run.keep_last=10), so every GRPO strategy here has 10 steps: short runs
# that prove the switches work on 2 CPU cores, not a study.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL=WARNING
T=.venv/bin/grpo-train
E=.venv/bin/grpo-eval
STANDARD="${STANDARD:-runs/smollm2-135m-cpu-30/checkpoints/step_000010/adapter}"
LIMIT="${LIMIT:-60}"          # held-out synthetic prompts (20 per tier)

$T configs/smollm2-135m-cpu-sft.toml --resume --set run.num_steps=30  # SFT only
$T configs/smollm2-135m-cpu-sft-grpo.toml --resume --set run.num_steps=10   # SFT -> GRPO
$T configs/smollm2-135m-cpu-curriculum-gated.toml --resume          # no-think curriculum, gated (10)
$T configs/smollm2-135m-cpu-think-sft.toml --resume                 # think bootstrap: think-format SFT
$T configs/smollm2-135m-cpu-think.toml --resume --set run.num_steps=10      # think GRPO from it

# No-think strategies: one report, one baseline, paired per-prompt outcomes.
$E --pass-at-1 configs/smollm2-135m-cpu.toml --bench synthetic --limit "$LIMIT" --max-tokens 256 \
    --adapter "standard=$STANDARD" curriculum-gated=runs/smollm2-135m-cpu-curriculum-gated/adapter \
    sft=runs/smollm2-135m-cpu-sft/adapter sft-grpo=runs/smollm2-135m-cpu-sft-grpo/adapter \
    --out docs/strategies/no-think
# Think mode: its own baseline (think system prompt + prefill), the bootstrap SFT and the GRPO run.
$E --pass-at-1 configs/smollm2-135m-cpu-think.toml --bench synthetic --limit "$LIMIT" --max-tokens 320 \
    --adapter think-sft=runs/smollm2-135m-cpu-think-sft/adapter think-grpo=runs/smollm2-135m-cpu-think/adapter \
    --out docs/strategies/think
