"""`grpo-eval`: parse arguments, build an `EvalPlan`, call `eval.run.run_eval`. Nothing else.

    grpo-eval --pass-at-1 configs/smollm2-135m-cpu.toml --adapter runs/x/stage1 runs/x/stage2 \\
        --bench synthetic Glaiveai2K gsm8k --n 1 --k 1 --out out/eval
    grpo-eval --pass-at-1 --model embedded:smollm2-135m --greedy --constrained --limit 50

A CONFIG (the trainer's TOML) is read tolerantly for three things only - [model].path,
[reward].thinking, [rollout].temperature/top_p - with `tomllib`, not through `grpo.config`, so eval
never depends on the trainer's internals. Flags override it. `--report-only DIR` re-renders
report.md and the figures from DIR/metrics.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tomllib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def read_config(path: str) -> dict:
    """{model, thinking, temperature, top_p} from a trainer TOML; missing keys are simply absent."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    out = {"model": doc.get("model", {}).get("path"), "thinking": doc.get("reward", {}).get("thinking"),
           "temperature": doc.get("rollout", {}).get("temperature"), "top_p": doc.get("rollout", {}).get("top_p")}
    return {k: v for k, v in out.items() if v is not None}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="grpo-eval", description="Strict-JSON evaluation: pass@1/pass@k, "
                                "error taxonomy, baseline vs adapters, constrained decoding, report.")
    p.add_argument("config", nargs="?", help="trainer TOML (model, thinking, sampling are read from it)")
    p.add_argument("--pass-at-1", action="store_true", help="the evaluation mode (the only one; accepted for the card)")
    p.add_argument("--model", help="model spec: embedded:smollm2-135m, embedded:gemma3-270m, a local HF folder or a hub id")
    p.add_argument("--adapter", nargs="+", default=[], help="PEFT adapter folders, as PATH or LABEL=PATH (a run's <run>/adapter is labelled <run>)")
    p.add_argument("--baseline", action="store_true", help="re-run the baseline even if cached")
    p.add_argument("--bench", nargs="+", default=["synthetic"],
                   help="prompt sets: synthetic linear gsm8k Glaiveai2K Github_easy Github_medium Snowplow WashingtonPost ...")
    p.add_argument("--limit", type=int, help="prompts per set (default: synthetic 300, JSONSchemaBench 200, gsm8k 300, linear 150)")
    p.add_argument("--n", type=int, default=1, help="samples per prompt")
    p.add_argument("--k", default="1", help="comma-separated k for pass@k (k <= n)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the config's, else 0.7)")
    p.add_argument("--top-p", type=float)
    p.add_argument("--greedy", action="store_true", help="temperature 0, n = 1")
    p.add_argument("--max-tokens", type=int, default=512, help="new tokens per JSON completion")
    p.add_argument("--math-max-tokens", type=int, default=384, help="new tokens per math completion")
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--constrained", action="store_true", help="also run JSON sets with vLLM structured outputs")
    p.add_argument("--engine", choices=("vllm", "hf"), default="vllm")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0, help="engine seed")
    p.add_argument("--set-seed", type=int, default=0, help="which prompts: generator seed / external subset draw")
    p.add_argument("--data-dir", help="external_data folder (default: $GRPO_EXTERNAL_DATA or <repo>/../shared/external_data)")
    p.add_argument("--cache-dir", help="baseline cache folder (default: $GRPO_CACHE_DIR/eval-baselines)")
    p.add_argument("--out", default="out/eval")
    p.add_argument("--report-only", metavar="DIR", help="re-render report.md + figures from DIR/metrics.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        from eval.figures import make_figures
        from eval.report import write_report
        folder = Path(args.report_only)
        metrics = json.loads((folder / "metrics.json").read_text())
        write_report(metrics, make_figures(metrics, folder / "figures"), folder / "report.md")
        print(folder / "report.md")
        return 0
    from eval.records import Decoding
    from eval.run import EvalPlan, run_eval

    try:
        cfg = read_config(args.config) if args.config else {}
    except (OSError, tomllib.TOMLDecodeError) as err:
        print(f"grpo-eval: cannot read config {args.config}: {err}", file=sys.stderr)
        return 2
    temperature = 0.0 if args.greedy else args.temperature if args.temperature is not None else cfg.get("temperature", 0.7)
    decoding = Decoding(temperature=temperature, top_p=args.top_p if args.top_p is not None else cfg.get("top_p", 1.0),
                        max_tokens=args.max_tokens, n=1 if args.greedy else args.n, seed=args.seed,
                        engine=args.engine, thinking=bool(args.thinking if args.thinking is not None else cfg.get("thinking", False)))
    ks = tuple(int(k) for k in args.k.split(",") if k.strip())
    if any(k > decoding.n for k in ks):
        print(f"grpo-eval: pass@k needs n >= k samples per prompt; with n={decoding.n} only "
              f"k <= {decoding.n} is reported", file=sys.stderr)
    plan = EvalPlan(model=args.model or cfg.get("model", "embedded:smollm2-135m"), adapters=args.adapter,
                    sets=args.bench, decoding=decoding, math_max_tokens=args.math_max_tokens, ks=ks,
                    limit=args.limit, set_seed=args.set_seed, out=args.out, cache_dir=args.cache_dir,
                    force_baseline=args.baseline, constrained=args.constrained, max_model_len=args.max_model_len,
                    data_dir=args.data_dir, command="grpo-eval " + shlex.join(sys.argv[1:] if argv is None else argv))
    metrics = run_eval(plan)
    for name, s in metrics["sets"].items():
        for label, m in s["runs"].items():
            print(f"{name:14s} {label:14s} strict {m['strict']['rate']:.3f} [{m['strict']['lo']:.3f}, {m['strict']['hi']:.3f}]"
                  f"  syntax {m['syntax']['rate']:.3f}  format {m['format']['rate']:.3f}  n={m['num_prompts']}")
    print(Path(plan.out) / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
