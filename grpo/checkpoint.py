"""Atomic checkpoints of a run, and resuming from the newest one.

Layout of `<run_dir>/checkpoints/step_000120/`:
  adapter/             PEFT format (adapter_config.json + adapter_model.safetensors): loads with
                       `PeftModel.from_pretrained(base, path)` and as a vLLM LoRA module
  trainer_state.pt     optimizer, LR scheduler, RNG states (python, numpy, torch)
  state.json           step, task-source position, curriculum position, counters
  config.toml          the resolved config the run was started with

A checkpoint is written into a hidden temp folder beside its final place, flushed to disk, then
renamed: a run killed at any moment leaves either a complete `step_*` folder or a `.tmp-*` folder
that the next start deletes. Only complete folders are ever read.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

PREFIX = "step_"


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(run_dir: Path, step: int, policy, optimizer, scheduler, state: dict[str, Any],
                    config_toml: str, keep_last: int = 3) -> Path:
    """Write checkpoint `step` atomically; delete all but the newest `keep_last`. Returns its folder."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        policy.save_pretrained(tmp / "adapter")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state()}, tmp / "trainer_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
        (tmp / "config.toml").write_text(config_toml)
        _fsync_tree(tmp)
        if final.exists():           # re-saving a step (e.g. the last one): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)       # atomic on POSIX: the folder appears complete or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_adapter(policy, folder: str | Path) -> Path:
    """Save the PEFT adapter alone to `folder` atomically (temp folder beside it, then rename): the
    file to hand to `model.init_adapter`, `grpo-eval --adapter` or vLLM."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        policy.save_pretrained(tmp)
        _fsync_tree(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def remove_partial(run_dir: Path) -> int:
    """Delete temp folders left by a run killed while saving. Returns how many."""
    root = Path(run_dir) / "checkpoints"
    partial = [p for p in root.glob(".tmp-*")] if root.is_dir() else []
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    return len(partial)


def read_state(folder: Path) -> dict[str, Any]:
    """state.json of a checkpoint (step, task-source position, curriculum position, counters)."""
    return json.loads((Path(folder) / "state.json").read_text())


def load_checkpoint(folder: Path, policy, optimizer, scheduler) -> dict[str, Any]:
    """Restore adapter weights, optimizer, scheduler and RNGs in place; return state.json's dict."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    folder = Path(folder)
    result = set_peft_model_state_dict(policy, load_peft_weights(str(folder / "adapter")))
    unexpected = getattr(result, "unexpected_keys", [])
    assert not unexpected, f"checkpoint {folder} has adapter keys the model lacks: {unexpected[:3]}"
    trainer_state = torch.load(folder / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    set_rng_state(trainer_state["rng"])
    return read_state(folder)
