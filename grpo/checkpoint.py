"""Atomic checkpoints of a run, and resuming from the newest one.

Layout of `<run_dir>/checkpoints/step_000120/`:
  adapter/             PEFT format (adapter_config.json + adapter_model.safetensors): loads with
                       `PeftModel.from_pretrained(base, path)` and as a vLLM LoRA module
  trainer_state.pt     optimizer, LR scheduler, RNG states (python, numpy, torch, CUDA; under torchrun
                       every rank's, `rng_ranks`), in plain lists and tensors only, so it loads
                       with `torch.load(weights_only=True)`
  state.json           step, task-source position, curriculum position, counters
  config.toml          the resolved config the run was started with

A checkpoint (and the final or a stage adapter) is written into a hidden `.tmp-*` folder beside its
final place, fsynced, then renamed into place; a folder already there is first renamed aside to
`.old-<name>-<pid>` and deleted last, and the parent folder is fsynced after the renames. A run
killed at any moment leaves one complete copy on disk; `remove_partial` at the next start deletes
`.tmp-*` folders and renames an `.old-*` folder back when its new copy never arrived.

Resuming compares the checkpoint's config.toml with the current config (`check_resume_config`):
keys outside FREE_KEYS may change only when the caller allows it (`--allow-config-change`).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch

PREFIX = "step_"
OLD = ".old-"   # a folder renamed aside while its replacement moves in

# Keys a resumed run may change without --allow-config-change: bookkeeping, logging and speed knobs
# that leave the trained weights as they would have been (up to float summation order). A longer
# run.num_steps extends a run; its LR schedule then follows the new horizon (a cosine decay stretches).
FREE_KEYS = frozenset({
    "run.name", "run.out_dir",   # the run folder was moved or renamed: still the same run
    "run.num_steps", "run.save_every", "run.keep_last", "run.sample_every", "run.num_samples_logged",
    "run.canary_every", "run.probe_every", "run.probe_prompts", "run.tensorboard", "run.num_threads",
    "model.gradient_checkpointing", "rollout.gpu_memory_utilization", "grpo.logprob_chunk_tokens",
})

# Checkpoints written before the RNG states became plain lists hold numpy's state as an ndarray;
# these are exactly the globals rebuilding that uint32 array needs (no code runs on load).
_LEGACY_NUMPY = [np.ndarray, np.dtype, np.dtypes.UInt32DType, np.zeros(0).__reduce__()[0]]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # works on folders too: makes their entries (names) durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        _fsync(path)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the complete, fsynced `tmp` to `final`. os.replace cannot replace a non-empty folder,
    and deleting it first would leave a moment with neither copy: rename it aside, rename the new one
    in, fsync the parent (the renames reach the disk), then delete the old copy."""
    aside = final.parent / f"{OLD}{final.name}-{os.getpid()}"
    if final.exists():
        os.replace(final, aside)
    os.replace(tmp, final)
    _fsync(final.parent)
    shutil.rmtree(aside, ignore_errors=True)


def _write_atomically(final: Path, write) -> Path:
    """`write(tmp)` fills a temp folder beside `final`, which then replaces `final` (see above)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        write(tmp)
        _fsync_tree(tmp)
        _move_into_place(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)   # only left when write or the renames failed
    return final


def rng_state() -> dict[str, Any]:
    """Every RNG the trainer draws from, as plain python values and uint8 tensors."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(mt), gauss],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda", [])
    if cuda and torch.cuda.is_available():  # a CPU resume of a GPU run has no CUDA generator to set
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])


