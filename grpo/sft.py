"""Supervised fine-tuning (SFT) of the policy's LoRA on gold replies: the warm start seed 002 recommends,
and the SFT side of seed 001's SFT-vs-GRPO comparison. `run_sft(config)` is the whole public API.

    from grpo.config import load_config
    from grpo.sft import run_sft
    summary = run_sft(load_config("configs/smollm2-135m-cpu-sft.toml"))
    # then GRPO from it:  model.init_adapter = "<run_dir>/adapter"

Data: each training task with a gold (the same generators, or user file, and `data` section as GRPO;
rows of a user's file without a gold are skipped, and the start-up lines say how many) becomes one
example, the prompt GRPO would render (the task's system prompt for `reward.thinking` and the [prompt]
section, the model's chat template, and the "<think>\\n" prefill when `think_prefill` is on) followed by
the gold reply in the instructed format (`curriculum.prompts.format_gold`: a ```json block, or the JSON
alone with `prompt.output = "bare"`) and EOS. With the prefill on, the gold's leading "<think>\\n" is
part of the prompt, not the target. Prompt and target are tokenized separately and concatenated, as a
rollout's prompt ids and sampled ids are, so SFT trains exactly the token sequences GRPO later samples.

Loss: mean negative log-likelihood over the target tokens of an optimizer step (labels are -100 on
prompt and padding, so they carry no loss; summing micro-batch losses gives the step's token mean).
The output head runs only on target positions, chunked (grpo.logprobs.selective_logprobs).

Batching: examples sorted by length and cut into micro-batches (little padding), whose order is
reshuffled every epoch; `grad_accum` micro-batches make one optimizer step. Optimizer, LR schedule,
checkpoints, TensorBoard and resume are the GRPO trainer's (grpo.optim, grpo.checkpoint, grpo.monitor);
`run.num_steps` counts optimizer steps. The final adapter is also written (atomically) to
<run_dir>/adapter in PEFT format, the path to give `model.init_adapter`.

What this module does not do: generate, score or evaluate (grpo-eval does that on the saved adapter).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from curriculum.task import Task

IGNORE = -100   # label of positions without loss (transformers' convention)


# ----------------------------------------------------------------------------- data

@dataclass
class Example:
    input_ids: list[int]   # prompt + target + EOS
    labels: list[int]      # IGNORE on the prompt, the token id on the target

    @property
    def num_target(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def gold_tasks(tasks: list[Task]) -> tuple[list[Task], int]:
    """(the tasks with a gold, how many had none); ConfigError when none has one."""
    from grpo.config import ConfigError
    with_gold = [t for t in tasks if t.gold is not None]
    if not with_gold:
        raise ConfigError(f"data: none of the {len(tasks)} tasks has a gold reply, and run.mode = 'sft' "
                          "trains on golds")
    return with_gold, len(tasks) - len(with_gold)


def build_example(tokenizer, task: Task, thinking: bool, think_prefill: bool = False, output: str = "fenced",
                  system: str | None = None) -> Example:
    """Prompt ids (as GRPO renders them) + gold reply ids + EOS, with labels only on the reply.
    `output` / `system`: the run's prompt.output / prompt.system."""
    from curriculum.prompts import format_gold, task_system_prompt
    from rollout.chat import THINK_PREFILL, render_prompt

    prompt_ids = render_prompt(tokenizer, task_system_prompt(task, thinking, output, system), task.prompt,
                               think_prefill=think_prefill)
    target = format_gold(task, thinking, output)
    if think_prefill:
        if not target.startswith(THINK_PREFILL):
            raise ValueError(f"task {task.id}: with think_prefill the gold must open with {THINK_PREFILL!r}")
        target = target[len(THINK_PREFILL):]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return Example(prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids)


@dataclass
class Batch:
    input_ids: torch.Tensor       # [B, L] right-padded
    attention_mask: torch.Tensor  # [B, L]
    labels: torch.Tensor          # [B, L] IGNORE on prompt and padding


