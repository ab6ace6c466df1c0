"""Schema-aware corruptions of a gold instance: negatives that must fail strict pass.

Contract: `mutation_sites(instance, schema)` lists every place a corruption is guaranteed to
break validation, and `mutate(instance, schema, rng, kind=None)` applies one and returns
(corrupted copy, kind, the JSON Schema keyword that must fail). The input is never modified.
Kinds: drop_required (-> required), wrong_type (-> type), too_few / too_many items (-> minItems /
maxItems), too_few / too_many keys (-> minProperties / maxProperties), extra_key on a closed
object (-> additionalProperties), bad_enum (-> enum).
Used by reward tests and the reward benchmark; it knows nothing of rewards.
"""
from __future__ import annotations

import copy
import random
from typing import Any

KEYWORD = {"drop_required": "required", "wrong_type": "type", "too_few": "minItems", "too_many": "maxItems",
           "extra_key": "additionalProperties", "bad_enum": "enum", "too_few_keys": "minProperties",
           "too_many_keys": "maxProperties"}
# one value of each JSON type; wrong_type puts in the first whose type the schema does not allow
_VALUE_OF_TYPE = {"string": "12", "integer": 12345, "boolean": True, "array": ["x"], "object": {"x": 1},
                  "null": None, "number": 3.5}


def mutation_sites(instance: Any, schema: Any, path: tuple = ()) -> list[tuple[str, tuple]]:
    """(kind, path) pairs; `path` leads from the root to the value the mutation changes."""
    if not isinstance(schema, dict):
        return []
    sites: list[tuple[str, tuple]] = []
    types = schema.get("type")
    if types is not None:
        sites.append(("wrong_type", path))
    if "enum" in schema and isinstance(instance, str):
        sites.append(("bad_enum", path))
    if isinstance(instance, dict):
        sites += [("drop_required", path + (k,)) for k in schema.get("required", []) if k in instance]
        if schema.get("minProperties", 0) > 0 and instance:
            sites.append(("too_few_keys", path))
        if "maxProperties" in schema:
            sites.append(("too_many_keys", path))
        if schema.get("additionalProperties") is False and not schema.get("patternProperties"):
            sites.append(("extra_key", path))
        for k, sub in (schema.get("properties") or {}).items():
            if k in instance:
                sites += mutation_sites(instance[k], sub, path + (k,))
    if isinstance(instance, list):
        if schema.get("minItems", 0) > 0 and instance:
            sites.append(("too_few", path))
        if "maxItems" in schema:
            sites.append(("too_many", path))
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(instance):
                sites += mutation_sites(item, schema["items"], path + (i,))
    return sites


def _get(root: Any, path: tuple) -> Any:
    for part in path:
        root = root[part]
    return root


def mutate(instance: Any, schema: dict, rng: random.Random, kind: str | None = None) -> tuple[Any, str, str]:
    """One guaranteed-invalid corruption (module docstring). Raises ValueError if none applies."""
    sites = [s for s in mutation_sites(instance, schema) if kind is None or s[0] == kind]
    if not sites:
        raise ValueError(f"no {kind or 'mutation'} site in this instance")
    kind, path = rng.choice(sites)
    out = copy.deepcopy(instance)
    if kind == "drop_required":
        del _get(out, path[:-1])[path[-1]]
    elif kind == "wrong_type":
        sub = _subschema(schema, path)
        types = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
        allowed = set(types) | ({"integer"} if "number" in types else set())
        replacement = next(v for t, v in _VALUE_OF_TYPE.items() if t not in allowed)
        if not path:
            return replacement, kind, KEYWORD[kind]
        _get(out, path[:-1])[path[-1]] = replacement
    elif kind == "bad_enum":
        _get(out, path[:-1])[path[-1]] = "not_an_allowed_value"
    elif kind == "extra_key":
        _get(out, path)["unexpected_extra_key"] = "surplus"
    elif kind == "too_few":
        target, minimum = _get(out, path), _subschema(schema, path)["minItems"]
        del target[max(0, minimum - 1):]
    elif kind == "too_few_keys":
        target, minimum = _get(out, path), _subschema(schema, path)["minProperties"]
        for key in list(target)[max(0, minimum - 1):]:
            del target[key]
    elif kind == "too_many_keys":
        target, maximum = _get(out, path), _subschema(schema, path)["maxProperties"]
        filler = copy.deepcopy(next(iter(target.values()))) if target else None
        extra = (k for k in ("ZZ", "QQ", "XYZ", "QRS", "WV", "JKL", "MNO", "ABCD") if k not in target)
        while len(target) <= maximum:
            target[next(extra, f"extra_{len(target)}")] = copy.deepcopy(filler)
    elif kind == "too_many":
        target, maximum = _get(out, path), _subschema(schema, path)["maxItems"]
        filler = copy.deepcopy(target[0]) if target else None
        while len(target) <= maximum:
            target.append(copy.deepcopy(filler))
    return out, kind, KEYWORD[kind]


def _subschema(schema: dict, path: tuple) -> dict:
    for part in path:
        schema = schema["items"] if isinstance(part, int) else schema["properties"][part]
    return schema