def save_checkpoint(run_dir: Path, step: int, policy, optimizer, scheduler, state: dict[str, Any],
                    config_toml: str, keep_last: int = 3, rng_ranks: list[dict[str, Any]] | None = None) -> Path:
    """Write checkpoint `step` atomically; delete all but the newest `keep_last`. Returns its folder.
    `rng_ranks`: every torchrun rank's `rng_state()`, in rank order (grpo.train gathers them)."""
    def write(tmp: Path) -> None:
        policy.save_pretrained(tmp / "adapter")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "rng_ranks": rng_ranks or []}, tmp / "trainer_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
        (tmp / "config.toml").write_text(config_toml)

    final = _write_atomically(Path(run_dir) / "checkpoints" / f"{PREFIX}{step:06d}", write)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_adapter(policy, folder: str | Path) -> Path:
    """Save the PEFT adapter alone to `folder` atomically: the folder to hand to `model.init_adapter`,
    `grpo-eval --adapter` or vLLM."""
    return _write_atomically(Path(folder), policy.save_pretrained)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def remove_partial(run_dir: Path) -> int:
    """Clean up after a run killed while saving (checkpoints/, the run folder, stages/): delete `.tmp-*`
    folders; rename an `.old-<name>-<pid>` folder back to <name> when <name> is missing (the kill came
    between the two renames), else delete it. Returns how many folders it touched."""
    count = 0
    for parent in (Path(run_dir) / "checkpoints", Path(run_dir), Path(run_dir) / "stages"):
        if not parent.is_dir():
            continue
        for tmp in parent.glob(".tmp-*"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
                count += 1
        for aside in parent.glob(f"{OLD}*"):
            original = parent / aside.name.removeprefix(OLD).rpartition("-")[0]
            if original.exists():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.replace(aside, original)
            count += 1
    return count


def read_state(folder: Path) -> dict[str, Any]:
    """state.json of a checkpoint (step, task-source position, curriculum position, counters)."""
    return json.loads((Path(folder) / "state.json").read_text())


def load_checkpoint(folder: Path, policy, optimizer, scheduler, rank: int = 0) -> dict[str, Any]:
    """Restore adapter weights, optimizer, scheduler and RNGs (torchrun rank `rank`'s own) in place;
    return state.json's dict. A rank the checkpoint has no streams for (the run now has more ranks)
    keeps the fresh seed it started with."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    folder = Path(folder)
    result = set_peft_model_state_dict(policy, load_peft_weights(str(folder / "adapter")))
    unexpected = getattr(result, "unexpected_keys", [])
    assert not unexpected, f"checkpoint {folder} has adapter keys the model lacks: {unexpected[:3]}"
    with torch.serialization.safe_globals(_LEGACY_NUMPY):
        trainer_state = torch.load(folder / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    streams = trainer_state.get("rng_ranks") or [trainer_state["rng"]]
    if rank < len(streams):
        set_rng_state(streams[rank])
    return read_state(folder)


# ----------------------------------------------------------------------------- resume: config changes

def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(saved_toml: str, cfg) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (checkpoint's value, current value)} for every key whose value differs. The saved
    config is validated by the current schema first, so a field added since then counts at its default."""
    from grpo.config import config_from_dict
    old = _flatten(config_from_dict(tomllib.loads(saved_toml), "checkpoint config.toml").model_dump(mode="json"))
    new = _flatten(cfg.model_dump(mode="json"))
    return {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def check_resume_config(folder: Path, cfg, allow_change: bool, say=print) -> dict[str, tuple[Any, Any]]:
    """Refuse (ConfigError, one line) to resume `folder` under a config that changes the run's meaning,
    i.e. differs outside FREE_KEYS, unless `allow_change`; then the run applies the new values (the
    optimizer's via grpo.optim.follow_config). Returns the changes."""
    from grpo.config import ConfigError
    try:
        changes = config_changes((Path(folder) / "config.toml").read_text(), cfg)
    except ConfigError as err:  # written under an older schema (a key since removed or renamed)
        if not allow_change:
            raise ConfigError(f"resume: {err}; pass --allow-config-change to resume under the current config") from None
        say(f"resume: {err}; resuming under the current config")
        return {}
    meaningful = {k: v for k, v in changes.items() if k not in FREE_KEYS}
    listed = ", ".join(f"{k} ({old!r} -> {new!r})" for k, (old, new) in meaningful.items())
    if meaningful and not allow_change:
        raise ConfigError(f"resume: the config differs from {folder}/config.toml in {listed}; "
                          "undo the change or pass --allow-config-change to apply it")
    if meaningful:
        say(f"resume: applying config changes {listed}")
    return changes
