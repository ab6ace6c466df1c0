"""Dense partial credit for schema conformance: the share of the schema's constraints satisfied.

Contract: `schema_credit(instance, compiled) -> float` in [0, 1], exactly 1.0 iff the real validator
(rewards.validator) accepts the instance. Never raises; time linear in the instance (capped).

How constraints are counted (one "check" each):
- `type` at a node; when it fails, every check below that node counts as failed (otherwise a string
  in place of a required object would score better than an empty object, since JSON Schema skips
  object keywords on non-objects);
- each key of `required` separately; a missing required key also fails every check of its subschema;
- `additionalProperties: false` (one check per object: no key outside `properties`/`patternProperties`);
- each leaf keyword: enum, const, format, pattern, min/maxLength, minimum/maximum (exclusive too),
  multipleOf, min/maxItems, uniqueItems, min/maxProperties, dependentRequired, propertyNames. Leaf
  checks run on jsonschema-rs itself (a one-keyword schema each), so their semantics are the
  validator's (1.0 == 1 for integers, True is not 1, formats asserted);
- recursion through `properties`, `additionalProperties` (as a schema), `items`, `prefixItems`,
  `allOf` and local `$ref`s (`#/...`); array items missing below `minItems` fail their item schema.
- Everything else (anyOf, oneOf, not, if/then/else, contains, unevaluated*, dependentSchemas,
  remote refs) is judged only by the validator's overall verdict, which is itself one more check.
So score = 1.0 when valid, else satisfied / (counted + 1): the +1 is the failed overall verdict,
which keeps an invalid instance strictly below 1 even when only an uncounted keyword fails.
Caps: at most MAX_ITEMS array items / object extras are walked, at most MAX_DEPTH levels deep, at
most MAX_VISITS (subschema, instance value) pairs scored. Each pair is scored once (memoised), and a
pair met again while it is being scored (an in-place `$ref` cycle) adds nothing, as in the
validator: `{"allOf": [{"$ref": "#"}, {"$ref": "#"}]}` and chains of shared `$ref`s stay linear.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from rewards.schema_prep import resolve_ref
from rewards.validator import DRAFT_2020_12, VALIDATOR_OPTIONS, Compiled, is_valid

MAX_ITEMS = 256
MAX_DEPTH = 48
MAX_VISITS = 20_000     # x a few leaf checks of ~1 us each: tens of ms at worst
LEAF_KEYWORDS = ("enum", "const", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
                 "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
                 "uniqueItems", "minProperties", "maxProperties", "dependentRequired", "propertyNames")

_leaf_cache: dict[str, Any] = {}


def _leaf(keyword_schema: dict) -> Any:
    """A compiled one-keyword validator, or None when it does not compile on its own."""
    try:
        key = json.dumps(keyword_schema, sort_keys=True, default=str)
    except (ValueError, RecursionError):  # a value nested too deep to dump is too deep to compile
        return None
    if key not in _leaf_cache:
        try:
            _leaf_cache[key] = jsonschema_rs.validator_for({"$schema": DRAFT_2020_12, **keyword_schema},
                                                           **VALIDATOR_OPTIONS)
        except Exception:
            _leaf_cache[key] = None
    return _leaf_cache[key]


@dataclass(eq=False)
class Node:
    type_check: Any = None
    leaves: list = field(default_factory=list)
    required: tuple = ()
    props: dict = field(default_factory=dict)
    closed: Any = None                  # additionalProperties: false, as a one-keyword validator
    extra: "Node | None" = None         # additionalProperties as a schema
    items: "Node | None" = None
    prefix: list = field(default_factory=list)
    all_of: list = field(default_factory=list)
    min_items: int = 0
    always_false: bool = False          # the boolean schema `false`
    _size: int | None = None


class _Builder:
    """Turns a schema into a Node graph, one Node per subschema dict: a subschema reached twice (shared
    `$ref`s) is built once, and a `$ref` back to a subschema being built (recursion) closes a cycle.
    Below MAX_DEPTH nested builds, subschemas become empty Nodes (the walk stops there anyway)."""

    def __init__(self, root: Any):
        self.root, self.nodes = root, {}   # id(subschema dict) -> Node; root keeps the dicts alive

    def build(self, schema: Any, depth: int = 0) -> Node:
        if schema is False:
            return Node(always_false=True)
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return Node()
        if id(schema) in self.nodes:
            return self.nodes[id(schema)]
        node = self.nodes[id(schema)] = Node()
        below = depth + 1
        if "type" in schema:
            node.type_check = _leaf({"type": schema["type"]})
        node.leaves = [v for kw in LEAF_KEYWORDS if kw in schema
                       for v in [_leaf({kw: schema[kw]})] if v is not None]
        if isinstance(schema.get("required"), list):
            node.required = tuple(k for k in schema["required"] if isinstance(k, str))
        if isinstance(schema.get("properties"), dict):
            node.props = {k: self.build(v, below) for k, v in schema["properties"].items()}
        extra = schema.get("additionalProperties")
        if extra is False:
            node.closed = _leaf({"properties": {k: True for k in schema.get("properties", {}) or {}},
                                 "patternProperties": {p: True for p in schema.get("patternProperties", {}) or {}},
                                 "additionalProperties": False})
        elif isinstance(extra, dict):
            node.extra = self.build(extra, below)
        if isinstance(schema.get("prefixItems"), list):
            node.prefix = [self.build(s, below) for s in schema["prefixItems"]]
        if isinstance(schema.get("items"), (dict, bool)):
            node.items = self.build(schema["items"], below)
        if isinstance(schema.get("minItems"), int):
            node.min_items = max(0, min(schema["minItems"], MAX_ITEMS))
        if isinstance(schema.get("allOf"), list):
            node.all_of = [self.build(s, below) for s in schema["allOf"]]
        target = resolve_ref(self.root, schema.get("$ref"))
        if isinstance(target, (dict, bool)):
            node.all_of.append(self.build(target, below))
        return node


def size(node: Node, depth: int = 0) -> int:
    """How many checks a node would count if its instance were absent or of the wrong type.
    Memoised; a node met again while its own size is being computed (a recursive $ref) counts 0,
    and so does anything below MAX_DEPTH."""
    if node._size is not None:
        return node._size
    if depth > MAX_DEPTH:
        return 0
    node._size = 0  # in progress: cycles stop here
    below = depth + 1
    n = int(node.always_false) + int(node.type_check is not None) + len(node.leaves) + len(node.required)
    n += sum(size(node.props[k], below) for k in node.required if k in node.props)
    n += int(node.closed is not None)
    n += sum(size(p, below) for p in node.prefix[:node.min_items])
    if node.items is not None:
        n += max(0, node.min_items - len(node.prefix)) * size(node.items, below)
    n += sum(size(a, below) for a in node.all_of)
    node._size = n
    return n


def _ok(v: Any, x: Any) -> bool:
    try:
        return bool(v.is_valid(x))
    except Exception:
        return False


class _Walk:
    """One scoring pass over an instance: each (node, instance value) pair is scored once."""

    def __init__(self):
        self.memo: dict[tuple[int, int], tuple[int, int]] = {}
        self.visits = 0

    def __call__(self, node: Node, x: Any, depth: int = 0) -> tuple[int, int]:
        """(checks satisfied, checks counted) for instance `x` under `node`."""
        key = (id(node), id(x))   # the instance and the plan outlive the pass, so ids stay unique
        if key in self.memo:
            return self.memo[key]
        if depth > MAX_DEPTH or self.visits >= MAX_VISITS:
            return 0, 0
        self.visits += 1
        self.memo[key] = (0, 0)   # in progress: met again in place (a $ref cycle), it adds nothing
        self.memo[key] = result = self._score(node, x, depth + 1)
        return result

    def _score(self, node: Node, x: Any, below: int) -> tuple[int, int]:
        if node.always_false:
            return 0, 1
        sat = total = 0
        if node.type_check is not None:
            if not _ok(node.type_check, x):
                return 0, max(1, size(node))
            sat, total = 1, 1
        for v in node.leaves:
            total += 1
            sat += _ok(v, x)
        parts = []  # (child node, instance value) pairs scored below this node
        if isinstance(x, dict):
            for k in node.required:
                total += 1
                if k in x:
                    sat += 1
                elif k in node.props:
                    total += size(node.props[k])
            parts += [(child, x[k]) for k, child in node.props.items() if k in x]
            if node.closed is not None:
                total += 1
                sat += _ok(node.closed, x)
            if node.extra is not None:
                parts += [(node.extra, x[k]) for k in [k for k in x if k not in node.props][:MAX_ITEMS]]
        elif isinstance(x, list):
            parts += [(node.prefix[i] if i < len(node.prefix) else node.items, item)
                      for i, item in enumerate(x[:MAX_ITEMS])]
            if node.items is not None and len(x) < node.min_items:
                total += max(0, node.min_items - max(len(x), len(node.prefix))) * size(node.items)
        parts += [(sub, x) for sub in node.all_of]
        for child, value in parts:
            if child is not None:
                s, t = self(child, value, below)
                sat, total = sat + s, total + t
        return sat, total


def schema_credit(instance: Any, compiled: Compiled) -> float:
    """1.0 iff valid; otherwise satisfied / (counted + 1) (module docstring)."""
    if compiled.validator is None:
        return 0.0
    if is_valid(compiled, instance):
        return 1.0
    try:
        if compiled.credit_plan is None:
            compiled.credit_plan = _Builder(compiled.schema).build(compiled.schema)
        sat, total = _Walk()(compiled.credit_plan, instance)
    except (RecursionError, MemoryError, ValueError, TypeError):
        return 0.0
    return min(max(sat / (total + 1), 0.0), 1.0)
