"""The learning curve: strict pass on a fixed held-out probe, measured during training.

Every `run.probe_every` steps the engine (which holds the adapter just trained) answers the same
`run.probe_prompts` held-out prompts greedily, and the step logs `probe/strict` and `probe/syntax`
(TensorBoard, the step line): the held-out counterpart of `pass/strict`, which is measured on the
training batch at the sampling temperature. The prompts come from the eval split of the data's own
generator (JSON: both task families in the pool's proportion), so they never appear in training.
They are asked and judged as the training prompts are: through the trainer's renderer and reward
function, so in the run's thinking mode and [prompt] format (fenced or bare JSON).
"""
from __future__ import annotations

import numpy as np

from curriculum.task import Task
from rollout.types import Sampling


def probe_tasks(cfg) -> list[Task]:
    """The fixed held-out probe of a run: the first `run.probe_prompts` eval prompts of its data kind."""
    n, d = cfg.run.probe_prompts, cfg.data
    if d.kind == "math":
        from curriculum.linear_equations import generate_linear_tasks
        return generate_linear_tasks(n, d.seed, "eval")
    from curriculum.json_tasks import json_pool
    return json_pool(n, d.seed, "eval", None, d.schema_prompt_share, d.generated_share)


def probe_pass(engine, render, reward_fn, tasks: list[Task], max_tokens: int) -> dict[str, float]:
    """Greedy strict / syntax pass of the engine's current policy on `tasks` (per family where both occur)."""
    rollouts = engine.generate([render(t) for t in tasks], Sampling(n=1, temperature=0.0, max_tokens=max_tokens))
    scored = reward_fn([render.said(r.text) for r in rollouts], tasks, np.array([r.truncated for r in rollouts]))
    strict = np.asarray(scored.strict_pass, dtype=float)
    out = {"probe/strict": float(strict.mean()), "probe/syntax": float(np.mean(scored.syntax_pass))}
    sources = np.array([t.source for t in tasks])
    if len(set(sources)) > 1:
        out |= {f"probe/strict_{s}": float(strict[sources == s].mean()) for s in sorted(set(sources))}
    return out
