"""Turn (model, adapter, tasks, decoding) into completions, batched, with a progress bar.

Contract: `Generator(model_spec, engine=...)` owns one engine for its lifetime (vLLM by default,
transformers selectable); `run(label, tasks, decoding, adapter)` renders every task with the model's
chat template and its system prompt (`curriculum.prompts.task_system_prompt`: a user task file's own,
else `decoding.system`, else its kind's default for `decoding.thinking` and `decoding.output`),
generates `decoding.n` completions per prompt and returns a `Generated`.
Prompts whose tokens plus `max_tokens` exceed the context are not run: they are listed in
`Generated.skipped` as "context" (reported apart, never scored as failures, never silently dropped).
Constrained decoding goes through `eval.constrained`, for the base model or an adapter alike.

What it does NOT know: rewards, metrics, training. It never imports `grpo`; adapters arrive as PEFT
folders (adapter_config.json + adapter_model.safetensors), as the trainer writes them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from curriculum.prompts import task_system_prompt
from curriculum.task import Task
from eval.records import Completion, Decoding, Generated
from rollout.chat import full_completion, render_prompt
from rollout.types import Sampling

CHUNK_COMPLETIONS = 128    # completions per engine call: one progress-bar tick, still a full vLLM batch


def adapter_rank(adapter_dirs: list[str | Path]) -> int:
    """The largest LoRA rank among the adapters (vLLM must be built with max_lora_rank >= it)."""
    ranks = [json.loads((Path(d) / "adapter_config.json").read_text()).get("r", 16) for d in adapter_dirs]
    return max(ranks, default=16)


class Generator:
    def __init__(self, model_spec: str, *, engine: str = "vllm", max_model_len: int = 2048, seed: int = 0,
                 adapters: list[str | Path] = (), hf_batch_size: int = 16, dtype: str = "auto"):
        from rollout.models import resolve_dtype, resolve_model

        from rollout.models import offline_unless_hub
        offline_unless_hub(model_spec)
        if engine not in ("vllm", "hf"):
            raise ValueError(f"engine must be 'vllm' or 'hf', got {engine!r}")
        self.model_spec, self.model_path = model_spec, resolve_model(model_spec)
        self.engine_kind, self.max_model_len, self.seed = engine, max_model_len, seed
        self.hf_batch_size = hf_batch_size
        self.dtype = resolve_dtype(dtype)
        self._adapter: str | None = None
        if engine == "vllm":
            from rollout.vllm_engine import VLLMEngine
            # One structured-output backend per engine (vLLM v1): pin xgrammar so every constrained
            # request is judged by the same grammar compiler; schemas it rejects are counted apart.
            self.engine = VLLMEngine(self.model_path, max_model_len=max_model_len, seed=seed, dtype=self.dtype,
                                     enable_lora=bool(adapters), max_lora_rank=adapter_rank(list(adapters)),
                                     structured_outputs_config={"backend": "xgrammar"})
            self.tokenizer = self.engine.tokenizer
        else:
            from transformers import AutoTokenizer
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            self.engine = self._hf_engine(None)

    def _hf_engine(self, adapter: str | None) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        from rollout.hf_engine import HFEngine
        torch.manual_seed(self.seed)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype))
        if adapter is not None:
            from rollout.models import quiet_bitsandbytes
            with quiet_bitsandbytes():   # evaluation never loads an NF4 base
                from peft import PeftModel
            model = PeftModel.from_pretrained(model, adapter)
        return HFEngine(model, self.tokenizer, batch_size=self.hf_batch_size)

    def set_adapter(self, adapter: str | Path | None) -> None:
        adapter = str(adapter) if adapter else None
        if adapter == self._adapter:
            return
        if self.engine_kind == "vllm":
            self.engine.load_adapter(adapter)
        else:
            self.engine = self._hf_engine(adapter)
        self._adapter = adapter

    def render(self, tasks: list[Task], thinking: bool, output: str = "fenced",
               system: str | None = None) -> list[list[int]]:
        return [render_prompt(self.tokenizer, task_system_prompt(t, thinking, output, system), t.prompt,
                              think_prefill=thinking) for t in tasks]

    def run(self, label: str, tasks: list[Task], decoding: Decoding, adapter: str | Path | None = None,
            progress: bool = True) -> Generated:
        self.set_adapter(adapter)
        prompts = self.render(tasks, decoding.thinking, decoding.output, decoding.system)
        fits = [len(p) + decoding.max_tokens <= self.max_model_len for p in prompts]
        skipped = {t.id: "context" for t, ok in zip(tasks, fits) if not ok}
        run_tasks = [t for t, ok in zip(tasks, fits) if ok]
        run_prompts = [p for p, ok in zip(prompts, fits) if ok]
        n = 1 if decoding.greedy else decoding.n
        t0 = time.perf_counter()
        if decoding.constrained:
            from eval.constrained import generate_constrained
            rows, rejected = generate_constrained(self.engine, run_prompts, [t.schema for t in run_tasks],
                                                  decoding, progress=progress, desc=label)
            skipped.update({run_tasks[i].id: reason for i, reason in rejected.items()})
        else:
            rows = self._generate(run_prompts, decoding, n, progress, label)
        wall_s = time.perf_counter() - t0
        keep = [i for i, row in enumerate(rows) if row is not None]
        completions = [[Completion(full_completion(c.text, think_prefill=decoding.thinking), c.num_tokens,
                                   c.finish_reason) for c in rows[i]] for i in keep]
        return Generated(label=label, task_ids=[run_tasks[i].id for i in keep], completions=completions,
                         skipped=skipped, wall_s=wall_s, prompt_tokens=sum(len(run_prompts[i]) for i in keep),
                         meta={"model": self.model_spec, "model_path": self.model_path,
                               "adapter": str(adapter) if adapter else None, "decoding": decoding.to_dict(),
                               "engine": self.engine_kind, "lora_mode": getattr(self.engine, "lora_mode", None),
                               "max_model_len": self.max_model_len})

    def _generate(self, prompts: list[list[int]], decoding: Decoding, n: int, progress: bool,
                  desc: str) -> list[list[Completion]]:
        sampling = Sampling(n=n, temperature=decoding.temperature, top_p=decoding.top_p,
                            max_tokens=decoding.max_tokens, logprobs=False)
        per_call = max(1, CHUNK_COMPLETIONS // n)
        rows: list[list[Completion]] = []
        with tqdm(total=len(prompts) * n, desc=desc, unit="compl", disable=not progress, leave=False) as bar:
            for start in range(0, len(prompts), per_call):
                out = self.engine.generate(prompts[start:start + per_call], sampling)
                for i in range(0, len(out), n):      # prompt-major: prompt i, sample j at i*n + j
                    rows.append([Completion(r.text, len(r.completion_ids), r.finish_reason) for r in out[i:i + n]])
                bar.update(len(out))
        return rows

    def close(self) -> None:
        if self.engine_kind == "vllm":
            self.engine.close()
