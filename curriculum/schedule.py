"""Curriculum stages: a table of stages, when to leave one, and the small state a checkpoint keeps.

A `Schedule` is a list of `Stage`s run in order. Each stage has a tier mix (which tasks it trains on),
a step cap `max_steps`, and optional per-stage overrides of the run's config (temperature, learning
rate, reward weights, group size) plus a flag to reset the optimizer on entry. When to leave a stage
is one pure function, `advance_reason`, of the stage, the steps spent in it and the rolling strict
pass rate:

  1. the last stage never advances: it runs until the run ends;
  2. fixed schedule (`advance = "fixed"`, the seed's): leave after exactly `max_steps` steps;
  3. gated schedule (`advance = "gated"`, beyond the seed): leave once the mean strict pass rate of
     the stage's last `window` steps reaches `advance_at` (the window must be full and `min_steps`
     done), or at the `max_steps` cap, whichever comes first. With `eval_prompts > 0` a crossing is
     only accepted if a short eval on held-out prompts of the stage's mix also reaches `advance_at`
     (the trainer supplies that eval as a callable; a failed one is retried once the window has
     refilled, so evals cost at most one per `window` steps).

`CurriculumState` is everything needed to resume inside a stage (stage index, steps in it, the
rolling window, the step of the last eval, the stage-change log); `to_dict`/`from_dict` go through
JSON. `update(schedule, state, strict_pass, step)` returns the next state and a `StageChange` or None;
it never mutates its input.

What this module does NOT know: models, optimizers, engines, the trainer's Config. Overrides come
out as dotted config keys (`Stage.overrides()`, e.g. {"rollout.temperature": 0.6}) that
`apply_overrides` writes into any pydantic config; resetting the optimizer and saving the stage's
adapter are the trainer's job.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curriculum.task import Task

TIERS = ("simple", "medium", "hard")
VARS_BY_TIER = {"simple": 1, "medium": 2, "hard": 3}   # math tasks: tier = number of unknowns


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # a stage lr = inf passes gt=0


class Stage(_Frozen):
    name: str
    tier_mix: dict[str, float]              # e.g. {simple = 0.35, medium = 0.55, hard = 0.10}
    max_steps: int = Field(ge=1)            # fixed: the stage's length; gated: its cap
    min_steps: int = Field(0, ge=0)         # gated: no pass-rate advancement before this many steps
    advance_at: float = Field(0.5, ge=0, le=1)  # gated: rolling strict pass rate that ends the stage
    window: int = Field(10, ge=1)           # gated: steps in the rolling mean (noise of one step's ~32 samples)
    eval_prompts: int = Field(0, ge=0)      # gated: held-out prompts that must confirm a crossing; 0 = none
    # Per-stage overrides of the run's config. None keeps the base config's value (not the previous
    # stage's), so each stage is described completely by its own row plus the base config.
    temperature: float | None = Field(None, gt=0)    # rollout.temperature (seed: 0.8 / 0.7 / 0.6)
    lr: float | None = Field(None, gt=0)             # optim.lr, applied to the running schedule
    reward_weights: dict[str, float] | None = None   # reward.weights (validated by RewardConfig)
    group_size: int | None = Field(None, ge=2)       # rollout.group_size (G)
    reset_optimizer: bool = False           # fresh AdamW moments and LR warm-up on entry (the seed always did)

    @model_validator(mode="after")
    def _check(self) -> "Stage":
        unknown = set(self.tier_mix) - set(TIERS)
        if unknown or sum(self.tier_mix.values()) <= 0 or any(w < 0 for w in self.tier_mix.values()):
            raise ValueError(f"tier_mix: needs non-negative weights over {TIERS} with a positive sum, "
                             f"got {self.tier_mix}")
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps: {self.min_steps} exceeds max_steps = {self.max_steps}")
        return self

    def overrides(self) -> dict[str, Any]:
        """The stage's config overrides as dotted keys (the same keys `--set` takes)."""
        keys = {"rollout.temperature": self.temperature, "optim.lr": self.lr,
                "reward.weights": self.reward_weights, "rollout.group_size": self.group_size}
        return {k: v for k, v in keys.items() if v is not None}


