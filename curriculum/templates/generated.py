"""Generated schemas: random object schemas for the "generated" task family, whose prompt is the schema.

The templates (simple.py, medium.py, hard.py) teach a few dozen fixed shapes; a model trained on them
alone meets an unfamiliar schema by writing a shape it knows, repeating keys or leaving required ones
out. These makers draw the shape itself: how many properties, which types (strings, formats, enums,
integers with bounds, numbers, booleans, nullable values), which are nested objects or arrays (of
scalars or of objects), which are required (in any order), whether other keys are forbidden or asked
for (minProperties), and whether properties carry a description. So what a model learns from them is
to read a schema: every property once, each required key, each type and bound.

Contract: `GENERATED[tier]` is a tuple of (template_id, fn(rng, pools) -> (request, spec)), like
`TEMPLATES`; the request is a one-line ask for the entity (the schema family's prompts may put it
before the schema). The spec's schema states exactly what its gold satisfies (tests validate every
gold). Key names, qualifiers, entities and enumerations come from the split's pools (every 4th entry
to eval, as in vocab.py), so a held-out schema's keys appear in no training schema.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from curriculum.templates.spec import a, Arr, Bool, Date, DateTime, Email, Enum, Int, Nullable, Num, Obj, Spec, Str
from curriculum.templates.vocab import Pools, split_pool

# "<qualifier>_date", "<qualifier>_at", "<qualifier>_email": formatted strings
DATE_QUALIFIERS = ("start", "end", "release", "due", "birth", "delivery", "signup", "departure", "return",
                   "expiry", "booking", "renewal", "hire", "launch", "closing", "opening")
TIME_QUALIFIERS = ("created", "updated", "published", "scheduled", "deleted", "verified", "shipped",
                   "archived", "confirmed", "started", "finished", "reviewed")
EMAIL_QUALIFIERS = ("contact", "billing", "support", "owner", "admin", "sales", "notify", "reply")
# named enumerations: (key, values)
ENUMS = (("status", ("active", "inactive", "pending", "archived")), ("priority", ("low", "medium", "high", "urgent")),
         ("size", ("small", "medium", "large")), ("unit", ("celsius", "fahrenheit", "kelvin")),
         ("currency", ("USD", "EUR", "GBP", "JPY")), ("direction", ("north", "south", "east", "west")),
         ("difficulty", ("easy", "medium", "hard")), ("frequency", ("daily", "weekly", "monthly", "yearly")),
         ("visibility", ("public", "private", "internal")), ("method", ("GET", "POST", "PUT", "DELETE")),
         ("sort_order", ("asc", "desc")), ("shipping", ("standard", "express", "overnight")),
         ("gender", ("female", "male", "other")), ("plan", ("free", "basic", "pro", "enterprise")),
         ("mood", ("happy", "neutral", "sad")), ("format", ("pdf", "csv", "xlsx", "html")),
         ("transport", ("car", "train", "bus", "bike", "walk")), ("season", ("spring", "summer", "autumn", "winter")),
         ("diet", ("vegan", "vegetarian", "omnivore")), ("state", ("open", "closed", "merged")),
         ("theme", ("light", "dark", "system")), ("channel", ("email", "sms", "push")),
         ("role", ("viewer", "editor", "owner")), ("severity", ("minor", "major", "critical")))
OBJECT_KEYS = ("details", "address", "location", "settings", "metadata", "owner", "dimensions", "contact",
               "profile", "stats", "config", "options", "schedule", "pricing", "author", "source", "target",
               "limits", "summary", "preferences", "shipping_info", "credentials", "coordinates", "budget_info")
STRING_ARRAY_KEYS = ("tags", "keywords", "aliases", "ingredients", "features", "skills", "languages", "genres",
                     "topics", "labels", "interests", "symptoms", "amenities", "authors", "colors", "categories")
NUMBER_ARRAY_KEYS = ("scores", "ratings", "readings", "prices", "measurements", "numbers", "weights", "durations",
                     "grades", "amounts", "temperatures", "distances")
OBJECT_ARRAY_KEYS = ("items", "entries", "records", "participants", "stops", "segments", "orders", "reviews",
                     "tasks", "attendees", "line_items", "steps", "members", "events", "rooms", "guests")


# share of the objects that are neither closed nor exactly their properties (see _open)
OPEN_SHARE = 0.3


class GenPools:
    """The split's key pools for generated schemas (vocab.Pools plus this module's)."""

    def __init__(self, pools: Pools):
        self.pools = pools
        split = pools.split
        self.dates, self.times = split_pool(DATE_QUALIFIERS, split), split_pool(TIME_QUALIFIERS, split)
        self.emails, self.enums = split_pool(EMAIL_QUALIFIERS, split), split_pool(ENUMS, split)
        self.objects, self.string_arrays = split_pool(OBJECT_KEYS, split), split_pool(STRING_ARRAY_KEYS, split)
        self.number_arrays, self.object_arrays = split_pool(NUMBER_ARRAY_KEYS, split), split_pool(OBJECT_ARRAY_KEYS, split)


@dataclass
class Described(Spec):
    """A spec with a "description" annotation (as function-calling schemas give every parameter)."""
    inner: Spec = field(default_factory=Str)
    text: str = ""

    @property
    def phrase(self) -> str:
        return self.inner.phrase

    def schema(self) -> dict:
        return {"description": self.text, **self.inner.schema()}

    def sample(self, rng):
        return self.inner.sample(rng)


def _words(key: str) -> str:
    return key.replace("_", " ")


def _describe(rng: random.Random, key: str, entity: str) -> str:
    return rng.choice((f"The {_words(key)} of the {entity}", f"{_words(key).capitalize()} of the {entity}",
                       f"The {entity}'s {_words(key)}", f"{_words(key).capitalize()}"))


def _leaf(rng: random.Random, g: GenPools, nullable: bool) -> tuple[str, Spec]:
    """(key, spec) of one scalar property: a string, a formatted string, an enum, a number or a boolean."""
    p = g.pools
    kind = rng.choices(("string", "integer", "number", "boolean", "enum", "date", "date-time", "email"),
                       weights=(5, 3, 2, 2, 2, 1, 1, 1))[0]
    if kind == "string":
        key, spec = rng.choice(p.string_keys), Str()
    elif kind == "integer":
        key = rng.choice(p.int_keys)
        bounds = rng.choice(((None, None), (0, None), (1, None), (1, 10), (0, 100), (1, 5)))
        spec = Int(*bounds)
    elif kind == "number":
        key, spec = rng.choice(p.num_keys), Num(rng.choice((None, 0)))
    elif kind == "boolean":
        key, spec = rng.choice(p.bool_keys), Bool()
    elif kind == "enum":
        key, values = rng.choice(g.enums)
        spec = Enum(tuple(rng.sample(values, rng.randint(min(2, len(values)), len(values)))))
    elif kind == "date":
        key, spec = f"{rng.choice(g.dates)}_date", Date()
    elif kind == "date-time":
        key, spec = f"{rng.choice(g.times)}_at", DateTime()
    else:
        key, spec = rng.choice((f"{rng.choice(g.emails)}_email", "email")), Email()
    if nullable and kind in ("string", "integer", "number") and rng.random() < 0.25:
        spec = Nullable(spec)
    return key, spec


def _object(rng: random.Random, g: GenPools, entity: str, n_props: int, composites: int, depth: int,
            describe: float, nullable: bool, closed: float) -> Obj:
    """An object of n_props properties, `composites` of them nested objects or arrays (while depth > 0)."""
    fields: dict[str, Spec] = {}
    kinds = ["composite"] * min(composites, n_props) + ["leaf"] * max(n_props - composites, 0)
    rng.shuffle(kinds)
    for kind in kinds:
        for _ in range(10):   # redraw keys already used in this object
            key, spec = _composite(rng, g, entity, depth, describe, nullable, closed) if kind == "composite" and depth > 0 \
                else _leaf(rng, g, nullable)
            if key not in fields:
                break
        else:
            continue
        fields[key] = Described(spec, _describe(rng, key, entity)) if rng.random() < describe else spec
    keys = list(fields)
    if rng.random() < 0.4:
        required = keys[:]
    else:
        required = rng.sample(keys, rng.randint(1, len(keys)))
    rng.shuffle(required)
    if rng.random() < closed:
        return Obj(fields, required=tuple(required), closed=True)
    if rng.random() < OPEN_SHARE:
        return _open(rng, g, fields, tuple(required))
    return Obj(fields, required=tuple(required))


def _open(rng: random.Random, g: GenPools, fields: dict[str, Spec], required: tuple[str, ...]) -> Obj:
    """An object that asks for more keys than it names: minProperties above its property count, and
    (mostly) a type for the others. The templates' "at least n keys" tasks need this; golds drawn only
    from closed shapes taught the model never to add a key (docs/study.md, section 7)."""
    p = g.pools
    extra, pool = rng.choice(((Str(), p.string_keys), (Int(), p.int_keys), (Num(), p.num_keys),
                              (Bool(), p.bool_keys), (None, p.string_keys)))
    keys = tuple(k for k in pool if k not in fields)
    n_extra = min(rng.randint(1, 3), len(keys))
    return Obj(fields, required=required, min_props=len(fields) + n_extra, extra=extra, extra_keys=keys)


def _composite(rng: random.Random, g: GenPools, entity: str, depth: int, describe: float, nullable: bool,
               closed: float) -> tuple[str, Spec]:
    """(key, spec) of a nested object, an array of strings or numbers, or an array of objects."""
    kind = rng.choices(("object", "strings", "numbers", "objects"), weights=(4, 3, 1, 2 if depth > 1 else 1))[0]
    if kind == "object":
        key = rng.choice(g.objects)
        return key, _object(rng, g, _words(key), rng.randint(2, 4), int(depth > 1 and rng.random() < 0.5), depth - 1,
                            describe, nullable, closed)
    if kind in ("strings", "numbers"):
        key = rng.choice(g.string_arrays if kind == "strings" else g.number_arrays)
        item = Str() if kind == "strings" else rng.choice((Int(), Num()))
        lo = rng.choice((None, 1, 2))
        hi = rng.choice((None, None, 5)) if lo is None or lo <= 5 else None
        return key, Arr(item, min_items=lo, max_items=hi, gold_max=3)
    key = rng.choice(g.object_arrays)
    item = _object(rng, g, _words(key), rng.randint(2, 3), 0, 0, describe, nullable, closed)
    return key, Arr(item, min_items=rng.choice((None, 1)), max_items=rng.choice((None, 3)), gold_max=2)


def _request(rng: random.Random, entity: str) -> str:
    return rng.choice((f"Create a JSON object for {a(entity)}.", f"Describe {a(entity)} as JSON.",
                       f"Give the JSON record of {a(entity)}."))


def _maker(n_props: tuple[int, int], composites: tuple[int, int], depth: int, nullable: bool, closed: float):
    def make(rng: random.Random, pools: Pools):
        g, entity = GenPools(pools), rng.choice(pools.entities)
        describe = rng.choice((0.0, 0.5, 1.0))   # none, some or all properties described
        spec = _object(rng, g, entity, rng.randint(*n_props), rng.randint(*composites), depth, describe, nullable, closed)
        return _request(rng, entity), spec
    return make


GENERATED = {
    "simple": (("gen_flat", _maker((2, 5), (0, 0), 0, False, 0.0)),),
    "medium": (("gen_nested", _maker((3, 6), (1, 2), 1, False, 0.15)),),
    "hard": (("gen_deep", _maker((4, 7), (2, 3), 2, True, 0.3)),),
}