def make_batches(examples: list[Example], micro_batch_size: int, pad_id: int) -> list[Batch]:
    """Sort by length, cut into micro-batches, pad each to its own longest row."""
    order = sorted(examples, key=lambda e: len(e.input_ids))
    batches = []
    for start in range(0, len(order), micro_batch_size):
        rows = order[start:start + micro_batch_size]
        L = max(len(e.input_ids) for e in rows)
        input_ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
        attention_mask = torch.zeros(len(rows), L, dtype=torch.long)
        labels = torch.full((len(rows), L), IGNORE, dtype=torch.long)
        for b, e in enumerate(rows):
            n = len(e.input_ids)
            input_ids[b, :n] = torch.tensor(e.input_ids)
            attention_mask[b, :n] = 1
            labels[b, :n] = torch.tensor(e.labels)
        batches.append(Batch(input_ids, attention_mask, labels))
    return batches


class BatchStream:
    """Micro-batches in an order reshuffled every epoch; its state is one integer, like grpo.tasks.TaskSource."""

    def __init__(self, batches: list[Batch], seed: int = 0):
        assert batches, "SFT needs at least one example"
        self.batches, self.seed, self.position = batches, seed, 0

    def next(self) -> Batch:
        epoch, i = divmod(self.position, len(self.batches))
        self.position += 1
        return self.batches[np.random.default_rng([self.seed, epoch]).permutation(len(self.batches))[i]]

    @property
    def epoch(self) -> float:
        return self.position / len(self.batches)

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])


# ----------------------------------------------------------------------------- loss

def sft_loss_sum(model, batch: Batch, chunk_tokens: int = 512) -> tuple[torch.Tensor, int]:
    """(sum of target-token NLL, number of target tokens). The head runs on target positions only."""
    from grpo.logprobs import selective_logprobs
    from grpo.model import device_of

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = device_of(base)
    hidden = base.get_decoder()(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                                use_cache=False).last_hidden_state  # [B, L, H]
    targets = batch.labels[:, 1:].to(device)                        # [B, L-1] position p predicts p + 1
    keep = targets != IGNORE                                        # [B, L-1]
    h = hidden[:, :-1][keep]                                        # [N, H]
    softcap = getattr(base.config, "final_logit_softcapping", None)
    logp, _ = selective_logprobs(h, base.get_output_embeddings().weight, targets[keep],
                                 softcap=softcap, chunk_tokens=chunk_tokens, with_entropy=False)  # [N]
    return -logp.sum(), int(keep.sum())


# ----------------------------------------------------------------------------- the loop

