"""Hand jsonschema-rs a schema it can take, without changing what the schema accepts.

jsonschema-rs 0.61 refuses two kinds of *valid* schema, which the validator used to report as
"schema_invalid":
- nesting deeper than RUST_MAX_DEPTH containers: its Python -> Rust conversion stops with
  "Recursion limit reached" (one `properties` level is two containers: from 128 levels on);
- strings with lone surrogates ("\\ud800" is a legal JSON escape, but a Rust string is UTF-8).
`prepare(schema, shape(schema))` returns a copy it takes, and that copy's depth: every subschema
nested deeper than SPLIT_DEPTH moves into the root's `$defs` and leaves a `{"$ref": ...}` behind (a
`$ref` without siblings applies its target in place, so this is exact; pointer `$ref`s into the
moved parts are rewritten), and every lone surrogate becomes U+FFFD. The replacement is exact for
every instance rewards.parse accepts (it rejects lone surrogates), except one that holds U+FFFD where
the schema held a lone surrogate. Not moved: anything when a subschema below the root has its own
`$id` (its `$ref`s resolve against it), and data (`enum`, `const`, unknown keywords), so the depth
returned can stay above RUST_MAX_DEPTH.

Everything here is iterative: any depth works and time is linear in the schema's size (as a tree).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

RUST_MAX_DEPTH = 255    # measured: 255 nested containers convert, 256 do not
SPLIT_DEPTH = 64        # a subschema this deep below its document's root moves to $defs
MAX_NODES = 50_000      # values walked before a schema counts as too big (JSONSchemaBench at most: 3,977)

# where subschemas sit (draft 2020-12, plus the draft-7 spellings): one schema, a list, a name -> schema map
ONE_SCHEMA = frozenset("items additionalItems additionalProperties unevaluatedItems unevaluatedProperties "
                       "not if then else contains propertyNames contentSchema".split())
SCHEMA_LISTS = frozenset("allOf anyOf oneOf prefixItems items".split())
SCHEMA_MAPS = frozenset("properties patternProperties $defs definitions dependentSchemas dependencies".split())
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Shape:
    nodes: int              # values walked (capped at MAX_NODES + 1)
    depth: int              # deepest container nesting, the root counting 1
    surrogates: bool        # some string (or key) holds a lone surrogate
    embedded_id: bool       # a subschema below the root declares `$id` (or draft-4 `id`)

    @property
    def too_big(self) -> bool:
        return self.nodes > MAX_NODES


def _child_kind(kind: str, key: Any, value: Any) -> str:
    """What `value` is ("schema", "list" or "map" of schemas, or "data"), given its parent's kind and key."""
    if kind == "schema" and isinstance(key, str):
        if key in ONE_SCHEMA and isinstance(value, dict):
            return "schema"
        if key in SCHEMA_LISTS and isinstance(value, list):
            return "list"
        if key in SCHEMA_MAPS and isinstance(value, dict):
            return "map"
    return "schema" if kind in ("list", "map") and isinstance(value, dict) else "data"


def _children(value: Any, kind: str):
    """(key, child, child kind) of a container; nothing for a scalar."""
    if isinstance(value, dict):
        return ((k, v, _child_kind(kind, k, v)) for k, v in value.items())
    if isinstance(value, list):
        return ((i, v, _child_kind(kind, None, v)) for i, v in enumerate(value))
    return ()


def subschemas(schema: Any):
    """Every dict in a schema position, the root first (a tree walk, stopping after MAX_NODES)."""
    stack, seen = [(schema, "schema")], 0
    while stack and seen <= MAX_NODES:
        value, kind = stack.pop()
        seen += 1
        if kind == "schema" and isinstance(value, dict):
            yield value
        stack.extend((v, k) for _, v, k in _children(value, kind) if isinstance(v, (dict, list)))


