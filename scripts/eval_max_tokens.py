"""One adapter on the held-out synthetic sets at several reply-length caps, in one engine (no baseline).

    python scripts/eval_max_tokens.py --adapter adapters/smollm2-135m-json --max-tokens 256 512 \
        --out docs/study/max_tokens.json

What it answers: how much of an adapter's strict-pass shortfall is the length cap (docs/study.md,
section 6). Each cap is one sample per prompt at temperature 0.8 on the same prompts (set seed 0,
`--limit` per family), so the figures are also a second draw beside grpo-eval's.
"""
from __future__ import annotations

import argparse
import json
import sys

from eval.generate import Generator
from eval.metrics import evaluate
from eval.records import Decoding, write_atomic
from eval.sets import load_set

SETS = ("synthetic", "synthetic-schema")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", required=True)
    p.add_argument("--max-tokens", type=int, nargs="+", default=[256, 512])
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    gen = Generator("embedded:smollm2-135m", engine="vllm", seed=0, max_model_len=2048, adapters=[args.adapter])
    results = {"command": "python " + " ".join(sys.argv), "sets": {}}
    for name in SETS:
        tasks = load_set(name, args.limit, 0, None)
        for cap in args.max_tokens:
            generated = gen.run(f"{name} cap {cap}", tasks, Decoding(temperature=args.temperature, max_tokens=cap, seed=0),
                                adapter=args.adapter)
            metrics, rows = evaluate(generated, tasks, ks=(1,))   # rates with their 95 % CIs, per tier too
            results["sets"][f"{name}@{cap}"] = {
                "n_prompts": metrics["num_prompts"], "strict": metrics["strict"], "syntax": metrics["syntax"],
                "length_capped": sum(r["finish_reason"] == "length" for r in rows),
                "strict_per_tier": {tier: m["strict"] for tier, m in metrics["per_tier"].items()},
                "wall_s": generated.wall_s}
            print(f"{name}@{cap}", results["sets"][f"{name}@{cap}"], flush=True)
    gen.close()
    write_atomic(args.out, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