class Schedule(_Frozen):
    advance: Literal["fixed", "gated"] = "fixed"
    stages: tuple[Stage, ...] = Field(min_length=1)

    @property
    def total_steps(self) -> int:
        """Steps a fixed schedule takes (the seed's: 800 + 800 + 900 = 2500); a gated one's upper bound."""
        return sum(s.max_steps for s in self.stages)


# The seed's schedule (seed-repo-study 5.4). Its optimizer reset per stage is NOT copied: the study
# (9.3, 10.8) ties Gemma's stage-2 collapse to it, so `reset_optimizer` is off unless a config asks.
SEED_SCHEDULE = Schedule(stages=(
    Stage(name="format_basics", max_steps=800, tier_mix={"simple": 0.35, "medium": 0.55, "hard": 0.10},
          temperature=0.8),
    Stage(name="progressive", max_steps=800, tier_mix={"simple": 0.15, "medium": 0.35, "hard": 0.50},
          temperature=0.7),
    Stage(name="full_difficulty", max_steps=900, tier_mix={"simple": 0.10, "medium": 0.25, "hard": 0.65},
          temperature=0.6),
))


# ----------------------------------------------------------------------------- the pure schedule

def rolling_rate(window: list[float], size: int) -> float | None:
    """Mean of the last `size` per-step pass rates; None until `size` steps have been seen."""
    return sum(window[-size:]) / size if len(window) >= size else None


def advance_reason(stage: Stage, steps_in_stage: int, rate: float | None, *, gated: bool,
                   is_last: bool) -> str | None:
    """Why the stage ends after `steps_in_stage` steps, or None to stay (numbered as in the docstring).

    >>> s = Stage(name="a", tier_mix={"simple": 1}, max_steps=100, min_steps=10, advance_at=0.5)
    >>> advance_reason(s, 100, None, gated=False, is_last=False), advance_reason(s, 99, 0.9, gated=False, is_last=False)
    ('steps', None)
    >>> advance_reason(s, 20, 0.6, gated=True, is_last=False), advance_reason(s, 5, 0.6, gated=True, is_last=False)
    ('pass_rate', None)
    >>> advance_reason(s, 100, 0.1, gated=True, is_last=False), advance_reason(s, 500, 1.0, gated=True, is_last=True)
    ('step_cap', None)
    """
    if is_last:                                                      # 1. runs until the run ends
        return None
    if not gated:                                                    # 2. fixed length
        return "steps" if steps_in_stage >= stage.max_steps else None
    if rate is not None and steps_in_stage >= stage.min_steps and rate >= stage.advance_at:
        return "pass_rate"                                           # 3. the rolling rate crossed
    return "step_cap" if steps_in_stage >= stage.max_steps else None  # 3. ... or the cap


# ----------------------------------------------------------------------------- state and update

@dataclass(frozen=True)
class CurriculumState:
    stage: int = 0                     # index into Schedule.stages
    steps_in_stage: int = 0            # steps completed in the current stage
    stage_start_step: int = 0          # global step after which the current stage began
    window: tuple[float, ...] = ()     # per-step strict pass rates of this stage, newest last (<= window)
    last_eval_at: int | None = None    # steps_in_stage of the last confirming eval in this stage
    changes: tuple[dict, ...] = ()     # log of StageChange.as_dict(), oldest first

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))   # plain JSON types (tuples become lists)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CurriculumState":
        return cls(stage=int(d["stage"]), steps_in_stage=int(d["steps_in_stage"]),
                   stage_start_step=int(d.get("stage_start_step", 0)),
                   window=tuple(float(x) for x in d.get("window", ())),
                   last_eval_at=d.get("last_eval_at"), changes=tuple(d.get("changes", ())))


@dataclass(frozen=True)
class StageChange:
    step: int                  # global step after which the new stage starts
    old: int
    new: int
    name: str                  # the new stage's name
    reason: str                # "steps" | "pass_rate" | "step_cap"
    rolling_strict_pass: float | None
    eval_strict_pass: float | None = None
    reset_optimizer: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


