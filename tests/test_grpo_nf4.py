"""NF4 4-bit base + LoRA (bitsandbytes, CPU): the policy loads quantized, and LoRA weights get
gradients through the same log-probability path the GRPO step uses (shared prompt included)."""
import pytest
import torch

from grpo.batch import Episode, completion_mask, make_micro_batches
from grpo.config import LoraSection, ModelSection
from grpo.logprobs import completion_logprobs
from grpo.loss import token_mean_weights
from grpo.model import load_policy


def test_nf4_policy_trains_its_lora(tiny_model_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    policy, _ = load_policy(tiny_model_path, ModelSection(dtype="bfloat16", load_in_4bit=True),
                            LoraSection(r=4, alpha=8, target_modules=("q_proj", "v_proj", "down_proj")))
    quantized = [m for m in policy.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized, "the base linears should be NF4 (bnb Linear4bit)"
    assert all(m.weight.quant_type == "nf4" for m in quantized)
    prompt = list(range(10, 30))
    eps = [Episode(prompt, list(range(40, 40 + n)), [], 0.0, 1.0, False) for n in (3, 6, 5)]
    (mb,) = make_micro_batches(eps, token_mean_weights(completion_mask(eps, False), 8), 8, 0, by_prompt=True)
    logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                  share_prompt=True)
    assert torch.isfinite(logp).all() and (logp[mb.mask.bool()] < 0).all()
    (logp * mb.token_weights).sum().backward()
    grads = [p.grad for n, p in policy.named_parameters() if "lora_B" in n]  # B starts at 0, A random
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads), "LoRA B gets a gradient through the NF4 base"
