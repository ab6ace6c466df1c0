"""Inverse-CDF sampling for vLLM's CPU sampler: one random number per row instead of one per vocab entry.

Why: vLLM's CPU `TopKTopPSampler.forward_cpu` samples by Gumbel-max (`fused_gumbel_argmax`): a
SplitMix64 draw and a log per vocabulary entry, ~6-8 ms per decode step for 32 rows of SmolLM2's
49,152 logits on this 2-core machine, a tenth or more of the engine's decode step. It also computes the processed
log-softmax anyway when logprobs are requested (`logprobs_mode="processed_logprobs"`, what
rollout.VLLMEngine asks for). Inverse-CDF sampling reuses those logprobs: exp, a running sum, one
uniform per row scaled to the row's total, a binary search; ~2 ms instead of ~6-8 ms per decode step
(`scripts/bench_cpu_engine.py` times the engine with each sampler: benchmarks/cpu_engine.json).

Precision: torch accumulates a float32 cumsum in float64 on CPU and rounds each partial sum to float32,
so the row's total is exact and each token's interval is its probability to within one float32 ulp of
the running sum (6e-8 near 1): tokens rarer than that, after the running sum passed 0.5, are drawn at
0 or ~6e-8 instead of their own weight, their total mass unchanged. The returned logprobs (what the
trainer's importance ratio compares with) are exact. A float64 running sum would cost ~13 ms per step;
vLLM's `use_fp64_gumbel` mode, for users who need such tails exact, keeps vLLM's sampler (below).

Per-request seeded generators, float64 Gumbel mode and the other logprob modes keep vLLM's original
code. Greedy rows never reach this function (vLLM's Sampler takes the argmax for temperature 0).
"""
from __future__ import annotations

import torch

_ORIGINAL: dict[str, object] = {}


def inverse_cdf_sample(logprobs: torch.Tensor, uniform: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens drawn from each row of `logprobs` [B, V] (exp sums to 1; -inf entries are never drawn), one
    per entry of `uniform` [B, m] (numbers in [0, 1); default: one fresh draw per row). -> [B, m]"""
    cdf = logprobs.exp().cumsum(dim=-1)                       # [B, V] float32, non-decreasing
    if uniform is None:
        uniform = torch.rand(cdf.shape[0], 1, device=cdf.device)
    # right=True: the first index whose cumulative mass exceeds u, so a zero-probability token (an
    # interval of length 0) is never chosen, even for u = 0. Scaling u to the row's total absorbs rounding.
    tokens = torch.searchsorted(cdf, uniform.to(cdf.dtype) * cdf[:, -1:], right=True)
    return tokens.clamp_(max=cdf.shape[1] - 1)


def _forward_cpu(self, logits, generators, k, p):
    if generators or self.use_fp64_gumbel or self.logprobs_mode != "processed_logprobs":
        return _ORIGINAL["forward_cpu"](self, logits, generators, k, p)
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p
    logprobs = apply_top_k_top_p(logits, k, p).log_softmax(dim=-1, dtype=torch.float32)
    return inverse_cdf_sample(logprobs).squeeze(1), logprobs


def install() -> bool:
    """Patch vLLM's TopKTopPSampler (before an engine is built: it binds `forward` at construction). Idempotent."""
    try:
        from vllm.v1.sample.ops.topk_topp_sampler import TopKTopPSampler
    except ImportError:
        return False
    if TopKTopPSampler.forward_cpu is not _forward_cpu:
        _ORIGINAL.setdefault("forward_cpu", TopKTopPSampler.forward_cpu)
        TopKTopPSampler.forward_cpu = _forward_cpu
    return True


def uninstall() -> None:
    """Restore vLLM's sampler for engines built afterwards (benchmarks compare both in one process)."""
    if "forward_cpu" in _ORIGINAL:
        from vllm.v1.sample.ops.topk_topp_sampler import TopKTopPSampler
        TopKTopPSampler.forward_cpu = _ORIGINAL.pop("forward_cpu")
