"""External benchmarks as `Task`s, for EVALUATION ONLY: JSONSchemaBench subsets and GSM8K.

Contract: `load_jsonschemabench(subset, limit, seed)` and `load_gsm8k(limit, seed)` read the data
files in `../shared/external_data` (see its README: provenance, licenses, checks) and return tasks
whose `source` is "jsonschemabench/<subset>" or "gsm8k". Selection is pure in (limit, seed): a
seeded random subset, returned in file order, so the same call gives the same tasks everywhere.

What this module does NOT do: feed training. No training generator imports it, and the trainer's
task source builds its pool from `curriculum.json_tasks` / `curriculum.linear_equations` only
(tests/test_external_data.py checks both). A model that trained on these schemas or questions says
nothing about generalisation.

JSONSchemaBench tasks: the user prompt asks for one JSON instance of the schema, shown minified
(the paper's setting minus its two few-shot examples); `tier` is a size bucket of the minified
schema (simple < 500 chars <= medium < 1500 <= hard), `template_id` the subset, `gold` the first
instance upstream labelled valid (None when there is none). GSM8K tasks: kind "math", `answer` the
number after "####" with thousands separators removed, `gold` the worked solution.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from curriculum.task import Task

ENV_VAR = "GRPO_EXTERNAL_DATA"
JSONSCHEMABENCH_SUBSETS = ("Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium", "Snowplow",
                           "WashingtonPost", "JME", "MCPspec", "Handwritten", "Synthesized")
SIZE_TIERS = ((500, "simple"), (1500, "medium"))     # minified schema chars -> tier; else "hard"
JSON_PROMPT = ("Produce a JSON instance that conforms to the following JSON Schema. Fill in realistic "
               "values, include every required property, and respect every type, enum, format and "
               "count the schema states.\n\nJSON Schema:\n{schema}")
EXTERNAL_PREFIXES = ("jsonschemabench/", "gsm8k")


def external_data_root(root: str | Path | None = None) -> Path:
    """The data folder: the argument, else $GRPO_EXTERNAL_DATA, else <repo>/../shared/external_data."""
    if root is not None:
        return Path(root)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(__file__).resolve().parents[1].parent / "shared" / "external_data"


def external_file(name: str, root: str | Path | None = None) -> Path:
    """The file an external set is read from: "gsm8k" or a JSONSchemaBench subset name."""
    if name == "gsm8k":
        return external_data_root(root) / "gsm8k" / "test.jsonl"
    return external_data_root(root) / "jsonschemabench" / f"{name}.jsonl"


def is_external(task: Task) -> bool:
    return task.source.startswith(EXTERNAL_PREFIXES)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set ${ENV_VAR} or --data-dir to the external_data folder")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _select(n_rows: int, limit: int | None, seed: int, salt: str) -> list[int]:
    """A seeded random subset of row indices, in file order (files are sorted by id upstream)."""
    if limit is None or limit >= n_rows:
        return list(range(n_rows))
    return sorted(random.Random(f"{salt}:{seed}").sample(range(n_rows), limit))


def size_tier(schema: Any) -> str:
    chars = len(json.dumps(schema, separators=(",", ":")))
    return next((tier for bound, tier in SIZE_TIERS if chars < bound), "hard")


def load_jsonschemabench(subset: str, limit: int | None = None, seed: int = 0,
                         root: str | Path | None = None) -> list[Task]:
    """Tasks for one JSONSchemaBench subset (file `<root>/jsonschemabench/<subset>.jsonl`)."""
    rows = _read_jsonl(external_file(subset, root))
    tasks = []
    for i in _select(len(rows), limit, seed, f"jsonschemabench/{subset}"):
        row = rows[i]
        schema = row["schema"]
        gold = next((t["data"] for t in row.get("tests", []) if t.get("valid")), None)
        prompt = JSON_PROMPT.format(schema=json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
        tasks.append(Task(id=f"jsonschemabench/{subset}/{row['id']}", kind="json", prompt=prompt,
                          tier=size_tier(schema), template_id=subset, schema=schema, gold=gold,
                          source=f"jsonschemabench/{subset}",
                          meta={"features": row.get("features", []), "row": i}))
    return tasks


def gsm8k_answer(solution: str) -> str:
    """'... #### 1,000' -> '1000' (GSM8K's own rule: the text after ####, commas removed)."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def load_gsm8k(limit: int | None = None, seed: int = 0, root: str | Path | None = None) -> list[Task]:
    """GSM8K test-split questions as math tasks (exact final-number accuracy is `strict_pass`)."""
    rows = _read_jsonl(external_file("gsm8k", root))
    return [Task(id=f"gsm8k/test/{i}", kind="math", prompt=rows[i]["question"], tier="gsm8k",
                 template_id="gsm8k", gold=rows[i]["answer"], answer=gsm8k_answer(rows[i]["answer"]),
                 source="gsm8k", meta={"row": i})
            for i in _select(len(rows), limit, seed, "gsm8k")]
