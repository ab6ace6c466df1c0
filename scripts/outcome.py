"""benchmarks/outcome.json: what the main job reaches, read from its evaluation folder.

    python scripts/outcome.py --eval runs/<run>/eval --label <adapter label> --wall-min 52.3 \
        --command "bash scripts/main.sh" [--out benchmarks/outcome.json]

"heldout" pools the held-out synthetic sets the evaluation ran (both task families: the natural-
language requests and the schema-in-prompt ones); each external set is reported as it is. Every
figure is one sample per prompt; the baseline is the same model without the adapter, same prompts
and decoding (eval.cache).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELDOUT_SETS = ("synthetic", "synthetic-schema")
EXTERNAL_SETS = ("Glaiveai2K", "Github_easy")


def _rate(run: dict, key: str) -> float:
    return float(run[key]["rate"])


def outcome(metrics: dict, label: str) -> dict:
    sets, out = metrics["sets"], {}
    held = [sets[name]["runs"] for name in HELDOUT_SETS if name in sets]
    if held:
        n = sum(r[label]["num_prompts"] for r in held)
        pooled = lambda who, key: sum(_rate(r[who], key) * r[who]["num_prompts"] for r in held) / n
        out["heldout"] = {"n_prompts": n, "strict": pooled(label, "strict"), "syntax": pooled(label, "syntax"),
                          "baseline_strict": pooled("baseline", "strict"), "baseline_syntax": pooled("baseline", "syntax"),
                          "per_family": {name: {"n_prompts": sets[name]["runs"][label]["num_prompts"],
                                                "strict": _rate(sets[name]["runs"][label], "strict"),
                                                "baseline_strict": _rate(sets[name]["runs"]["baseline"], "strict")}
                                         for name in HELDOUT_SETS if name in sets}}
    for name in EXTERNAL_SETS:
        if name in sets:
            runs = sets[name]["runs"]
            out[name] = {"n_prompts": runs[label]["num_prompts"], "strict": _rate(runs[label], "strict"),
                         "baseline_strict": _rate(runs["baseline"], "strict")}
    if "gsm8k" in sets:   # for math sets "strict" is the exact final answer
        runs = sets["gsm8k"]["runs"]
        out["gsm8k"] = {"n_prompts": runs[label]["num_prompts"], "accuracy": _rate(runs[label], "strict"),
                        "baseline_accuracy": _rate(runs["baseline"], "strict")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", required=True, help="grpo-eval output folder (its metrics.json)")
    ap.add_argument("--label", required=True, help="the trained adapter's label in that evaluation")
    ap.add_argument("--wall-min", type=float, required=True, help="the main job's wall time, minutes")
    ap.add_argument("--command", default="bash scripts/main.sh")
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--out", default="benchmarks/outcome.json")
    ap.add_argument("--wall-note", help="how wall_min was obtained, when it is not this run's own clock")
    args = ap.parse_args()
    metrics = json.loads((Path(args.eval) / "metrics.json").read_text())
    result = {"main_job": {"command": args.command, "model": args.model, "wall_min": round(args.wall_min, 1),
                           "eval_dir": args.eval, **outcome(metrics, args.label)}}
    if args.wall_note:
        result["main_job"]["wall_note"] = args.wall_note
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