def run_sft(cfg, *, resume: bool = False, allow_config_change: bool = False, tasks: list[Task] | None = None,
            quiet: bool = False) -> dict[str, Any]:
    """Train the LoRA for cfg.run.num_steps optimizer steps on gold replies; save checkpoints and the adapter."""
    from grpo import checkpoint
    from grpo.model import count_parameters, load_policy, lora_in_base_dtype
    from grpo.monitor import Monitor, NullMonitor
    from grpo.optim import build_optimizer, follow_config
    from grpo.train import start_run
    from rollout.models import resolve_model

    say = (lambda *a: None) if quiet else print
    sft, think_prefill = cfg.sft, cfg.rollout.think_prefill
    run_dir, config_toml = start_run(cfg, resume, allow_config_change)

    # Data (tasks without a gold, possible in a user's file, have nothing to teach), model, optimizer.
    if tasks is None:
        from grpo.tasks import build_task_source
        tasks = build_task_source(cfg.data, cfg.run.seed).tasks
    tasks, no_gold = gold_tasks(tasks)
    policy, tokenizer = load_policy(resolve_model(cfg.model.path), cfg.model, cfg.lora)
    examples = [build_example(tokenizer, t, cfg.reward.thinking, think_prefill, cfg.prompt.output, cfg.prompt.system)
                for t in tasks]
    too_long = sum(len(e.input_ids) > cfg.rollout.max_model_len for e in examples)
    examples = [e for e in examples if len(e.input_ids) <= cfg.rollout.max_model_len]
    stream = BatchStream(make_batches(examples, sft.micro_batch_size, tokenizer.pad_token_id), seed=cfg.run.seed)
    optimizer, scheduler = build_optimizer(policy, cfg.optim, cfg.run.num_steps)
    params = [p for p in policy.parameters() if p.requires_grad]

    start_step = 0
    latest = checkpoint.list_checkpoints(run_dir)[-1:] if resume else []
    if latest:
        state = checkpoint.load_checkpoint(latest[0], policy, optimizer, scheduler)
        follow_config(optimizer, scheduler, cfg.optim)  # the current lr, not the checkpoint's
        stream.load_state_dict(state["sft"])
        start_step = state["step"]
        say(f"resumed from {latest[0]} (step {start_step})")

    trainable, total = count_parameters(policy)
    num_target = sum(e.num_target for e in examples)
    per_step = sft.micro_batch_size * sft.grad_accum
    say(f"model            {cfg.model.path}, {cfg.model.resolved_dtype}, trainable {trainable:,} / {total:,} parameters\n"
        f"examples         {len(examples)} ({no_gold} tasks without a gold skipped, {too_long} longer than "
        f"rollout.max_model_len dropped), "
        f"{num_target / max(len(examples), 1):.0f} target tokens each on average\n"
        f"format           thinking={cfg.reward.thinking} think_prefill={think_prefill} output={cfg.prompt.output}"
        f"{' (own system prompt)' if cfg.prompt.system else ''}\n"
        f"batch            {sft.micro_batch_size} sequences x {sft.grad_accum} micro-batches = {per_step} "
        f"per optimizer step; {cfg.run.num_steps} steps = {cfg.run.num_steps * per_step / max(len(examples), 1):.2f} "
        f"epochs\nrun folder       {run_dir}")

    monitor = Monitor(run_dir / "tb", first_step=start_step + 1) if cfg.run.tensorboard else NullMonitor()
    history: list[dict[str, float]] = []
    try:
        for step in range(start_step + 1, cfg.run.num_steps + 1):
            t0 = time.perf_counter()
            batches = [stream.next() for _ in range(sft.grad_accum)]
            n_tok = sum(int((b.labels[:, 1:] != IGNORE).sum()) for b in batches)  # the step's token-mean divisor
            loss_sum = 0.0
            for b in batches:
                with lora_in_base_dtype(policy):
                    nll, _ = sft_loss_sum(policy, b, cfg.grpo.logprob_chunk_tokens)
                (nll / n_tok).backward()
                loss_sum += nll.item()  # sync point, once per micro-batch
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm))
            skipped = not math.isfinite(grad_norm)
            if skipped:
                print(f"warning: step {step}: non-finite gradient (norm {grad_norm}); optimizer step skipped")
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            dt_s = time.perf_counter() - t0
            metrics = {"sft/loss": loss_sum / n_tok, "sft/grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0],
                       "sft/epoch": stream.epoch, "sft/target_tokens": n_tok, "skipped/nonfinite": int(skipped),
                       "step_time_s": dt_s, "tokens/train_per_s": sum(b.attention_mask.sum().item() for b in batches) / dt_s}
            monitor.scalars(metrics, step)
            history.append({"loss": metrics["sft/loss"], "step_time_s": dt_s})
            if not quiet:
                print(f"step {step:4d}/{cfg.run.num_steps} | loss {metrics['sft/loss']:.4f} | grad {grad_norm:.3f} "
                      f"| lr {metrics['lr']:.2e} | epoch {stream.epoch:.2f} | {dt_s:.1f}s", flush=True)
            if step % cfg.run.save_every == 0 or step == cfg.run.num_steps:
                checkpoint.save_checkpoint(run_dir, step, policy, optimizer, scheduler,
                                           {"sft": stream.state_dict(), "curriculum": None, "totals": {}},
                                           config_toml, keep_last=cfg.run.keep_last)
    finally:
        monitor.close()
    adapter_dir = checkpoint.save_adapter(policy, run_dir / "adapter")
    say(f"adapter          {adapter_dir}")
    return {"step": cfg.run.num_steps, "resumed_from": start_step, "history": history,
            "run_dir": str(run_dir), "adapter": str(adapter_dir), "num_examples": len(examples)}
