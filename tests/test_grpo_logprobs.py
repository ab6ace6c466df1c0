"""Chunked selective log-softmax vs the naive full-vocabulary one, micro-batching, and a
finite-difference gradient check of the whole GRPO loss through a tiny LoRA model (float64)."""
import types

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from grpo.attention import resolve_attn_implementation
from grpo.batch import Episode, completion_mask, make_micro_batches
from grpo.logprobs import completion_logprobs, selective_logprobs
from grpo.loss import k3_kl, policy_loss, seq_mean_weights, token_mean_weights

V = 64


def _exact_rms_norm(self, x):
    """LlamaRMSNorm without its float32 round trip, so a float64 model is float64 end to end."""
    return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)


def tiny_policy(dtype=torch.float32, seed=0, attn_implementation="sdpa"):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
                      tie_word_embeddings=True, pad_token_id=0,
                      attn_implementation=resolve_attn_implementation(attn_implementation, "cpu"))
    model = LlamaForCausalLM(cfg).to(dtype)
    if dtype == torch.float64:  # finite differences need every op in float64
        for module in model.modules():
            if type(module).__name__ == "LlamaRMSNorm":
                module.forward = types.MethodType(_exact_rms_norm, module)
    policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():  # non-zero B so every LoRA weight has a gradient
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return policy.to(dtype)


def episodes(seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = [(5, 4), (3, 7), (6, 1), (4, 0), (2, 5)]  # (prompt, completion); one empty completion
    out = []
    for i, (p, c) in enumerate(lens):
        ids = torch.randint(1, V, (p + c,), generator=g).tolist()
        out.append(Episode(ids[:p], ids[p:], [], reward=0.0, advantage=float(i) - 2.0, truncated=(i == 1)))
    return out


def naive_logprobs(model, ep, temperature):
    ids = torch.tensor([ep.prompt_ids + ep.completion_ids])
    logits = model(input_ids=ids).logits.float() / temperature       # [1, L, V]
    logp = torch.log_softmax(logits[0, :-1], dim=-1)                   # [L-1, V]
    targets = ids[0, 1:]
    return logp.gather(-1, targets[:, None]).squeeze(-1)[len(ep.prompt_ids) - 1:]


def test_selective_logprobs_match_full_log_softmax_for_any_chunk():
    torch.manual_seed(0)
    h, w, t = torch.randn(37, 8), torch.randn(V, 8), torch.randint(0, V, (37,))
    full = torch.log_softmax((h @ w.T) / 0.7, dim=-1)
    expected = full.gather(-1, t[:, None]).squeeze(-1)
    expected_entropy = -(full.exp() * full).sum(-1)
    for chunk in (1, 5, 37, 100):
        logp, entropy = selective_logprobs(h, w, t, temperature=0.7, chunk_tokens=chunk)
        assert torch.allclose(logp, expected, atol=1e-5), f"chunk={chunk}"
        assert torch.allclose(entropy, expected_entropy, atol=1e-4)
    assert not selective_logprobs(h, w, t, with_entropy=False)[1].any()


@pytest.mark.parametrize("keep_logits", [True, False])
@pytest.mark.parametrize("softcap", [None, 3.0])
def test_selective_logprobs_backward_passes_gradcheck(softcap, keep_logits, monkeypatch):
    """The hand-written backward (gradient written into the kept or the recomputed logits) against finite differences."""
    import grpo.logprobs
    monkeypatch.setattr(grpo.logprobs, "KEEP_LOGITS_BYTES", grpo.logprobs.KEEP_LOGITS_BYTES if keep_logits else 0)
    torch.manual_seed(0)
    h = torch.randn(11, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(V, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, V, (11,))
    fn = lambda h, w: selective_logprobs(h, w, t, temperature=0.7, softcap=softcap, chunk_tokens=4)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (h, w), eps=1e-6, atol=1e-6)
    # and it is the gradient of the plain autograd log-softmax
    z = h @ w.T
    z = (softcap * torch.tanh(z / softcap) if softcap else z) / 0.7
    expected = torch.log_softmax(z, -1).gather(-1, t[:, None]).squeeze(-1)
    g = torch.randn(11, dtype=torch.float64)
    assert torch.allclose(torch.autograd.grad(fn(h, w), h, g)[0], torch.autograd.grad(expected, h, g)[0], atol=1e-10)


def test_completion_logprobs_match_naive_per_sequence_forward():
    policy, eps = tiny_policy(), episodes()
    w = token_mean_weights(completion_mask(eps, mask_truncated=False), 8)
    for mb in make_micro_batches(eps, w, micro_batch_size=2, pad_id=0):
        logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                      temperature=0.7, chunk_tokens=3)
        for b in range(len(mb.adv)):
            ep = next(e for e in eps if e.advantage == mb.adv[b].item())
            n = len(ep.completion_ids)
            assert torch.allclose(logp[b, :n], naive_logprobs(policy, ep, 0.7), atol=1e-4)
            assert (logp[b, n:] == 0).all(), "padding positions must be 0"


