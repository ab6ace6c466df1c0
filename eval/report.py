"""The Markdown report, rendered from metrics.json alone (so it can be re-rendered at any time).

Contract: `write_report(metrics, figures, path)` writes report.md: how it was run (command, seeds,
decoding, wall time, versions), one summary table per prompt set (strict / syntax / format pass
with 95 % CIs, pass@k, skipped prompts, speed), per-tier tables, the error taxonomy, paired
comparisons with the baseline, each constrained run paired with its model unconstrained, and the
figures. Knows nothing of models or generation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.records import write_atomic
from eval.stats import tier_key

DEFINITIONS = """\
**Definitions.** *strict* = the extracted JSON parses **and** validates against the task's JSON Schema
(draft 2020-12, a real validator; math sets: the final answer is exactly right). *syntax* = the extracted
JSON parses (the seed study's "Pass@1"; math: an answer was found). *format* = a closed ```json block
(with bare output: the reply is one JSON value alone, and *strict* needs that too; math: an `Answer:`
line). Rates are pass@1 = mean success over the n samples per prompt; brackets are
95 % Wilson CIs with the prompt as the unit (exact Wilson for n = 1, conservative for n > 1). *skipped* prompts (did not fit the
context, or the schema was rejected by the grammar backend) are in no rate. *constrained* = the base
model with vLLM structured outputs (xgrammar JSON-schema guided decoding, no whitespace outside
strings), *<label>+constrained* = that adapter with the same guided decoding: the output is bare JSON
by construction, so with fenced output its *format* is 0 and not meaningful, and it runs only on the
schemas xgrammar accepts - compare it with the same model unconstrained on the paired prompts."""


def _r(r: dict[str, float] | None) -> str:
    if not r:
        return "-"
    return f"{r['rate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"


def _summary(s: dict[str, Any]) -> list[str]:
    ks = sorted({k for m in s["runs"].values() for k in m.get("pass_at_k", {})}, key=int)
    head = ["label", "prompts", "strict", "syntax", "format"] + [f"pass@{k}" for k in ks if k != "1"] + \
           ["reward", "skipped", "median tok", "trunc.", "compl/s", "tok/s", "cached"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, m in s["runs"].items():
        skipped = ", ".join(f"{k} {v}" for k, v in m["skipped"].items()) or "0"
        cells = [label, str(m["num_prompts"]), _r(m["strict"]), _r(m["syntax"]), _r(m["format"])]
        cells += [_r(m["pass_at_k"].get(k)) for k in ks if k != "1"]
        t = m["throughput"]
        cells += [f"{m['reward_total']['mean']:.3f}", skipped, f"{m['length_tokens']['median']:.0f}",
                  f"{m['truncated_rate']:.2f}", f"{t['completions_per_s']:.2f}", f"{t['tokens_per_s']:.0f}",
                  "yes" if m.get("from_cache") else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _per_tier(s: dict[str, Any]) -> list[str]:
    tiers = sorted({t for m in s["runs"].values() for t in m["per_tier"]}, key=tier_key)
    if len(tiers) < 2:
        return []
    lines = ["| label | " + " | ".join(f"{t} strict" for t in tiers) + " | " +
             " | ".join(f"{t} syntax" for t in tiers) + " |", "|" + "---|" * (1 + 2 * len(tiers))]
    for label, m in s["runs"].items():
        pt = m["per_tier"]
        lines.append(f"| {label} | " + " | ".join(_r(pt.get(t, {}).get("strict")) for t in tiers) + " | " +
                     " | ".join(f"{pt[t]['syntax']['rate']:.3f}" if t in pt else "-" for t in tiers) + " |")
    return lines


def _errors(s: dict[str, Any]) -> list[str]:
    labels = list(s["runs"])
    classes = list(dict.fromkeys(c for m in s["runs"].values() for c in m["errors"]))
    lines = ["| error class | " + " | ".join(labels) + " |", "|" + "---|" * (1 + len(labels))]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(str(s["runs"][l]["errors"].get(c, 0)) for l in labels) + " |")
    keywords = list(dict.fromkeys(k for m in s["runs"].values() for k in m.get("schema_keywords", {})))[:15]
    if keywords:
        lines += ["", "Failing JSON Schema keywords (completions failing each; one completion can fail several):", "",
                  "| keyword | " + " | ".join(labels) + " |", "|" + "---|" * (1 + len(labels))]
        for k in keywords:
            lines.append(f"| {k} | " + " | ".join(str(s["runs"][l]["schema_keywords"].get(k, 0)) for l in labels) + " |")
    return lines


def _paired(comparisons: dict[str, Any] | None, first: str) -> list[str]:
    """One row per paired comparison (eval.stats.paired_outcomes), `first` naming the label column."""
    if not comparisons:
        return []
    lines = [f"| {first} | paired prompts | rescued | regressed | both pass | both fail | Δ strict [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for label, c in comparisons.items():
        lines.append(f"| {label} | {c['num_prompts']} | {c['rescued']} | {c['regressed']} | {c['both_pass']} | "
                     f"{c['both_fail']} | {c['delta']:+.3f} [{c['delta_lo']:+.3f}, {c['delta_hi']:+.3f}] |")
    return lines


def _templates(s: dict[str, Any]) -> list[str]:
    runs = s["runs"]
    templates = sorted({t for m in runs.values() for t in m["per_template"]})
    if len(templates) < 2:
        return []
    labels = list(runs)
    lines = ["| template | " + " | ".join(f"{l} strict" for l in labels) + " |", "|" + "---|" * (1 + len(labels))]
    for t in templates:
        cells = []
        for l in labels:
            r = runs[l]["per_template"].get(t)
            cells.append(f"{r['strict']['rate']:.2f} (n={r['strict']['num']})" if r else "-")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def _generation_s(metrics: dict[str, Any]) -> float:
    """Seconds spent generating every run of the report; a run served from the cache keeps the time it
    took when it was generated, so a re-scored report still says what the evaluation cost."""
    return sum(r.get("throughput", {}).get("wall_s", 0.0)
               for s in metrics.get("sets", {}).values() for r in s.get("runs", {}).values())


def write_report(metrics: dict[str, Any], figures: dict[str, Path], path: str | Path) -> Path:
    path = Path(path)
    run = metrics.get("run", {})
    plan = run.get("plan", {})
    dec = plan.get("decoding", {})
    out = ["# Evaluation report", "",
           f"- command: `{run.get('command', '')}`",
           f"- model: `{plan.get('model')}`; adapters: {plan.get('adapters') or 'none'}",
           f"- decoding: temperature {dec.get('temperature')}, top_p {dec.get('top_p')}, n {dec.get('n')}, "
           f"max_tokens {dec.get('max_tokens')} (math {plan.get('math_max_tokens')}), thinking {dec.get('thinking')}, "
           f"output {dec.get('output', 'fenced')}{' (own system prompt)' if dec.get('system') else ''}, "
           f"engine {dec.get('engine')} ({run.get('dtype', 'bfloat16')}), engine seed {dec.get('seed')}, prompt-set seed {plan.get('set_seed')}, "
           f"context {plan.get('max_model_len')}",
           f"- wall time: {run.get('wall_s', 0):.0f} s (finished {run.get('finished_at', '?')}; generation of "
           f"all runs, cached ones included: {_generation_s(metrics):.0f} s); "
           f"versions: {', '.join(f'{k} {v}' for k, v in run.get('versions', {}).items())}",
           "", DEFINITIONS, ""]
    if "overview" in figures:
        out += [f"![overview]({Path(figures['overview']).relative_to(path.parent)})", ""]
    for name, s in metrics.get("sets", {}).items():
        out += [f"## {name} ({s['num_tasks']} prompts, set hash `{s['set_hash']}`)", ""]
        out += _summary(s) + [""]
        for title, block in (("Per tier", _per_tier(s)),
                             ("Paired with the baseline (strict pass per prompt)",
                              _paired(s.get("comparisons"), "vs baseline")),
                             ("Constrained vs the same model unconstrained (strict pass per prompt)",
                              _paired(s.get("constrained_vs_unconstrained"), "model")),
                             ("Error taxonomy (completions)", _errors(s)), ("Per template (strict pass)", _templates(s))):
            if block:
                out += [f"**{title}**", ""] + block + [""]
        for key in ("pass", "errors", "rewards", "lengths", "paired", "progression"):
            fig = figures.get(f"{key}_{name}")
            if fig:
                out += [f"![{key} {name}]({Path(fig).relative_to(path.parent)})", ""]
    return write_atomic(path, "\n".join(out) + "\n")
