"""Named prompt sets: the held-out synthetic JSON eval, linear equations, and external benchmarks.

Contract: `load_set(name, limit, seed, data_dir)` returns the tasks of one set, pure in its
arguments; `check_set(name, data_dir)` says up front whether it can (known name, external file
present) without reading it; `set_hash(tasks)` gives a short content hash of the tasks (ids, prompts,
schemas, answers) that keys the baseline cache: change one prompt and the cached baseline no longer matches.

Sets (case-insensitive names):
  synthetic      curriculum.json_tasks, split "eval" (held out from training by template parameters),
                 uniform tiers - default 300 prompts (100 per tier)
  synthetic-schema  the same generators and split, the prompt giving the JSON Schema itself
                 (curriculum.json_tasks family "schema") - default 300
  linear         curriculum.linear_equations, split "eval" - default 150
  gsm8k          GSM8K test (external, evaluation only) - default 300
  <subset>       a JSONSchemaBench subset (Glaiveai2K, Github_easy, Github_medium, Snowplow,
                 WashingtonPost, ...) - default 200
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from curriculum.external import JSONSCHEMABENCH_SUBSETS, external_file, load_gsm8k, load_jsonschemabench
from curriculum.json_tasks import generate_json_tasks
from curriculum.linear_equations import generate_linear_tasks
from curriculum.task import Task

DEFAULT_LIMITS = {"synthetic": 300, "synthetic-schema": 300, "linear": 150, "gsm8k": 300}
DEFAULT_JSONSCHEMABENCH_LIMIT = 200
_SUBSETS = {s.lower(): s for s in JSONSCHEMABENCH_SUBSETS}


def canonical_name(name: str) -> str:
    low = name.lower()
    if low in DEFAULT_LIMITS:
        return low
    if low in _SUBSETS:
        return _SUBSETS[low]
    raise ValueError(f"unknown prompt set {name!r}; known: {sorted(DEFAULT_LIMITS)} + {list(JSONSCHEMABENCH_SUBSETS)}")


def check_set(name: str, data_dir: str | Path | None = None) -> str:
    """The canonical name of a set `load_set` can load; ValueError (one line) if it cannot."""
    name = canonical_name(name)
    if name == "gsm8k" or name not in DEFAULT_LIMITS:  # the external sets: GSM8K and JSONSchemaBench
        path = external_file(name, data_dir)
        if not path.is_file():
            raise ValueError(f"{path} not found; set $GRPO_EXTERNAL_DATA or --data-dir "
                             "to the external_data folder")
    return name


def load_set(name: str, limit: int | None = None, seed: int = 0, data_dir: str | Path | None = None) -> list[Task]:
    name = canonical_name(name)
    n = limit if limit is not None else DEFAULT_LIMITS.get(name, DEFAULT_JSONSCHEMABENCH_LIMIT)
    if name == "synthetic":
        return generate_json_tasks(n, seed, "eval")
    if name == "synthetic-schema":
        return generate_json_tasks(n, seed, "eval", family="schema")
    if name == "linear":
        return generate_linear_tasks(n, seed, "eval")
    if name == "gsm8k":
        return load_gsm8k(n, seed, data_dir)
    return load_jsonschemabench(name, n, seed, data_dir)


def set_hash(tasks: list[Task]) -> str:
    h = hashlib.sha256()
    for t in tasks:
        h.update(json.dumps([t.id, t.kind, t.prompt, t.schema, t.answer], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
