#!/usr/bin/env bash
# The CUDA check for a lent GPU machine (PyTorch, transformers and peft there; no vLLM, no registry, no
# model files; at most 64 MiB travels with the tree). Two halves:
#   bash scripts/gpu_check.sh prepare   on this machine: .gpu-carry/ = the tokenizer of the embedded model
#                                       + wheels of the small pure-Python packages the trainer imports
#   bash scripts/gpu_check.sh           on the GPU machine (device tool: carry [".gpu-carry"]): installs
#                                       what is missing into .gpu-carry/site, runs scripts/gpu_check.py
#                                       (5 GRPO steps, HF engine, bf16 then NF4) -> $OUT/gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu-carry
PURE="pydantic==2.* typing-inspection annotated-types jsonschema referencing jsonschema-specifications attrs tqdm"
if [ "${1:-}" = prepare ]; then
    rm -rf "$CARRY" && mkdir -p "$CARRY/wheels"
    .venv/bin/pip download -q --no-deps -d "$CARRY/wheels" $PURE
    # Compiled companions, small, for the Python versions a GPU image is likely to have.
    for py in 3.10 3.11 3.12; do
        .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version "$py" --platform manylinux2014_x86_64 \
            -d "$CARRY/wheels" "pydantic-core" "rpds-py" "jsonschema-rs" || true
    done
    .venv/bin/python -c "
import shutil, sys
from rollout.models import prepare_embedded_model
src = prepare_embedded_model()
for f in src.iterdir():
    if f.name.startswith(('tokenizer', 'special_tokens', 'chat_template', 'generation_config')):
        shutil.copy(f, sys.argv[1])" "$(mkdir -p "$CARRY/tokenizer" && echo "$CARRY/tokenizer")"
    du -sh "$CARRY"
    exit 0
fi
PY="${PYTHON:-python3}"
mkdir -p "$CARRY/site"
# Install only what the machine lacks (pydantic-core must match pydantic: pip resolves both from the wheels).
"$PY" -m pip install -q --no-index --find-links "$CARRY/wheels" --target "$CARRY/site" $PURE pydantic-core rpds-py jsonschema-rs \
    2>&1 | tail -3 || true
export PYTHONPATH="$PWD:$PWD/$CARRY/site:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv || true
"$PY" scripts/gpu_check.py --tokenizer "$CARRY/tokenizer" --out "${OUT:-benchmarks}/gpu_check.json"
