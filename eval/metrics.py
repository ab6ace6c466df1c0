"""Metrics of one `Generated` against its tasks: strict / syntax / format pass, taxonomy, pass@k.

Contract: `evaluate(generated, tasks, reward_config, ks)` scores every completion with
`rewards.score` (the reward's own parse and validator: strict pass here IS the reward's
`strict_pass`, no second implementation), in the reply format the prompts asked for (the run's
`Decoding.output`: fenced or bare), and returns `(metrics, rows)`: a JSON-ready dict and one
record per completion for completions.jsonl. It never generates and never imports `grpo`.

Definitions (one sample = one completion; a prompt has n samples):
- strict pass: the extracted JSON parses AND validates against the task's JSON Schema
  (math: every expected value right - GSM8K exact final number);
- syntax pass: the extracted JSON parses (the seed's "Pass@1"; math: an answer was found);
- format pass: a closed ```json block, opened on its own line, was extracted (bare output: the reply is
  one JSON value alone, and strict pass needs that too; math: an "Answer:" line);
- pass@1 = mean success over the n samples of every prompt, then over prompts; pass@k by the
  unbiased estimator from the n samples (only for k <= n);
- every rate carries a 95 % CI: Wilson with the prompt as the unit (`eval.stats.prompt_rate`);
  means (reward components, pass@k) a bootstrap over prompts;
- error taxonomy: `rewards.score`'s error class per sample (ok | no_json | truncated |
  parse_error:<kind> | schema:<first failing keyword> | math: no_answer | wrong_answer), a coarse
  roll-up of it, and counts of every failing JSON Schema keyword (a sample can fail several);
- prompts that were skipped (did not fit the context, schema rejected by the grammar backend) are
  counted under "skipped" and enter no rate.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from curriculum.task import Task
from eval.records import Generated
from eval.stats import bootstrap_mean, pass_at_k, prompt_rate
from rewards import COMPONENTS, RewardConfig, score


def coarse_error(error_class: str) -> str:
    """'schema:required' -> 'schema_violation', 'parse_error:extra_data' -> 'parse_error'; a schema the
    judge cannot use ('schema_invalid', 'schema_unsupported') is not the model's mistake and keeps its name."""
    if error_class in ("schema_invalid", "schema_unsupported"):
        return error_class
    if error_class.startswith("schema"):
        return "schema_violation"
    return error_class.split(":", 1)[0]


def _rates(strict: np.ndarray, syntax: np.ndarray, fmt: np.ndarray) -> dict[str, Any]:
    return {"strict": prompt_rate(strict), "syntax": prompt_rate(syntax), "format": prompt_rate(fmt)}


def _grouped(keys: list[str], strict: np.ndarray, syntax: np.ndarray, fmt: np.ndarray) -> dict[str, Any]:
    index: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        index[k].append(i)
    return {k: _rates(strict[ix], syntax[ix], fmt[ix]) for k, ix in sorted(index.items())}


