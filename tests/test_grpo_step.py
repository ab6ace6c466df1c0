"""One GRPO step on a tiny model with the transformers engine: KL + mu > 1 path, dynamic-sampling
filter of all-tie groups, and the non-finite skip. Every check reads the step's own metrics and the
LoRA weights, not mocks."""
import math

import numpy as np
import pytest
import torch

from grpo.config import config_from_dict
from grpo.model import load_policy
from grpo.optim import build_optimizer
from grpo.step import StepContext, grpo_step
from grpo.tasks import PromptRenderer, TaskSource
from rollout.hf_engine import HFEngine

from test_train_e2e import TASKS, brace_reward, make_char_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_char_model(tmp_path_factory.mktemp("char-model"))


def make_ctx(model_dir, reward_fn, **grpo):
    cfg = config_from_dict({
        "model": {"path": str(model_dir), "dtype": "float32"},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "rollout": {"engine": "hf", "prompts_per_step": 2, "group_size": 4, "temperature": 1.0,
                    "max_new_tokens": 8, "max_model_len": 512},
        "grpo": {"micro_batch_size": 3, **grpo},
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0, "schedule": "constant", "max_grad_norm": 1.0},
    })
    policy, tokenizer = load_policy(str(model_dir), cfg.model, cfg.lora)
    optimizer, scheduler = build_optimizer(policy, cfg.optim, total_steps=10)
    return StepContext(cfg=cfg, policy=policy, optimizer=optimizer, scheduler=scheduler,
                       engine=HFEngine(policy, tokenizer), tasks=TaskSource(TASKS), reward_fn=reward_fn,
                       render=PromptRenderer(tokenizer), pad_id=tokenizer.pad_token_id)


def lora_weights(ctx):
    return [p.detach().clone() for p in ctx.params]


def changed(before, ctx):
    return any(not torch.equal(a, b) for a, b in zip(before, ctx.params))


def test_step_with_kl_and_two_updates_per_batch(model_dir):
    ctx = make_ctx(model_dir, brace_reward, beta=0.1, num_iterations=2, zero_variance="keep",
                   loss_agg="seq_mean", is_correction="tis")
    before = lora_weights(ctx)
    metrics, examples = grpo_step(ctx)
    assert changed(before, ctx), "two optimizer steps must move the LoRA weights"
    assert ctx.scheduler.last_epoch == 2, "mu = 2 updates -> 2 scheduler steps"
    assert metrics["kl"] >= 0 and metrics["groups/sampled"] == 2 and metrics["skipped/nonfinite"] == 0
    # The engine samples from the trainer's own fp32 weights: sampler and trainer logprobs agree.
    assert metrics["is/logp_abs_diff_mean"] < 1e-3, metrics
    for key in ("reward", "reward/braces", "entropy", "clip_ratio/region_mean", "frac_reward_zero_std",
                "time/generate_s", "time/score_s", "time/train_s", "time/sync_s", "tokens/train_per_s"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert len(examples) == 1, "one whole group is logged by default (run.num_samples_logged)"
    assert examples[0].count("**completion ") == 4 and "| advantage |" in examples[0] and "braces" in examples[0], \
        "the group's G completions with their advantages and reward components"


def constant_reward(texts, tasks, truncated):
    batch = brace_reward(texts, tasks, truncated)
    batch.total = np.full(len(texts), 0.5)
    return batch


def test_all_tie_groups_are_filtered_refilled_and_the_step_skipped(model_dir):
    ctx = make_ctx(model_dir, constant_reward, zero_variance="filter", max_refill_rounds=2, beta=0.0)
    before = lora_weights(ctx)
    metrics, _ = grpo_step(ctx)
    assert metrics["frac_reward_zero_std"] == 1.0
    assert metrics["groups/sampled"] == 2 * 3, "2 prompts, then 2 refill rounds of 2 more"
    assert metrics["groups/trained"] == 0 and metrics["skipped/no_signal"] == 1
    assert not changed(before, ctx) and ctx.scheduler.last_epoch == 1, "no update, but the schedule moves on"


def test_nonfinite_loss_skips_the_optimizer_step(model_dir):
    def nan_reward(texts, tasks, truncated):
        batch = brace_reward(texts, tasks, truncated)
        batch.total = np.arange(len(texts), dtype=float)
        batch.total[1] = np.nan
        return batch

    ctx = make_ctx(model_dir, nan_reward, zero_variance="keep", beta=0.0)
    before = lora_weights(ctx)
    with pytest.warns(UserWarning, match="non-finite"):
        metrics, _ = grpo_step(ctx)
    assert metrics["skipped/nonfinite"] == 1 and not changed(before, ctx)


def test_packed_groups_cut_into_several_micro_batches_forward_their_prompt_once(model_dir, monkeypatch):
    """micro_batch_tokens = 8 cuts every group into several packed micro-batches: the step builds one
    SharedPrompt per group and pass (reference and policy) and still trains."""
    import grpo.step
    built = []

    class CountingPrompt(grpo.step.SharedPrompt):
        def __init__(self, *args):
            super().__init__(*args)
            built.append(torch.is_grad_enabled())
    monkeypatch.setattr(grpo.step, "SharedPrompt", CountingPrompt)
    ctx = make_ctx(model_dir, brace_reward, beta=0.1, zero_variance="keep", micro_batch_tokens=8)
    assert ctx.pack_tokens == 8
    before = lora_weights(ctx)
    metrics, _ = grpo_step(ctx)
    assert metrics["micro_batches"] > 2 and changed(before, ctx)
    assert built.count(True) == built.count(False) == 2, "one policy and one reference prompt per group"
    assert metrics["kl"] >= 0 and math.isfinite(metrics["loss"])
