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

Packed completions (`segments=PackedSegments(...)` passed to the decoder's forward, which hands it on
to every attention call): the completions of one GRPO group sit back to back in a single row behind
their prompt's KV cache, with no padding. Each completion attends to the cached prompt and causally
to itself only, one matmul pair per completion, so the work is that of the real tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

NAME = "grouped"


@dataclass
class PackedSegments:
    """Completions packed into one row after a cached prompt of `prompt_len` tokens: completion i holds
    the query rows bounds[i] = (start, end) and sits at positions prompt_len + 0 .. prompt_len + end - start - 1."""
    prompt_len: int
    bounds: list[tuple[int, int]]
    _masks: dict = field(default_factory=dict, repr=False)

    def mask(self, cached: int, n: int, window: int | None, dtype, device) -> torch.Tensor:
        """Additive [1, 1, n, cached + n] mask: the last `cached` prompt positions, then the completion
        causally; a sliding window of `window` tokens on top. Built once per forward, reused by every layer."""
        key = (cached, n, window, dtype)
        if key not in self._masks:
            q_pos = self.prompt_len + torch.arange(n, device=device)
            k_pos = torch.cat([torch.arange(self.prompt_len - cached, self.prompt_len, device=device), q_pos])
            allowed = k_pos[None, :] <= q_pos[:, None]
            if window:
                allowed &= q_pos[:, None] - k_pos[None, :] < window
            self._masks[key] = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(
                ~allowed, torch.finfo(dtype).min)[None, None]
        return self._masks[key]


def grouped_attention_forward(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0,
                              softcap: float | None = None, sliding_window: int | None = None,
                              segments: PackedSegments | None = None, **_kwargs):
    """query [B, H, q, d], key/value [B, Hkv, kv, d], attention_mask [B, 1, q, kv] additive -> ([B, q, H, d], None).

    With `segments` (B = 1): per packed completion, over the cached prompt keys and its own keys;
    `attention_mask` (built by transformers for the whole packed row) is not used."""
    if segments is not None:
        return _segments_forward(module, query, key, value, segments, scaling, dropout, softcap, sliding_window)
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


def _segments_forward(module, query, key, value, segments: PackedSegments, scaling, dropout, softcap, window):
    """query [1, H, N, d] (N packed completion tokens), key/value [1, Hkv, P + N, d] (P cached prompt
    positions: all of the prompt, or its last window - 1 where a sliding-window cache cropped it)."""
    cached = key.shape[2] - query.shape[2]
    outs = []
    for start, end in segments.bounds:
        if end == start:
            continue
        k = torch.cat([key[:, :, :cached], key[:, :, cached + start:cached + end]], dim=2)
        v = torch.cat([value[:, :, :cached], value[:, :, cached + start:cached + end]], dim=2)
        mask = segments.mask(cached, end - start, window, query.dtype, query.device)
        out, _ = grouped_attention_forward(module, query[:, :, start:end], k, v, mask, scaling, dropout, softcap)
        outs.append(out)                                        # [1, n, H, d]
    return torch.cat(outs, dim=1), None


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
