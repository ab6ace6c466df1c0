"""Exact hot swap on CPU: the adapter's low-rank product runs beside the base GEMM of a compiled engine.

Why not merge: the engine's weights are bf16, and bf16(W + dW) rounds every element whose update is
below half a bf16 step of W straight back to W. A LoRA update is small by construction, so a merged
swap delivered only ~42 % of a 25-step adapter and 6.4 % of one with |B| ~ 1e-4 (about one Adam step
at lr 1e-4; benchmarks/rollout.json) to the sampler, while the trainer computed with all of it. PEFT
itself never merges while training: it computes base(x) + scale * B(A(x)). So does this engine.

Why not vLLM's LoRA support: on the CPU backend `enable_lora=True` switches torch.compile off
(vllm/platforms/cpu.py), halving decode speed even with no adapter (benchmarks/rollout.json).

How: while an engine is built inside `building(rank)`, every unquantized linear layer gets two small
weights when its weights are processed (before the model is compiled), each packed by vLLM's own CPU
GEMM dispatch (oneDNN or sgl VNNI, `_Packed`):

    A: [S * R, in]     the S fused slices' A matrices stacked (qkv: S = 3, gate_up: S = 2)
    B: [out, S * R]    block-diagonal: slice s's rows read only its own R columns, scale folded in

and its `cpu_linear` (the prepacked base GEMM vLLM calls) becomes `base(x) + expand(shrink(x))`.
The compiled graph captures these packed objects, so a swap rewrites them in place (as
`rollout.merged_lora` does for whole weights): no recompilation, and a layer the adapter does not
touch holds zeros. Off-diagonal blocks are exact zeros, so the block-diagonal product adds 0 there.
Of the layouts timed on SmolLM2-135M's shapes at 64 tokens (torch mm beside the GEMM, [W; A] in one
GEMM, [x | xA^T] @ [W | B]^T), this one is within ~10 % of the fastest and needs no repacking of W.

Numerics: A and B are stored in the model dtype and multiplied in it, as the trainer does under
`grpo.model.lora_in_base_dtype` (autocast bf16); the engine then differs from the trainer by bf16
matmul summation order only. After every swap `UnmergedLoRA.delivery` reads A and B back through the
packed kernels (applied to the identity, exact in bf16) and reports the delivered fraction
<dW_engine, dW> / |dW|^2 over every adapted module: 1 up to the bf16 rounding of A and B.

Cost: r * (in + out) extra multiply-adds per token and projection (~6 % of SmolLM2-135M's linear
FLOPs at r = 16 on all 7 projections) plus two small GEMM calls per layer; measured in
scripts/bench_rollout.py (`lora_vs_base`).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from rollout.merged_lora import hf_sources, read_adapter

_RANK: list[int] = []          # the rank the engine being built reserves; empty: not building
_ORIGINAL: dict[str, Any] = {}


class _Packed(torch.nn.Module):
    """A weight packed by vLLM's own CPU GEMM dispatch (oneDNN handle or sgl VNNI tensor), rewritable in place."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        dispatch_cpu_unquantized_gemm(self, remove_weight=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cpu_linear(x, self.weight, None)

    def write(self, weight: torch.Tensor) -> None:
        from rollout.merged_lora import _write_packed
        self.weight.data.copy_(weight)          # packed from a tensor that lives as long as the kernel
        _write_packed(self, self.weight.data)

    def read(self) -> torch.Tensor:
        """The weight as the kernel multiplies by it: the kernel applied to the identity (exact in bf16)."""
        k = self.weight.shape[1]
        return self(torch.eye(k, dtype=self.weight.dtype)).t()


def _process_weights_after_loading(self, layer: torch.nn.Module) -> None:
    weight = getattr(layer, "weight", None)
    shape = tuple(weight.shape) if weight is not None else ()
    _ORIGINAL["process"](self, layer)
    if not _RANK or len(shape) != 2 or not hasattr(layer, "cpu_linear") or layer.cpu_linear is torch.nn.functional.linear:
        return
    out, inp = shape
    slices = list(getattr(layer, "output_partition_sizes", None) or [out])
    if sum(slices) != out:
        slices = [out]
    rank, dtype = _RANK[0], weight.dtype
    shrink = _Packed(torch.zeros(len(slices) * rank, inp, dtype=dtype))    # x -> x A^T
    expand = _Packed(torch.zeros(out, len(slices) * rank, dtype=dtype))    # h -> h B^T (block-diagonal)
    base = layer.cpu_linear

    def cpu_linear(x, weight, bias, _base=base, _shrink=shrink.cpu_linear, _expand=expand.cpu_linear,
                   _a=shrink.weight, _b=expand.weight):
        return _base(x, weight, bias) + _expand(_shrink(x, _a, None), _b, None)

    layer.cpu_linear = cpu_linear
    # Plain attributes, not submodules: vLLM's weight loading and named_parameters never see them.
    layer.__dict__["grpo_lora"] = {"shrink": shrink, "expand": expand, "slices": slices, "rank": rank, "base": base}