EvalFn = Callable[[int, Stage], float]   # (stage index, stage) -> strict pass on held-out prompts


def update(schedule: Schedule, state: CurriculumState, strict_pass: float, step: int,
           evaluate: EvalFn | None = None) -> tuple[CurriculumState, StageChange | None]:
    """Record one finished step (global `step`, batch strict pass rate) and decide whether to advance.

    Returns (next state, the change or None). `evaluate` is called only for a gated stage with
    `eval_prompts > 0`, only when the rolling rate has crossed, and at most once per `window` steps.
    """
    stage = schedule.stages[state.stage]
    steps = state.steps_in_stage + 1
    window = (state.window + (float(strict_pass),))[-stage.window:]
    state = replace(state, steps_in_stage=steps, window=window)
    gated = schedule.advance == "gated"
    rate = rolling_rate(list(window), stage.window)
    reason = advance_reason(stage, steps, rate, gated=gated, is_last=state.stage == len(schedule.stages) - 1)

    eval_rate = None
    if reason == "pass_rate" and stage.eval_prompts > 0:
        due = state.last_eval_at is None or steps - state.last_eval_at >= stage.window
        if evaluate is None or not due:
            reason = None
        else:
            eval_rate = float(evaluate(state.stage, stage))
            state = replace(state, last_eval_at=steps)
            if eval_rate < stage.advance_at:
                reason = None
        if reason is None and steps >= stage.max_steps:   # a refused crossing still obeys the cap
            reason = "step_cap"
    if reason is None:
        return state, None

    new = schedule.stages[state.stage + 1]
    change = StageChange(step=step, old=state.stage, new=state.stage + 1, name=new.name, reason=reason,
                         rolling_strict_pass=rate, eval_strict_pass=eval_rate,
                         reset_optimizer=new.reset_optimizer, overrides=new.overrides())
    return CurriculumState(stage=state.stage + 1, stage_start_step=step,
                           changes=state.changes + (change.as_dict(),)), change


def metrics(schedule: Schedule, state: CurriculumState) -> dict[str, float]:
    """Scalars for TensorBoard each step (curriculum/stage steps up at every change)."""
    stage = schedule.stages[state.stage]
    out = {"curriculum/stage": float(state.stage), "curriculum/steps_in_stage": float(state.steps_in_stage)}
    rate = rolling_rate(list(state.window), stage.window)
    if rate is not None:
        out["curriculum/rolling_strict_pass"] = rate
    return out


# ----------------------------------------------------------------------------- stage data and config

def stage_tasks(index: int, stage: Stage, kind: str, num_tasks: int, seed: int,
                split: Literal["train", "eval"] = "train") -> list[Task]:
    """The stage's task pool: the run's generator with the stage's tier mix and its own seed (seed + index,
    as the seed repo did), so stages do not replay each other's prompts. "eval" gives held-out prompts."""
    if kind == "json":
        from curriculum.json_tasks import generate_json_tasks
        return generate_json_tasks(num_tasks, seed + index, split, stage.tier_mix)
    from curriculum.linear_equations import generate_linear_tasks
    var_mix = {VARS_BY_TIER[t]: w for t, w in stage.tier_mix.items() if w > 0}
    return generate_linear_tasks(num_tasks, seed + index, split, var_mix=var_mix)


def apply_overrides(config: BaseModel, overrides: dict[str, Any]) -> BaseModel:
    """A copy of a (nested, frozen) pydantic config with dotted keys replaced, validated again.

    Re-validation means a stage cannot smuggle in a value the config itself would refuse
    (e.g. a group size below 2, or an unknown reward component)."""
    if not overrides:
        return config
    data = config.model_dump()
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return type(config).model_validate(data)


def stage_dir_name(index: int, stage: Stage) -> str:
    """Folder name of a stage's saved adapter under <run_dir>/stages/ (the seed's layout)."""
    return f"stage_{index + 1}_{stage.name}"
