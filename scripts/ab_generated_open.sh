#!/usr/bin/env bash
# docs/study.md, section 8: the generated family again, now with objects that ask for keys beyond their
# properties (minProperties, typed or untyped additionalProperties) and taking its share from the
# schema-template family only (words 0.5 / schema 0.25 / generated 0.25). From the shipped adapter, 20
# more SFT steps, then the shipped adapter and this arm in one evaluation on held-out prompts (and
# Glaiveai2K, not chosen on). Same steps, sets, limits and sampling as scripts/ab_generated_family.sh,
# whose ctrl arm (the main mix) stayed within 0.025 of the shipped adapter on every set.
#   bash scripts/ab_generated_open.sh      (~50 min on an AVX2-only 2-core machine in float32)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml --set run.num_steps=20 --set run.save_every=20 \
    --set model.init_adapter=adapters/smollm2-135m-json --set run.name=ab-open \
    --set data.schema_prompt_share=0.25 --set data.generated_share=0.25
.venv/bin/grpo-eval --pass-at-1 configs/smollm2-135m-cpu-sft-grpo.toml \
    --adapter shipped=adapters/smollm2-135m-json open=runs/ab-open/adapter \
    --bench synthetic-generated Glaiveai2K synthetic synthetic-schema --limit 80 \
    --max-tokens 512 --max-model-len 2048 --out runs/ab-open-eval
