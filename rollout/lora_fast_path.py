"""Single-adapter fast path for vLLM's CPU LoRA kernels.

Why: vLLM's CPU backend (`vllm/lora/punica_wrapper/punica_cpu.py` calling
`vllm/lora/ops/torch_ops/lora_ops.py`) applies LoRA per token. Every shrink/expand gathers
`lora_weights[token_indices]`, a (tokens x out x in) copy of the adapter matrix, converts dtypes,
and runs a batched GEMV einsum; 7 projections x 30 layers x 2 ops per decode step. Profiled on
SmolLM2-135M with 64 sequences: the LoRA engine ran at ~85 tok/s against ~325 tok/s for the same
engine without an adapter, the time going to `einsum`, `copy_` and `_to_copy` of those gathers.

In GRPO every request of a step uses the *same* adapter, so all token indices are equal and the
LoRA delta of a projection is two dense GEMMs per output slice:

    y[:, slice] += scale * (x @ A_k.T) @ B_k.T        (A_k: r x in, B_k: out x r)

This module patches `PunicaWrapperCPU` at the layer level:
- `update_metadata` (once per forward) records whether every token uses one slot `k`;
- `add_lora_linear` then runs `mm` + `addmm_` per slice, in the model dtype, with no gather and
  no dtype round trips; mixed batches fall back to vLLM's original code.
An index of -1 means "no adapter" and is skipped outright. (vLLM's torch ops would index
`weights[-1]`, i.e. the last slot, for such tokens in decode; skipping is the documented meaning.)

Numerics: the shrink result is rounded to the model dtype before the expand, as vLLM's own path
does when it converts its fp32 buffer for the expand einsum. `tests/test_rollout_vllm.py` checks
that logprobs match the trainer's forward pass. GPU builds use Triton kernels without this gather;
`install()` is a no-op there.
"""
from __future__ import annotations

import torch

_ORIGINALS: dict[str, object] = {}


def _update_metadata(self, *args, **kwargs):
    _ORIGINALS["update_metadata"](self, *args, **kwargs)
    idx = self.token_lora_indices                       # (T,) slot per token, -1 = no adapter
    first = idx[:1]
    # CPU tensors, so these host reads cost microseconds, once per forward (not per layer).
    self._single_slot = int(first) if idx.numel() and bool((idx == first).all()) else None


def _add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None,
                     **kwargs):
    k = getattr(self, "_single_slot", None)
    if k is None:
        return _ORIGINALS["add_lora_linear"](self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices,
                                             buffer=buffer, **kwargs)
    if k < 0:
        return None                                     # no adapter for any token: nothing to add
    x2 = x.reshape(-1, x.shape[-1])                     # (T, in)
    y2 = y.view(-1, y.shape[-1])                        # (T, sum(out))
    offset = 0
    for a, b, size in zip(lora_a_stacked, lora_b_stacked, output_slices):
        a_k = a[k].reshape(-1, a.shape[-1]).to(x2.dtype)          # (r, in)
        b_k = b[k].reshape(-1, b.shape[-1]).to(y2.dtype)          # (out_padded, r)
        h = torch.mm(x2.to(a_k.dtype), a_k.T)                     # (T, r)
        n = min(size, b_k.shape[0])                               # adapter may be padded
        y2[:, offset: offset + n].addmm_(h, b_k[:n].T, alpha=scale)  # (T, n) += scale * h @ B.T
        offset += size
    return None


def install() -> bool:
    """Patch vLLM's CPU punica wrapper with the single-adapter path. Idempotent. True if installed."""
    try:
        from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU
    except ImportError:
        return False
    for name, fn in (("update_metadata", _update_metadata), ("add_lora_linear", _add_lora_linear)):
        current = getattr(PunicaWrapperCPU, name)
        if current is not fn:
            _ORIGINALS.setdefault(name, current)
            setattr(PunicaWrapperCPU, name, fn)
    return True


def uninstall() -> None:
    """Restore vLLM's original code (benchmarks and tests compare both paths in one process)."""
    try:
        from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU
    except ImportError:
        return
    for name, fn in _ORIGINALS.items():
        setattr(PunicaWrapperCPU, name, fn)
    _ORIGINALS.clear()
