"""Canary: prove the engine samples from the adapter the trainer just handed it, not a stale one.

Silent non-delivery (the engine keeps generating with base weights, the previous step's adapter,
or part of the new one after a "swap") is the most common bug of colocated RL loops, and it fails
quietly: training still runs, rewards just stop improving.

The check samples a few continuations from the engine at T = 1 (sampled tokens, not greedy ones:
a greedy token has logprob ~ 0 under almost any weights) and scores those same tokens with the
trainer's own forward under three candidates: the current adapter, the previous one (`previous`,
a snapshot of the LoRA weights before the last update) and the base (adapter disabled). The engine
must sit at the current adapter: within `TOLERANCE_NATS` of it, and nearer to it than `NOISE_NATS`
plus a fifth of the way toward any candidate the trainer can tell apart from it. A half-delivered
adapter sits half-way to the base, so it fails once the adapter's effect exceeds ~3x the noise;
below that, `sync/delivered_fraction` (read back from the engine at every swap) is what catches it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from rollout.engine import Engine
from rollout.types import Sampling

# Mean |logprob difference| per sampled token between the engine and the trainer on the same
# weights (bf16 kernels, summation order): ~0.005 nats on the tiny test model, ~0.02-0.03 on
# SmolLM2-135M at T = 1 (tests/test_rollout_delivery.py measures the floor). The engine fails the check when
# it is further from the current adapter than NOISE_NATS + a fifth of the way to another candidate
# the trainer can tell apart from it; TOLERANCE_NATS bounds the gap to the current adapter.
NOISE_NATS = 0.05
TOLERANCE_NATS = 0.1


class CanaryError(RuntimeError):
    """The engine does not sample from the trainer's current adapter."""


def lora_state(peft_model: Any) -> dict[str, torch.Tensor]:
    """A detached copy of the adapter's weights: the `previous` of the next check."""
    return {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n}


@contextmanager
def _weights(peft_model: Any, state: dict[str, torch.Tensor]):
    params = dict(peft_model.named_parameters())
    current = {n: params[n].detach().clone() for n in state}
    with torch.no_grad():
        for n, w in state.items():
            params[n].copy_(w)
    try:
        yield
    finally:
        with torch.no_grad():
            for n, w in current.items():
                params[n].copy_(w)


@torch.no_grad()
def _forward_logprobs(model: Any, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + completion_ids], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1: -1].float().cpu()   # (T, V)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)


def check_adapter(engine: Engine, peft_model: Any, prompt_ids: list[int], *,
                  previous: dict[str, torch.Tensor] | None = None, num_samples: int = 4,
                  num_tokens: int = 16) -> dict:
    """Score engine samples under the current, previous and base weights. Returns metrics and `reason`
    ("" when delivered). `previous`: `lora_state(peft_model)` taken before the last update."""
    rollouts = engine.generate([prompt_ids], Sampling(n=num_samples, temperature=1.0, max_tokens=num_tokens,
                                                      logprobs=True))
    engine_lp = torch.cat([torch.tensor(r.logprobs) for r in rollouts])
    was_training = peft_model.training
    peft_model.eval()

    def score() -> torch.Tensor:
        return torch.cat([_forward_logprobs(peft_model, prompt_ids, r.completion_ids) for r in rollouts])

    try:
        candidates = {"policy": score()}
        with peft_model.disable_adapter():
            candidates["base"] = score()
        if previous is not None:
            with _weights(peft_model, previous):
                candidates["previous"] = score()
    finally:
        peft_model.train(was_training)
    policy = candidates["policy"]
    diff = {k: (engine_lp - lp).abs().mean().item() for k, lp in candidates.items()}
    effect = {k: (policy - lp).abs().mean().item() for k, lp in candidates.items()}
    reason = ""
    if diff["policy"] > TOLERANCE_NATS:
        reason = f"engine differs from the trainer's adapter by {diff['policy']:.3f} nats per token"
    for k in ("base", "previous"):
        distinct = k in diff and effect[k] > NOISE_NATS      # else the trainer cannot tell it from the policy
        if distinct and not reason and diff["policy"] > NOISE_NATS + 0.2 * effect[k]:
            reason = (f"engine is {diff['policy']:.3f} nats from the current adapter and {diff[k]:.3f} from the "
                      f"{k} weights, which lie {effect[k]:.3f} away: stale or partial delivery")
    metrics = {"canary/policy_diff": diff["policy"], "canary/base_diff": diff["base"],
               "canary/adapter_effect": effect["base"], "canary/delivered": float(not reason),
               "canary/kl_engine_trainer": (engine_lp - policy).mean().item(),
               "canary/num_tokens": float(engine_lp.numel())}
    if previous is not None:
        metrics |= {"canary/previous_diff": diff["previous"], "canary/update_effect": effect["previous"]}
    return metrics | {"reason": reason}
