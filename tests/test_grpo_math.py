"""Advantages, clipping, k3 KL, IS correction and each loss aggregation against hand-computed values."""
import math

import pytest
import torch

from grpo.advantages import batch_scaled, group_scaled, unscaled, zero_variance_groups
from grpo.loss import (clipped_surrogate, constant_weights, k3_kl, no_is_correction, policy_loss,
                       seq_mean_weights, token_mean_weights, truncated_is)

log = math.log


# ----------------------------------------------------------------------------- advantages

def test_group_advantages_match_hand_computed_values():
    # mean 0.5, sample std sqrt(4 * 0.25 / 3) = 0.57735 -> +-0.5 / 0.57735 = +-0.866025
    adv = group_scaled(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=0.0)
    assert torch.allclose(adv, torch.tensor([[0.866025, -0.866025, -0.866025, 0.866025]]), atol=1e-6)


def test_batch_scaling_uses_the_std_of_all_rewards():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # group means 0.5 and 1; all rewards [1, 0, 1, 1]: mean 0.75, sample var (3 * 0.0625 + 0.5625) / 3 = 0.25
    assert torch.allclose(batch_scaled(rewards, eps=0.0), torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    assert torch.allclose(unscaled(rewards, eps=0.0), torch.tensor([[0.5, -0.5], [0.0, 0.0]]))


def test_all_tie_group_has_zero_advantage_and_is_flagged():
    rewards = torch.tensor([[0.3, 0.3, 0.3], [0.0, 1.0, 0.0]])
    for fn in (group_scaled, batch_scaled, unscaled):
        adv = fn(rewards, 1e-4)
        assert torch.equal(adv[0], torch.zeros(3)), f"{fn.__name__}: a tied group must get advantage 0"
        assert torch.isfinite(adv).all()
    assert zero_variance_groups(rewards).tolist() == [True, False]


@pytest.mark.parametrize("G", [3, 5, 6, 7, 8, 12, 16])
def test_tied_groups_get_exactly_zero_even_when_the_float32_mean_is_inexact(G):
    # seven 0.7s average to 1 ulp below 0.7 in float32; over a group std of ~6e-8 + eps that ulp
    # became advantages of up to ~5e-3 before the tie was zeroed explicitly
    values = torch.tensor([0.1, 0.3, 0.7, 1 / 3, 0.55, 0.9, -0.35, 2.123])
    rewards = torch.cat([values[:, None].expand(-1, G), torch.linspace(0, 1, G)[None]])  # [9, G]
    for fn in (group_scaled, batch_scaled, unscaled):
        adv = fn(rewards, 1e-4)
        assert torch.equal(adv[:-1], torch.zeros(len(values), G)), f"{fn.__name__}: tied groups must get exactly 0"
        assert adv[-1].abs().max() > 0.1, f"{fn.__name__}: the one varied group keeps its signal"


# ----------------------------------------------------------------------------- clipping and KL

def test_clipped_surrogate_hand_values():
    old = torch.zeros(1, 4)
    logp = torch.tensor([[log(1.5), log(1.5), log(0.5), log(0.5)]])
    adv = torch.tensor([1.0])
    loss, ratio = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
    # A > 0: ratio 1.5 is capped at 1.28; ratio 0.5 < 1 - 0.2 is not clipped (min picks 0.5)
    assert torch.allclose(loss, torch.tensor([[-1.28, -1.28, -0.5, -0.5]]))
    loss_neg, _ = clipped_surrogate(logp, old, -adv, eps_low=0.2, eps_high=0.28)
    # A < 0: ratio 1.5 keeps -1.5 (pessimistic), ratio 0.5 is floored at 0.8
    assert torch.allclose(loss_neg, torch.tensor([[1.5, 1.5, 0.8, 0.8]]))


def test_clipped_tokens_have_zero_gradient():
    logp = torch.tensor([[log(1.5), log(1.1)]], requires_grad=True)
    loss, _ = clipped_surrogate(logp, torch.zeros(1, 2), torch.tensor([1.0]), 0.2, 0.2)
    loss.sum().backward()
    assert logp.grad[0, 0] == 0, "ratio 1.5 > 1.2 with A > 0 must be clipped (no gradient)"
    assert torch.isclose(logp.grad[0, 1], torch.tensor(-1.1)), "d(-rho*A)/dlogp = -rho*A = -1.1"


def test_k3_kl_hand_value_and_zero_at_equality():
    kl = k3_kl(torch.tensor([[log(0.5), log(0.2)]]), torch.tensor([[log(0.25), log(0.2)]]))
    # delta = log(0.25 / 0.5): exp(delta) - delta - 1 = 0.5 + 0.693147 - 1
    assert torch.allclose(kl, torch.tensor([[0.193147, 0.0]]), atol=1e-6)


# ----------------------------------------------------------------------------- importance sampling

def test_truncated_is_caps_the_ratio_and_reports_the_mismatch():
    old = torch.tensor([[log(0.5), log(0.3)]])
    sampler = torch.tensor([[log(0.1), log(0.6)]])
    mask = torch.ones(1, 2)
    w, m = truncated_is(old, sampler, mask, cap=2.0)
    assert torch.allclose(w, torch.tensor([[2.0, 0.5]])), "ratios 5 and 0.5; 5 is capped at 2"
    assert m["is/capped_frac"] == 0.5
    assert math.isclose(m["is/logp_abs_diff_mean"], (log(5) + log(2)) / 2, rel_tol=1e-6)
    assert math.isclose(m["is/ratio_max"], 5.0, rel_tol=1e-6)
    w_none, m_none = no_is_correction(old, sampler, mask, 2.0)
    assert torch.equal(w_none, torch.ones(1, 2)) and math.isclose(m_none["is/ratio_mean"], 2.75, rel_tol=1e-6)


def test_is_metrics_ignore_masked_tokens():
    old = torch.tensor([[0.0, 5.0]])
    _, m = truncated_is(old, torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), cap=2.0)
    assert m["is/ratio_max"] == 1.0 and m["is/capped_frac"] == 0.0


