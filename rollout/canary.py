"""Canary: prove the engine samples from the adapter the trainer just handed it, not a stale one.

Silent non-delivery (the engine keeps generating with base weights, the previous step's adapter,
or part of the new one after a "swap") is the most common bug of colocated RL loops, and it fails
quietly: training still runs, rewards just stop improving.

The check samples continuations from the engine at T = 1 (sampled tokens, not greedy ones: a greedy
token has logprob ~ 0 under almost any weights) and scores those same tokens with the trainer's own
forward under three candidates: the current adapter p, the previous one c = `previous` (a snapshot
of the LoRA weights before the last update) and the base c = adapter disabled. Per token, the engine's
logprobs e are regressed on the direction from p to each candidate:

    t = <e - p, c - p> / <c - p, c - p>,   se(t): the spread of t leaving out one completion at a time

t is the share of the way the engine sits toward c: 0 when the current adapter was delivered, 1 when
the engine still holds c, 0.5 for a half-delivered update (1 - t is a behavioural delivered fraction).
The check fails when t exceeds `MAX_TOWARD` by three standard errors, or when the engine is further
than `TOLERANCE_NATS` from p on average. A candidate the trainer cannot tell from p (a large se) is
inconclusive rather than failing; `sync/delivered_fraction`, read back from the engine at every swap,
covers that case, as does a candidate whose logprobs differ from p by less than `MIN_EFFECT_SHARE` of the
engine's own noise (`canary/toward_<k>_conclusive` 0). The se is a jackknife over completions: the tokens
of one continuation share a context, so their residuals are not independent, and one continuation that
wandered where the update moved the logprobs most must not decide t alone (`toward`).

The trainer scores in float32 arithmetic on the weights the engine holds (`exact_forward`: the base as it
is, the adapter rounded to the engine's dtype), not in the loss forward's bf16. Scored in bf16, p and c
each carry the trainer's own rounding noise n, and n enters both e - p and c - p with the same sign: an
errors-in-variables bias of about |n|^2 / (|c - p|^2 + 2 |n|^2) in t. After one small GRPO step the
update moves the logprobs by less than that noise, so a delivered engine read 0.35-0.7 "toward previous"
(docs/study.md, section 2: the open canary question). With float32 scoring n ~ 0 and t is unbiased;
what remains is the engine's own bf16 noise, independent of c - p except for updates below the engine's
bf16 resolution, which MIN_EFFECT_SHARE leaves inconclusive.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from rollout.engine import Engine
from rollout.types import Sampling

# Mean |logprob difference| per sampled token between the engine and the trainer on the same weights
# (bf16 kernels, summation order): ~0.005 nats on the tiny test model, 0.03-0.07 on SmolLM2-135M at T = 1.
NOISE_NATS = 0.07
TOLERANCE_NATS = 0.25      # mean |engine - current adapter| beyond this: the engine runs other weights
MAX_TOWARD = 0.25          # an engine at least a quarter of the way to a stale candidate fails
# A candidate whose logprobs differ from the current adapter's by less than this share of the engine's own
# distance from it (its bf16 arithmetic) cannot be told apart: inconclusive, not a failure. After a tiny
# update (0.0008 nats per token against 0.008 of engine noise, benchmarks/canary_noise.json) the engine's
# bf16 sums round part of it away for real, and t reads up to ~0.9 with a small se.
MIN_EFFECT_SHARE = 0.25


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


@contextmanager
def exact_forward(peft_model: Any, engine_dtype: torch.dtype):
    """Float32 arithmetic (float64 stays) on the weights an engine of `engine_dtype` holds: every floating
    parameter rounded to that dtype, then upcast (exact for the bf16 base; the fp32 LoRA masters become
    the bf16 factors the engine multiplies with). Quantised (integer) weights are left as they are."""
    saved = {}
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if p.is_floating_point():
                saved[n] = p.data
                p.data = p.data.to(engine_dtype).to(torch.promote_types(p.dtype, torch.float32))
    try:
        yield
    finally:
        params = dict(peft_model.named_parameters())
        for n, data in saved.items():
            params[n].data = data


@torch.no_grad()
def _forward_logprobs(model: Any, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """One completion's token logprobs from a plain forward of prompt + completion (the reference of
    `score_completions`)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + completion_ids], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1: -1].float().cpu()   # (T, V)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)


@torch.no_grad()
def score_completions(model: Any, prompt_ids: list[int], completions: list[list[int]]) -> torch.Tensor:
    """The logprobs of every completion's tokens after one shared prompt, concatenated (the per-row
    `_forward_logprobs`, batched): the prompt is forwarded once and its KV cache repeated for the
    completions, right-padded in one batch. The canary's prompt is ~10x longer than its 32-token
    continuations, so this is most of its cost saved."""
    completions = [list(c) for c in completions if len(c)]
    if not completions:
        return torch.zeros(0)
    device = next(model.parameters()).device
    P, n, T = len(prompt_ids), len(completions), max(len(c) for c in completions)
    prompt = model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True)
    cache = prompt.past_key_values
    cache.batch_repeat_interleave(n)
    ids = torch.zeros(n, T, dtype=torch.long, device=device)
    mask = torch.zeros(n, P + T, dtype=torch.long, device=device)
    mask[:, :P] = 1
    for i, c in enumerate(completions):
        ids[i, :len(c)] = torch.tensor(c)
        mask[i, P:P + len(c)] = 1
    logits = model(input_ids=ids, attention_mask=mask, past_key_values=cache).logits       # [n, T, V]
    logits = torch.cat([prompt.logits[:, -1:].expand(n, 1, -1), logits[:, :-1]], dim=1)     # position j predicts token j
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[..., None]).squeeze(-1).cpu()  # [n, T]
    return torch.cat([logp[i, :len(c)] for i, c in enumerate(completions)])


