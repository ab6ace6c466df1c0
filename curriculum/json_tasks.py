"""Synthetic JSON-schema tasks in three tiers, with a held-out evaluation split by construction.

Contract: `generate_json_tasks(n, seed, split, tier_mix)` is pure in its arguments (same call, same
tasks, in any process). Each task carries the user prompt, tier, template id, a draft 2020-12
JSON Schema stating every constraint the prompt states (and nothing else) and a gold instance
that validates against it. "train" and "eval" draw every prompt parameter (entity, topic, key
names, domains, counts) from disjoint pools (curriculum/templates/vocab.py), so no eval prompt
appears verbatim in any training set, whatever the seeds and sizes. What the generator does NOT
check: semantic content (that strings "name fruits"); the schema covers structure, types,
enumerations, counts and formats only.

Tier mix: exact counts by largest remainder (not sampled), templates of a tier used round-robin,
then the whole list is shuffled. Defaults: train 0.2/0.3/0.5 (the seed's training mix), eval
uniform thirds (the seed's eval mix).

Three task families (`family`):
- "nl": the request in words, the schema only implied (the seed's setting);
- "schema": the prompt gives the JSON Schema itself, minified, as JSONSchemaBench and API users do,
  either alone or after the request in words (`SCHEMA_PROMPTS`, drawn per task, different phrasings
  per split). Its tasks come from their own seed stream, so the two families of one seed are
  different tasks, and the train/eval split is the same disjoint vocabulary as for "nl". Ids start "json-schema/", `source`
  is "synthetic-schema", so every report keeps the families apart;
- "generated": the schema family's prompts around schemas whose shape is itself drawn at random
  (curriculum.templates.generated: nesting, arrays, enums, formats, optional keys, descriptions), so a
  model learns to read a schema rather than recognise a template. Ids start "json-generated/", `source`
  is "synthetic-generated"; half of its prompts give the schema with sorted keys and no "$schema" (and
  the gold its keys in that order).

`json_pool(n, seed, split, tier_mix, schema_share, generated_share)` is the mixed pool a run trains on
(or probes): the three families in those shares.
"""
from __future__ import annotations

import json
import random
from typing import Literal

from curriculum.task import Task
from curriculum.templates import TEMPLATES
from curriculum.templates.generated import GENERATED
from curriculum.templates.spec import document
from curriculum.templates.vocab import Pools

TIERS = ("simple", "medium", "hard")
DEFAULT_TIER_MIX = {"train": {"simple": 0.2, "medium": 0.3, "hard": 0.5},
                    "eval": {"simple": 1 / 3, "medium": 1 / 3, "hard": 1 / 3}}
MAX_REDRAWS = 20    # tries to find a prompt not yet in the set before accepting a duplicate
FAMILIES = ("nl", "schema", "generated")
_FAMILY_NAMES = {"nl": ("json", "synthetic"), "schema": ("json-schema", "synthetic-schema"),
                 "generated": ("json-generated", "synthetic-generated")}   # id prefix, source
# Schema-family prompts ({schema}: the minified schema; {request}: the "nl" prompt of the same draw).
# Train and eval use different phrasings, so no eval prompt can occur in training even where a template
# with fixed keys gives both splits the same schema (~9 % of eval schemas, as in the "nl" family).
SCHEMA_PROMPTS = {
    "train": ("Produce a JSON instance that conforms to this JSON Schema:\n{schema}",
              "Write JSON matching the schema below: every required key, the right types, allowed values "
              "and counts.\n{schema}",
              "{request}\n\nThe reply must validate against this JSON Schema:\n{schema}"),
    "eval": ("Return one JSON value that validates against the following schema. Use realistic values.\n\n"
             "Schema:\n{schema}",
             "{request}\n\nConform to this JSON Schema:\n{schema}"),
}


