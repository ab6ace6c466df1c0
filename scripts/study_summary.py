"""docs/study.md section 11's tables and figure from the study's evaluation folders and runs: one row per
arm (strict / syntax / format with 95 % CIs, strict per tier, paired rescued / regressed against the SFT-only
adapter), the seed's table (baseline / peak / best configuration / gain) on strict pass, and every arm's
held-out probe (probe/strict, 30 fixed prompts, greedy) against the GRPO step in one figure.

    python scripts/study_summary.py --sft-eval runs/study-sft-eval \
        --arm standard=runs/study-standard curriculum=runs/study-curriculum --out docs/study/strategies
writes OUT.json, OUT.md (the tables) and OUT-curve.png / OUT-curve.csv. An arm's folder holds tb/ and
eval/ (metrics.json, vs-sft.json from scripts/paired_labels.py); the SFT-only row reads --sft-eval.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tb_summary import read_scalars, write_series_csv

HELD_OUT = ("synthetic", "synthetic-schema")   # the two held-out families: requests in words, schema in the prompt
TIERS = ("simple", "medium", "hard")


def ci(stat: dict) -> str:
    return f"{stat['rate']:.3f} [{stat['lo']:.2f}, {stat['hi']:.2f}]"


def pooled_strict(sets: dict, label: str) -> float:
    """Strict pass over both held-out families together (the main job's 'held-out, both' figure)."""
    runs = [sets[s]["runs"][label] for s in HELD_OUT]
    return sum(r["strict"]["rate"] * r["strict"]["num"] for r in runs) / sum(r["strict"]["num"] for r in runs)


def arm_rows(label: str, eval_dir: Path) -> dict:
    sets = json.loads((eval_dir / "metrics.json").read_text())["sets"]
    paired = eval_dir / "vs-sft.json"
    vs_sft = json.loads(paired.read_text())["sets"] if paired.exists() else {}
    row = {"label": label, "eval": str(eval_dir), "heldout_strict": pooled_strict(sets, label), "sets": {}}
    for name, s in sets.items():
        r = s["runs"][label]
        entry = {k: {"rate": r[k]["rate"], "lo": r[k]["lo"], "hi": r[k]["hi"]} for k in ("strict", "syntax", "format")}
        entry["num_prompts"] = r["num_prompts"]
        if r.get("per_tier"):
            entry["per_tier_strict"] = {t: r["per_tier"][t]["strict"]["rate"] for t in TIERS if t in r["per_tier"]}
        if name in vs_sft:
            entry["vs_sft"] = vs_sft[name][f"{label}_vs_sft"]
        entry["baseline_strict"] = s["runs"]["baseline"]["strict"]["rate"]
        row["sets"][name] = entry
    return row


def markdown(rows: list[dict]) -> str:
    names = list(rows[0]["sets"])
    out = ["| arm | " + " | ".join(f"{n}: strict [CI] (syntax / format)" for n in names) + " | held-out, both |",
           "|---|" + "---|" * (len(names) + 1)]
    for row in rows:
        cells = [f"{ci(e['strict'])} ({e['syntax']['rate']:.2f} / {e['format']['rate']:.2f})"
                 for e in row["sets"].values()]
        out.append(f"| {row['label']} | " + " | ".join(cells) + f" | {row['heldout_strict']:.3f} |")
    out += ["", "| arm | " + " | ".join(f"{n} simple / medium / hard" for n in HELD_OUT) + " | "
            + " | ".join(f"{n} vs SFT: rescued / regressed, delta [CI]" for n in names) + " |",
            "|---|" + "---|" * (len(HELD_OUT) + len(names))]
    for row in rows:
        tiers = [" / ".join(f"{row['sets'][n]['per_tier_strict'][t]:.2f}" for t in TIERS) for n in HELD_OUT]
        paired = []
        for e in row["sets"].values():
            p = e.get("vs_sft")
            paired.append(f"{p['rescued']} / {p['regressed']}, {p['delta']:+.3f} [{p['delta_lo']:+.3f}, {p['delta_hi']:+.3f}]"
                          if p else "-")
        out.append(f"| {row['label']} | " + " | ".join(tiers + paired) + " |")
    return "\n".join(out) + "\n"


def seed_table(rows: list[dict]) -> str:
    """The seed's table (baseline / peak post-GRPO / best configuration / gain), on held-out strict pass."""
    grpo = [r for r in rows if r["label"] != "sft"]
    best = max(grpo, key=lambda r: r["heldout_strict"])
    base_sets = rows[0]["sets"]
    baseline = (sum(base_sets[n]["baseline_strict"] * base_sets[n]["num_prompts"] for n in HELD_OUT)
                / sum(base_sets[n]["num_prompts"] for n in HELD_OUT))
    return ("| model | baseline (untrained) | peak post-GRPO | best configuration | max absolute gain |\n"
            "|---|---|---|---|---|\n"
            f"| SmolLM2-135M | {baseline:.3f} | {best['heldout_strict']:.3f} | {best['label']} | "
            f"{100 * (best['heldout_strict'] - baseline):+.1f} pp |\n")


def probe_curves(runs: dict[str, Path], out: Path) -> None:
    curves = {}
    for label, run_dir in runs.items():
        scalars = read_scalars(run_dir)
        if "probe/strict" in scalars:
            curves[label] = scalars["probe/strict"]
    write_series_csv(f"{out}-curve.csv", curves)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, c in curves.items():
        xs = sorted(c)
        ax.plot(xs, [c[x] for x in xs], "-o", ms=3, label=label)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("held-out probe strict pass (30 prompts, greedy)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("The seed's strategies from one SFT warm start: held-out probe during GRPO", fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{out}-curve.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft-eval", type=Path, required=True, help="the SFT-only adapter's evaluation folder (label sft)")
    ap.add_argument("--arm", nargs="+", default=[], metavar="LABEL=RUN_DIR", help="a GRPO arm: its run folder")
    ap.add_argument("--out", type=Path, required=True, help="output prefix")
    args = ap.parse_args()
    arms = {}
    for spec in args.arm:
        label, sep, run_dir = spec.partition("=")
        if not sep or not (Path(run_dir) / "eval" / "metrics.json").exists():
            ap.error(f"--arm {spec!r}: expected LABEL=RUN_DIR with RUN_DIR/eval/metrics.json")
        arms[label] = Path(run_dir)
    rows = [arm_rows("sft", args.sft_eval)] + [arm_rows(label, d / "eval") for label, d in arms.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(rows) + ("\n" + seed_table(rows) if arms else "")
    Path(f"{args.out}.md").write_text(text)
    Path(f"{args.out}.json").write_text(json.dumps({"command": "python scripts/study_summary.py " + " ".join(
        [f"--sft-eval {args.sft_eval}", "--arm", *args.arm, f"--out {args.out}"]), "arms": rows}, indent=1) + "\n")
    if arms:
        probe_curves(arms, args.out)
    print(text)


if __name__ == "__main__":
    main()
