"""The trainer's attention on CPU: grouped-query attention as two batched matmuls and a softmax.

transformers' SDPA path repeats each key/value head for the query heads that share it and calls
torch's flash-attention kernel; on CPU that kernel's backward is the slow part of a training step
(SmolLM2-135M, 4 completions of ~250 tokens over a ~420-token context: ~36 ms forward + backward per
layer). Here the query heads that share a key/value head are stacked into one matrix, so there is no
repeated K/V and the matmuls are 3x taller, and the softmax runs on bf16 scores (torch's CPU kernel
accumulates in float32): ~24 ms for the same call, and ~6 ms vs ~10 ms forward only. The price is the
attention probabilities kept for the backward (one bf16 [B, heads, q, kv] tensor per layer, ~0.25 GB
per micro-batch of that size), which the flash kernel recomputes instead.

Numerically this is transformers' eager attention (scores rounded to the model dtype, probabilities
rounded to it before the value matmul), without its float32 softmax copy. Masks are transformers'
additive eager masks (0 / dtype min), built once per forward. `register()` makes it available as
`attn_implementation="grouped"`; `resolve_attn_implementation("auto")` picks it on CPU, SDPA elsewhere.
"""
from __future__ import annotations

import torch

NAME = "grouped"


def grouped_attention_forward(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0,
                              softcap: float | None = None, **_kwargs):
    """query [B, H, q, d], key/value [B, Hkv, kv, d], attention_mask [B, 1, q, kv] additive -> ([B, q, H, d], None)."""
    B, H, q, d = query.shape
    Hkv, kv = key.shape[1], key.shape[2]
    g = H // Hkv                                                # query heads per key/value head
    scores = query.reshape(B, Hkv, g * q, d) @ key.transpose(-1, -2)  # [B, Hkv, g*q, kv]
    scores = scores.mul_(scaling).view(B, Hkv, g, q, kv)
    if softcap:                                                 # Gemma-2's attention logit soft-capping
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, None, :, :kv]    # [B, 1, 1, q, kv], broadcast over heads
    probs = torch.softmax(scores, dim=-1).view(B, Hkv, g * q, kv)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = (probs @ value).view(B, H, q, d)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `attn_implementation="grouped"` known to transformers (attention and its eager mask)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    AttentionInterface.register(NAME, grouped_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, eager_mask)


def resolve_attn_implementation(name: str, device: str) -> str:
    """"auto" -> "grouped" on CPU, "sdpa" on an accelerator (where fused flash kernels win); others as given."""
    if name == "auto":
        name = NAME if device == "cpu" else "sdpa"
    if name == NAME:
        register()
    return name
