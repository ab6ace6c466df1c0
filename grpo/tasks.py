"""Where a step's prompts come from: a small, resumable "task source".

`TaskSource` walks a fixed pool of tasks in an order reshuffled every epoch. Its whole state is one
integer (how many tasks it has handed out), so a checkpoint restores it exactly. A curriculum run gives
each stage its own source (grpo.stages).

`PromptRenderer` turns a task into prompt token ids (its system prompt, from
`curriculum.prompts.task_system_prompt` for the run's thinking mode and [prompt] section, + user message
through the model's chat template, and in think mode optionally the "<think>\n" prefill), once per
task; `said(text)` is what the model "said" for a completion (prefill + generated text), the string
rewards score.

The pool comes from the generators (data.kind "json" / "math") or from the user's own rows
(data.kind "jsonl" / "dataset", curriculum.custom), used whole: nothing is held out of it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from curriculum.task import Task


class TaskSource:
    def __init__(self, tasks: list[Task], seed: int = 0):
        assert tasks, "a task source needs at least one task"
        self.tasks, self.seed, self.position = list(tasks), seed, 0

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.tasks))

    def next_batch(self, n: int) -> list[Task]:
        """The next n tasks; crosses epoch boundaries with a fresh permutation."""
        out = []
        for _ in range(n):
            epoch, i = divmod(self.position, len(self.tasks))
            out.append(self.tasks[self._order(epoch)[i]])
            self.position += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])


def build_task_source(data_cfg, seed: int) -> TaskSource:
    """The training pool (`data.kind`): the curriculum generators, or the user's rows (curriculum.custom)."""
    if data_cfg.kind in ("jsonl", "dataset"):
        from curriculum.custom import load_custom
        tasks = load_custom(data_cfg.kind, data_cfg.path, data_cfg.split, data_cfg.columns)
    elif data_cfg.kind == "json":
        from curriculum.json_tasks import json_pool
        tasks = json_pool(data_cfg.num_tasks, data_cfg.seed, "train", data_cfg.tier_mix,
                          data_cfg.schema_prompt_share, data_cfg.generated_share)
    else:
        from curriculum.linear_equations import generate_linear_tasks
        tasks = generate_linear_tasks(data_cfg.num_tasks, data_cfg.seed, "train")
    return TaskSource(tasks, seed=seed)


class PromptRenderer:
    """Task -> prompt token ids with the model's chat template; cached by task id."""

    def __init__(self, tokenizer: Any, thinking: bool = False, think_prefill: bool = False,
                 output: str = "fenced", system: str | None = None):
        self.tokenizer, self.thinking, self.think_prefill, self._cache = tokenizer, thinking, think_prefill, {}
        self.output, self.system = output, system   # prompt.output / prompt.system

    def __call__(self, task: Task) -> list[int]:
        if task.id not in self._cache:
            from curriculum.prompts import task_system_prompt
            from rollout.chat import render_prompt
            system = task_system_prompt(task, self.thinking, self.output, self.system)
            self._cache[task.id] = render_prompt(self.tokenizer, system, task.prompt, think_prefill=self.think_prefill)
        return self._cache[task.id]

    def said(self, completion: str) -> str:
        from rollout.chat import full_completion
        return full_completion(completion, think_prefill=self.think_prefill)
