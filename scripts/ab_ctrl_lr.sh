#!/usr/bin/env bash
# docs/study.md, section 8: the ctrl arm at lr 5e-5. The same 20 SFT steps from the shipped adapter as the
# open arm at lr 5e-5 (section 8's commands), on the main job's mix (words 0.5 / schema 0.5, no generated
# family), evaluated on the same 80 prompts per set. Paired with the open arm and the shipped adapter from
# their committed folders (scripts/paired_labels.py --second-from), it tells the open mix's gain from
# that of 20 more gentle steps alone.
#   bash scripts/ab_ctrl_lr.sh      (~80 min on an AVX2-only 2-core machine in float32: 19 min SFT, 59 min evaluation with its baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml --set run.num_steps=20 --set run.save_every=20 \
    --set model.init_adapter=adapters/smollm2-135m-json --set run.name=ab-ctrl-lr5e-5 --set optim.lr=5e-5
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu-sft-grpo.toml \
    --adapter ctrl-lr5e-5=runs/ab-ctrl-lr5e-5/adapter \
    --bench synthetic-generated Glaiveai2K synthetic synthetic-schema --limit 80 \
    --max-tokens 512 --max-model-len 2048 --out runs/ab-ctrl-lr-eval
