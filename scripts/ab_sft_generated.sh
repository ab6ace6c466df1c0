#!/usr/bin/env bash
# docs/study.md, section 9: the generated family in the main job's first stage instead of after it. The
# main recipe (SFT 150 + GRPO 20, seed 0) with the SFT mix at words 0.5 / schema template 0.25 /
# generated 0.25 instead of words 0.5 / schema 0.5; GRPO as in the main job. Evaluated as the main job is
# (400 held-out prompts, 200 each of Glaiveai2K, Github_easy, GSM8K) and paired with the main recipe's
# own GRPO adapter of the same seed (docs/study/eval-polish-fresh-grpo, label grpo):
#   bash scripts/ab_sft_generated.sh
#   python scripts/paired_labels.py docs/study/eval-polish-fresh-grpo grpo sftgen \
#       --second-from runs/ab-sftgen-grpo/eval --out docs/study/sftgen-vs-grpo.json
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false VLLM_LOGGING_LEVEL="${VLLM_LOGGING_LEVEL:-WARNING}"
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft.toml --resume --set run.name=ab-sftgen \
    --set data.schema_prompt_share=0.25 --set data.generated_share=0.25
.venv/bin/grpo-train configs/smollm2-135m-cpu-sft-grpo.toml --resume --set run.name=ab-sftgen-grpo --set run.num_steps=20 \
    --set model.init_adapter=runs/ab-sftgen/adapter
source scripts/main_eval.sh
main_eval configs/smollm2-135m-cpu-sft-grpo.toml "sftgen=runs/ab-sftgen-grpo/adapter" runs/ab-sftgen-grpo/eval
