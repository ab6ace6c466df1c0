"""Typed records of the rollout interface. Every engine takes `Sampling` and returns `Rollout`s.

Nothing here knows about rewards, tasks or training.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampling:
    n: int = 1                  # completions per prompt (G in GRPO)
    temperature: float = 0.7    # 0.0 means greedy
    top_p: float = 1.0
    max_tokens: int = 256       # new tokens per completion
    min_tokens: int = 0         # suppress EOS before this many tokens (benchmarks force equal lengths)
    stop: tuple[str, ...] = ()  # extra stop strings; EOS always stops
    logprobs: bool = True       # return the sampler's log-probability of every chosen token


@dataclass
class Rollout:
    """One completion of one prompt. Rollouts come back prompt-major: prompt i, sample j at i*n + j."""
    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finish_reason: str                                   # "stop" (EOS / stop string) or "length" (truncated)
    logprobs: list[float] = field(default_factory=list)  # sampler logprob per completion token (empty if not asked)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"