def shape(schema: Any) -> Shape:
    """One iterative pass over the schema, stopping after MAX_NODES values."""
    nodes = depth = 0
    surrogates = embedded_id = False
    stack = [(schema, "schema", 1)]
    while stack and nodes <= MAX_NODES:
        value, kind, d = stack.pop()
        nodes += 1
        if isinstance(value, str):
            surrogates = surrogates or bool(_SURROGATE_RE.search(value))
            continue
        if not isinstance(value, (dict, list)):
            continue
        depth = max(depth, d)
        if kind == "schema" and d > 1 and isinstance(value, dict):
            embedded_id = embedded_id or any(isinstance(value.get(k), str) for k in ("$id", "id"))
        for key, child, child_k in _children(value, kind):
            surrogates = surrogates or (isinstance(key, str) and bool(_SURROGATE_RE.search(key)))
            stack.append((child, child_k, d + 1))
    return Shape(nodes, depth, surrogates, embedded_id)


def _pointer_tokens(ref: str) -> list[str] | None:
    """The raw segments of a local JSON-pointer `$ref` ("#/a/b" -> ["a", "b"]); None for any other ref."""
    if ref == "#":
        return []
    return ref[2:].split("/") if ref.startswith("#/") else None


def _follow(root: Any, tokens: list[str]) -> list[Any] | None:
    """The values a pointer passes through, the last one its target; None when it leads nowhere."""
    path, target = [], root
    for token in tokens:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            return None
        path.append(target)
    return path


def resolve_ref(root: Any, ref: Any) -> Any:
    """The value a local pointer `$ref` names in `root`, or None (anchors, remote refs, missing paths)."""
    tokens = _pointer_tokens(ref) if isinstance(ref, str) else None
    path = None if tokens is None else _follow(root, tokens)
    return None if path is None else (path[-1] if path else root)


def _clean(value: Any) -> Any:
    return _SURROGATE_RE.sub("\ufffd", value) if isinstance(value, str) else value


def prepare(schema: Any, info: Shape) -> tuple[Any, int]:
    """(the schema to hand jsonschema-rs, its nesting depth): module docstring. The schema itself
    when nothing needs changing."""
    move = info.depth > RUST_MAX_DEPTH and not info.embedded_id and isinstance(schema, dict)
    if move and not isinstance(schema.get("$defs", {}), dict):
        move = False  # nowhere to put moved subschemas; the validator will say what is wrong
    if not (move or info.surrogates) or info.too_big:
        return schema, info.depth
    clean = _clean if info.surrogates else (lambda v: v)
    defs: dict[str, Any] = {}
    moved: dict[int, str] = {}           # id(original subschema) -> its name in $defs
    refs: list[tuple[dict, str]] = []    # (copied schema dict, its original $ref) to rewrite
    out: dict[str, Any] = {"root": None}
    depth, stack = 0, [(schema, "schema", 1, out, "root")]
    while stack:
        value, kind, d, parent, key = stack.pop()
        if move and kind == "schema" and d > SPLIT_DEPTH and isinstance(value, dict):
            name = f"_deep{len(moved)}"
            while name in schema.get("$defs", {}):
                name += "_"
            moved[id(value)] = name
            parent[key] = {"$ref": "#/$defs/" + name}
            d, parent, key = 3, defs, name  # root -> $defs -> name
        if isinstance(value, dict):
            copy: Any = dict.fromkeys(clean(k) for k in value)  # keeps the key order
            if kind == "schema" and isinstance(value.get("$ref"), str):
                refs.append((copy, value["$ref"]))
        elif isinstance(value, list):
            copy = [None] * len(value)
        else:
            parent[key] = clean(value)
            continue
        parent[key], depth = copy, max(depth, d)
        stack.extend((v, child_k, d + 1, copy, clean(k)) for k, v, child_k in _children(value, kind))
    root = out["root"]
    if defs:
        root["$defs"] = {**root.get("$defs", {}), **defs}
        for copy, ref in refs:
            copy["$ref"] = _rewrite(schema, ref, moved)
    return root, depth


def _rewrite(original: Any, ref: str, moved: dict[int, str]) -> str:
    """`ref` pointed at the moved copy: follow it in the original, restart from the last moved node."""
    tokens = _pointer_tokens(ref) or []
    path = _follow(original, tokens) or []
    last = max((i for i, target in enumerate(path) if id(target) in moved), default=None)
    if last is None:
        return _clean(ref)
    return "/".join(["#", "$defs", moved[id(path[last])], *map(_clean, tokens[last + 1:])])
