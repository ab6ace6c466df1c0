"""The two settings rollout.VLLMEngine changes on CPU, each against vLLM's own: KV blocks of 32 tokens
(vLLM's CPU default: 128) and inverse-CDF sampling (rollout.cpu_sampler; vLLM's: Gumbel-max).

The GRPO rollout of scripts/bench_vs_trl.py: 4 JSON-task prompts x 8 completions at T 0.7, forced to
exactly 256 new tokens (min_tokens) so every engine generates the same number of tokens. The engines
live in this process and are measured in interleaved rounds (this 2-core machine is noisy); medians. Variants:
"default" (what rollout uses), "block128" (vLLM's block size), "gumbel" (vLLM's sampler).

    python scripts/bench_cpu_engine.py [--reps 3] [--out benchmarks/cpu_engine.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curriculum.json_tasks import generate_json_tasks  # noqa: E402
from curriculum.prompts import system_prompt  # noqa: E402
from rollout.chat import render_prompt  # noqa: E402
from rollout.models import resolve_model  # noqa: E402
from rollout.types import Sampling  # noqa: E402
from rollout.vllm_engine import VLLMEngine  # noqa: E402

VARIANTS = {"default": {}, "block128": {"block_size": 128}, "gumbel": {"fast_sampler": False}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "cpu_engine.json"))
    args = parser.parse_args()
    model_path = resolve_model("embedded:smollm2-135m")
    engines = {name: VLLMEngine(model_path, max_model_len=1024, seed=0, **kw) for name, kw in VARIANTS.items()}
    tokenizer = engines["default"].tokenizer
    prompts = [render_prompt(tokenizer, system_prompt("json", False), t.prompt)
               for t in generate_json_tasks(4, 42, "train", None)]
    sampling = Sampling(n=8, temperature=0.7, max_tokens=256, min_tokens=256, logprobs=True)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for engine in engines.values():
        engine.generate(prompts, sampling)                          # warm-up (compilation)
    for _ in range(args.reps):
        for name, engine in engines.items():
            t0 = time.perf_counter()
            rollouts = engine.generate(prompts, sampling)
            seconds[name].append(round(time.perf_counter() - t0, 2))
            assert sum(len(r.completion_ids) for r in rollouts) == 4 * 8 * 256
    median = {name: statistics.median(s) for name, s in seconds.items()}
    result = {"benchmark": "cpu_engine_settings", "workload": "SmolLM2-135M bf16, 4 prompts x 8 completions x 256 tokens, T 0.7",
              "variants": VARIANTS, "seconds": seconds, "median_s": median,
              "ratios": {f"{name}_over_default": round(median[name] / median["default"], 3)
                         for name in VARIANTS if name != "default"}}
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
