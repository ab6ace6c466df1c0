"""AdamW on the trainable (LoRA) weights and the learning-rate schedule.

The schedule is a pure function of the optimizer step, like nanoGPT's `get_lr`:
  1. linear warm-up from 0 over the first `warmup_ratio` of all optimizer steps;
  2. then "constant": lr; or "cosine": from lr down to min_lr_ratio * lr at the last step.
On resume, `follow_config` puts the current config's hyper-parameters into the restored optimizer.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from grpo.config import OptimSection


def lr_multiplier(step: int, total_steps: int, cfg: OptimSection) -> float:
    """Factor on cfg.lr for optimizer step `step` (0-based) of `total_steps`.

    >>> from grpo.config import OptimSection
    >>> cfg = OptimSection(warmup_ratio=0.1, schedule="cosine", min_lr_ratio=0.0)
    >>> [round(lr_multiplier(s, 20, cfg), 3) for s in (0, 1, 2, 11, 19)]
    [0.5, 1.0, 1.0, 0.5, 0.008]
    """
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    if step < warmup:                                   # 1. warm-up: (step + 1) / warmup
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))  # 2. cosine (transformers' formula)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine


def build_optimizer(model: torch.nn.Module, cfg: OptimSection, total_steps: int):
    """AdamW over parameters with requires_grad, and a LambdaLR following `lr_multiplier`."""
    params = [p for p in model.parameters() if p.requires_grad]
    assert params, "no trainable parameters: is the LoRA adapter attached?"
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, total_steps, cfg))
    return optimizer, scheduler


def follow_config(optimizer: torch.optim.Optimizer, scheduler, cfg: OptimSection) -> None:
    """Make a restored optimizer and schedule use `cfg` from the restored step on. Their state dicts
    carry the lr, betas and weight decay of the run that saved them; without this a resume with a new
    lr would keep training at the old one (and the schedule would decay from the old base)."""
    for group, multiplier in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group.update(lr=cfg.lr * multiplier(scheduler.last_epoch), initial_lr=cfg.lr, betas=cfg.betas,
                     weight_decay=cfg.weight_decay)
    scheduler.base_lrs = [cfg.lr for _ in optimizer.param_groups]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports (GRPO logs it)
