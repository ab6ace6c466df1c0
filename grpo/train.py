"""The training loop: set up once, then step, log, checkpoint. `train(config)` is the whole public API.

    from grpo.config import load_config
    from grpo.train import train
    summary = train(load_config("configs/smollm2-135m-cpu.toml"))

The loop only schedules, logs and checkpoints; what a step does is in grpo/step.py. Optional keyword
arguments replace one built-in part (an engine, a reward function, a task source), for tests and
for callers with their own data; by default each is built from the config.

Run folder (`run.out_dir/run.name`): config.toml (resolved), tb/ (TensorBoard), checkpoints/.
"""
from __future__ import annotations

import math
import os
import random
import time
from typing import Any

import numpy as np
import torch

from grpo import checkpoint
from grpo.config import Config, ConfigError, dump_toml
from grpo.model import count_parameters, load_policy
from grpo.monitor import Monitor, NullMonitor
from grpo.optim import build_optimizer
from grpo.step import RewardFn, StepContext, grpo_step
from grpo.tasks import PromptRenderer, build_task_source


def build_engine(cfg: Config, model_path: str, policy, tokenizer):
    """The rollout engine named by `rollout.engine` (imported lazily: vLLM is heavy)."""
    if cfg.rollout.engine == "hf":
        from rollout.hf_engine import HFEngine
        return HFEngine(policy, tokenizer)
    from rollout.vllm_engine import VLLMEngine
    return VLLMEngine(model_path, max_lora_rank=cfg.lora.r, max_model_len=cfg.rollout.max_model_len,
                      seed=cfg.run.seed, dtype=cfg.model.dtype,
                      gpu_memory_utilization=cfg.rollout.gpu_memory_utilization)


