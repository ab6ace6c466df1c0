#!/usr/bin/env bash
# The runs of docs/study.md, in the order they were made (each resumes if re-run; one heavy job at a time).
#   bash scripts/run_study.sh            ~50 min on 2 idle CPU cores; the main job itself is scripts/main.sh
# (As run on 2026-12-01: sft-a was started with run.num_steps=200 and stopped after its step-150
#  checkpoint, then resumed with 150 to write its adapter; its warm-up was 10 steps instead of 8.)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL=WARNING
OUT=runs/study
MIX=(--set data.num_tasks=4000 --set data.schema_prompt_share=0.5 --set 'data.tier_mix={simple=0.35,medium=0.4,hard=0.25}')

# 1. How much SFT: one run, 150 optimizer steps of 16 gold replies (2,400 examples, 0.6 epoch of 4,000
#    tasks, both task families, all three tiers), a checkpoint every 25 steps evaluated below.
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml --resume --set run.name=sft-a --set run.out_dir=$OUT \
    --set run.num_steps=150 --set run.save_every=25 --set run.keep_last=8 "${MIX[@]}"
ck=$OUT/sft-a/checkpoints
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu.toml --bench synthetic synthetic-schema --limit 60 \
    --max-tokens 256 --adapter sft50=$ck/step_000050/adapter sft100=$ck/step_000100/adapter \
    sft150=$OUT/sft-a/adapter --out $OUT/eval-sft

# 2. GRPO from the SFT adapter (the main job's second stage, 20 steps, group-std advantage scaling) on the
#    same 60 + 60 held-out prompts. (As run: the canary stopped it at step 10, and it was resumed from its
#    step-5 checkpoint with --set run.canary_every=0; docs/study.md, section 2.)
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft-grpo.toml --resume --set run.name=grpo-group \
    --set run.out_dir=$OUT --set run.num_steps=20 --set grpo.adv_scale=group \
    --set model.init_adapter=$OUT/sft-a/adapter
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu.toml --bench synthetic synthetic-schema --limit 60 \
    --max-tokens 256 --adapter sft150=$OUT/sft-a/adapter grpo-group=$OUT/grpo-group/adapter --out $OUT/eval-grpo

# 3. Ablations on the same start: GRPO continued to 40 steps, and per-batch advantage scaling (20 steps).
G=(configs/smollm2-135m-cpu-sft-grpo.toml --resume --set run.out_dir=$OUT --set model.init_adapter=$OUT/sft-a/adapter)
.venv/bin/grpo-train "${G[@]}" --set run.name=grpo-batch --set run.num_steps=20 --set grpo.adv_scale=batch
.venv/bin/grpo-train "${G[@]}" --set run.name=grpo-group --set run.num_steps=40 --set run.canary_every=0
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu.toml --bench synthetic synthetic-schema --limit 60 \
    --max-tokens 256 --adapter sft150=$OUT/sft-a/adapter grpo20=adapters/smollm2-135m-json \
    grpo40=$OUT/grpo-group/adapter grpo-batch=$OUT/grpo-batch/adapter --out $OUT/eval-grpo2

# 4. Seed 001's comparison at 135M: SFT only vs GRPO only on the linear-equation tasks, 30 optimizer steps
#    each from the base model; in-domain (linear, held-out eval split) and out-of-domain (GSM8K) accuracy.
#    (As run: the canary stopped the first GRPO attempt at step 10, before its first checkpoint; it was
#    re-run from step 0 with --set run.canary_every=0; docs/study.md, sections 2 and 4.)
.venv/bin/grpo-train configs/smollm2-135m-cpu-math-sft.toml --resume --set run.out_dir=$OUT
.venv/bin/grpo-train configs/smollm2-135m-cpu-math-grpo.toml --resume --set run.out_dir=$OUT
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu-math-grpo.toml --bench linear gsm8k --limit 200 \
    --math-max-tokens 384 --max-model-len 2048 --adapter sft=$OUT/smollm2-135m-cpu-math-sft/adapter \
    grpo=$OUT/smollm2-135m-cpu-math-grpo/adapter --cache-dir docs/baseline/cache --out $OUT/eval-math