# ----------------------------------------------------------------------------- aggregation

MASK = torch.tensor([[1.0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])   # third row: fully masked
PER_TOKEN = torch.tensor([[1.0, 2, 3, 99], [4, 99, 99, 99], [99, 99, 99, 99]])


@pytest.mark.parametrize("fn, expected", [
    (seq_mean_weights, (2 + 4) / 2),       # mean per sequence, then over the 2 non-empty sequences
    (token_mean_weights, 10 / 4),          # all 4 real tokens
    (constant_weights, 10 / (3 * 4)),      # all 3 sequences * max_tokens (4), whatever the mask
])
def test_aggregations_hand_values_and_masking(fn, expected):
    w = fn(MASK, 4)
    assert math.isclose(float((PER_TOKEN * w).sum()), expected, rel_tol=1e-6)
    assert (w[MASK == 0] == 0).all(), "masked tokens (and the fully masked row) must weigh 0"


@pytest.mark.parametrize("fn", [seq_mean_weights, token_mean_weights, constant_weights])
def test_micro_batches_sum_to_the_full_batch_loss(fn):
    w = fn(MASK, 4)
    whole = (PER_TOKEN * w).sum()
    parts = (PER_TOKEN[:1] * w[:1]).sum() + (PER_TOKEN[1:] * w[1:]).sum()
    assert torch.isclose(whole, parts)


def test_all_masked_batch_gives_zero_loss_not_nan():
    for fn in (seq_mean_weights, token_mean_weights, constant_weights):
        assert (fn(torch.zeros(2, 3), 3) == 0).all()


# ----------------------------------------------------------------------------- the whole loss

def test_policy_loss_hand_value():
    # Two sequences, on-policy (ratio 1). Seq 0: A = +1, 2 tokens; seq 1: A = -0.5, 1 token.
    logp = torch.tensor([[log(0.5), log(0.5)], [log(0.2), 0.0]])
    ref = torch.tensor([[log(0.25), log(0.5)], [log(0.2), 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -0.5])
    loss, m = policy_loss(logp, logp.clone(), ref, torch.ones(2, 2), adv, seq_mean_weights(mask, 2),
                          beta=0.1, eps_low=0.2, eps_high=0.2)
    # per token: pg = -A, kl = [0.193147, 0, 0] -> seq 0 mean (-1 + 0.0193147 - 1) / 2, seq 1: 0.5
    expected = ((-1 + 0.0193147) + (-1)) / 2 / 2 + 0.5 / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    assert math.isclose(m["kl"], 0.193147 / 3, rel_tol=1e-5)
    assert m["clip_ratio/region_mean"] == 0.0 and math.isclose(m["ratio_mean"], 1.0)


def test_is_weights_scale_the_policy_term_only():
    logp, mask = torch.zeros(1, 1), torch.ones(1, 1)
    ref = torch.tensor([[log(0.5)]])
    base, _ = policy_loss(logp, logp, ref, torch.ones(1, 1), torch.tensor([1.0]), mask, beta=1.0,
                          eps_low=0.2, eps_high=0.2)
    weighted, _ = policy_loss(logp, logp, ref, torch.full((1, 1), 2.0), torch.tensor([1.0]), mask, beta=1.0,
                              eps_low=0.2, eps_high=0.2)
    kl = 0.5 - log(0.5) - 1
    assert math.isclose(base.item(), -1 + kl, rel_tol=1e-6)
    assert math.isclose(weighted.item(), -2 + kl, rel_tol=1e-6), "IS weight multiplies pg, not the KL"


def test_clip_fractions_count_only_the_clipped_side():
    old = torch.zeros(2, 2)
    logp = torch.tensor([[log(1.5), 0.0], [log(0.5), 0.0]])
    _, m = policy_loss(logp, old, None, torch.ones(2, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 2) / 4,
                       beta=0.0, eps_low=0.2, eps_high=0.2)
    assert m["clip_ratio/high_mean"] == 0.25 and m["clip_ratio/low_mean"] == 0.25
    assert m["clip_ratio/region_mean"] == 0.5 and m["kl"] == 0.0
