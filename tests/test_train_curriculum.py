"""Curriculum and think mode through the real trainer (`grpo.train.train`) on the tiny character model
with the transformers engine: fixed and gated stage switches, per-stage overrides, optimizer reset,
the adapter saved per stage, resume inside a stage, and the think prefill reaching the reward."""
from __future__ import annotations

import json

import pytest

from test_train_e2e import brace_reward, make_char_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_char_model(tmp_path_factory.mktemp("char-model"))


def config(model_dir, run_dir, curriculum=None, num_steps=5, **sections):
    from grpo.config import config_from_dict
    data = {
        "run": {"name": run_dir.name, "out_dir": str(run_dir.parent), "num_steps": num_steps, "save_every": 1,
                "keep_last": 2, "canary_every": 0, "seed": 0},
        "model": {"path": str(model_dir), "dtype": "float32"},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "rollout": {"engine": "hf", "prompts_per_step": 2, "group_size": 4, "temperature": 1.0,
                    "max_new_tokens": 6, "max_model_len": 1024},
        "data": {"num_tasks": 20},
        "grpo": {"beta": 0.0, "zero_variance": "keep", "micro_batch_size": 8},
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "warmup_ratio": 0.5},
        **sections,
    }
    if curriculum is not None:
        data["curriculum"] = curriculum
    return config_from_dict(data)


def train(cfg, resume=False, reward=brace_reward):
    from grpo.train import train as run
    return run(cfg, resume=resume, reward_fn=reward, quiet=True)


TWO_STAGES = {"advance": "fixed", "stages": [
    {"name": "easy", "max_steps": 2, "tier_mix": {"simple": 1.0}},
    {"name": "hard", "max_steps": 10, "tier_mix": {"hard": 1.0}, "lr": 2e-3, "temperature": 0.5,
     "reset_optimizer": True},
]}


def test_fixed_schedule_switches_stage_with_overrides_reset_and_saved_adapters(model_dir, tmp_path):
    seen = []

    def reward(texts, tasks, truncated):
        seen.append({t.tier for t in tasks})
        return brace_reward(texts, tasks, truncated)

    summary = train(config(model_dir, tmp_path / "fixed", TWO_STAGES), reward=reward)
    stages = [h["curriculum/stage"] for h in summary["history"]]
    assert stages == [0, 0, 1, 1, 1], "2 steps in stage 1, then stage 2 to the end"
    (change,) = summary["stage_changes"]
    assert (change["step"], change["reason"], change["name"], change["reset_optimizer"]) == (2, "steps", "hard", True)
    assert seen[:2] == [{"simple"}, {"simple"}] and seen[2:] == [{"hard"}] * 3, "each stage draws from its own mix"
    # LR: stage 1 warms up over ceil(0.5 * 5) = 3 steps of 1e-3; stage 2 resets the optimizer with its
    # own lr 2e-3 and a fresh warm-up over ceil(0.5 * 3 remaining steps) = 2 steps.
    lrs = [h["lr"] for h in summary["history"]]
    assert lrs == pytest.approx([1e-3 / 3, 2e-3 / 3, 2e-3 / 2, 2e-3, 2e-3])
    run_dir = tmp_path / "fixed"
    for name in ("stage_1_easy", "stage_2_hard"):
        assert (run_dir / "stages" / name / "adapter_model.safetensors").is_file(), name
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    state = json.loads((run_dir / "checkpoints" / "step_000005" / "state.json").read_text())
    assert state["curriculum"]["stage"] == 1 and state["curriculum"]["steps_in_stage"] == 3


def test_resume_lands_in_the_same_stage_and_step(model_dir, tmp_path):
    run_dir = tmp_path / "resumed"
    first = train(config(model_dir, run_dir, TWO_STAGES, num_steps=3))
    assert [h["curriculum/stage"] for h in first["history"]] == [0, 0, 1]
    more = train(config(model_dir, run_dir, TWO_STAGES, num_steps=5), resume=True)
    assert more["resumed_from"] == 3 and more["stage_changes"] == []
    assert [h["curriculum/stage"] for h in more["history"]] == [1, 1], "resume continues inside stage 2"
    # the reset stage's warm-up continues where it was (step 2 of the stage), it is not restarted
    assert [h["lr"] for h in more["history"]] == pytest.approx([2e-3, 2e-3])
    state = json.loads((run_dir / "checkpoints" / "step_000005" / "state.json").read_text())
    assert (state["curriculum"]["stage"], state["curriculum"]["steps_in_stage"]) == (1, 3)
    assert state["tasks"]["position"] == 3 * 2, "3 steps x 2 prompts drawn from the stage-2 pool"


def test_gated_stage_advances_on_the_rolling_rate_confirmed_by_a_held_out_eval(model_dir, tmp_path):
    always = lambda texts, tasks, truncated: brace_reward(["{}"] * len(texts), tasks, truncated)  # strict 1.0
    gated = {"advance": "gated", "stages": [
        {"name": "a", "max_steps": 10, "min_steps": 2, "window": 2, "advance_at": 0.9, "eval_prompts": 3,
         "tier_mix": {"simple": 1.0}},
        {"name": "b", "max_steps": 10, "tier_mix": {"medium": 1.0}},
    ]}
    summary = train(config(model_dir, tmp_path / "gated", gated, num_steps=4), reward=always)
    (change,) = summary["stage_changes"]
    assert (change["step"], change["reason"]) == (2, "pass_rate"), "window of 2 full at step 2, rate 1.0 >= 0.9"
    assert change["rolling_strict_pass"] == 1.0 and change["eval_strict_pass"] == 1.0


def test_think_prefill_opens_every_completion_the_reward_sees(model_dir, tmp_path):
    texts_seen = []

    def reward(texts, tasks, truncated):
        texts_seen.extend(texts)
        return brace_reward(texts, tasks, truncated)

    cfg = config(model_dir, tmp_path / "think", num_steps=1, reward={"thinking": True})
    cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"think_prefill": True})})
    train(cfg, reward=reward)
    assert len(texts_seen) == 8 and all(t.startswith("<think>\n") for t in texts_seen)
