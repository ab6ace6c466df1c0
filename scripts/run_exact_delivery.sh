#!/usr/bin/env bash
# Re-measure with exact delivery (the unmerged CPU hot swap) what the bf16 merge had hidden: the 60-step
# run of docs/training-run.md and the no-think strategies of docs/strategies.md (standard, SFT, SFT -> GRPO;
# the gated curriculum was left out for time), same configs, seeds and prompts as the originals.
# ~50 min on 2 CPU cores; every run resumes if re-run.
#   bash scripts/run_exact_delivery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL=WARNING
T=.venv/bin/grpo-train
E=.venv/bin/grpo-eval
R=runs/exact

# 1. The 60-step GRPO run (its step-10 checkpoint is the "standard" strategy below).
$T configs/smollm2-135m-cpu.toml --resume --set run.num_steps=60 --set run.name=smollm2-135m-cpu-60 \
    --set run.out_dir=$R --set run.save_every=10 --set run.keep_last=6
.venv/bin/python scripts/tb_summary.py $R/smollm2-135m-cpu-60 docs/training-run-60-exact/scalars --window 5
$E --pass-at-1 configs/smollm2-135m-cpu.toml --bench synthetic --limit 60 --max-tokens 256 \
    --adapter grpo-60=$R/smollm2-135m-cpu-60/adapter --out docs/training-run-60-exact/eval

# 2. The no-think strategies (10 GRPO steps each; SFT 30 steps), as scripts/run_strategies.sh runs them.
$T configs/smollm2-135m-cpu-sft.toml --resume --set run.num_steps=30 --set run.out_dir=$R
$T configs/smollm2-135m-cpu-sft-grpo.toml --resume --set run.num_steps=10 --set run.out_dir=$R \
    --set model.init_adapter=$R/smollm2-135m-cpu-sft/adapter
$E --pass-at-1 configs/smollm2-135m-cpu.toml --bench synthetic --limit 60 --max-tokens 256 \
    --adapter standard=$R/smollm2-135m-cpu-60/checkpoints/step_000010/adapter \
    sft=$R/smollm2-135m-cpu-sft/adapter sft-grpo=$R/smollm2-135m-cpu-sft-grpo/adapter \
    --out docs/strategies/no-think-exact