@contextmanager
def building(rank: int):
    """Build a vLLM engine inside this block to give its linear layers low-rank adapter buffers."""
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    if "process" not in _ORIGINAL:
        _ORIGINAL["process"] = UnquantizedLinearMethod.process_weights_after_loading
        UnquantizedLinearMethod.process_weights_after_loading = _process_weights_after_loading
    _RANK.append(rank)
    try:
        yield
    finally:
        _RANK.clear()


def lowrank_inner(b1: torch.Tensor, a1: torch.Tensor, b2: torch.Tensor, a2: torch.Tensor) -> float:
    """<B1 A1, B2 A2>_F without forming either product: sum((B1^T B2) * (A1 A2^T)), r x r work."""
    return float(((b1.t() @ b2) * (a1 @ a2.t())).sum())


class UnmergedLoRA:
    """Writes PEFT adapters into the low-rank buffers of an engine built inside `building(rank)`."""

    def __init__(self, llm: Any):
        self.llm = llm

    def apply(self, adapter_dir: str | Path | None) -> dict[str, float]:
        """Load `adapter_dir` (None: zeros, i.e. base weights). Returns the delivery report.

        Raises if an adapter module has no engine layer, or its rank exceeds the reserved one.
        """
        pairs, scaling = read_adapter(adapter_dir) if adapter_dir is not None else ({}, 1.0)

        def write(model) -> set[str]:
            written = set()
            for name, layer in model.named_modules():
                lora = getattr(layer, "grpo_lora", None)
                if lora is None:
                    continue
                sources, R = hf_sources(name), lora["rank"]
                if len(sources) != len(lora["slices"]):
                    raise RuntimeError(f"unmerged LoRA: {name} has {len(lora['slices'])} output slices, "
                                       f"expected {len(sources)} ({sources})")
                shrink, expand = lora["shrink"], lora["expand"]
                a, b = torch.zeros_like(shrink.weight, dtype=torch.float32), torch.zeros_like(expand.weight, dtype=torch.float32)
                row = 0
                for s, (source, size) in enumerate(zip(sources, lora["slices"])):
                    if source in pairs:
                        A, B = pairs[source]
                        r = A.shape[0]
                        if r > R or tuple(B.shape) != (size, r) or A.shape[1] != a.shape[1]:
                            raise RuntimeError(f"unmerged LoRA: {source} is A {tuple(A.shape)}, B {tuple(B.shape)}; "
                                               f"the engine holds rank <= {R}, out {size}, in {a.shape[1]}")
                        a[s * R: s * R + r] = A
                        b[row: row + size, s * R: s * R + r] = scaling * B
                        written.add(source)
                    row += size
                shrink.write(a.to(shrink.weight.dtype))
                expand.write(b.to(expand.weight.dtype))
            return written

        with torch.no_grad():
            written = self.llm.apply_model(write)[0]
        missing = sorted(set(pairs) - written)
        if missing:
            raise RuntimeError(f"unmerged LoRA: {len(missing)} adapter modules have no engine layer, e.g. {missing[:3]}")
        return self.delivery(pairs, scaling)

    def delivery(self, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], scaling: float) -> dict[str, float]:
        """Read the engine's A and B back through its own kernels (`_Packed.read`) and return
        <dW_engine, dW> / |dW|^2 over all adapted modules (and the worst one)."""

        def read(model) -> dict[str, tuple[float, float]]:
            out = {}
            for name, layer in model.named_modules():
                lora = getattr(layer, "grpo_lora", None)
                if lora is None:
                    continue
                R, row = lora["rank"], 0
                a_all, b_all = lora["shrink"].read().float(), lora["expand"].read().float()
                for s, (source, size) in enumerate(zip(hf_sources(name), lora["slices"])):
                    if source in pairs:
                        A, B = pairs[source]
                        a_e = a_all[s * R:(s + 1) * R]
                        b_e = b_all[row: row + size, s * R:(s + 1) * R]
                        out[source] = (lowrank_inner(b_e, a_e, scaling * B, A), scaling ** 2 * lowrank_inner(B, A, B, A))
                    row += size
            return out

        with torch.no_grad():
            per_module = self.llm.apply_model(read)[0]
        return delivery_report(per_module)


def delivery_report(per_module: dict[str, tuple[float, float]]) -> dict[str, float]:
    """{module: (<dW_engine, dW>, |dW|^2)} -> overall and worst-module delivered fraction (1.0 for dW = 0)."""
    num = sum(n for n, _ in per_module.values())
    den = sum(d for _, d in per_module.values())
    worst = min((n / d for n, d in per_module.values() if d > 0), default=1.0)
    return {"sync/delivered_fraction": num / den if den > 0 else 1.0,
            "sync/delivered_fraction_min": worst, "sync/modules": float(len(per_module))}
