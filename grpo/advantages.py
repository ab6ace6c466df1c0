"""Group-relative advantages: how much better each completion did than its siblings.

For a prompt with G completions and rewards r_1..r_G, GRPO (Shao et al. 2024, DeepSeekMath §4.1.2) uses

    A_i = (r_i - mean(r)) / (std(r) + eps)

and gives every token of completion i that advantage. The denominator is a choice (`grpo.adv_scale`):

- "group": std of the group, as in GRPO (sample std, N-1, like TRL's `scale_rewards="group"`).
- "batch": std of all rewards of the step (TRL's `scale_rewards="batch"`; more robust when a group's
  rewards are nearly tied and its own std would blow small differences up).
- "none":  no division (Dr. GRPO, Liu et al. 2025, "Understanding R1-Zero-Like Training": dividing by
  the group std up-weights prompts that are too easy or too hard).

A group whose rewards all tie has A = 0 for every completion: it carries no learning signal
(`zero_variance_groups`; what to do with such groups is the step's business, see `grpo.zero_variance`).
Exactly 0: the float32 mean of equal rewards is not always exact (seven 0.7s average to 1 ulp
below 0.7), and that ulp over a group std of ~6e-8 + eps made advantages of up to ~5e-3, so every
scale zeroes the groups that `zero_variance_groups` flags.

Pure tensor functions; no model, no engine, no config objects.
"""
from __future__ import annotations

from typing import Callable

import torch

AdvantageFn = Callable[[torch.Tensor, float], torch.Tensor]


def zero_variance_groups(rewards: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """True for groups whose rewards all tie (within `atol`): their advantages are all zero.

    >>> zero_variance_groups(torch.tensor([[1.0, 1.0], [0.0, 0.5]]))
    tensor([ True, False])
    """
    spread = rewards.max(dim=1).values - rewards.min(dim=1).values  # [P]
    return spread <= atol


def _centered(rewards: torch.Tensor) -> torch.Tensor:
    """r - group mean, exactly 0 in the groups that tie (module docstring)."""
    centered = rewards - rewards.mean(dim=1, keepdim=True)                    # [P, G]
    return centered.masked_fill(zero_variance_groups(rewards)[:, None], 0.0)  # [P, G]


def group_scaled(rewards: torch.Tensor, eps: float) -> torch.Tensor:
    """(r - group mean) / (group std + eps).

    >>> group_scaled(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=0.0).round(decimals=4)
    tensor([[ 0.8660, -0.8660, -0.8660,  0.8660]])
    """
    return _centered(rewards) / (rewards.std(dim=1, keepdim=True) + eps)  # [P, G]


def batch_scaled(rewards: torch.Tensor, eps: float) -> torch.Tensor:
    """(r - group mean) / (std of every reward in the batch + eps)."""
    return _centered(rewards) / (rewards.std() + eps)                     # [P, G]


def unscaled(rewards: torch.Tensor, eps: float) -> torch.Tensor:
    """r - group mean (Dr. GRPO). `eps` is unused; the signature matches the others."""
    return _centered(rewards)                                             # [P, G]


ADVANTAGE_SCALES: dict[str, AdvantageFn] = {"group": group_scaled, "batch": batch_scaled, "none": unscaled}
