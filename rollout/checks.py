"""Up-front checks of the files a command reads and writes, made before any model loads.

Each `check_*` costs a few stat calls or one small JSON read, creates nothing, and raises `ValueError`
with one line naming the path. `grpo-train` and `grpo-eval` call them right after parsing, so a typo
fails in a second instead of after a model load (or a whole baseline), and leaves no output behind.
Knows nothing of configs, training or evaluation.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rollout.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")   # what PEFT's save_pretrained writes


def read_json_object(path: Path, missing: str) -> dict[str, Any]:
    """The JSON object in `path`; `missing` is the message when there is no such file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ValueError(missing) from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")   # huggingface_hub's rule


def check_model(spec: str) -> None:
    """`spec` is something rollout.models.resolve_model accepts without a download: a known embedded
    model, a folder whose config.json parses, or a hub id (offline: one already in the local HF cache)."""
    known = [EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS]
    if spec.startswith(EMBEDDED_PREFIX):
        if spec.removeprefix(EMBEDDED_PREFIX) not in EMBEDDED_MODELS:
            raise ValueError(f"unknown embedded model {spec!r}; known: {known}")
        return
    path = Path(spec).expanduser()
    if os.path.exists(path):
        read_json_object(path / "config.json", f"model folder {path} has no config.json")
        return
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise ValueError(f"model {spec!r}: no such folder, and neither a hub id 'org/name' nor one of {known}")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache
        if not isinstance(try_to_load_from_cache(spec, "config.json"), str):
            raise ValueError(f"model {spec!r}: no such folder, and not in the local Hugging Face cache "
                             "(HF_HUB_OFFLINE is set, so it cannot be downloaded)")


def check_adapter(path: str | Path) -> None:
    """`path` is a PEFT adapter folder: adapter_config.json parses (with an integer rank) and weights are there."""
    folder = Path(path)
    config = read_json_object(folder / "adapter_config.json", f"no PEFT adapter (adapter_config.json) in {folder}")
    if not isinstance(config.get("r", 16), int):
        raise ValueError(f"{folder / 'adapter_config.json'}: r = {config['r']!r} is not an integer LoRA rank")
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise ValueError(f"adapter {folder} has no weights ({' or '.join(ADAPTER_WEIGHTS)})")


def check_output_folder(path: str | Path) -> None:
    """`path` is a folder, or can be made one, that this process may write into."""
    path = Path(path).absolute()
    # os.path.exists, not Path.exists: it says False (instead of raising) below a file or a closed folder
    existing = next(p for p in (path, *path.parents) if os.path.exists(p))
    if not existing.is_dir():
        raise ValueError(f"{path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: {existing} is not writable")
