"""A tiny field-spec language: one spec gives a task's JSON Schema, its gold instance and the type
phrases its prompt uses, so the three cannot drift apart.

Contract: `spec.schema()` is a draft 2020-12 fragment that states exactly the constraints the spec
holds (nothing implicit: no minLength, no bounds unless given); `spec.sample(rng)` is an instance
that validates against it (tests check this for every template); `spec.phrase` is how a prompt
names the type. Pure in `rng`; no I/O.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from curriculum.templates.vocab import ADJECTIVES, NOUNS

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def a(noun: str) -> str:
    """'a book', 'an airport'."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def plural(noun: str) -> str:
    """'city' -> 'cities', 'bus' -> 'buses', 'book' -> 'books'."""
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def words(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"


class Spec:
    phrase = "value"

    def schema(self) -> dict:
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError


@dataclass
class Str(Spec):
    values: tuple[str, ...] = ()        # plausible gold values; any string is valid
    phrase: str = "string"

    def schema(self) -> dict:
        return {"type": "string"}

    def sample(self, rng):
        return rng.choice(self.values) if self.values else words(rng)


@dataclass
class Pattern(Spec):
    pattern: str = ""
    examples: tuple[str, ...] = ()
    phrase: str = "string"

    def schema(self) -> dict:
        return {"type": "string", "pattern": self.pattern}

    def sample(self, rng):
        return rng.choice(self.examples)


@dataclass
class Int(Spec):
    minimum: int | None = None
    maximum: int | None = None
    phrase: str = "integer"

    def schema(self) -> dict:
        out: dict = {"type": "integer"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out

    def sample(self, rng):
        lo = self.minimum if self.minimum is not None else 1
        hi = self.maximum if self.maximum is not None else max(lo, 1) + 499
        return rng.randint(lo, hi)


@dataclass
class Num(Spec):
    minimum: float | None = None
    phrase: str = "number"

    def schema(self) -> dict:
        return {"type": "number"} if self.minimum is None else {"type": "number", "minimum": self.minimum}

    def sample(self, rng):
        return round((self.minimum or 0) + rng.uniform(0.5, 999), 2)


@dataclass
class Bool(Spec):
    phrase: str = "boolean"

    def schema(self) -> dict:
        return {"type": "boolean"}

    def sample(self, rng):
        return rng.random() < 0.5


@dataclass
class Date(Spec):
    phrase: str = "date string in YYYY-MM-DD format"

    def schema(self) -> dict:
        return {"type": "string", "format": "date"}

    def sample(self, rng):
        return f"{rng.randint(2015, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


@dataclass
class DateTime(Spec):
    phrase: str = "RFC 3339 date-time string (YYYY-MM-DDThh:mm:ssZ)"

    def schema(self) -> dict:
        return {"type": "string", "format": "date-time"}

    def sample(self, rng):
        return (f"{rng.randint(2015, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")


@dataclass
class Email(Spec):
    phrase: str = "email address string"

    def schema(self) -> dict:
        return {"type": "string", "format": "email"}

    def sample(self, rng):
        user = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 8)))
        return f"{user}@example.{rng.choice(['com', 'org', 'net'])}"


@dataclass
class Enum(Spec):
    values: tuple = ()

    @property
    def phrase(self) -> str:
        return "one of " + ", ".join(f'"{v}"' for v in self.values)

    def schema(self) -> dict:
        return {"type": "string", "enum": list(self.values)}

    def sample(self, rng):
        return rng.choice(self.values)


@dataclass
class Const(Spec):
    value: Any = None

    @property
    def phrase(self) -> str:
        return f'exactly "{self.value}"'

    def schema(self) -> dict:
        return {"const": self.value}

    def sample(self, rng):
        return self.value


@dataclass
class Nullable(Spec):
    inner: Spec = field(default_factory=Str)

    @property
    def phrase(self) -> str:
        return f"{self.inner.phrase} or null"

    def schema(self) -> dict:
        inner = self.inner.schema()
        return {**inner, "type": [inner["type"], "null"]}

    def sample(self, rng):
        return None if rng.random() < 0.3 else self.inner.sample(rng)


@dataclass
class Arr(Spec):
    item: Spec = field(default_factory=Str)
    min_items: int | None = None
    max_items: int | None = None
    gold_max: int | None = None           # largest gold length when max_items is open (keeps gold short)

    @property
    def phrase(self) -> str:
        return f"array of {self.item.phrase}s" if isinstance(self.item, (Str, Int, Num, Bool)) else "array"

    def schema(self) -> dict:
        out = {"type": "array", "items": self.item.schema()}
        if self.min_items is not None:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        return out

    def sample(self, rng):
        lo = self.min_items or 0
        hi = self.max_items if self.max_items is not None else max(lo, self.gold_max or max(lo, 1) + 2)
        n = rng.randint(max(lo, 1) if hi >= 1 else 0, hi)
        return [self.item.sample(rng) for _ in range(n)]


@dataclass
class Obj(Spec):
    fields: dict[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] | None = None   # None: every field is required
    closed: bool = False                      # additionalProperties: false (the prompt says "only")
    min_props: int | None = None
    max_props: int | None = None
    extra: Spec | None = None                 # schema of values under other keys
    extra_keys: tuple[str, ...] = ()          # gold keys used to reach min_props
    key_pattern: str | None = None            # propertyNames pattern
    phrase: str = "object"

    def schema(self) -> dict:
        out: dict = {"type": "object"}
        if self.fields:
            out["properties"] = {k: v.schema() for k, v in self.fields.items()}
        required = list(self.fields) if self.required is None else list(self.required)
        if required:
            out["required"] = required
        if self.closed:
            out["additionalProperties"] = False
        elif self.extra is not None:
            out["additionalProperties"] = self.extra.schema()
        if self.min_props is not None:
            out["minProperties"] = self.min_props
        if self.max_props is not None:
            out["maxProperties"] = self.max_props
        if self.key_pattern is not None:
            out["propertyNames"] = {"pattern": self.key_pattern}
        return out

    def sample(self, rng):
        out = {k: v.sample(rng) for k, v in self.fields.items()}
        want = self.min_props or 0
        if self.max_props is not None:
            want = rng.randint(want, self.max_props)
        pool = [k for k in self.extra_keys if k not in out]
        rng.shuffle(pool)
        while len(out) < want and pool:
            key = pool.pop()
            out[key] = (self.extra or Str()).sample(rng)
        return out


@dataclass
class WithGold(Spec):
    """A spec whose gold is written by hand (coherent ids, orders, references) instead of sampled;
    the schema stays the base spec's. Tests validate every gold against its schema."""
    base: Spec = field(default_factory=Str)
    gold: Callable[[random.Random], Any] = lambda rng: None

    @property
    def phrase(self) -> str:
        return self.base.phrase

    def schema(self) -> dict:
        return self.base.schema()

    def sample(self, rng):
        return self.gold(rng)


def document(spec: Spec) -> dict:
    """The task schema: the spec's schema with the draft 2020-12 dialect declared."""
    return {"$schema": DRAFT, **spec.schema()}


def field_list(fields: dict[str, Spec]) -> str:
    """'"a" (string), "b" (integer) and "c" (boolean)': how prompts name keys and their types."""
    parts = [f'"{k}" ({v.phrase})' for k, v in fields.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
