"""The figures of docs/study.md: held-out strict pass against SFT steps (from a grpo-eval folder whose
adapters are labelled sft<steps>), and the GRPO run's learning curve (probe/strict from TensorBoard).

    python scripts/study_figures.py --sft-eval runs/study/eval-sft --grpo-run runs/smollm2-135m-cpu-sft-grpo \
        --out docs/study
writes sft_amount.png and learning_curve.png (and learning_curve.csv) under --out.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tb_summary import read_scalars, write_series_csv


def sft_amount(eval_dir: Path, out: Path) -> None:
    sets = json.loads((eval_dir / "metrics.json").read_text())["sets"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, runs in ((n, s["runs"]) for n, s in sets.items()):
        points = sorted((int(re.fullmatch(r"sft(\d+)", label).group(1)), run)
                        for label, run in runs.items() if re.fullmatch(r"sft\d+", label))
        points = [(0, runs["baseline"])] + points
        steps = [s for s, _ in points]
        for key, style in (("strict", "-o"), ("syntax", ":s")):
            rates = [r[key]["rate"] for _, r in points]
            lo = [r[key]["rate"] - r[key]["lo"] for _, r in points]
            hi = [r[key]["hi"] - r[key]["rate"] for _, r in points]
            ax.errorbar(steps, rates, yerr=[lo, hi], fmt=style, capsize=3, label=f"{name} {key}")
    ax.set_xlabel("SFT optimizer steps (16 gold replies each)")
    ax.set_ylabel("held-out pass rate (95 % CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("How much SFT: one run, checkpoints every 50 steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "sft_amount.png", dpi=120)
    plt.close(fig)


def learning_curve(run_dir: Path, out: Path) -> None:
    scalars = read_scalars(run_dir)
    series = {t: v for t, v in scalars.items() if t.startswith("probe/") or t in ("pass/strict", "pass/syntax")}
    write_series_csv(out / "learning_curve.csv", series)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for tag, style in (("probe/strict", "-o"), ("probe/syntax", ":s"), ("pass/strict", "-")):
        if tag in series:
            xs = sorted(series[tag])
            ax.plot(xs, [series[tag][x] for x in xs], style, label=tag, alpha=0.6 if tag == "pass/strict" else 1)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("pass rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("GRPO from the SFT adapter: held-out probe (greedy) and training batch (T = 0.8)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft-eval", type=Path)
    ap.add_argument("--grpo-run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sft_eval:
        sft_amount(args.sft_eval, args.out)
    if args.grpo_run:
        learning_curve(args.grpo_run, args.out)


if __name__ == "__main__":
    main()
