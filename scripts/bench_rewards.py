"""Benchmark the reward: completions/s on one CPU core, shared parse vs naive per-component re-parse.

What is measured and why: `rewards.score` is called once per GRPO step on every completion of the
step, on the trainer's CPU, while the GPU waits. The workload is a realistic mix over all three
tiers: gold replies (fenced, some in think format), schema-breaking mutations of the gold, and
garbage (prose, truncated JSON, doubled fences, chatty prose around JSON, repetition loops, a few
huge or deeply nested texts). The reference in the same run scores the same batch with a naive
design, each of the seven components re-extracting and re-parsing the completion itself (the
seed's structure); validators stay cached in both, so the ratio isolates the parse sharing.
Warm-up first (validator compilation is a one-off per schema), then the median of timed repeats.
The process is pinned to one core. Last line: one JSON document; also written to
benchmarks/rewards.json.

    .venv/bin/python scripts/bench_rewards.py [--n 4096] [--repeats 5]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from curriculum.json_tasks import generate_json_tasks  # noqa: E402
from curriculum.mutations import mutate  # noqa: E402
from curriculum.prompts import format_gold  # noqa: E402
from rewards import RewardConfig, score  # noqa: E402
from rewards import components as C  # noqa: E402
from rewards.parse import parse_completion  # noqa: E402
from rewards.validator import compile_schema  # noqa: E402

GARBAGE = ("Sure! Here is the information you asked for. Let me know if you need anything else.",
           "I'm sorry, but I can't help with that request.",
           "```\n\n```", "{}", "[1, 2, 3", "```json\n{\"a\": 1,\n", "The JSON is: {\"a\": true}")


def make_workload(n: int, seed: int = 0) -> tuple[list[str], list, list[bool]]:
    rng = random.Random(seed)
    tasks = generate_json_tasks(512, seed, "train", {"simple": 1, "medium": 1, "hard": 1})
    completions, rows, flags = [], [], []
    for i in range(n):
        task = tasks[i % len(tasks)]
        r, truncated = rng.random(), False
        if r < 0.35:      # gold, 1 in 4 in think format
            text = format_gold(task, thinking=rng.random() < 0.25)
        elif r < 0.65:    # a schema-breaking mutation, fenced
            bad, _, _ = mutate(task.gold, task.schema, rng)
            text = "```json\n" + json.dumps(bad, indent=2) + "\n```"
        elif r < 0.75:    # truncated by the engine
            gold = format_gold(task, thinking=False)
            text, truncated = gold[: rng.randint(5, max(6, len(gold) - 5))], True
        elif r < 0.82:    # chatty prose around the block
            text = "Here is your JSON:\n" + format_gold(task, False) + "\nI hope this helps! Let me know."
        elif r < 0.86:    # the seed's doubled fence
            text = "```json\n" + format_gold(task, False)
        elif r < 0.90:    # repetition loop
            text = "```json\n{\"a\": [" + "1, " * rng.randint(50, 400)
            truncated = True
        elif r < 0.995:
            text = rng.choice(GARBAGE)
        else:             # rare monsters: 100 KB prose or deep nesting
            text = rng.choice(("lorem ipsum " * 9000, "[" * 5000 + "]" * 5000, "```json\n" + "{\"a\":" * 3000))
        completions.append(text)
        rows.append(task)
        flags.append(truncated)
    return completions, rows, flags


def naive_score(completions, tasks, truncated) -> np.ndarray:
    """The same seven components, each re-extracting and re-parsing its completion."""
    weights = RewardConfig().effective_weights("json")
    total = np.zeros(len(completions))
    for name, w in weights.items():
        for i, (text, task) in enumerate(zip(completions, tasks)):
            p = parse_completion(text)   # the re-parse this design pays per component
            if name == "format":
                v = C.format_score(p)
            elif name == "validity":
                v = C.validity_score(p)
            elif name == "schema":
                v = C.schema_score(p, compile_schema(task.schema))
            elif name == "truncation":
                v = C.truncation_score(p, truncated[i])
            elif name == "repetition":
                v = C.repetition_score(p)
            elif name == "strictness":
                v = C.strictness_score(p)
            else:
                v = C.reasoning_score(p)
            total[i] += w * v
    return total


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="completions in the timed batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "rewards.json"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})   # one core

    completions, tasks, flags = make_workload(args.n)
    config = RewardConfig()
    batch = score(completions, tasks, config, flags)                 # warm-up: compiles every validator
    naive_total = naive_score(completions, tasks, flags)
    assert np.allclose(naive_total, batch.total), "the naive reference must compute the same totals"

    shared_s = timed(lambda: score(completions, tasks, config, flags), args.repeats)
    naive_s = timed(lambda: naive_score(completions, tasks, flags), max(1, args.repeats // 2))
    small = list(range(64))
    batch64_s = timed(lambda: score([completions[i] for i in small], [tasks[i] for i in small], config,
                                    [flags[i] for i in small]), 50)
    step_s = 10.0   # a training step here is tens of seconds; 10 s is the conservative end

    mix = {k: int(v) for k, v in zip(*np.unique(np.array(batch.error_class), return_counts=True))}
    result = {
        "completions_per_s": round(args.n / shared_s, 1),
        "naive_completions_per_s": round(args.n / naive_s, 1),
        "speedup_vs_naive": round(naive_s / shared_s, 2),
        "batch64_ms": round(batch64_s * 1e3, 3),
        "batch64_pct_of_10s_step": round(100 * batch64_s / step_s, 4),
        "target_completions_per_s": 5000,
        "workload": {"n": args.n, "repeats": args.repeats, "strict_pass_rate": round(float(batch.strict_pass.mean()), 3),
                     "mean_chars": round(float(np.mean([len(c) for c in completions])), 1), "error_classes": mix},
        "device": {"cpu": platform.processor() or platform.machine(), "cores_used": 1,
                   "cores_visible": os.cpu_count()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "jsonschema_rs": importlib.metadata.version("jsonschema-rs")},
    }
    print(f"{'design':<28}{'completions/s':>16}{'ms / 64':>10}")
    print(f"{'shared parse (rewards.score)':<28}{result['completions_per_s']:>16,.0f}{batch64_s * 1e3:>10.2f}")
    print(f"{'naive per-component re-parse':<28}{result['naive_completions_per_s']:>16,.0f}"
          f"{64 / result['naive_completions_per_s'] * 1e3:>10.2f}")
    print(f"speed-up {result['speedup_vs_naive']}x; a 64-completion batch costs "
          f"{result['batch64_pct_of_10s_step']}% of a 10 s step; strict pass {result['workload']['strict_pass_rate']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