def test_micro_batches_sorted_by_length_drop_empty_rows_and_keep_weights():
    eps = episodes()
    mask = completion_mask(eps, mask_truncated=True)
    assert mask[1].sum() == 0, "the truncated episode is masked out"
    w = seq_mean_weights(mask, 8)
    micro = make_micro_batches(eps, w, micro_batch_size=2, pad_id=0)
    lengths = [int(l) for mb in micro for l in mb.attention_mask.sum(1)]
    assert lengths == sorted(lengths), "micro-batches are length-sorted"
    assert sum(len(mb.adv) for mb in micro) == 3, "the empty and the masked completion need no forward"
    assert torch.isclose(sum(mb.token_weights.sum() for mb in micro), w.sum())


def _loss(policy, micro, temperature=0.9, beta=0.1):
    total = 0.0
    for mb in micro:
        logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                      temperature=temperature, chunk_tokens=4)
        loss, _ = policy_loss(logp, mb.old_logp, mb.ref_logp, torch.ones_like(logp), mb.adv, mb.token_weights,
                              beta=beta, eps_low=0.2, eps_high=0.28)
        total = total + loss
    return total


def test_finite_difference_gradient_of_the_grpo_loss():
    policy, eps = tiny_policy(torch.float64), episodes()
    w = seq_mean_weights(completion_mask(eps, False), 8).double()
    micro = make_micro_batches(eps, w, micro_batch_size=2, pad_id=0)
    g = torch.Generator().manual_seed(1)
    for mb in micro:  # fixed old/ref logprobs somewhat away from the policy so clipping and KL matter
        with torch.no_grad():
            logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                          temperature=0.9)
        mb.old_logp = logp + 0.1 * torch.randn(logp.shape, generator=g, dtype=logp.dtype)
        mb.ref_logp = logp + 0.3 * torch.randn(logp.shape, generator=g, dtype=logp.dtype)
        mb.token_weights = mb.token_weights.double()
        mb.adv = mb.adv.double()
    params = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    policy.zero_grad()
    _loss(policy, micro).backward()
    checked = 0
    for name in list(params)[:4]:
        p = params[name]
        for idx in [(0, 0), (1, 2)]:
            orig = p.data[idx].item()
            with torch.no_grad():
                p.data[idx] = orig + 1e-6
                up = _loss(policy, micro).item()
                p.data[idx] = orig - 1e-6
                down = _loss(policy, micro).item()
                p.data[idx] = orig
            fd = (up - down) / 2e-6
            assert abs(fd - p.grad[idx].item()) <= 1e-6 + 1e-4 * abs(fd), f"{name}{idx}: fd {fd} vs autograd {p.grad[idx]}"
            checked += 1
    assert checked == 8


def test_reference_pass_disables_the_adapter():
    policy, eps = tiny_policy(), episodes()
    mb = make_micro_batches(eps, token_mean_weights(completion_mask(eps, False), 8), 8, 0)[0]
    args = (mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask)
    with torch.no_grad():
        with_adapter, _ = completion_logprobs(policy, *args)
        with policy.disable_adapter():
            ref, _ = completion_logprobs(policy, *args)
        base, _ = completion_logprobs(policy.get_base_model(), *args)  # same weights, adapter still injected
    assert not torch.allclose(with_adapter, ref), "the adapter must change the logprobs"
    assert torch.allclose(with_adapter, base), "get_base_model() still runs the injected LoRA layers"
    assert (k3_kl(with_adapter, ref) >= 0).all()


