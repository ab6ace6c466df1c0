"""Two adapters of one evaluation compared prompt by prompt (grpo-eval pairs each with the baseline only).

    python scripts/paired_labels.py runs/ab-eval ctrl gen [--out docs/study/ab-generated.json]
    python scripts/paired_labels.py docs/study/eval-ab-generated gen open --second-from runs/ab-open-eval

Reads the folder's completions.jsonl (written by grpo-eval; the second label's from --second-from, if
given: two evaluations run with the same sets, limits and seeds); prompts are paired by task id and
prompt text, so a set whose prompts changed between the two pairs nothing. For every prompt set that has both labels
prints, and with --out writes as JSON, each label's strict and syntax pass and `eval.stats.paired_outcomes`
of strict pass (first label as the base: rescued = the second passes where the first failed).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.stats import paired_outcomes  # noqa: E402


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "completions.jsonl").read_text().splitlines() if line.strip()]


def compare(folder: Path, first: str, second: str, second_folder: Path | None = None) -> dict:
    rows = [r for r in _rows(folder) if r["label"] == first or (second_folder is None and r["label"] == second)]
    if second_folder is not None:
        rows += [r for r in _rows(second_folder) if r["label"] == second]
    runs: dict[str, dict[str, dict[tuple, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        runs[r["set"]][r["label"]][(r["task_id"], r["prompt"])].append(r)
    out = {}
    for name, labels in runs.items():
        if first not in labels or second not in labels:
            continue
        ids = [t for t in labels[first] if t in labels[second]]
        if not ids:
            continue
        strict = {lab: np.array([[c["strict"] for c in labels[lab][t]] for t in ids], dtype=float) for lab in (first, second)}
        syntax = {lab: float(np.mean([[c["syntax"] for c in labels[lab][t]] for t in ids])) for lab in (first, second)}
        out[name] = {"num_prompts": len(ids),
                     **{f"{lab}_strict": float(strict[lab].mean()) for lab in (first, second)},
                     **{f"{lab}_syntax": syntax[lab] for lab in (first, second)},
                     f"{second}_vs_{first}": paired_outcomes(strict[first], strict[second])}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("--second-from", type=Path, help="read the second label from this evaluation folder")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.first == args.second:
        sys.exit(f"paired_labels: the two labels must differ (both {args.first!r})")
    result = {"command": " ".join(["python", *sys.argv]),
              "sets": compare(args.folder, args.first, args.second, args.second_from)}
    if not result["sets"]:
        sys.exit(f"paired_labels: no prompt set in {args.folder} has both {args.first!r} and {args.second!r}")
    for name, r in result["sets"].items():
        pair = r[f"{args.second}_vs_{args.first}"]
        print(f"{name:20s} n={r['num_prompts']:4d} {args.first} {r[f'{args.first}_strict']:.3f} "
              f"{args.second} {r[f'{args.second}_strict']:.3f}  rescued {pair['rescued']} regressed {pair['regressed']} "
              f"delta {pair['delta']:+.3f} [{pair['delta_lo']:+.3f}, {pair['delta_hi']:+.3f}]")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
