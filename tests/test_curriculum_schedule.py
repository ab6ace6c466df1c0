"""Curriculum stages: fixed switching at exact steps, gated switching on the rolling strict pass rate,
the step cap, the last stage, the optional confirming eval, resume through a dict, and overrides."""
import doctest
import json

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

import curriculum.schedule as sched
from curriculum.schedule import SEED_SCHEDULE, CurriculumState, Schedule, Stage, update

MIX = {"simple": 1.0}


def run(schedule: Schedule, rates, state=None, start_step=0, evaluate=None):
    """Feed per-step strict pass rates; return (final state, [(step, change)])."""
    state, changes = state or CurriculumState(), []
    for i, rate in enumerate(rates):
        state, change = update(schedule, state, rate, step=start_step + i + 1, evaluate=evaluate)
        if change:
            changes.append((start_step + i + 1, change))
    return state, changes


def test_docstring_examples():
    assert doctest.testmod(sched).failed == 0


def test_fixed_schedule_switches_at_exact_steps():
    schedule = Schedule(stages=(Stage(name="a", tier_mix=MIX, max_steps=3),
                                Stage(name="b", tier_mix=MIX, max_steps=2),
                                Stage(name="c", tier_mix=MIX, max_steps=1)))
    state, changes = run(schedule, [1.0] * 10)   # pass rate is irrelevant in a fixed schedule
    assert [(s, c.new, c.reason) for s, c in changes] == [(3, 1, "steps"), (5, 2, "steps")], \
        "stage a should end after step 3 and b after step 5 (3 + 2)"
    assert state.stage == 2 and state.steps_in_stage == 5 and state.stage_start_step == 5


def test_seed_schedule_matches_the_study():
    assert [s.max_steps for s in SEED_SCHEDULE.stages] == [800, 800, 900]
    assert [s.temperature for s in SEED_SCHEDULE.stages] == [0.8, 0.7, 0.6]
    assert SEED_SCHEDULE.stages[2].tier_mix == {"simple": 0.10, "medium": 0.25, "hard": 0.65}
    assert not any(s.reset_optimizer for s in SEED_SCHEDULE.stages), "optimizer carries over by default"
    _, changes = run(SEED_SCHEDULE, [0.0] * 2500)
    assert [s for s, _ in changes] == [800, 1600]


def test_gated_switches_when_rolling_rate_crosses_threshold():
    stage = Stage(name="a", tier_mix=MIX, max_steps=100, advance_at=0.5, window=4)
    schedule = Schedule(advance="gated", stages=(stage, Stage(name="b", tier_mix=MIX, max_steps=1)))
    # rolling means of 4 after steps 4..7: 0.25, 0.375, 0.5 -> cross at step 6
    _, changes = run(schedule, [0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 1.0])
    assert [(s, c.reason) for s, c in changes] == [(6, "pass_rate")], "should advance at step 6 (mean 0.5)"
    assert changes[0][1].rolling_strict_pass == pytest.approx(0.5)


def test_gated_waits_for_a_full_window_and_min_steps():
    stage = Stage(name="a", tier_mix=MIX, max_steps=100, advance_at=0.5, window=3, min_steps=5)
    schedule = Schedule(advance="gated", stages=(stage, Stage(name="b", tier_mix=MIX, max_steps=1)))
    _, changes = run(schedule, [1.0] * 10)
    assert [s for s, _ in changes] == [5], "perfect rates from step 1, but min_steps = 5 holds the stage"


def test_step_cap_forces_advancement():
    stage = Stage(name="a", tier_mix=MIX, max_steps=7, advance_at=0.9, window=3)
    schedule = Schedule(advance="gated", stages=(stage, Stage(name="b", tier_mix=MIX, max_steps=1)))
    _, changes = run(schedule, [0.1] * 20)
    assert [(s, c.reason) for s, c in changes] == [(7, "step_cap")]


def test_last_stage_never_advances():
    schedule = Schedule(advance="gated", stages=(Stage(name="only", tier_mix=MIX, max_steps=2, window=1),))
    state, changes = run(schedule, [1.0] * 50)
    assert changes == [] and state.stage == 0 and state.steps_in_stage == 50
    fixed = Schedule(stages=(Stage(name="only", tier_mix=MIX, max_steps=2),))
    assert run(fixed, [0.0] * 50)[1] == []


def test_state_round_trips_and_resume_inside_a_stage_matches_an_uninterrupted_run():
    stage = Stage(name="a", tier_mix=MIX, max_steps=50, advance_at=0.6, window=4)
    schedule = Schedule(advance="gated", stages=(stage, Stage(name="b", tier_mix=MIX, max_steps=5), stage))
    rates = [0.0, 0.2, 0.4, 0.6, 0.8, 0.8, 0.1, 0.9, 0.9, 0.9, 0.9, 0.3, 0.2]
    full_state, full_changes = run(schedule, rates)
    for cut in range(len(rates)):
        head, _ = run(schedule, rates[:cut])
        restored = CurriculumState.from_dict(json.loads(json.dumps(head.to_dict())))  # through a checkpoint
        assert restored == head, f"state after {cut} steps should survive the JSON round trip"
        tail_state, _ = run(schedule, rates[cut:], state=restored, start_step=cut)
        assert tail_state == full_state, f"resuming after step {cut} should land in the same stage and step"
    assert [s for s, _ in full_changes] == [6, 11]
    assert full_state.stage == 2 and full_state.steps_in_stage == 2