def group_episodes(seed=0, G=4, prompt_len=6, completion_lens=(5, 1, 7, 3)):
    """One GRPO group: G completions (ragged, one of a single token) of the same prompt."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(1, V, (prompt_len,), generator=g).tolist()
    return [Episode(prompt, torch.randint(1, V, (n,), generator=g).tolist(), [], 0.0, float(i) - 1.5, False)
            for i, n in zip(range(G), completion_lens)]


def test_shared_prompt_forward_equals_per_row_forward_in_values_and_gradients():
    policy = tiny_policy(torch.float64)
    eps = group_episodes()
    weights = token_mean_weights(completion_mask(eps, False), 8)
    (mb,) = make_micro_batches(eps, weights, 8, pad_id=0)
    results = []
    for share in (False, True):
        policy.zero_grad()
        logp, entropy = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                            temperature=0.7, share_prompt=share)
        (logp * mb.adv[:, None] * mb.token_weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
        results.append((logp.detach(), entropy, grads))
    (lp0, ent0, g0), (lp1, ent1, g1) = results
    assert torch.allclose(lp0, lp1, atol=1e-10) and torch.allclose(ent0, ent1, atol=1e-10)
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-10), f"gradient of {name} differs"
    # and both equal the naive per-episode log-softmax
    for b, ep in enumerate(sorted(eps, key=lambda e: len(e.completion_ids))):
        n = len(ep.completion_ids)
        assert torch.allclose(lp1[b, :n], naive_logprobs(policy, ep, 0.7).double(), atol=1e-6)


def test_group_batches_never_mix_prompts():
    eps = group_episodes(seed=1) + group_episodes(seed=2, completion_lens=(2, 9, 4, 4))
    weights = token_mean_weights(completion_mask(eps, False), 9)
    batches = make_micro_batches(eps, weights, 3, pad_id=0, by_prompt=True)
    assert sum(mb.input_ids.shape[0] for mb in batches) == 8 and len(batches) == 4, "2 groups of 4, chunks of 3"
    from grpo.logprobs import shares_prompt
    assert all(shares_prompt(mb.input_ids, mb.prompt_lens) for mb in batches)
    assert sum(float(mb.token_weights.sum()) for mb in batches) == pytest.approx(float(weights.sum()))


def test_lora_in_base_dtype_drops_the_float32_input_copies_and_keeps_float32_gradients():
    from contextlib import nullcontext

    from grpo.model import lora_in_base_dtype
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
                      pad_token_id=0, attn_implementation="sdpa")
    policy = get_peft_model(LlamaForCausalLM(cfg).to(torch.bfloat16),
                            LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"]))
    lora = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    assert {p.dtype for p in lora.values()} == {torch.float32}, "peft keeps fp32 adapter weights on a bf16 base"
    with torch.no_grad():
        for name, p in lora.items():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    ids = torch.randint(1, V, (3, 20))

    def run(context):
        saved = {}

        def pack(t):
            saved.setdefault(t.untyped_storage().data_ptr(), (t.untyped_storage().nbytes(), t.dtype))
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), context:
            logp, _ = completion_logprobs(policy, ids, torch.ones_like(ids), torch.full((3,), 8), torch.ones(3, 12))
        logp.sum().backward()
        grads = {n: p.grad.clone() for n, p in lora.items()}
        policy.zero_grad(set_to_none=True)
        fp32_bytes = sum(n for n, dtype in saved.values() if dtype == torch.float32)
        return logp.detach(), grads, fp32_bytes

    logp_plain, grads_plain, fp32_plain = run(nullcontext())
    logp_mixed, grads_mixed, fp32_mixed = run(lora_in_base_dtype(policy))
    assert fp32_mixed < fp32_plain / 2, (fp32_mixed, fp32_plain)
    assert all(g.dtype == torch.float32 and g.abs().sum() > 0 for g in grads_mixed.values())
    assert (logp_mixed - logp_plain).abs().max() < 0.1          # both run a bf16 base: bf16-level agreement
    for name in lora:
        cos = torch.nn.functional.cosine_similarity(grads_mixed[name].flatten(), grads_plain[name].flatten(), dim=0)
        assert cos > 0.98, f"{name}: {cos}"
    assert all(getattr(m, "cast_input_dtype_enabled", True) for m in policy.modules()), "peft's cast is back on"
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("share", [False, True])
def test_grouped_attention_equals_sdpa_in_values_and_gradients(share):
    """grpo.attention (query heads stacked per key/value head, additive masks) computes the same
    attention as SDPA: right padding, a shared prompt's KV cache and grouped-query heads (2 per KV head)."""
    eps = episodes() if not share else group_episodes()
    weights = token_mean_weights(completion_mask(eps, False), 8)
    (mb,) = make_micro_batches(eps, weights, 8, pad_id=0)
    results = []
    for attn in ("sdpa", "grouped"):
        policy = tiny_policy(torch.float64, attn_implementation=attn)
        logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                      temperature=0.7, share_prompt=share)
        (logp * mb.adv[:, None] * mb.token_weights).sum().backward()
        results.append((logp.detach(), {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}))
    (lp_sdpa, g_sdpa), (lp_grouped, g_grouped) = results
    assert policy.config._attn_implementation == "grouped"
    assert torch.allclose(lp_sdpa, lp_grouped, atol=1e-10)
    for name in g_sdpa:
        assert torch.allclose(g_sdpa[name], g_grouped[name], atol=1e-10), f"gradient of {name} differs"


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_grouped_attention_equals_eager_on_gemma_layers(family):
    """Gemma's attention differs from Llama's in what grpo.attention must pass through: sliding-window
    layers (the window lives in the additive mask), query_pre_attn_scalar (the `scaling`) and, for
    Gemma-2, logit soft-capping. A window of 4 on 12-token rows makes the window matter."""
    from transformers import AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig
    config_class = {"gemma2": Gemma2Config, "gemma3": Gemma3TextConfig}[family]
    # Large initial weights give attention scores of order 1, so a cap of 0.5 really bends them.
    extra = {"attn_logit_softcapping": 0.5} if family == "gemma2" else {}
    ids = torch.randint(1, V, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0                                              # right padding on the second row
    outputs = []
    for attn in ("eager", "grouped"):
        torch.manual_seed(0)
        cfg = config_class(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=6,
                           sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                           max_position_embeddings=64, pad_token_id=0, initializer_range=0.5, **extra,
                           attn_implementation=resolve_attn_implementation(attn, "cpu"))
        model = AutoModelForCausalLM.from_config(cfg).to(torch.float64)
        logits = model(input_ids=ids, attention_mask=mask).logits
        (logits[mask.bool()] ** 2).mean().backward()
        outputs.append((logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (eager_logits, eager_grads), (grouped_logits, grouped_grads) = outputs
    keep = mask.bool()
    assert torch.allclose(eager_logits[keep], grouped_logits[keep], atol=1e-6)
    assert len(eager_grads) == len(grouped_grads)
    for eager_grad, grouped_grad in zip(eager_grads, grouped_grads):
        assert torch.allclose(eager_grad, grouped_grad, atol=1e-6)


@pytest.mark.parametrize("lens", [(5, 1, 7, 3), (0, 4, 1, 6), (1, 1, 1)])
def test_packed_group_equals_the_per_row_forward_in_values_and_gradients(lens, monkeypatch):
    """With the grouped attention, a shared-prompt micro-batch is packed: completions back to back in one
    row, each attending to the prompt's cache and to itself only (grpo.attention.PackedSegments). Same
    logprobs, entropies and gradients as the plain per-row forward, with an empty and one-token completions."""
    import grpo.attention
    calls = []
    segments_forward = grpo.attention._segments_forward
    monkeypatch.setattr(grpo.attention, "_segments_forward", lambda *a: calls.append(1) or segments_forward(*a))
    eps = group_episodes(G=len(lens), completion_lens=lens)
    weights = token_mean_weights(completion_mask(eps, False), 8)
    (mb,) = make_micro_batches(eps, weights, 8, pad_id=0)
    results = []
    for attn, share in (("sdpa", False), ("grouped", True)):
        policy = tiny_policy(torch.float64, attn_implementation=attn)
        logp, entropy = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                            temperature=0.7, share_prompt=share)
        (logp * mb.adv[:, None] * mb.token_weights).sum().backward()
        results.append((logp.detach(), entropy, {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}))
    (lp0, ent0, g0), (lp1, ent1, g1) = results
    assert bool(calls) == (max(lens) > 1), "the packed attention ran (it has nothing to do for one-token completions)"
    assert torch.allclose(lp0, lp1, atol=1e-10) and torch.allclose(ent0, ent1, atol=1e-10)
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-10), f"gradient of {name} differs"


def test_packed_group_on_a_sliding_window_model_whose_prompt_exceeds_the_window():
    """Gemma-3's sliding layers keep only the last window - 1 prompt positions in the cache; the packed
    completions must line up with what is left. Reference: each episode alone through eager attention."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig
    eps = group_episodes(completion_lens=(5, 1, 7, 3), prompt_len=7)
    weights = token_mean_weights(completion_mask(eps, False), 8)
    (mb,) = make_micro_batches(eps, weights, 8, pad_id=0)
    models = {}
    for attn in ("eager", "grouped"):
        torch.manual_seed(0)
        cfg = Gemma3TextConfig(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=8, sliding_window=4,
                               layer_types=["sliding_attention", "full_attention"], initializer_range=0.5,
                               attn_implementation=resolve_attn_implementation(attn, "cpu"))
        models[attn] = AutoModelForCausalLM.from_config(cfg).to(torch.float64)
    logp, _ = completion_logprobs(models["grouped"], mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                  temperature=0.7, share_prompt=True)
    for b, ep in enumerate(sorted(eps, key=lambda e: len(e.completion_ids))):
        n = len(ep.completion_ids)
        assert torch.allclose(logp[b, :n], naive_logprobs(models["eager"], ep, 0.7).double(), atol=1e-10)


def test_token_budget_chunks_pack_each_group_up_to_the_budget():
    eps = group_episodes(seed=1, completion_lens=(5, 1, 7, 3)) + group_episodes(seed=2, completion_lens=(2, 9, 4, 4))
    weights = token_mean_weights(completion_mask(eps, False), 9)
    batches = make_micro_batches(eps, weights, 2, pad_id=0, by_prompt=True, max_tokens=9)
    from grpo.logprobs import shares_prompt
    assert all(shares_prompt(mb.input_ids, mb.prompt_lens) for mb in batches)
    sizes = sorted(tuple(int(n) for n in mb.mask.sum(1)) for mb in batches)
    # sorted by length within each group, then greedy: (1, 3, 5) | (7) and (2, 4) | (4) | (9), the 9 alone
    assert sizes == [(1, 3, 5), (2, 4), (4,), (7,), (9,)], sizes
    assert sum(float(mb.token_weights.sum()) for mb in batches) == pytest.approx(float(weights.sum()))


def test_shared_prompt_across_micro_batches_gives_the_per_micro_batch_gradient():
    """A group cut into two packed micro-batches: with `SharedPrompt` the prompt is forwarded once and its
    gradient summed over both; values and gradients equal forwarding it with each micro-batch."""
    from grpo.batch import group_by_prompt
    from grpo.logprobs import SharedPrompt
    eps = group_episodes(completion_lens=(5, 1, 7, 3), prompt_len=6)
    weights = token_mean_weights(completion_mask(eps, False), 8)
    micro = make_micro_batches(eps, weights, 2, pad_id=0, by_prompt=True, max_tokens=9)
    (group,) = group_by_prompt(micro)
    assert len(group) == 2
    results = []
    for shared in (False, True):
        policy = tiny_policy(torch.float64, attn_implementation="grouped")
        prompt = SharedPrompt(policy, group[0].input_ids[0, :6]) if shared else None
        logps = []
        for mb in group:
            logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                          temperature=0.7, share_prompt=True, prompt=prompt)
            (logp * mb.adv[:, None] * mb.token_weights).sum().backward()
            logps.append(logp.detach())
        if prompt is not None:
            prompt.backward()
        results.append((logps, {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}))
    (lp0, g0), (lp1, g1) = results
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(lp0, lp1))
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-10), f"gradient of {name} differs"
    assert any("layers.0" in n and g0[n].abs().sum() > 0 for n in g0), "the prompt's first layer gets a gradient"
