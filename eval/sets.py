"""Named prompt sets: the held-out synthetic JSON eval, linear equations, external benchmarks, user files.

Contract: `load_set(name, limit, seed, data_dir)` returns the tasks of one set, pure in its
arguments; `check_set(name, data_dir)` says up front whether it can (known name, external file
present without reading it; a user's file read and every row checked); `set_label(name)` is the
set's name in reports; `set_hash(tasks)` gives a short content hash of the tasks (ids, prompts,
schemas, answers, own system prompts) that keys the baseline cache: change one prompt and the cached
baseline no longer matches.

Sets (case-insensitive names):
  synthetic      curriculum.json_tasks, split "eval" (held out from training by template parameters),
                 uniform tiers - default 300 prompts (100 per tier)
  synthetic-schema  the same generators and split, the prompt giving the JSON Schema itself
                 (curriculum.json_tasks family "schema") - default 300
  synthetic-generated  schemas whose shape is drawn at random, the prompt giving the schema (family
                 "generated", split "eval") - default 300
  linear         curriculum.linear_equations, split "eval" - default 150
  gsm8k          GSM8K test (external, evaluation only) - default 300
  <subset>       a JSONSchemaBench subset (Glaiveai2K, Github_easy, Github_medium, Snowplow,
                 WashingtonPost, ...) - default 200
  PATH.jsonl     a user's task file (curriculum.custom; one bad row refuses it) - default every row;
                 named by its stem in reports. It is not held out from anything: a file also trained on
                 measures the training rows.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from curriculum.custom import load_jsonl
from curriculum.external import JSONSCHEMABENCH_SUBSETS, external_file, load_gsm8k, load_jsonschemabench
from curriculum.json_tasks import generate_json_tasks
from curriculum.linear_equations import generate_linear_tasks
from curriculum.task import Task

DEFAULT_LIMITS = {"synthetic": 300, "synthetic-schema": 300, "synthetic-generated": 300, "linear": 150, "gsm8k": 300}
DEFAULT_JSONSCHEMABENCH_LIMIT = 200
_SUBSETS = {s.lower(): s for s in JSONSCHEMABENCH_SUBSETS}


def is_file_set(name: str) -> bool:
    return name.lower().endswith(".jsonl")


def set_label(name: str) -> str:
    """A set's name in reports: the canonical name, a user file's stem."""
    return Path(name).stem if is_file_set(name) else canonical_name(name)


def canonical_name(name: str) -> str:
    if is_file_set(name):
        if not Path(name).is_file():
            raise ValueError(f"{name}: no such file (a prompt set ending in .jsonl is a user's task file)")
        return name
    low = name.lower()
    if low in DEFAULT_LIMITS:
        return low
    if low in _SUBSETS:
        return _SUBSETS[low]
    raise ValueError(f"unknown prompt set {name!r}; known: {sorted(DEFAULT_LIMITS)} + {list(JSONSCHEMABENCH_SUBSETS)}")


def check_set(name: str, data_dir: str | Path | None = None) -> str:
    """The canonical name of a set `load_set` can load; ValueError (one line) if it cannot."""
    name = canonical_name(name)
    if is_file_set(name):
        load_jsonl(name)   # every row checked: a bad one is a one-line error now, not after a model load
    elif name == "gsm8k" or name not in DEFAULT_LIMITS:  # the external sets: GSM8K and JSONSchemaBench
        path = external_file(name, data_dir)
        if not path.is_file():
            raise ValueError(f"{path} not found; set $GRPO_EXTERNAL_DATA or --data-dir "
                             "to the external_data folder")
    return name


def load_set(name: str, limit: int | None = None, seed: int = 0, data_dir: str | Path | None = None) -> list[Task]:
    name = canonical_name(name)
    if is_file_set(name):
        tasks = load_jsonl(name)
        if limit is None or limit >= len(tasks):
            return tasks
        return [tasks[i] for i in sorted(random.Random(f"{set_label(name)}:{seed}").sample(range(len(tasks)), limit))]
    n = limit if limit is not None else DEFAULT_LIMITS.get(name, DEFAULT_JSONSCHEMABENCH_LIMIT)
    if name == "synthetic":
        return generate_json_tasks(n, seed, "eval")
    if name in ("synthetic-schema", "synthetic-generated"):
        return generate_json_tasks(n, seed, "eval", family=name.removeprefix("synthetic-"))
    if name == "linear":
        return generate_linear_tasks(n, seed, "eval")
    if name == "gsm8k":
        return load_gsm8k(n, seed, data_dir)
    return load_jsonschemabench(name, n, seed, data_dir)


def set_hash(tasks: list[Task]) -> str:
    h = hashlib.sha256()
    for t in tasks:
        key = [t.id, t.kind, t.prompt, t.schema, t.answer] + ([t.system] if t.system is not None else [])
        h.update(json.dumps(key, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
