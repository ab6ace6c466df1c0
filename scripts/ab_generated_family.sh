#!/usr/bin/env bash
# docs/study.md, section 7: does the "generated" task family help? From the shipped adapter, 20 more SFT
# steps in two arms that differ only in the mix (ctrl: the main job's; gen: with generated schemas), then
# the shipped adapter and both arms in one evaluation on held-out prompts (and Glaiveai2K, not chosen on).
#   bash scripts/ab_generated_family.sh      (~70 min on an AVX2-only 2-core machine in float32)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
common=(--set run.num_steps=20 --set run.save_every=20 --set model.init_adapter=adapters/smollm2-135m-json)
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml "${common[@]}" --set run.name=ab-ctrl
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml "${common[@]}" --set run.name=ab-gen \
    --set data.schema_prompt_share=0.3 --set data.generated_share=0.35
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu-sft-grpo.toml \
    --adapter shipped=adapters/smollm2-135m-json ctrl=runs/ab-ctrl/adapter gen=runs/ab-gen/adapter \
    --bench synthetic-generated Glaiveai2K synthetic synthetic-schema --limit 80 \
    --max-tokens 512 --max-model-len 2048 --out runs/ab-eval
