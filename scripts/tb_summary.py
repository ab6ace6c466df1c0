"""Summarise a run's TensorBoard scalars: a CSV (one row per step), a JSON (first/last-window means
and the per-step series) and a PNG plot of reward and pass rates (an SFT run: its loss), for committing
under docs/.

Usage: python scripts/tb_summary.py RUN_DIR OUT_PREFIX [--window 5]
  e.g. python scripts/tb_summary.py runs/smollm2-135m-cpu-40 docs/training-run/scalars
writes OUT_PREFIX.csv, OUT_PREFIX.json and OUT_PREFIX.png.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

PLOTTED = [("reward", "reward (weighted total)"), ("sft/loss", "SFT loss (target-token NLL)"),
           ("pass/strict", "strict pass (schema-valid)"),
           ("pass/syntax", "syntax pass (parses)"), ("pass/format", "format pass (```json fence)")]
SUMMARISED = [k for k, _ in PLOTTED] + ["sft/grad_norm", "reward/schema", "reward/validity", "completions/mean_length",
                                        "frac_reward_zero_std", "kl", "entropy", "step_time_s",
                                        "time/generate_s", "time/train_s", "time/sync_s", "tokens/generated_per_s",
                                        "sync/delivered_fraction", "is/kl_sampler_trainer", "probe/strict"]


def read_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def write_series_csv(path, series: dict[str, dict[int, float]]) -> None:
    """One row per step that any series has, one column per series (blank where a series has no point)."""
    steps = sorted({s for points in series.values() for s in points})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *series])
        for s in steps:
            w.writerow([s, *(points.get(s, "") for points in series.values())])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out_prefix", type=Path)
    ap.add_argument("--window", type=int, default=5, help="steps averaged at the start and at the end")
    args = ap.parse_args()
    scalars = read_scalars(args.run_dir)
    main_tag = next((t for t in ("reward", "sft/loss") if t in scalars), None)   # a GRPO run, else an SFT run
    if main_tag is None:
        raise SystemExit(f"tb_summary: no 'reward' (GRPO) or 'sft/loss' (SFT) scalar under {args.run_dir / 'tb'}")
    steps = sorted(scalars[main_tag])
    tags = [t for t in SUMMARISED if t in scalars]
    args.out_prefix.parent.mkdir(parents=True, exist_ok=True)

    def out(ext: str) -> Path:  # not with_suffix: a dot in the prefix (tune-temp1.0-scalars) must stay
        return args.out_prefix.parent / (args.out_prefix.name + ext)

    with open(out(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step"] + tags)
        for s in steps:
            w.writerow([s] + [f"{scalars[t][s]:.6g}" if s in scalars[t] else "" for t in tags])

    def window_mean(tag: str, part: slice) -> float:
        return float(np.mean([scalars[tag][s] for s in steps[part] if s in scalars[tag]]))

    k = args.window
    summary = {"run_dir": str(args.run_dir), "steps": len(steps), "window": k,
               "first_window_mean": {t: window_mean(t, slice(0, k)) for t in tags},
               "last_window_mean": {t: window_mean(t, slice(-k, None)) for t in tags},
               "series": {t: [scalars[t].get(s) for s in steps] for t in tags}}
    out(".json").write_text(json.dumps(summary, indent=1))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for tag, label in PLOTTED:
        if tag not in scalars:
            continue
        ax = axes[0] if tag == main_tag else axes[1]
        y = np.array([scalars[tag][s] for s in steps])
        ax.plot(steps, y, alpha=0.35, label=f"{label} per step")
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, linewidth=2, label=f"{label}, mean of {k}")
    axes[0].set_title(main_tag); axes[1].set_title("pass rates on the training batches")
    for ax in axes:
        ax.set_xlabel("GRPO step" if main_tag == "reward" else "SFT step"); ax.grid(alpha=0.3); ax.legend(fontsize=7)
    fig.suptitle(f"{args.run_dir.name}: {len(steps)} steps")
    fig.tight_layout()
    fig.savefig(out(".png"), dpi=110)
    print(json.dumps({"first": summary["first_window_mean"], "last": summary["last_window_mean"]}, indent=1))


if __name__ == "__main__":
    main()