def test_confirming_eval_gates_the_crossing_and_runs_at_most_once_per_window():
    stage = Stage(name="a", tier_mix=MIX, max_steps=100, advance_at=0.5, window=2, eval_prompts=8)
    schedule = Schedule(advance="gated", stages=(stage, Stage(name="b", tier_mix=MIX, max_steps=1)))
    calls = []

    def evaluate(index, st):
        calls.append(index)
        return 0.0 if len(calls) < 3 else 0.75   # the first two evals refuse

    _, changes = run(schedule, [1.0] * 10, evaluate=evaluate)
    # crossing from step 2; evals at steps 2, 4, 6 (window 2 apart); the third confirms
    assert len(calls) == 3 and [s for s, _ in changes] == [6]
    assert changes[0][1].eval_strict_pass == 0.75


def test_refused_crossing_still_obeys_the_cap():
    stage = Stage(name="a", tier_mix=MIX, max_steps=5, advance_at=0.5, window=1, eval_prompts=4)
    schedule = Schedule(advance="gated", stages=(stage, Stage(name="b", tier_mix=MIX, max_steps=1)))
    _, changes = run(schedule, [1.0] * 10, evaluate=lambda i, s: 0.0)
    assert [(s, c.reason) for s, c in changes] == [(5, "step_cap")]


def test_change_carries_the_new_stage_overrides():
    schedule = Schedule(stages=(Stage(name="a", tier_mix=MIX, max_steps=1),
                                Stage(name="b", tier_mix=MIX, max_steps=1, temperature=0.6, lr=1e-5,
                                      group_size=4, reset_optimizer=True)))
    _, [(step, change)] = run(schedule, [0.0])
    assert change.overrides == {"rollout.temperature": 0.6, "optim.lr": 1e-5, "rollout.group_size": 4}
    assert change.reset_optimizer and change.name == "b"
    assert CurriculumState.from_dict(run(schedule, [0.0])[0].to_dict()).changes[0]["reason"] == "steps"


def test_apply_overrides_revalidates_a_nested_frozen_config():
    class Rollout(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        temperature: float = 0.7
        group_size: int = 8

    class Cfg(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        rollout: Rollout = Rollout()

        def model_post_init(self, _):
            assert self.rollout.group_size >= 2, "group_size >= 2"

    cfg = sched.apply_overrides(Cfg(), {"rollout.temperature": 0.6})
    assert cfg.rollout.temperature == 0.6 and Cfg().rollout.temperature == 0.7
    with pytest.raises((ValidationError, AssertionError)):
        sched.apply_overrides(Cfg(), {"rollout.group_size": 1})


def test_bad_stage_rows_are_rejected():
    with pytest.raises(ValidationError, match="tier_mix"):
        Stage(name="x", tier_mix={"easy": 1.0}, max_steps=1)
    with pytest.raises(ValidationError, match="min_steps"):
        Stage(name="x", tier_mix=MIX, max_steps=3, min_steps=4)
    with pytest.raises(ValidationError):
        Schedule(stages=())


def test_stage_tasks_follow_the_stage_mix_and_seed():
    stage = SEED_SCHEDULE.stages[2]
    tasks = sched.stage_tasks(2, stage, "json", 20, seed=42)
    assert sum(t.tier == "hard" for t in tasks) == 13, "65 % of 20 prompts should be hard"
    assert {t.meta["seed"] for t in tasks} == {44}
    held_out = sched.stage_tasks(2, stage, "json", 6, seed=42, split="eval")
    assert {t.meta["split"] for t in held_out} == {"eval"}
    math = sched.stage_tasks(0, Stage(name="m", tier_mix={"simple": 1.0}, max_steps=1), "math", 5, seed=0)
    assert {t.tier for t in math} == {"simple"}


@pytest.mark.parametrize("name", ["smollm2-135m-cpu-curriculum", "smollm2-135m-cpu-curriculum-gated"])
def test_shipped_curriculum_tables_validate(name):
    import tomllib
    from pathlib import Path
    data = tomllib.loads((Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml").read_text())
    schedule = Schedule.model_validate(data["curriculum"])
    assert [s.tier_mix for s in schedule.stages] == [s.tier_mix for s in SEED_SCHEDULE.stages]
    assert schedule.total_steps >= data["run"]["num_steps"] - schedule.stages[-1].max_steps
