"""Does a model that never thinks start thinking? Share of think-mode completions with a closed think block.

What is measured (seed-repo-study 9.2: SmolLM2-135M wrote a <think> block in <= 1 % of its think-mode
completions, so the reasoning reward was a constant and GRPO had nothing to select): the think system
prompt on held-out JSON eval prompts, sampled through the vLLM engine, under each condition

  no_prefill       the think system prompt alone
  prefill          the assistant turn prefilled with "<think>\n" (rollout.chat.THINK_PREFILL)
  <name>[_prefill] the same with a LoRA adapter (e.g. a short SFT on think-formatted golds), via --adapter

and, per condition, over `full_completion(text)` (what the model "said", prefill included):
  think_closed     a closed <think>...</think> block (rewards' has_think)
  think_then_json  a closed think block and, after it, JSON that parses (has_think & syntax_pass)
  think_then_fence a closed think block and, after it, a closed ```json block, parsed or not (format_pass)
  strict           the JSON validates against the task's schema
  truncated        the engine stopped at max_tokens (an unclosed think block usually ends this way)

Usage: python scripts/think_bootstrap.py [--prompts 16] [--n 4] [--max-tokens 384]
         [--adapter NAME=DIR ...] [--out benchmarks/think_bootstrap.json]
The recorded run (benchmarks/think_bootstrap.json) measured a 16-step SFT on think-formatted golds
(without the prefill in the SFT prompts):
  grpo-train configs/smollm2-135m-cpu.toml --set run.mode=sft --set sft.micro_batch_size=4 \
    --set sft.grad_accum=2 --set run.name=think-sft --set run.out_dir=/tmp/sftrun --set run.num_steps=16 \
    --set run.save_every=8 --set run.num_threads=1 --set reward.thinking=true --set optim.lr=4e-4 \
    --set data.num_tasks=200
  VLLM_CPU_OMP_THREADS_BIND=nobind OMP_NUM_THREADS=1 python scripts/think_bootstrap.py \
    --adapter sft16=/tmp/sftrun/think-sft/adapter --prompts 16 --n 2 --max-tokens 320
(On a shared, oversubscribed 2-core machine one unbound OpenMP thread generated ~3x more tokens/s than
vLLM's default binding of both cores.) The bootstrap of docs/strategies.md (configs/
smollm2-135m-cpu-think-sft.toml, prefill in the SFT prompts too) is measured there by grpo-eval's
`think` rate.
The last line printed is one JSON document with the settings, versions and every number.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from curriculum.json_tasks import generate_json_tasks  # noqa: E402
from curriculum.prompts import system_prompt  # noqa: E402
from rewards import RewardConfig, score  # noqa: E402
from rollout.chat import full_completion, render_prompt  # noqa: E402
from rollout.models import resolve_model  # noqa: E402
from rollout.types import Sampling  # noqa: E402


def measure(engine, tokenizer, tasks, sampling: Sampling, think_prefill: bool) -> dict:
    prompts = [render_prompt(tokenizer, system_prompt("json", True), t.prompt, think_prefill=think_prefill)
               for t in tasks]
    t0 = time.perf_counter()
    rollouts = engine.generate(prompts, sampling)
    dt_s = time.perf_counter() - t0
    texts = [full_completion(r.text, think_prefill=think_prefill) for r in rollouts]
    row_tasks = [t for t in tasks for _ in range(sampling.n)]
    truncated = np.array([r.truncated for r in rollouts])
    batch = score(texts, row_tasks, RewardConfig.defaults(thinking=True), truncated=truncated)
    think = batch.has_think
    return {"num_completions": len(texts),
            "think_closed": float(think.mean()),
            "think_then_json": float((think & batch.syntax_pass).mean()),
            "think_then_fence": float((think & batch.format_pass).mean()),
            "strict": float(batch.strict_pass.mean()),
            "truncated": float(truncated.mean()),
            "reward_mean": float(batch.total.mean()),
            "reasoning_mean": float(batch.components["reasoning"].mean()),
            "mean_tokens": float(np.mean([len(r.completion_ids) for r in rollouts])),
            "generate_s": dt_s,
            "example": texts[0][:600]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16, help="held-out JSON eval prompts (uniform tiers)")
    ap.add_argument("--n", type=int, default=4, help="completions per prompt")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                    help="also measure with this PEFT adapter (repeatable)")
    ap.add_argument("--skip-base", action="store_true", help="measure only the adapters")
    ap.add_argument("--out", default="benchmarks/think_bootstrap.json")
    args = ap.parse_args()

    import torch
    import transformers
    import vllm
    from transformers import AutoTokenizer

    from rollout.vllm_engine import VLLMEngine

    model_path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tasks = generate_json_tasks(args.prompts, args.seed, "eval")
    sampling = Sampling(n=args.n, temperature=args.temperature, max_tokens=args.max_tokens, logprobs=False)
    engine = VLLMEngine(model_path, max_model_len=1024 + args.max_tokens, seed=args.seed)

    adapters = [("base", None)] * (not args.skip_base) + [tuple(a.split("=", 1)) for a in args.adapter]
    results = {}
    for name, folder in adapters:
        engine.load_adapter(folder)
        for prefill in (False, True):
            key = f"{name}_{'prefill' if prefill else 'no_prefill'}"
            results[key] = measure(engine, tokenizer, tasks, sampling, prefill)
            r = results[key]
            print(f"{key:28s} think_closed {r['think_closed']:6.1%}  think_then_json {r['think_then_json']:6.1%}  "
                  f"think_then_fence {r['think_then_fence']:6.1%}  strict {r['strict']:6.1%}  "
                  f"truncated {r['truncated']:6.1%}  tokens {r['mean_tokens']:5.0f}  {r['generate_s']:.0f}s",
                  flush=True)
    engine.close()

    doc = {"benchmark": "think_bootstrap", "model": args.model, "prompts": args.prompts, "n": args.n,
           "max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed,
           "adapters": dict(adapters), "device": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(),
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "vllm": vllm.__version__, "python": platform.python_version()},
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
