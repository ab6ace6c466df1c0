"""JSON Schema validation on a real validator (jsonschema-rs), compiled once per schema and cached.

Contract:
- `compile_schema(schema) -> Compiled` never raises. A schema that cannot be compiled (unresolvable
  `$ref`, a bad regex, a wrong keyword value) gives `Compiled.error` set and `validator is None`;
  validating against it yields (False, ["schema_invalid"]).
- `validate(instance, schema) -> (valid, failing_keywords)`: keywords are JSON Schema keyword names
  ("required", "type", "additionalProperties", "minItems", "enum", "format", ...), deduplicated in
  the order the validator reports them. Empty when valid.
- No network, ever: remote `$ref`s are unresolvable here (`offline=True`).
- `format` is asserted (draft 2020-12 makes it an annotation by default; our prompts state formats as
  constraints, so a date that is not a date fails). Unknown formats are ignored.

Cache: keyed by a canonical JSON dump of the schema (sorted keys), with a fast path by object
identity for the schema dicts that tasks carry (the cache entry keeps the dict alive, so an id is
never reused while cached). Bounded LRU so eval over thousands of external schemas stays small.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
MAX_CACHED = 4096
SCHEMA_INVALID = "schema_invalid"
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
    schema: Any
    validator: Any = None             # jsonschema_rs validator, None when the schema is unusable
    error: str | None = None          # why compilation failed
    credit_plan: Any = field(default=None, repr=False)  # built lazily by rewards.schema_credit


_by_key: OrderedDict[str, Compiled] = OrderedDict()
_by_id: OrderedDict[int, tuple[Any, Compiled]] = OrderedDict()


def canonical_key(schema: Any) -> str:
    try:
        return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return repr(schema)


def _build(schema: Any) -> Compiled:
    if not isinstance(schema, (dict, bool)):
        return Compiled(schema, error=f"a schema is an object or a boolean, got {type(schema).__name__}")
    try:
        return Compiled(schema, validator=jsonschema_rs.validator_for(schema, **VALIDATOR_OPTIONS))
    except Exception as e:  # ReferencingError, ValidationError (bad regex, bad keyword), ...
        return Compiled(schema, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")


def compile_schema(schema: Any) -> Compiled:
    """The cached compiled validator for `schema` (never raises)."""
    hit = _by_id.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    key = canonical_key(schema)
    compiled = _by_key.get(key)
    if compiled is None:
        compiled = _by_key[key] = _build(schema)
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
        return [SCHEMA_INVALID]
    seen: dict[str, None] = {}
    try:
        for i, err in enumerate(compiled.validator.iter_errors(instance)):
            seen.setdefault(error_keyword(err), None)
            if i + 1 >= limit:
                break
    except Exception:
        return [SCHEMA_INVALID]
    return list(seen) or ["unknown"]


def is_valid(compiled: Compiled, instance: Any) -> bool:
    if compiled.validator is None:
        return False
    try:
        return bool(compiled.validator.is_valid(instance))
    except Exception:
        return False


def validate(instance: Any, schema: Any) -> tuple[bool, list[str]]:
    """(valid, failing keywords). (False, ["schema_invalid"]) when the schema cannot be used."""
    compiled = compile_schema(schema)
    if compiled.validator is None:
        return False, [SCHEMA_INVALID]
    if is_valid(compiled, instance):
        return True, []
    return False, failing_keywords(compiled, instance)
