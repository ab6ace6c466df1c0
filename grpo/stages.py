"""The trainer's side of the curriculum: which stage a run is in, that stage's config and task pool.

`curriculum.schedule` decides *when* a stage ends (a pure function of pass rates and step counts);
this module does what that decision means for a run:
- the stage's config is the run's config with the stage's overrides (temperature, lr, reward
  weights, G) applied and validated again (`stage_config`);
- the stage's prompts come from its own pool (`curriculum.schedule.stage_tasks`: its tier mix, its
  own generator seed), walked by a resumable `grpo.tasks.TaskSource`;
- the optimizer carries over by default (moments and schedule position kept; a new stage lr only
  rescales the schedule's base rate); `reset_optimizer` builds a fresh AdamW and warm-up whose
  horizon is what is left of the run (`optimizer_horizon`), so a resumed run rebuilds the same one;
- the adapter of every finished stage is saved to `<run_dir>/stages/stage_<i>_<name>/` for
  `grpo-eval --adapter ...` (progression figures).

A run without `[curriculum]` has no stages: `Stages` is not built and the loop uses `[data]` directly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from curriculum.schedule import CurriculumState, Stage, StageChange, apply_overrides, stage_dir_name, stage_tasks, update
from curriculum.schedule import metrics as curriculum_metrics
from grpo.config import Config
from grpo.tasks import TaskSource


def stage_config(cfg: Config, state: CurriculumState) -> Config:
    """The run's config with the current stage's overrides applied (validated again)."""
    return apply_overrides(cfg, cfg.curriculum.stages[state.stage].overrides())


def optimizer_horizon(cfg: Config, state: CurriculumState | None) -> int:
    """Optimizer steps the LR schedule spans: the whole run, or (after a reset) what is left from the stage's start."""
    start = 0
    if state is not None and cfg.curriculum.stages[state.stage].reset_optimizer:
        start = state.stage_start_step
    return (cfg.run.num_steps - start) * cfg.grpo.num_iterations


class Stages:
    """A run's position in its schedule plus the current stage's config and task pool."""

    def __init__(self, cfg: Config, state: CurriculumState | None = None):
        self.cfg, self.schedule = cfg, cfg.curriculum
        self.state = state or CurriculumState()
        self._enter()

    def _enter(self) -> None:
        index = self.state.stage
        self.stage: Stage = self.schedule.stages[index]
        self.config = stage_config(self.cfg, self.state)
        d = self.cfg.data
        self.tasks = TaskSource(stage_tasks(index, self.stage, d.kind, d.num_tasks, d.seed), seed=self.cfg.run.seed)

    def after_step(self, strict_pass: float, step: int, evaluate=None) -> tuple[StageChange | None, dict[str, float]]:
        """Record a finished step; on a stage change, switch config and task pool. Returns the change
        (or None) and the step's curriculum scalars, which describe the stage the step ran in."""
        self.state, change = update(self.schedule, self.state, strict_pass, step, evaluate)
        if change is None:
            return None, curriculum_metrics(self.schedule, self.state)
        self._enter()
        scalars = {"curriculum/stage": float(change.old), "curriculum/stage_change": 1.0}
        if change.rolling_strict_pass is not None:
            scalars["curriculum/rolling_strict_pass"] = change.rolling_strict_pass
        return change, scalars

    def adapter_dir(self, run_dir: Path, index: int) -> Path:
        return Path(run_dir) / "stages" / stage_dir_name(index, self.schedule.stages[index])


def held_out_strict_pass(engine, render, reward_fn, sampling, cfg: Config, index: int, stage: Stage) -> float:
    """Strict pass of the current policy on `stage.eval_prompts` held-out prompts of the stage's mix
    (one sample each at the stage's temperature): the confirmation a gated stage may ask for."""
    from dataclasses import replace
    tasks = stage_tasks(index, stage, cfg.data.kind, stage.eval_prompts, cfg.data.seed, split="eval")
    rollouts = engine.generate([render(t) for t in tasks], replace(sampling, n=1))
    scored = reward_fn([render.said(r.text) for r in rollouts], tasks, np.array([r.truncated for r in rollouts]))
    return float(np.mean(scored.strict_pass))
