"""The training loop: set up once, then step, log, checkpoint. `train(config)` is the whole public API.

    from grpo.config import load_config
    from grpo.train import train
    summary = train(load_config("configs/smollm2-135m-cpu.toml"))

The loop only schedules, logs and checkpoints; what a step does is in grpo/step.py. Optional keyword
arguments replace one built-in part (an engine, a reward function, a task source), for tests and
for callers with their own data; by default each is built from the config.

Under torchrun (`grpo-train --nproc N`) every rank runs this loop on its share of each step's prompts
and rank 0 alone logs, probes and writes; what the ranks exchange is in grpo/distributed.py.

Run folder (`run.out_dir/run.name`): config.toml (resolved), tb/ (TensorBoard), checkpoints/,
adapter/ (the final PEFT adapter), with a curriculum stages/stage_<i>_<name>/ (each stage's adapter),
and canary/ when a delivery check failed a draw (its tokens and logprobs).
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curriculum.schedule import CurriculumState
from grpo import checkpoint
from grpo.config import Config, ConfigError, dump_toml
from grpo.distributed import World, cpu_share, init_world
from grpo.model import count_parameters, load_policy
from grpo.monitor import Monitor, NullMonitor
from grpo.optim import build_optimizer, follow_config
from grpo.probe import probe_pass, probe_tasks
from grpo.stages import Stages, held_out_strict_pass, optimizer_horizon
from grpo.step import RewardFn, StepContext, grpo_step, packed_token_budget
from grpo.tasks import PromptRenderer, build_task_source
from rollout.canary import lora_state


def build_engine(cfg: Config, model_path: str, policy, tokenizer, world: World = World()):
    """The rollout engine named by `rollout.engine` (imported lazily: vLLM is heavy); under torchrun,
    one per rank, sampling with its own seed."""
    if cfg.rollout.engine == "hf":
        from rollout.hf_engine import HFEngine
        return HFEngine(policy, tokenizer)
    from rollout.vllm_engine import VLLMEngine
    # vLLM's torchrun mode: the engine joins the ranks' process group instead of starting its own;
    # tensor parallel size 1, so every rank is an engine of its own (docs/scaling.md).
    ranks = {"distributed_executor_backend": "external_launcher"} if world.size > 1 else {}
    engine = VLLMEngine(model_path, max_lora_rank=cfg.lora.r, max_model_len=cfg.rollout.max_model_len,
                        seed=cfg.run.seed + world.rank, dtype=cfg.model.resolved_dtype,
                        lora_mode=None if cfg.rollout.lora_mode == "auto" else cfg.rollout.lora_mode,
                        gpu_memory_utilization=cfg.rollout.gpu_memory_utilization, **ranks)
    if cfg.model.load_in_4bit:  # the engine samples from the same NF4-rounded base the trainer computes with
        from grpo.model import dequantized_base_weights
        engine.set_base_weights(dequantized_base_weights(policy))
    return engine


def default_reward_fn(cfg: Config) -> RewardFn:
    from rewards import score
    return lambda texts, tasks, truncated: score(texts, tasks, cfg.reward, truncated=truncated,
                                                 output=cfg.prompt.output)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def start_run(cfg: Config, resume: bool, allow_config_change: bool = False,
              world: World = World()) -> tuple[Path, str]:
    """Common start of a GRPO or SFT run: offline hub, threads, seeds, the run folder with its
    resolved config.toml. Refuses to overwrite a run that has checkpoints unless resuming, and to
    resume under a config that changes the run's meaning unless `allow_config_change`. Under
    torchrun every rank checks, rank 0 alone writes, and CPU ranks split the cores."""
    from rollout.models import offline_unless_hub
    offline_unless_hub(cfg.model.path)
    if world.size > 1 and not torch.cuda.is_available():
        cores = cpu_share(world)
        os.sched_setaffinity(0, cores)  # this rank's engine and trainer threads stay on its own cores
        torch.set_num_threads(cfg.run.num_threads or len(cores))
    elif cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    seed_everything(cfg.run.seed + world.rank)  # ranks never sample alike; rank 0 keeps the one-process seed
    run_dir = cfg.run_dir
    if world.is_main:
        checkpoint.remove_partial(run_dir)  # first: it may rename a checkpoint a kill left aside back into place
    world.barrier()
    latest = checkpoint.list_checkpoints(run_dir)[-1:]
    if latest and not resume:
        raise ConfigError(f"run.name: {run_dir} already holds checkpoints; pass --resume or pick another run.name")
    if latest:  # before config.toml is rewritten, so a refused resume leaves the folder as it was
        checkpoint.check_resume_config(latest[0], cfg, allow_config_change,
                                       say=print if world.is_main else (lambda *a: None))
    config_toml = dump_toml(cfg)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(config_toml)
    return run_dir, config_toml


def train(cfg: Config, *, resume: bool = False, allow_config_change: bool = False, engine=None,
          reward_fn: RewardFn | None = None, tasks=None, quiet: bool = False) -> dict[str, Any]:
    """Train for cfg.run.num_steps GRPO steps (continuing the newest checkpoint if `resume`)."""
    world = init_world()  # torchrun ranks (grpo.distributed), else one process
    try:
        return _train(cfg, world, resume, allow_config_change, engine, reward_fn, tasks, quiet)
    finally:
        world.close()


def _train(cfg: Config, world: World, resume: bool, allow_config_change: bool, engine, reward_fn, tasks,
           quiet: bool) -> dict[str, Any]:
    say = (lambda *a: None) if quiet or not world.is_main else print
    if cfg.rollout.prompts_per_step % world.size:
        raise ConfigError(f"rollout.prompts_per_step: {cfg.rollout.prompts_per_step} prompts do not split "
                          f"evenly over {world.size} ranks; make it a multiple of {world.size}")
    run_dir, config_toml = start_run(cfg, resume, allow_config_change, world)
    latest = checkpoint.list_checkpoints(run_dir)[-1:] if resume else []
    saved = checkpoint.read_state(latest[0]) if latest else {}

    # Curriculum position first: it decides the step's config (stage overrides) and its task pool.
    stages = Stages(cfg, CurriculumState.from_dict(saved["curriculum"]) if saved.get("curriculum") else None) \
        if cfg.curriculum is not None else None
    step_cfg = stages.config if stages else cfg
    if stages:
        tasks = stages.tasks  # a curriculum always draws from its stage pools
    elif tasks is None:
        tasks = build_task_source(cfg.data, cfg.run.seed)

    # Model, optimizer, rewards, engine.
    from rollout.models import resolve_model
    model_path = resolve_model(cfg.model.path)
    policy, tokenizer = load_policy(model_path, cfg.model, cfg.lora)
    optimizer, scheduler = build_optimizer(policy, step_cfg.optim, optimizer_horizon(cfg, stages and stages.state))
    custom_reward = reward_fn
    reward_fn = custom_reward or default_reward_fn(step_cfg)
    owns_engine = engine is None
    engine = engine if engine is not None else build_engine(cfg, model_path, policy, tokenizer, world)

    start_step, totals = 0, {"skipped_nonfinite": 0, "skipped_no_signal": 0}
    if latest:
        checkpoint.load_checkpoint(latest[0], policy, optimizer, scheduler, rank=world.rank)
        follow_config(optimizer, scheduler, step_cfg.optim)  # the current lr, not the checkpoint's
        tasks.load_state_dict(saved["tasks"])
        start_step, totals = saved["step"], saved["totals"]
        say(f"resumed from {latest[0]} (step {start_step}"
            + (f", stage {stages.state.stage + 1} '{stages.stage.name}')" if stages else ")"))
    elif resume:
        say(f"no checkpoint in {run_dir}; starting from step 0")
    trainable, total = count_parameters(policy)
    P, G, mb = cfg.rollout.prompts_per_step, cfg.rollout.group_size, cfg.grpo.micro_batch_size
    pack_tokens = packed_token_budget(cfg, policy)
    say(f"model            {cfg.model.path} ({model_path}), {cfg.model.resolved_dtype}"
        f"{' NF4' if cfg.model.load_in_4bit else ''}, trainable {trainable:,} / {total:,} parameters\n"
        f"prompts/step P   {P}\ngroup size G     {G}\ncompletions/step {P * G} "
        f"(<= {P * G * cfg.rollout.max_new_tokens:,} generated tokens)\n"
        + (f"micro-batches    <= {math.ceil(P * G / mb)} of {mb} sequences\n" if pack_tokens is None else
           f"micro-batches    a group's completions packed unpadded, <= {pack_tokens} tokens each\n")
        + f"optimizer steps  {cfg.run.num_steps} steps x mu={cfg.grpo.num_iterations} = {cfg.run.num_steps * cfg.grpo.num_iterations}\n"
        f"thinking         {cfg.reward.thinking} (prefill {cfg.rollout.think_prefill}); output {cfg.prompt.output}"
        f"{', own system prompt' if cfg.prompt.system else ''}\n"
        + (f"curriculum       {len(cfg.curriculum.stages)} stages, {cfg.curriculum.advance}; "
           f"now {stages.state.stage + 1} '{stages.stage.name}'\n" if stages else "")
        + f"engine           {cfg.rollout.engine}; run folder {run_dir}")

    render = PromptRenderer(tokenizer, cfg.reward.thinking, cfg.rollout.think_prefill, cfg.prompt.output,
                            cfg.prompt.system)
    ctx = StepContext(cfg=step_cfg, policy=policy, optimizer=optimizer, scheduler=scheduler, engine=engine,
                      tasks=tasks, render=render, reward_fn=reward_fn, pad_id=tokenizer.pad_token_id, world=world)
    world.broadcast_params(ctx.params)   # every rank starts from rank 0's adapter (a fresh LoRA init differs per seed)
    world.check_same(ctx.params, "at start")
    engine.set_adapter(policy)  # the engine samples from exactly the policy's adapter from step 1 on
    # Rank 0 alone logs, probes and writes; the other ranks train and check.
    monitor = Monitor(run_dir / "tb", first_step=start_step + 1) if cfg.run.tensorboard and world.is_main else NullMonitor()
    probe = probe_tasks(cfg) if cfg.run.probe_every and world.is_main else []
    summary: dict[str, Any] = {"step": start_step, "resumed_from": start_step, "history": [], "stage_changes": []}
    bar = _progress(start_step, cfg.run.num_steps, quiet or not world.is_main)
    write = bar.write if world.is_main else (lambda *a: None)
    try:
        if probe and start_step == 0:  # where the curve starts: the base model, or the init adapter (SFT)
            start = probe_pass(engine, render, ctx.reward_fn, probe, cfg.rollout.max_new_tokens)
            monitor.scalars(start, 0)
            say("probe at step 0 | " + " ".join(f"{k.removeprefix('probe/')} {v:.2f}" for k, v in start.items()))
        for step in range(start_step + 1, cfg.run.num_steps + 1):
            canary_due = cfg.run.canary_every and step % cfg.run.canary_every == 0
            previous = lora_state(policy) if canary_due else None   # the adapter a stale engine would hold
            metrics, examples = grpo_step(ctx)
            totals["skipped_nonfinite"] += metrics["skipped/nonfinite"]
            totals["skipped_no_signal"] += metrics["skipped/no_signal"]
            if canary_due:
                metrics |= _canary(engine, policy, render(tasks.tasks[0]), previous, step, run_dir)
            if probe and step % cfg.run.probe_every == 0:  # the learning curve on held-out prompts
                metrics |= probe_pass(engine, render, ctx.reward_fn, probe, cfg.rollout.max_new_tokens)
            if stages:  # may switch the stage: config, task pool, optimizer (ctx is rebuilt)
                ctx, change = _advance_curriculum(ctx, stages, step, metrics, custom_reward, run_dir)
                if change is not None:
                    tasks = ctx.tasks
                    summary["stage_changes"].append(change.as_dict())
                    monitor.text("curriculum", f"step {step}: {change.as_dict()}", step)
                    write(f"stage {change.old + 1} -> {change.new + 1} '{change.name}' after step {step} "
                              f"({change.reason}, rolling strict pass {change.rolling_strict_pass})")
            monitor.scalars(metrics | {f"totals/{k}": v for k, v in totals.items()}, step)
            if step % cfg.run.sample_every == 0 or step == 1:
                monitor.markdown("samples", "\n\n---\n\n".join(examples), step)
            if step % cfg.run.save_every == 0 or step == cfg.run.num_steps:
                rng_ranks = world.gather(checkpoint.rng_state())  # every rank's own streams, for its resume
                if world.is_main:
                    checkpoint.save_checkpoint(run_dir, step, policy, ctx.optimizer, ctx.scheduler,
                                               {"tasks": tasks.state_dict(), "totals": totals, "ranks": world.size,
                                                "curriculum": stages.state.to_dict() if stages else None},
                                               config_toml, keep_last=cfg.run.keep_last, rng_ranks=rng_ranks)
            summary["step"] = step
            kept = ("reward", "pass/strict", "lr", "step_time_s", "tokens/generated", "canary/delivered", "curriculum/stage",
                    "sync/delivered_fraction", "is/kl_sampler_trainer", "probe/strict", "probe/syntax")
            summary["history"].append({k: v for k, v in metrics.items() if k in kept or k.startswith("time/")})
            bar.update(1)
            bar.set_postfix(reward=f"{metrics.get('reward', 0):.3f}", strict=f"{metrics.get('pass/strict', 0):.2f}",
                            dt=f"{metrics['step_time_s']:.1f}s", refresh=False)
            if not quiet:
                write(_line(step, cfg.run.num_steps, metrics))
        # The final adapter alone (PEFT format), for grpo-eval --adapter and model.init_adapter;
        # in a curriculum run the last stage's folder too.
        adapter_dir = run_dir / "adapter"
        if world.is_main:
            checkpoint.save_adapter(policy, adapter_dir)
            if stages:
                checkpoint.save_adapter(policy, stages.adapter_dir(run_dir, stages.state.stage))
        world.barrier()  # no rank returns before the adapter is on disk
    finally:
        bar.close()
        monitor.close()
        if owns_engine:
            engine.close()
    return summary | {"totals": totals, "run_dir": str(run_dir), "adapter": str(adapter_dir)}


def _advance_curriculum(ctx: StepContext, stages: Stages, step: int, metrics: dict[str, float],
                        custom_reward, run_dir) -> tuple[StepContext, Any]:
    """Feed the step's strict pass to the schedule (its curriculum scalars go into `metrics`); on a stage
    change save the finished stage's adapter and return a StepContext for the new stage (config, pool,
    optimizer), else ctx itself."""
    evaluate = lambda index, stage: ctx.world.broadcast(  # rank 0 evaluates, every rank takes its verdict
        held_out_strict_pass(ctx.engine, ctx.render, ctx.reward_fn, ctx.sampling, stages.cfg, index, stage)
        if ctx.world.is_main else None)
    change, scalars = stages.after_step(metrics.get("pass/strict", 0.0), step, evaluate)
    metrics |= scalars
    if change is None:
        return ctx, None
    if ctx.world.is_main:
        checkpoint.save_adapter(ctx.policy, stages.adapter_dir(run_dir, change.old))
    optimizer, scheduler = ctx.optimizer, ctx.scheduler
    if change.reset_optimizer:
        optimizer, scheduler = build_optimizer(ctx.policy, stages.config.optim, optimizer_horizon(stages.cfg, stages.state))
    else:  # carry the moments and the schedule; the new stage's lr applies from its first step
        follow_config(optimizer, scheduler, stages.config.optim)
    new = replace(ctx, cfg=stages.config, tasks=stages.tasks, optimizer=optimizer, scheduler=scheduler,
                  reward_fn=custom_reward or default_reward_fn(stages.config))
    return new, change


def _line(step: int, num_steps: int, m: dict[str, float]) -> str:
    """One aligned line per step: progress, reward, pass rates, KL and where the time went."""
    t = {k.removeprefix("time/").removesuffix("_s"): v for k, v in m.items() if k.startswith("time/")}
    return (f"step {step:4d}/{num_steps} | reward {m.get('reward', float('nan')):.3f} "
            f"| strict {m.get('pass/strict', float('nan')):.2f} syntax {m.get('pass/syntax', float('nan')):.2f} "
            f"| zero-std {m['frac_reward_zero_std']:.2f} | kl {m.get('kl', 0.0):.4f} "
            f"| sync {m.get('sync/delivered_fraction', float('nan')):.4f} kl_is {m.get('is/kl_sampler_trainer', float('nan')):.4f} "
            + (f"| probe strict {m['probe/strict']:.2f} " if "probe/strict" in m else "")
            + f"| {m['step_time_s']:.1f}s (" + " ".join(f"{k} {v:.1f}" for k, v in t.items()) + ")")


def _progress(start: int, total: int, quiet: bool):
    from tqdm import tqdm
    # disable=None: no bar when stdout is not a terminal (logs keep the one-line-per-step output only)
    return tqdm(total=total, initial=start, disable=True if quiet else None, desc="grpo", unit="step",
                dynamic_ncols=True)


def _canary(engine, policy, prompt_ids: list[int], previous, step: int, run_dir: Path) -> dict[str, float]:
    """Prove the engine samples from the adapter just handed to it, not the base or the previous one
    (rollout.canary). Training on samples from other weights is wasted compute: stop the run. The check
    rests on 8 sampled continuations, so a failed draw writes its evidence to <run_dir>/canary/ and is
    drawn again: a stale or partial engine fails every draw, a heavy-tailed sample does not repeat. Two
    failed draws stop the run. The bf16 merge (`rollout.lora_mode = "merge"`, chosen explicitly) is known
    to deliver part of it: warn there."""
    import json

    from rollout.canary import CanaryError, check_adapter
    t0 = time.perf_counter()
    folder, reasons = Path(run_dir) / "canary", []
    for draw in (1, 2):
        result = check_adapter(engine, policy, prompt_ids, previous=previous)
        reason, evidence = result.pop("reason"), result.pop("evidence")
        if not reason:
            break
        reasons.append(reason)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"step": step, "draw": draw, "reason": reason, "metrics": result, **evidence}
        (folder / f"step_{step:06d}_draw{draw}.json").write_text(json.dumps(record))
    if len(reasons) == 2:
        message = (f"canary at step {step}: {reasons[0]}, and again on a second draw ({reasons[1]}); "
                   f"the engine does not sample the policy being trained (evidence: {folder})")
        if getattr(engine, "lora_mode", None) != "merge":
            raise CanaryError(message)
        print(f"warning: {message} (lora_mode = \"merge\" rounds small updates away)")
    elif reasons:
        print(f"warning: canary at step {step}: the first draw failed ({reasons[0]}); a second draw passed "
              f"(evidence: {folder})")
    return result | {"canary/redrawn": float(bool(reasons)), "time/canary_s": time.perf_counter() - t0}
