"""The one record that crosses package lines: a task the model is asked to solve.

A `Task` is what `curriculum` produces, what `rollout` renders into a prompt (through its `prompt`),
what `rewards` scores a completion against (through `kind`, `schema`, `answer`) and what `eval`
groups metrics by (`tier`, `template_id`, `source`). Its system prompt is the default of its kind
(`curriculum.prompts.system_prompt`) unless `system` sets its own (a row of a user's task file,
curriculum.custom). It knows nothing of models or tokenizers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TaskKind = Literal["json", "math"]
Tier = Literal["simple", "medium", "hard"]


@dataclass(frozen=True)
class Task:
    id: str                     # stable, unique within a data set (e.g. "json/hard/migration/17")
    kind: TaskKind              # "json": reply is a JSON instance; "math": reply ends in a number
    prompt: str                 # the user message, without any system prompt or chat template
    tier: str = "simple"        # difficulty bucket for curricula and per-tier metrics
    template_id: str = ""       # generator template (or external subset) the task came from
    schema: dict[str, Any] | None = None   # JSON Schema (draft 2020-12) for kind == "json"
    gold: Any = None            # a reference answer: a JSON instance that validates, or a solution text
    answer: str | None = None   # canonical final answer for kind == "math" (e.g. "18" or "-3/4")
    source: str = "synthetic"   # "synthetic", "jsonschemabench/Glaiveai2K", "gsm8k", "custom/<file>", ...
    system: str | None = None   # replaces its kind's default system prompt (curriculum.prompts.task_system_prompt)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