def default_reward_fn(cfg: Config) -> RewardFn:
    from rewards import score
    return lambda texts, tasks, truncated: score(texts, tasks, cfg.reward, truncated=truncated)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: Config, *, resume: bool = False, engine=None, reward_fn: RewardFn | None = None,
          tasks=None, quiet: bool = False) -> dict[str, Any]:
    """Train for cfg.run.num_steps GRPO steps (continuing the newest checkpoint if `resume`)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    say = (lambda *a: None) if quiet else print
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    seed_everything(cfg.run.seed)
    run_dir = cfg.run_dir
    if checkpoint.list_checkpoints(run_dir) and not resume:
        raise ConfigError(f"run.name: {run_dir} already holds checkpoints; pass --resume or pick another run.name")
    run_dir.mkdir(parents=True, exist_ok=True)
    config_toml = dump_toml(cfg)
    (run_dir / "config.toml").write_text(config_toml)

    # Model, optimizer, data, rewards, engine.
    from rollout.models import resolve_model
    model_path = resolve_model(cfg.model.path)
    policy, tokenizer = load_policy(model_path, cfg.model, cfg.lora)
    num_opt_steps = cfg.run.num_steps * cfg.grpo.num_iterations
    optimizer, scheduler = build_optimizer(policy, cfg.optim, num_opt_steps)
    tasks = tasks if tasks is not None else build_task_source(cfg.data, cfg.run.seed)
    reward_fn = reward_fn or default_reward_fn(cfg)
    engine = engine if engine is not None else build_engine(cfg, model_path, policy, tokenizer)

    start_step, totals = 0, {"skipped_nonfinite": 0, "skipped_no_signal": 0}
    latest = checkpoint.list_checkpoints(run_dir)[-1:] if resume else []
    checkpoint.remove_partial(run_dir)
    if latest:
        state = checkpoint.load_checkpoint(latest[0], policy, optimizer, scheduler)
        tasks.load_state_dict(state["tasks"])
        start_step, totals = state["step"], state["totals"]
        say(f"resumed from {latest[0]} (step {start_step})")
    engine.set_adapter(policy)  # the engine samples from exactly the policy's adapter from step 1 on

    trainable, total = count_parameters(policy)
    P, G, mb = cfg.rollout.prompts_per_step, cfg.rollout.group_size, cfg.grpo.micro_batch_size
    say(f"model            {cfg.model.path} ({model_path}), {cfg.model.dtype}"
        f"{' NF4' if cfg.model.load_in_4bit else ''}, trainable {trainable:,} / {total:,} parameters\n"
        f"prompts/step P   {P}\ngroup size G     {G}\ncompletions/step {P * G} "
        f"(<= {P * G * cfg.rollout.max_new_tokens:,} generated tokens)\n"
        f"micro-batches    <= {math.ceil(P * G / mb)} of {mb} sequences\n"
        f"optimizer steps  {cfg.run.num_steps} steps x mu={cfg.grpo.num_iterations} = {num_opt_steps}\n"
        f"engine           {cfg.rollout.engine}; run folder {run_dir}")

    ctx = StepContext(cfg=cfg, policy=policy, optimizer=optimizer, scheduler=scheduler, engine=engine,
                      tasks=tasks, render=PromptRenderer(tokenizer, cfg.reward.thinking), reward_fn=reward_fn,
                      pad_id=tokenizer.pad_token_id)
    monitor = Monitor(run_dir / "tb") if cfg.run.tensorboard else NullMonitor()
    summary: dict[str, Any] = {"step": start_step, "resumed_from": start_step, "history": []}
    bar = _progress(start_step, cfg.run.num_steps, quiet)
    try:
        for step in range(start_step + 1, cfg.run.num_steps + 1):
            metrics, examples = grpo_step(ctx)
            totals["skipped_nonfinite"] += metrics["skipped/nonfinite"]
            totals["skipped_no_signal"] += metrics["skipped/no_signal"]
            if cfg.run.canary_every and step % cfg.run.canary_every == 0:
                metrics |= _canary(engine, policy, ctx.render(tasks.tasks[0]), cfg.run.canary_tolerance)
            monitor.scalars(metrics | {f"totals/{k}": v for k, v in totals.items()}, step)
            if step % cfg.run.sample_every == 0 or step == 1:
                monitor.text("samples", "\n\n".join(examples), step)
            if step % cfg.run.save_every == 0 or step == cfg.run.num_steps:
                checkpoint.save_checkpoint(run_dir, step, policy, optimizer, scheduler,
                                           {"tasks": tasks.state_dict(), "curriculum": None, "totals": totals},
                                           config_toml, keep_last=cfg.run.keep_last)
            summary["step"] = step
            summary["history"].append({k: metrics[k] for k in ("reward", "pass/strict", "step_time_s")
                                       if k in metrics})
            bar.update(1)
            bar.set_postfix(reward=f"{metrics.get('reward', 0):.3f}", strict=f"{metrics.get('pass/strict', 0):.2f}",
                            dt=f"{metrics['step_time_s']:.1f}s", refresh=False)
            if not quiet:
                bar.write(_line(step, cfg.run.num_steps, metrics))
    finally:
        bar.close()
        monitor.close()
    return summary | {"totals": totals, "run_dir": str(run_dir)}


def _line(step: int, num_steps: int, m: dict[str, float]) -> str:
    """One aligned line per step: progress, reward, pass rates, KL and where the time went."""
    t = {k.removeprefix("time/").removesuffix("_s"): v for k, v in m.items() if k.startswith("time/")}
    return (f"step {step:4d}/{num_steps} | reward {m.get('reward', float('nan')):.3f} "
            f"| strict {m.get('pass/strict', float('nan')):.2f} syntax {m.get('pass/syntax', float('nan')):.2f} "
            f"| zero-std {m['frac_reward_zero_std']:.2f} | kl {m.get('kl', 0.0):.4f} "
            f"| {m['step_time_s']:.1f}s (" + " ".join(f"{k} {v:.1f}" for k, v in t.items()) + ")")


def _progress(start: int, total: int, quiet: bool):
    from tqdm import tqdm
    return tqdm(total=total, initial=start, disable=quiet, desc="grpo", unit="step", dynamic_ncols=True)


def _canary(engine, policy, prompt_ids: list[int], tolerance: float) -> dict[str, float]:
    """Prove the engine samples from the new adapter: its logprobs must match the trainer's."""
    from rollout.canary import check_adapter
    t0 = time.perf_counter()
    result = check_adapter(engine, policy, prompt_ids)
    diff = float(result.get("max_abs_logprob_diff", result.get("max_abs_diff", float("nan"))))
    if not diff <= tolerance:
        print(f"warning: canary: engine and trainer logprobs differ by {diff:.3f} (> {tolerance})")
    return {"canary/max_abs_logprob_diff": diff, "time/canary_s": time.perf_counter() - t0}