def toward(engine_lp: torch.Tensor, policy_lp: torch.Tensor, candidate_lp: torch.Tensor,
           sizes: list[int] | None = None) -> tuple[float, float]:
    """(t, se): how far the engine's logprobs sit from the policy's toward a candidate's (module docstring).
    `sizes`: tokens per completion, the clusters of the se (None: every token its own).

    The se is the leave-one-completion-out jackknife. The clustered sandwich se it replaces collapses to 0
    when one completion carries most of |c - p|^2: the fit runs through that completion, so its residual
    score is ~0 however far its tokens sit from the rest ("0.44 (+- 0.00)", the curriculum run's stop at
    step 80 in docs/study.md, section 11, had that signature). Leaving that completion out moves t, and the
    jackknife says so."""
    d, v = (engine_lp - policy_lp).double(), (candidate_lp - policy_lp).double()
    dv, vv = float(d @ v), float(v @ v)
    if vv == 0.0:
        return 0.0, float("inf")
    t, n = dv / vv, len(sizes or v)
    sizes = sizes or [1] * n
    dv_k = torch.stack([x.sum() for x in torch.split(d * v, sizes)])   # per completion: <d, v>, <v, v>
    vv_k = torch.stack([x.sum() for x in torch.split(v * v, sizes)])
    rest = vv - vv_k
    if n < 2 or bool((rest <= 1e-9 * vv).any()):   # t rests on one completion alone: no se
        return t, float("inf")
    t_k = (dv - dv_k) / rest                         # t without completion k
    return t, float(((n - 1) / n * (t_k - t_k.mean()).square().sum()).sqrt())


def check_adapter(engine: Engine, peft_model: Any, prompt_ids: list[int], *,
                  previous: dict[str, torch.Tensor] | None = None, num_samples: int = 8,
                  num_tokens: int = 32) -> dict:
    """Score engine samples under the current, previous and base weights. Returns metrics, `reason`
    ("" when delivered) and `evidence` (the tokens and their logprobs under the engine and each candidate).
    `previous`: `lora_state(peft_model)` taken before the last update."""
    rollouts = engine.generate([prompt_ids], Sampling(n=num_samples, temperature=1.0, max_tokens=num_tokens,
                                                      logprobs=True))
    engine_lp = torch.cat([torch.tensor(r.logprobs) for r in rollouts])
    sizes = [len(r.logprobs) for r in rollouts]
    base = peft_model.get_base_model() if hasattr(peft_model, "get_base_model") else peft_model
    was_training = peft_model.training
    peft_model.eval()

    def score() -> torch.Tensor:
        with exact_forward(peft_model, base.dtype):
            return score_completions(peft_model, prompt_ids, [r.completion_ids for r in rollouts])

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
    diff = {k: (engine_lp - lp).abs().mean().item() for k, lp in candidates.items()}    # engine vs each
    effect = {k: (policy - lp).abs().mean().item() for k, lp in candidates.items()}     # policy vs each
    reason = ""
    if diff["policy"] > TOLERANCE_NATS:
        reason = f"engine differs from the trainer's adapter by {diff['policy']:.3f} nats per token"
    metrics = {"canary/policy_diff": diff["policy"], "canary/base_diff": diff["base"],
               "canary/adapter_effect": effect["base"],
               "canary/kl_engine_trainer": (engine_lp - policy).mean().item(),
               "canary/num_tokens": float(engine_lp.numel())}
    for k in ("base", "previous"):
        if k not in candidates:
            continue
        t, se = toward(engine_lp, policy, candidates[k], sizes)
        conclusive = effect[k] >= MIN_EFFECT_SHARE * diff["policy"]
        metrics |= {f"canary/toward_{k}": t, f"canary/toward_{k}_se": se,
                    f"canary/toward_{k}_conclusive": float(conclusive)}
        if not reason and conclusive and t - 3 * se > MAX_TOWARD:
            reason = (f"engine sits {t:.2f} (+- {se:.2f}) of the way from the current adapter to the {k} weights: "
                      "stale or partial delivery")
    if previous is not None:
        metrics |= {"canary/previous_diff": diff["previous"],
                    "canary/update_effect": effect["previous"]}
    # The per-token logprobs behind the verdict, for a failure's record (grpo.train writes it to the run folder).
    evidence = {"prompt_ids": list(prompt_ids), "completion_ids": [list(r.completion_ids) for r in rollouts],
                "engine": engine_lp.tolist()} | {k: lp.tolist() for k, lp in candidates.items()}
    return metrics | {"canary/delivered": float(not reason), "reason": reason, "evidence": evidence}
