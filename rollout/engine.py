"""The one small interface every generation engine implements.

An engine turns token-id prompts into `Rollout`s with the *current* policy weights. The trainer
hands it a new LoRA adapter after every optimizer step (`set_adapter`) and it must sample from that
adapter from then on. It knows nothing about rewards, tasks or losses.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from rollout.types import Rollout, Sampling


class Engine(ABC):
    """Generation behind one method, adapters behind two."""

    @abstractmethod
    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Rollout]:
        """Sample `sampling.n` completions for every prompt (token ids, chat template already applied).

        Returns len(prompts) * n rollouts, prompt-major (prompt i, sample j at index i * n + j).
        """

    @abstractmethod
    def load_adapter(self, adapter_dir: str | Path | None) -> None:
        """Sample from the PEFT adapter saved in `adapter_dir` from now on (None: base weights)."""

    def set_adapter(self, peft_model: Any) -> None:
        """Hot-swap the trainer's live PEFT model into the engine (default: save to RAM, then load)."""
        raise NotImplementedError

    def sleep(self) -> None:
        """Release accelerator memory while the trainer runs (no-op where unsupported)."""

    def wake_up(self) -> None:
        """Undo `sleep` before the next `generate` (no-op where unsupported)."""

    def close(self) -> None:
        """Free the engine's memory. Idempotent."""