def evaluate(generated: Generated, tasks: list[Task], reward_config: RewardConfig | None = None,
             ks: tuple[int, ...] = (1,)) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    by_id = {t.id: t for t in tasks}
    run_tasks = [by_id[i] for i in generated.task_ids]
    P = len(run_tasks)
    n = len(generated.completions[0]) if P else 0
    flat = [c for row in generated.completions for c in row]                     # [P*n]
    flat_tasks = [t for t in run_tasks for _ in range(n)]
    decoding = generated.meta.get("decoding", {})
    config = reward_config or RewardConfig.defaults(thinking=bool(decoding.get("thinking")))
    batch = score([c.text for c in flat], flat_tasks, config, truncated=[c.truncated for c in flat],
                  output=decoding.get("output", "fenced"))

    strict = batch.strict_pass.reshape(P, n)                                     # [P, n]
    syntax = batch.syntax_pass.reshape(P, n)
    fmt = batch.format_pass.reshape(P, n)
    kinds = {t.kind for t in run_tasks}
    weights = {kind: config.effective_weights(kind) for kind in kinds}
    active = [c for c in COMPONENTS if any(w.get(c, 0.0) > 0 for w in weights.values())]
    lengths = np.array([c.num_tokens for c in flat])
    keywords = Counter(k for row in batch.schema_keywords for k in row)

    metrics: dict[str, Any] = {
        "label": generated.label,
        "num_prompts": P, "samples_per_prompt": n, "num_completions": len(flat),
        "skipped": dict(Counter(generated.skipped.values())),
        **_rates(strict, syntax, fmt),
        "think": prompt_rate(batch.has_think.reshape(P, n)),
        "pass_at_k": {},
        "reward_total": _mean_ci(batch.total.reshape(P, n)),
        "components": {c: _mean_ci(batch.components[c].reshape(P, n)) for c in active},
        "weights": {kind: {c: w.get(c, 0.0) for c in active} for kind, w in weights.items()},
        "errors": dict(Counter(batch.error_class).most_common()),
        "errors_coarse": dict(Counter(coarse_error(e) for e in batch.error_class).most_common()),
        "schema_keywords": dict(keywords.most_common()),
        "per_tier": _grouped([t.tier for t in flat_tasks[::n]] if n else [], strict, syntax, fmt),
        "per_template": _grouped([t.template_id for t in flat_tasks[::n]] if n else [], strict, syntax, fmt),
        "length_tokens": _length_stats(lengths),
        "truncated_rate": float(np.mean([c.truncated for c in flat])) if flat else 0.0,
        "throughput": _throughput(generated, lengths),
    }
    for k in ks:
        if 1 <= k <= n:
            per_prompt = np.array([pass_at_k(n, int(row.sum()), k) for row in strict])   # [P]
            lo, hi = bootstrap_mean(per_prompt)
            metrics["pass_at_k"][str(k)] = {"rate": float(per_prompt.mean()) if P else 0.0, "lo": lo, "hi": hi}

    rows = []
    for i, (c, t) in enumerate(zip(flat, flat_tasks)):
        rows.append({"label": generated.label, "task_id": t.id, "sample": i % n if n else 0, "source": t.source,
                     "tier": t.tier, "template": t.template_id, "prompt": t.prompt, "completion": c.text,
                     "num_tokens": c.num_tokens, "finish_reason": c.finish_reason,
                     "strict": bool(batch.strict_pass[i]), "syntax": bool(batch.syntax_pass[i]),
                     "format": bool(batch.format_pass[i]), "error_class": batch.error_class[i],
                     "schema_keywords": batch.schema_keywords[i], "reward": float(batch.total[i]),
                     "components": {name: float(batch.components[name][i]) for name in active}})
    return metrics, rows


def outcomes(generated: Generated, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """task id -> [n] strict outcomes, for paired comparisons between runs on the same prompts."""
    per: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        per[r["task_id"]].append(r["strict"])
    return {tid: np.array(per[tid]) for tid in generated.task_ids}


def _mean_ci(values: np.ndarray) -> dict[str, float]:
    per_prompt = values.mean(axis=1) if values.size else values.reshape(-1)      # [P]
    lo, hi = bootstrap_mean(per_prompt)
    return {"mean": float(per_prompt.mean()) if per_prompt.size else 0.0, "lo": lo, "hi": hi}


def _length_stats(lengths: np.ndarray) -> dict[str, float]:
    if lengths.size == 0:
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0}
    return {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
            "p90": float(np.quantile(lengths, 0.9)), "max": int(lengths.max())}


def _throughput(generated: Generated, lengths: np.ndarray) -> dict[str, float]:
    wall = max(generated.wall_s, 1e-9)
    return {"wall_s": round(generated.wall_s, 2), "completions_per_s": round(lengths.size / wall, 3),
            "generated_tokens": int(lengths.sum()), "tokens_per_s": round(float(lengths.sum()) / wall, 1)}
