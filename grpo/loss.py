"""The GRPO loss: a clipped surrogate on group-relative advantages, plus beta * KL to the reference.

Plain GRPO (Shao et al. 2024, "DeepSeekMath", §4.1) for completion i, token t, with ratio
rho = pi(o_t) / pi_old(o_t):

    L_it = -min(rho * A_i, clip(rho, 1 - eps, 1 + eps) * A_i) + beta * KL_k3(pi || pi_ref)
    L    = 1/G sum_i 1/|o_i| sum_t L_it

Departures from plain GRPO, each a config switch (defaults in grpo/config.py):

- Clip-higher (`grpo.eps_low`, `grpo.eps_high`): separate lower and upper clip bounds
  (DAPO, Yu et al. 2025), so low-probability tokens can grow faster than they shrink.
- Loss aggregation (`grpo.loss_agg`), expressed as a per-token weight so that micro-batches sum to
  exactly the full-batch loss:
    "seq_mean"   1/num_seqs * sum_i 1/|o_i| sum_t   (GRPO)
    "token_mean" 1/sum_i |o_i| * sum_i sum_t        (DAPO: long completions are not down-weighted)
    "constant"   1/(B * max_tokens) * sum           (Dr. GRPO, Liu et al. 2025: no length bias at all)
  For seq_mean, sequences with no token left in the loss (empty, or truncated and masked) do not count
  in num_seqs; the constant normaliser counts every sequence of the batch (B), masked or not.
- Truncated importance sampling (`grpo.is_correction = "tis"`, `grpo.is_cap`): the engine samples
  with slightly different numerics than the trainer, so its tokens come from pi_sampler, not pi_old.
  Each token's policy-gradient term is weighted by min(pi_old / pi_sampler, C), detached
  (Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training").
  The mismatch is logged whatever the switch.
- KL uses the k3 estimator exp(ref - logp) - (ref - logp) - 1 (Schulman 2020,
  http://joschu.net/blog/kl-approx.html): unbiased, always >= 0. beta = 0 skips the reference pass.

Every function here is a pure function of tensors: [B, T] means B completions by T completion
tokens (right-padded; `mask` is 1 on real tokens). Diagnostics are computed under no_grad.
"""
from __future__ import annotations

from typing import Callable

import torch

WeightFn = Callable[[torch.Tensor, int, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]
ISFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, dict[str, float]]]


# ----------------------------------------------------------------------------- aggregation
# Each returns per-token weights w [B, T] with loss = sum(L * w); computed once for the whole batch.
# `total` sums a count over torchrun ranks (grpo.distributed; the identity on one process), so that
# each rank's weights are its exact share of the one-process batch's.

def _same(count: torch.Tensor) -> torch.Tensor:
    return count


def seq_mean_weights(mask: torch.Tensor, max_tokens: int, total=_same) -> torch.Tensor:
    """GRPO: mean over each sequence's tokens, then mean over sequences."""
    lengths = mask.sum(dim=1, keepdim=True)                     # [B, 1]
    num_seqs = total((lengths > 0).sum()).clamp(min=1)          # sequences with >= 1 token
    return mask / lengths.clamp(min=1) / num_seqs               # [B, T]


def token_mean_weights(mask: torch.Tensor, max_tokens: int, total=_same) -> torch.Tensor:
    """DAPO: mean over all tokens of the batch."""
    return mask / total(mask.sum()).clamp(min=1)                # [B, T]


def constant_weights(mask: torch.Tensor, max_tokens: int, total=_same) -> torch.Tensor:
    """Dr. GRPO: sum over tokens divided by a constant, B * max_tokens (B: every sequence of the batch)."""
    return mask / (total(torch.tensor(mask.shape[0])).clamp(min=1) * max_tokens)  # [B, T]


LOSS_AGGREGATIONS: dict[str, WeightFn] = {
    "seq_mean": seq_mean_weights, "token_mean": token_mean_weights, "constant": constant_weights}


# ----------------------------------------------------------------------------- importance sampling

