"""Hot swap by merging: write W + (alpha / r) * B @ A into a compiled vLLM CPU engine, in place.

Why: on the CPU backend, `enable_lora=True` switches vLLM's torch.compile off
(`vllm/platforms/cpu.py`: `if vllm_config.lora_config is not None: mode = NONE`), so a LoRA engine
decodes at about half the speed of the same engine without LoRA support, even with no adapter
active (benchmarks/rollout.json: `vllm_lora_base` vs `vllm_base`). GRPO serves one adapter to the
whole batch, so the engine can instead be built without LoRA support (compiled) and have the
adapter merged into its weights at every swap, as TRL and verl do when they push merged weights.

How: vLLM's CPU linears do not keep a plain weight. `dispatch_cpu_unquantized_gemm`
(`vllm/model_executor/layers/utils.py`) prepacks it once, and the layer's `cpu_linear` closure
holds the packed form:
- small weights (<= 1 MiB, AMX): a VNNI-packed tensor from `convert_weight_packed`: we overwrite it
  in place with the packing of the merged weight;
- larger ones: a oneDNN matmul handle, stored as a pointer inside `handler_tensor` so that compiled
  graphs read it at run time: we build a handle for the merged weight and exchange the pointers (the
  object that goes out of scope releases the old handle);
- the plain torch fallback reads `layer.weight`, which we overwrite in place.
Identity is kept in every case, so the compiled graph (which captured these objects) runs the new
weights. Fused layers (qkv_proj = [q; k; v], gate_up_proj = [gate; up]) are concatenations of the
Hugging Face weights, merged one slice at a time.

Numerics: the merged weight is rounded to the engine layer's dtype (bf16), as in every merged-weight
push. Every element whose update is below half a bf16 step of W rounds back to W, so most of a small
LoRA update never reaches the engine: a 25-step adapter of the main config was delivered at 0.42, a
one-step one at 0.04-0.08. That is why this is an explicit option (`lora_mode = "merge"`) and the
CPU default is `rollout.unmerged_lora`, which is exact. Each merge reports its delivered fraction
<bf16(W + dW) - W, dW> / |dW|^2 and warns below 0.99.

Base weights come from the model folder's safetensors (read once); the adapter from a PEFT folder.
Only layers touched by the new or the previous adapter are rewritten.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

# vLLM fused module -> the Hugging Face modules it concatenates along the output dimension.
FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def hf_sources(vllm_name: str) -> list[str]:
    """'model.layers.0.self_attn.qkv_proj' -> ['model.layers.0.self_attn.q_proj', ... k_proj, v_proj]."""
    prefix, _, leaf = vllm_name.rpartition(".")
    return [f"{prefix}.{part}" for part in FUSED[leaf]] if leaf in FUSED else [vllm_name]


def load_base_weights(model_path: str | Path) -> dict[str, torch.Tensor]:
    """Every 2-D '<module>.weight' of the model folder, keyed by module name (lazily read from mmap)."""
    from safetensors import safe_open
    out = {}
    for file in sorted(Path(model_path).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if key.endswith(".weight"):
                    out[key.removesuffix(".weight")] = f.get_tensor(key)
    return out


def read_adapter(adapter_dir: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """PEFT folder -> ({module name: (A [r, in], B [out, r]) in float32}, scaling)."""
    from safetensors.torch import load_file
    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    r, alpha = config["r"], config["lora_alpha"]
    scaling = alpha / (r ** 0.5) if config.get("use_rslora") else alpha / r
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs = {}
    for key, a in weights.items():
        if key.endswith(".lora_A.weight"):
            module = key.removesuffix(".lora_A.weight").removeprefix("base_model.model.")
            pairs[module] = (a.float(), weights[key.replace(".lora_A.", ".lora_B.")].float())
    return pairs, scaling


def adapter_deltas(adapter_dir: str | Path) -> dict[str, torch.Tensor]:
    """PEFT folder -> {module name: scaling * B @ A} in float32, module names as in the base checkpoint."""
    pairs, scaling = read_adapter(adapter_dir)
    return {module: scaling * (b @ a) for module, (a, b) in pairs.items()}      # [out, in]


def _write_packed(layer: Any, weight: torch.Tensor, fn: Any = None) -> None:
    """Replace what `layer.cpu_linear` (or `fn`, a GEMM closure made for the layer by vLLM's CPU dispatch)
    multiplies by with `weight` [out, in], keeping object identity."""
    from vllm import _custom_ops as ops
    fn = fn or layer.cpu_linear
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in (fn.__closure__ or ()))))
    if "packed_weight" in cells:                                # sgl-kernel VNNI packing
        cells["packed_weight"].copy_(torch.ops._C.convert_weight_packed(weight))
    elif "handler" in cells:                                    # oneDNN handle behind a pointer tensor
        current, fresh = cells["handler"], ops.create_onednn_mm(weight.t(), 32)
        old_ptr = current.handler_tensor.clone()
        current.handler_tensor.copy_(fresh.handler_tensor)
        fresh.handler_tensor = old_ptr                          # released when `fresh` is collected
    elif getattr(layer, "weight", None) is not None and layer.weight.numel():
        layer.weight.data.copy_(weight)                         # torch fallback reads layer.weight
    else:
        raise RuntimeError(f"merged LoRA: unknown CPU linear layout {fn.__code__.co_freevars} in {layer}")


class MergedLoRA:
    """Merges PEFT adapters into a vLLM engine built without LoRA support (CPU backend)."""

    def __init__(self, llm: Any, model_path: str | Path):
        self.llm = llm
        self.base = load_base_weights(model_path)
        self._touched: set[str] = set()      # vLLM modules whose weights differ from the base now

    def apply(self, adapter_dir: str | Path | None) -> dict[str, float]:
        """Merge `adapter_dir` (None: back to base weights). Returns the delivery report of
        `rollout.unmerged_lora.delivery_report`; raises if an adapter module found no engine layer."""
        from rollout.unmerged_lora import delivery_report
        deltas = adapter_deltas(adapter_dir) if adapter_dir is not None else {}
        base, touched = self.base, self._touched

        def merge(model) -> tuple[set[str], dict[str, tuple[float, float]]]:
            written, per_module = set(), {}
            for name, layer in model.named_modules():
                if not hasattr(layer, "cpu_linear"):
                    continue
                sources = hf_sources(name)
                if name not in touched and not any(s in deltas for s in sources):
                    continue
                if not all(s in base for s in sources):
                    raise RuntimeError(f"merged LoRA: no base weight for {name} (looked for {sources})")
                dtype = layer.weight.dtype                      # the engine's dtype, not the checkpoint's
                parts = []
                for s in sources:
                    w = base[s].float()
                    if s not in deltas:
                        parts.append(w.to(dtype))
                        continue
                    merged = (w + deltas[s]).to(dtype)
                    delivered = merged.float() - w.to(dtype).float()
                    per_module[s] = (float((delivered * deltas[s]).sum()), float(deltas[s].square().sum()))
                    parts.append(merged)
                _write_packed(layer, torch.cat(parts))
                if any(s in deltas for s in sources):
                    written.add(name)
            return written, per_module

        with torch.no_grad():
            written, per_module = self.llm.apply_model(merge)[0]
        missing = sorted(set(deltas) - set(per_module))
        if missing:
            raise RuntimeError(f"merged LoRA: {len(missing)} adapter modules have no engine layer, e.g. {missing[:3]}")
        self._touched = written
        report = delivery_report(per_module)
        if report["sync/delivered_fraction"] < 0.99:
            warnings.warn(f"merged LoRA: bf16 rounding delivered only {report['sync/delivered_fraction']:.3f} of the "
                          "adapter update to the engine; use lora_mode = \"unmerged\" (the CPU default) for exact delivery")
        return report
