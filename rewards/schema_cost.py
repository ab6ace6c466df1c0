"""A bound on the work jsonschema-rs does for a (schema, instance), so validation stays bounded in time.

jsonschema-rs follows every path through the schema: a subschema reached by two `$ref`s of one
`allOf` is evaluated twice, with all below it. Paths multiply, so a small schema can cost
exponential time. Measured on jsonschema-rs 0.61:
- `is_valid` is exponential only *in place* (many paths to one instance location): an 18-level chain
  of `{"allOf": [{"$ref": prev}, {"$ref": prev}]}` costs 2^18 evaluations, ~12 ns each (26 levels:
  0.7 s). Recursion through `properties`/`items` is cached and stays cheap.
- `iter_errors` (also `validate`, `evaluate`) builds every error of every path, ~20 us each, before
  the first is returned: 2^14 paths from a 14-deep, 70-character instance of a schema that recurses
  into property "a" twice per level take 0.9 s, and so do 5,000 `{}` items missing 20 required keys.

`CostModel(schema)` counts evaluations, each subschema weighing its keywords (a `required` list one
per name, since each missing name is one error):
- `in_place_paths(cap)`: the most that one instance location costs, over every subschema;
- `evaluation_paths(instance, cap)`: an upper bound for a whole instance (every applicator is taken
  to apply: all `anyOf` branches, every `patternProperties` entry).
Both cut cycles as jsonschema-rs does (a subschema met again at the same location adds nothing),
stop at `cap`, and count a chain deeper than MAX_CHAIN as `cap`: their own time is O(cap).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewards.schema_prep import MAX_NODES, resolve_ref, subschemas

MAX_CHAIN = 150         # nested evaluations followed before giving up (two Python frames each)
IN_PLACE = ("not", "if", "then", "else", "allOf", "anyOf", "oneOf")
IN_PLACE_MAPS = ("dependentSchemas", "dependencies")
REFS = ("$ref", "$dynamicRef", "$recursiveRef")
ANY_MEMBER = ("additionalProperties", "unevaluatedProperties", "propertyNames")
ITEMS = ("items", "prefixItems", "additionalItems", "unevaluatedItems", "contains")


def _dicts(value: Any) -> list:
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _values(value: Any) -> list:
    return _dicts(list(value.values())) if isinstance(value, dict) else []


@dataclass
class _Edges:
    weight: int          # errors this subschema can raise by itself
    in_place: list       # subschemas applied to the same instance location
    props: dict          # member name -> subschemas applied to that member
    any_member: list     # subschemas applied to every member
    items: list          # subschemas applied to every array item


class CostModel:
    def __init__(self, schema: Any):
        self.root = schema                       # keeps every subschema alive, so ids stay unique
        self._edges: dict[int, _Edges] = {}      # id(subschema) -> its edges, built on first use

    def edges(self, s: dict) -> _Edges:
        e = self._edges.get(id(s))
        if e is None:
            required = s.get("required")
            props = s.get("properties")
            e = self._edges[id(s)] = _Edges(
                weight=max(1, len(s) + (len(required) if isinstance(required, list) else 0)),
                in_place=[c for kw in IN_PLACE for c in _dicts(s.get(kw))]
                + [c for kw in IN_PLACE_MAPS for c in _values(s.get(kw))]
                + [t for kw in REFS for t in [resolve_ref(self.root, s.get(kw))] if isinstance(t, dict)],
                props={k: _dicts(v) for k, v in props.items()} if isinstance(props, dict) else {},
                any_member=_values(s.get("patternProperties")) + [c for kw in ANY_MEMBER for c in _dicts(s.get(kw))],
                items=[c for kw in ITEMS for c in _dicts(s.get(kw))])
        return e

    def in_place_paths(self, cap: int) -> int:
        counter, worst = _Count(self, cap, max_calls=MAX_NODES), 0
        for s in subschemas(self.root):
            worst = max(worst, counter(s, None, 0))
            if worst >= cap:
                break
        return worst

    def evaluation_paths(self, instance: Any, cap: int) -> int:
        # every call adds at least 1 to the total, so `cap` calls are enough to reach `cap`
        return _Count(self, cap, max_calls=cap)(self.root, instance, 0)


class _Count:
    """One count: memoised on (subschema, instance value), so a shared part is counted, not walked, again."""

    def __init__(self, model: CostModel, cap: int, max_calls: int):
        self.model, self.cap, self.max_calls, self.calls = model, cap, max_calls, 0
        self.memo: dict[tuple[int, int], int] = {}

    def __call__(self, s: Any, x: Any, depth: int) -> int:
        if not isinstance(s, dict):
            return 1
        key = (id(s), id(x))
        if key in self.memo:
            return self.memo[key]
        if depth > MAX_CHAIN or self.calls >= self.max_calls:
            return self.cap
        self.calls += 1
        self.memo[key] = 0   # in progress: met again in place, it adds nothing (a cycle)
        e, below = self.model.edges(s), depth + 1
        n = e.weight + sum(self(c, x, below) for c in e.in_place)
        if isinstance(x, dict) and (e.props or e.any_member):
            for k, v in x.items():
                n += sum(self(c, v, below) for c in e.props.get(k, ()))
                n += sum(self(c, v, below) for c in e.any_member)
                if n >= self.cap:
                    break
        elif isinstance(x, list) and e.items:
            for v in x:
                n += sum(self(c, v, below) for c in e.items)
                if n >= self.cap:
                    break
        self.memo[key] = n = min(n, self.cap)
        return n