def tier_counts(n: int, tier_mix: dict[str, float]) -> dict[str, int]:
    """Split n over tiers in proportion to the mix (largest remainder, ties to the easier tier)."""
    unknown = set(tier_mix) - set(TIERS)
    if unknown or not tier_mix or any(w < 0 for w in tier_mix.values()) or sum(tier_mix.values()) <= 0:
        raise ValueError(f"tier_mix needs non-negative weights over {TIERS} with a positive sum, got {tier_mix}")
    total = sum(tier_mix.values())
    exact = {t: n * tier_mix.get(t, 0.0) / total for t in TIERS}
    counts = {t: int(exact[t]) for t in TIERS}
    by_remainder = sorted(TIERS, key=lambda t: -(exact[t] - counts[t]))
    for t in by_remainder[:n - sum(counts.values())]:
        counts[t] += 1
    return counts


def schema_prompt(rng: random.Random, split: str, request: str, schema: dict, sort_keys: bool = False) -> str:
    """A schema-family prompt: one of the split's SCHEMA_PROMPTS around the minified schema (with
    `sort_keys`: its keys sorted at every level and the "$schema" line left out)."""
    if sort_keys:
        schema = {k: v for k, v in schema.items() if k != "$schema"}
    minified = json.dumps(schema, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return rng.choice(SCHEMA_PROMPTS[split]).format(schema=minified, request=request)


def generate_json_tasks(n: int, seed: int, split: Literal["train", "eval"],
                        tier_mix: dict[str, float] | None = None, family: str = "nl") -> list[Task]:
    """n tasks of the given split and family (see the module docstring)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    pools = Pools(split)
    rng = random.Random(f"json-tasks:{split}:{seed}" + ("" if family == "nl" else f":{family}"))
    counts = tier_counts(n, tier_mix or DEFAULT_TIER_MIX[split])
    seen: set[str] = set()
    drafts = []
    for tier in TIERS:
        templates = (GENERATED if family == "generated" else TEMPLATES)[tier]
        for k in range(counts[tier]):
            template_id, make = templates[k % len(templates)]
            for _ in range(MAX_REDRAWS):
                prompt, spec = make(rng, pools)
                if prompt not in seen:
                    break
            seen.add(prompt)
            drafts.append((tier, template_id, prompt, spec, rng.random()))
    rng.shuffle(drafts)
    tasks = []
    prefix, source = _FAMILY_NAMES[family]
    for i, (tier, template_id, prompt, spec, gold_seed) in enumerate(drafts):
        gold_rng = random.Random(gold_seed)
        gold, schema = spec.sample(gold_rng), document(spec)
        if family == "schema":
            prompt = schema_prompt(gold_rng, split, prompt, schema)
        elif family == "generated":
            sort_keys = gold_rng.random() < 0.5
            prompt = schema_prompt(gold_rng, split, prompt, schema, sort_keys=sort_keys)
            if sort_keys:   # the gold lists keys in the order the prompt shows them
                gold = json.loads(json.dumps(gold, sort_keys=True))
        tasks.append(Task(id=f"{prefix}/{split}/{seed}/{i}/{tier}/{template_id}", kind="json", prompt=prompt,
                          tier=tier, template_id=template_id, schema=schema, gold=gold, source=source,
                          meta={"split": split, "seed": seed, "family": family}))
    return tasks


def json_pool(n: int, seed: int, split: Literal["train", "eval"], tier_mix: dict[str, float] | None = None,
              schema_share: float = 0.0, generated_share: float = 0.0) -> list[Task]:
    """n tasks of the three families: round(n * schema_share) "schema", round(n * generated_share)
    "generated", the rest "nl" (in that order; a TaskSource shuffles them)."""
    n_schema, n_generated = round(n * schema_share), round(n * generated_share)
    if n_schema + n_generated > n:
        raise ValueError(f"schema_share {schema_share} + generated_share {generated_share} exceed 1")
    return (generate_json_tasks(n - n_schema - n_generated, seed, split, tier_mix)
            + generate_json_tasks(n_schema, seed, split, tier_mix, family="schema")
            + generate_json_tasks(n_generated, seed, split, tier_mix, family="generated"))
