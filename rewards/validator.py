"""JSON Schema validation on a real validator (jsonschema-rs), compiled once per schema and cached.

Contract:
- `compile_schema(schema) -> Compiled` never raises. `validator is None` when the schema cannot be
  used, and `problem` says why, as the error class the reward reports:
  - "schema_invalid": the schema is broken (unresolvable `$ref`, a bad regex, a wrong keyword value);
  - "schema_unsupported": a valid schema this judge will not run, because it is too big (MAX_NODES
    values), still nested too deep for jsonschema-rs after rewards.schema_prep, or exponential:
    one instance location would cost more than MAX_IN_PLACE_PATHS evaluations (rewards.schema_cost).
  Deep schemas and lone surrogates are first made digestible by `rewards.schema_prep.prepare`.
- `validate(instance, schema) -> (valid, failing_keywords)`: keywords are JSON Schema keyword names
  ("required", "type", "additionalProperties", "minItems", "enum", "format", ...), deduplicated in
  the order the validator reports them. Empty when valid; [problem] when the schema cannot be used;
  ["unknown"] when naming them would cost more than MAX_ERROR_PATHS evaluation paths (the validator
  builds one error per failing path) or the validator cannot read the instance.
- No network, ever: remote `$ref`s are unresolvable here (`offline=True`).
- `format` is asserted (draft 2020-12 makes it an annotation by default; our prompts state formats as
  constraints, so a date that is not a date fails). Unknown formats are ignored.

Cache: keyed by a canonical JSON dump of the schema (sorted keys), with a fast path by object
identity for the schema dicts that tasks carry (the cache entry keeps the dict alive, so an id is
never reused while cached). A schema too big or too deep to dump is cached by identity only.
Bounded LRU so eval over thousands of external schemas stays small.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from rewards.schema_cost import CostModel
from rewards.schema_prep import MAX_NODES, RUST_MAX_DEPTH, Shape, prepare, shape

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
MAX_CACHED = 4096
SCHEMA_INVALID = "schema_invalid"
SCHEMA_UNSUPPORTED = "schema_unsupported"
MAX_IN_PLACE_PATHS = 4096      # JSONSchemaBench needs at most 209; x ~12 ns in is_valid: ~50 us a location
MAX_ERROR_PATHS = 20_000       # x ~20 us per failing path in iter_errors: 0.4 s at worst
VALIDATOR_OPTIONS = dict(validate_formats=True, ignore_unknown_formats=True, offline=True)

# every keyword of draft 2020-12 (and the draft-7 ones external schemas still use), so an error
# path that ends in a property name is not mistaken for a keyword
KEYWORDS = frozenset("""
$ref $dynamicRef additionalItems additionalProperties allOf anyOf const contains dependentRequired
dependentSchemas dependencies else enum exclusiveMaximum exclusiveMinimum format if items maxContains
maxItems maxLength maxProperties maximum minContains minItems minLength minProperties minimum
multipleOf not oneOf pattern patternProperties prefixItems properties propertyNames required then
type unevaluatedItems unevaluatedProperties uniqueItems contentEncoding contentMediaType
""".split())


@dataclass
class Compiled:
    schema: Any                       # what the validator was built from (rewards.schema_prep.prepare)
    validator: Any = None             # jsonschema_rs validator, None when the schema is unusable
    error: str | None = None          # why the schema cannot be used
    problem: str | None = None        # SCHEMA_INVALID or SCHEMA_UNSUPPORTED when validator is None
    cost: CostModel | None = field(default=None, repr=False)        # set with the validator
    credit_plan: Any = field(default=None, repr=False)  # built lazily by rewards.schema_credit


_by_key: OrderedDict[str, Compiled] = OrderedDict()
_by_id: OrderedDict[int, tuple[Any, Compiled]] = OrderedDict()


def canonical_key(schema: Any, info: Shape) -> str | None:
    """A sorted-keys JSON dump, or None when the schema is too big or too deep to dump."""
    if info.too_big:
        return None
    try:
        return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None


def _build(schema: Any, info: Shape) -> Compiled:
    if not isinstance(schema, (dict, bool)):
        return Compiled(schema, error=f"a schema is an object or a boolean, got {type(schema).__name__}",
                        problem=SCHEMA_INVALID)
    if info.too_big:
        return Compiled(schema, error=f"more than {MAX_NODES} values", problem=SCHEMA_UNSUPPORTED)
    prepared, depth = prepare(schema, info)
    if depth > RUST_MAX_DEPTH:
        return Compiled(prepared, error=f"nested {depth} deep, jsonschema-rs takes {RUST_MAX_DEPTH}",
                        problem=SCHEMA_UNSUPPORTED)
    try:
        validator = jsonschema_rs.validator_for(prepared, **VALIDATOR_OPTIONS)
    except Exception as e:  # ReferencingError, ValidationError (bad regex, bad keyword), ...
        return Compiled(prepared, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}",
                        problem=SCHEMA_INVALID)
    cost = CostModel(prepared)
    if cost.in_place_paths(MAX_IN_PLACE_PATHS + 1) > MAX_IN_PLACE_PATHS:
        return Compiled(prepared, error=f"one instance location costs over {MAX_IN_PLACE_PATHS} evaluations",
                        problem=SCHEMA_UNSUPPORTED)
    return Compiled(prepared, validator=validator, cost=cost)


def compile_schema(schema: Any) -> Compiled:
    """The cached compiled validator for `schema` (never raises)."""
    hit = _by_id.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    info = shape(schema)
    key = canonical_key(schema, info)
    compiled = _by_key.get(key) if key is not None else None
    if compiled is None:
        compiled = _build(schema, info)
        if key is not None:
            _by_key[key] = compiled
            if len(_by_key) > MAX_CACHED:
                _by_key.popitem(last=False)
    if isinstance(schema, dict):
        _by_id[id(schema)] = (schema, compiled)  # holding `schema` keeps its id from being reused
        if len(_by_id) > MAX_CACHED:
            _by_id.popitem(last=False)
    return compiled


def error_keyword(error: Any) -> str:
    """The JSON Schema keyword a jsonschema_rs.ValidationError failed on."""
    for part in reversed(list(getattr(error, "schema_path", ()) or ())):
        if isinstance(part, str) and part in KEYWORDS:
            return part
    name = type(getattr(error, "kind", None)).__name__          # e.g. FalseSchema
    return name[:1].lower() + name[1:] if name and name != "NoneType" else "unknown"


def failing_keywords(compiled: Compiled, instance: Any, limit: int = 64) -> list[str]:
    """Keywords of the validator's errors (deduplicated, at most `limit` errors read)."""
    if compiled.validator is None:
        return [compiled.problem]
    if compiled.cost.evaluation_paths(instance, MAX_ERROR_PATHS) >= MAX_ERROR_PATHS:
        return ["unknown"]  # iter_errors would build up to one error per path (rewards.schema_cost)
    seen: dict[str, None] = {}
    try:
        for i, err in enumerate(compiled.validator.iter_errors(instance)):
            seen.setdefault(error_keyword(err), None)
            if i + 1 >= limit:
                break
    except Exception:  # an instance the validator cannot read (a lone surrogate, a set)
        return ["unknown"]
    return list(seen) or ["unknown"]


def is_valid(compiled: Compiled, instance: Any) -> bool:
    if compiled.validator is None:
        return False
    try:
        return bool(compiled.validator.is_valid(instance))
    except Exception:
        return False


def validate(instance: Any, schema: Any) -> tuple[bool, list[str]]:
    """(valid, failing keywords); (False, [problem]) when the schema cannot be used."""
    compiled = compile_schema(schema)
    if is_valid(compiled, instance):
        return True, []
    return False, failing_keywords(compiled, instance)
