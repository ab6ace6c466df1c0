"""rollout.cpu_sampler: inverse-CDF sampling draws from the distribution vLLM's sampler would."""
from __future__ import annotations

import math

import pytest
import torch

from rollout import cpu_sampler


def _frequencies(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(tokens, minlength=vocab).double() / tokens.numel()


def test_inverse_cdf_matches_the_probabilities_and_never_draws_zero_mass():
    torch.manual_seed(0)
    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.15, 0.05, 0.0])  # zero mass first, between and last
    n = 200_000
    tokens = cpu_sampler.inverse_cdf_sample(probs.log().expand(n, -1)).squeeze(1)   # fresh draws
    freq = _frequencies(tokens, probs.numel())
    assert freq[probs == 0].sum() == 0, "a token of probability 0 (logprob -inf) was drawn"
    sigma = (probs * (1 - probs) / n).sqrt().double()
    assert ((freq - probs.double()).abs() <= 5 * sigma + 1e-12).all(), (freq, probs)
    at_zero = cpu_sampler.inverse_cdf_sample(probs.log()[None], torch.zeros(1, 1))
    assert at_zero.item() == 1, "u = 0 must give the first token with mass, not a zero-probability one"


def test_inverse_cdf_keeps_the_mass_of_a_tail_of_tiny_probabilities():
    # One token holds 1 - 1e-3 of the mass, the rest is spread over 49,151 tokens of ~2e-8 each: a
    # running sum accumulated in float32 near 1 (ulp 6e-8) would drop every one of those increments and
    # never draw the tail; torch's CPU cumsum accumulates in float64, so the tail keeps its 1e-3.
    vocab, rest, n = 49_152, 1e-3, 100_000
    logprobs = torch.full((1, vocab), math.log(rest / (vocab - 1)))
    logprobs[0, 0] = math.log(1 - rest)
    grid = (torch.arange(n, dtype=torch.float64)[None] + 0.5) / n           # evenly spread u in (0, 1)
    tokens = cpu_sampler.inverse_cdf_sample(logprobs, grid)[0]
    assert abs((tokens != 0).double().mean().item() - rest) < 2 / n
    assert tokens.max() > 0.99 * vocab, "the last tokens of the vocabulary must be reachable"


def test_patched_vllm_sampler_returns_processed_logprobs_and_respects_top_k():
    pytest.importorskip("vllm")
    from vllm.v1.sample.ops.topk_topp_sampler import TopKTopPSampler

    torch.manual_seed(0)
    assert cpu_sampler.install() and cpu_sampler.install(), "install is idempotent"
    try:
        sampler = TopKTopPSampler(logprobs_mode="processed_logprobs")
        if sampler.forward.__func__ is not cpu_sampler._forward_cpu:
            pytest.skip("this vLLM build does not sample with forward_cpu")
        logits = torch.randn(4096, 50)
        tokens, logprobs = sampler.forward(logits.clone(), {}, torch.full((4096,), 3), None)
        top3 = logits.topk(3, dim=-1).indices
        assert (tokens[:, None] == top3).any(-1).all(), "top-k = 3 must only draw one of the 3 largest logits"
        assert torch.isfinite(logprobs).sum(-1).eq(3).all(), "processed logprobs: 3 finite entries per row"
        assert torch.allclose(logprobs.exp().sum(-1), torch.ones(4096))
    finally:
        cpu_sampler.uninstall()
    assert TopKTopPSampler.forward_cpu is not cpu_sampler._forward_cpu
