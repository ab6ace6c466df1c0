"""PNG figures from metrics.json (matplotlib, Agg backend). Reads only the metrics dict.

Contract: `make_figures(metrics, folder) -> {name: path}` writes, per prompt set:
  pass_<set>.png        strict / syntax / format pass per tier for every label, 95 % CI error bars
  errors_<set>.png      coarse error taxonomy (left) and failing JSON Schema keywords (right) per label
  rewards_<set>.png     weighted reward-component means per label (the breakdown of the total)
  lengths_<set>.png     completion length histograms (tokens) per label
  paired_<set>.png      rescued / regressed / both pass / both fail against the baseline (if compared)
  progression_<set>.png label x tier heatmap of strict pass (when >= 2 adapters: curriculum stages;
                        unconstrained runs only)
and overview.png (strict vs syntax pass per set and label). Never raises for a missing field: a
figure that has nothing to show is skipped. Knows nothing of models or generation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from eval.stats import tier_key

COARSE_ORDER = ("ok", "fenced", "no_json", "truncated", "parse_error", "schema_violation", "schema_invalid",
                "schema_unsupported", "no_answer", "wrong_answer")   # fenced: bare output only (rewards.score)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _err(r: dict[str, float]) -> list[float]:
    return [max(0.0, r["rate"] - r["lo"]), max(0.0, r["hi"] - r["rate"])]


def pass_rates(name: str, runs: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    tiers = sorted({t for m in runs.values() for t in m.get("per_tier", {})}, key=tier_key) + ["all"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    width = 0.8 / max(1, len(runs))
    for ax, metric in zip(axes, ("strict", "syntax", "format")):
        for j, (label, m) in enumerate(runs.items()):
            rs = [m["per_tier"].get(t, {}).get(metric) if t != "all" else m[metric] for t in tiers]
            vals = [r["rate"] if r else 0.0 for r in rs]
            errs = np.array([_err(r) if r else [0, 0] for r in rs]).T
            ax.bar(np.arange(len(tiers)) + j * width, vals, width, yerr=errs, capsize=3, label=label)
        ax.set_xticks(np.arange(len(tiers)) + width * (len(runs) - 1) / 2, tiers)
        ax.set_title(f"{name}: {metric} pass (95% CI)")
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def errors(name: str, runs: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 4.5))
    labels = list(runs)
    bottom = np.zeros(len(labels))
    for i, cls in enumerate(COARSE_ORDER):      # one fixed tab10 colour per outcome class
        vals = np.array([runs[l]["errors_coarse"].get(cls, 0) / max(1, runs[l]["num_completions"]) for l in labels])
        if vals.any():
            a1.bar(labels, vals, bottom=bottom, label=cls, color=f"C{i}")
            bottom += vals
    a1.set_title(f"{name}: outcome of each completion (share)")
    a1.legend(fontsize=8, title="outcome", title_fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    keywords = sorted({k for l in labels for k in runs[l].get("schema_keywords", {})},
                      key=lambda k: -sum(runs[l]["schema_keywords"].get(k, 0) for l in labels))[:12]
    width = 0.8 / max(1, len(labels))
    greys = plt.cm.Greys(np.linspace(0.3, 0.9, len(labels)))   # labels here, not outcome classes: no tab10
    for j, l in enumerate(labels):
        a2.barh(np.arange(len(keywords)) + j * width,
                [runs[l]["schema_keywords"].get(k, 0) / max(1, runs[l]["num_completions"]) for k in keywords],
                width, label=l, color=greys[j], edgecolor="black", linewidth=0.5)
    a2.set_yticks(np.arange(len(keywords)) + width * (len(labels) - 1) / 2, keywords)
    a2.invert_yaxis()
    a2.set_title("failing JSON Schema keywords (share of completions)")
    if keywords:
        a2.legend(fontsize=8, title="label", title_fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        a2.set_axis_off()
        a2.text(0.5, 0.5, "no schema violations", ha="center", va="center", transform=a2.transAxes)
    return _save(fig, path)


def rewards(name: str, runs: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = list(runs)
    comps = sorted({c for m in runs.values() for c in m.get("components", {})})
    pos, neg = np.zeros(len(labels)), np.zeros(len(labels))
    for c in comps:
        vals = []
        for l in labels:
            w = max((ws.get(c, 0.0) for ws in runs[l].get("weights", {}).values()), default=0.0)
            vals.append(w * runs[l]["components"].get(c, {}).get("mean", 0.0))
        vals = np.array(vals)
        base = np.where(vals >= 0, pos, neg)
        ax.bar(labels, vals, bottom=base, label=c)
        pos += np.clip(vals, 0, None)
        neg += np.clip(vals, None, 0)
    ax.plot(labels, [runs[l]["reward_total"]["mean"] for l in labels], "k_", markersize=30, label="total")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(f"{name}: weighted reward components (mean)")
    ax.set_ylabel("weight x mean (below 0: penalty)")
    ax.legend(fontsize=8, markerscale=0.4, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


def lengths(name: str, runs: dict[str, Any], rows_by_label: dict[str, list[int]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, lens in rows_by_label.items():
        if lens:
            ax.hist(lens, bins=30, alpha=0.5, label=f"{label} (median {np.median(lens):.0f})")
    ax.set_xlabel("completion tokens")
    ax.set_title(f"{name}: completion lengths")
    ax.legend(fontsize=8)
    return _save(fig, path)


def paired(name: str, comparisons: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = list(comparisons)
    left = np.zeros(len(labels))
    for key, color in (("both_pass", "tab:green"), ("rescued", "tab:blue"), ("regressed", "tab:red"),
                       ("both_fail", "tab:gray")):
        vals = np.array([comparisons[l][key] for l in labels], dtype=float)
        ax.barh(labels, vals, left=left, color=color, label=key)
        left += vals
    ax.set_xlabel("prompts (strict pass, paired with the baseline)")
    ax.set_title(f"{name}: rescued vs regressed")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


def _unconstrained(runs: dict[str, Any]) -> list[str]:
    return [l for l, m in runs.items() if not m.get("decoding", {}).get("constrained") and l != "constrained"]


def progression(name: str, runs: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    labels = _unconstrained(runs)
    tiers = sorted({t for m in runs.values() for t in m.get("per_tier", {})}, key=tier_key)
    grid = np.array([[runs[l]["per_tier"].get(t, {}).get("strict", {}).get("rate", np.nan) for t in tiers]
                     + [runs[l]["strict"]["rate"]] for l in labels])                      # [labels, tiers+1]
    fig, ax = plt.subplots(figsize=(1.6 * len(tiers) + 3, 0.6 * len(labels) + 2))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(tiers) + 1), tiers + ["all"])
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(tiers) + 1):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white" if grid[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="strict pass")
    ax.set_title(f"{name}: strict pass by stage x tier")
    return _save(fig, path)


def overview(metrics: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    sets = list(metrics["sets"])
    labels = list(dict.fromkeys(l for s in sets for l in metrics["sets"][s]["runs"]))
    fig, ax = plt.subplots(figsize=(max(8, 2.2 * len(sets)), 4.5))
    width = 0.8 / max(1, len(labels))
    for j, label in enumerate(labels):
        for metric, alpha in (("syntax", 0.3), ("strict", 1.0)):
            rs = [metrics["sets"][s]["runs"].get(label, {}).get(metric) for s in sets]
            vals = [r["rate"] if r else 0 for r in rs]
            errs = np.array([_err(r) if r else [0, 0] for r in rs]).T
            ax.bar(np.arange(len(sets)) + j * width, vals, width, yerr=errs if metric == "strict" else None,
                   capsize=3, alpha=alpha, color=f"C{j}", label=f"{label} {metric}")
    ax.set_xticks(np.arange(len(sets)) + width * (len(labels) - 1) / 2, sets)
    ax.set_ylim(0, 1.05)
    ax.set_title("strict pass (solid, 95% CI) vs syntax pass (light), per prompt set")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def read_lengths(completions_jsonl: Path) -> dict[str, dict[str, list[int]]]:
    """set -> label -> completion token counts, from completions.jsonl (empty if absent)."""
    out: dict[str, dict[str, list[int]]] = {}
    if completions_jsonl.is_file():
        with completions_jsonl.open(encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                out.setdefault(r["set"], {}).setdefault(r["label"], []).append(r["num_tokens"])
    return out


def make_figures(metrics: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lengths_by_set = read_lengths(folder.parent / "completions.jsonl")
    out: dict[str, Path] = {}
    jobs = [("overview", lambda: overview(metrics, folder / "overview.png"))]
    for name, s in metrics.get("sets", {}).items():
        runs, comps = s.get("runs", {}), s.get("comparisons", {})
        jobs += [(f"pass_{name}", lambda n=name, r=runs: pass_rates(n, r, folder / f"pass_{n}.png")),
                 (f"errors_{name}", lambda n=name, r=runs: errors(n, r, folder / f"errors_{n}.png")),
                 (f"rewards_{name}", lambda n=name, r=runs: rewards(n, r, folder / f"rewards_{n}.png"))]
        if lengths_by_set and lengths_by_set.get(name):
            jobs.append((f"lengths_{name}", lambda n=name, r=runs: lengths(n, r, lengths_by_set[n], folder / f"lengths_{n}.png")))
        if comps:
            jobs.append((f"paired_{name}", lambda n=name, c=comps: paired(n, c, folder / f"paired_{n}.png")))
        if sum(1 for l in _unconstrained(runs) if l != "baseline") >= 2:
            jobs.append((f"progression_{name}", lambda n=name, r=runs: progression(n, r, folder / f"progression_{n}.png")))
    for key, job in jobs:
        try:
            out[key] = job()
        except Exception as err:  # noqa: BLE001 - one broken figure must not lose the report
            print(f"[grpo-eval] figure {key} skipped: {err!r}")
    return out