def _mismatch_metrics(log_ratio: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How far the trainer's old logprobs are from the sampler's, on real tokens."""
    n = mask.sum().clamp(min=1)
    ratio = log_ratio.exp()                                     # [B, T] pi_old / pi_sampler
    k3 = ratio - log_ratio - 1                                  # [B, T] KL(sampler || old), k3
    return {
        "is/logp_abs_diff_mean": ((log_ratio.abs() * mask).sum() / n).item(),
        "is/ratio_mean": ((ratio * mask).sum() / n).item(),
        "is/ratio_max": (ratio * mask).max().item() if mask.any() else 1.0,
        "is/kl_sampler_trainer": ((k3 * mask).sum() / n).item(),
    }


@torch.no_grad()
def no_is_correction(old_logp, sampler_logp, mask, cap):
    """Weight 1 on every token; still report the mismatch."""
    metrics = _mismatch_metrics(old_logp - sampler_logp, mask)
    return torch.ones_like(old_logp), metrics | {"is/capped_frac": 0.0}


@torch.no_grad()
def truncated_is(old_logp, sampler_logp, mask, cap):
    """TIS: w = min(exp(old - sampler), cap) per token, detached."""
    log_ratio = old_logp - sampler_logp                         # [B, T]
    weights = log_ratio.exp().clamp(max=cap)                    # [B, T]
    capped = ((log_ratio.exp() > cap) & mask.bool()).sum() / mask.sum().clamp(min=1)
    return weights, _mismatch_metrics(log_ratio, mask) | {"is/capped_frac": capped.item()}


IS_CORRECTIONS: dict[str, ISFn] = {"none": no_is_correction, "tis": truncated_is}


# ----------------------------------------------------------------------------- loss pieces

def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from samples of pi. [B, T] -> [B, T], >= 0."""
    delta = ref_logp - logp                                     # [B, T]
    return delta.exp() - delta - 1                              # [B, T]


def clipped_surrogate(logp, old_logp, adv, eps_low: float, eps_high: float):
    """Per-token -min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A) and the ratio. adv: [B]."""
    ratio = (logp - old_logp).exp()                             # [B, T]
    A = adv[:, None]                                            # [B, 1]
    unclipped = ratio * A                                       # [B, T]
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * A        # [B, T]
    return -torch.minimum(unclipped, clipped), ratio            # [B, T], [B, T]


def policy_loss(
    logp: torch.Tensor,          # [B, T] current policy, requires grad
    old_logp: torch.Tensor,      # [B, T] policy before this batch's updates
    ref_logp: torch.Tensor | None,  # [B, T] adapter disabled; None when beta == 0
    is_weights: torch.Tensor,    # [B, T] importance weights (1 without correction)
    adv: torch.Tensor,           # [B]
    token_weights: torch.Tensor,  # [B, T] aggregation weights (0 on masked tokens)
    *, beta: float, eps_low: float, eps_high: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Scalar loss of this (micro-)batch and its diagnostics (token means over the masked tokens)."""
    pg, ratio = clipped_surrogate(logp, old_logp, adv, eps_low, eps_high)  # [B, T]
    per_token = is_weights * pg                                 # [B, T]
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else None
    if kl is not None and beta > 0:
        per_token = per_token + beta * kl                       # [B, T]
    loss = (per_token * token_weights).sum()                    # scalar

    with torch.no_grad():
        mask = (token_weights > 0).float()                      # [B, T]
        n = mask.sum().clamp(min=1)
        A = adv[:, None].expand_as(ratio)
        low = (ratio < 1 - eps_low) & (A < 0)                   # clipped from below
        high = (ratio > 1 + eps_high) & (A > 0)                 # clipped from above
        metrics = {
            "clip_ratio/low_mean": ((low * mask).sum() / n).item(),
            "clip_ratio/high_mean": ((high * mask).sum() / n).item(),
            "clip_ratio/region_mean": (((low | high) * mask).sum() / n).item(),
            "ratio_mean": ((ratio * mask).sum() / n).item(),
            "kl": ((kl * mask).sum() / n).item() if kl is not None else 0.0,
        }
    return loss, metrics
