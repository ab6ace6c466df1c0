"""Simple-tier JSON templates: flat objects and flat arrays.

Contract: each template is `fn(rng, pools) -> (prompt, spec)`; the prompt states every constraint
of `spec` (types, required keys, "only" for closed objects, counts, patterns) and nothing the spec
does not check. Registered in TEMPLATES as (template_id, fn).
"""
from __future__ import annotations

from curriculum.templates.spec import a, Arr, Bool, Int, Nullable, Num, Obj, Str, WithGold, field_list
from curriculum.templates.vocab import ABBREVIATION_DOMAINS, TOPICS, Pools


def _keys(rng, pool, n):
    return rng.sample(pool, n)


def typed_record(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    (s,), (i,), (b,) = _keys(rng, pools.string_keys, 1), _keys(rng, pools.int_keys, 1), _keys(rng, pools.bool_keys, 1)
    spec = Obj({s: Str(), i: Int(), b: Bool()}, closed=True)
    prompt = (f"Generate a JSON object describing {a(entity)}. It must have only these keys: "
              f"{field_list(spec.fields)}. Do not add any other keys.")
    return prompt, spec


def string_list(rng, pools: Pools):
    topic = rng.choice(pools.topics)
    n = pools.count(rng, 3, 7)
    spec = Arr(Str(values=TOPICS[topic]), min_items=n, max_items=n)
    return f"Return a JSON array containing exactly {n} strings, each naming one of the {topic}.", spec


def object_with_int_array(rng, pools: Pools):
    s, arr = rng.choice(pools.string_keys), rng.choice(("values", "scores", "readings", "ids", "levels", "points"))
    n = pools.count(rng, 3, 6)
    spec = Obj({s: Str(), arr: Arr(Int(), min_items=n, max_items=n)})
    prompt = (f'Produce a JSON object with a key "{s}" holding a string and a key "{arr}" holding an array '
              f"of exactly {n} integers.")
    return prompt, spec


def uniform_map(rng, pools: Pools):
    topic = rng.choice(pools.topics)
    n = pools.count(rng, 3, 6)
    vtype, value = rng.choice((("integer", Int()), ("string", Str()), ("boolean", Bool()), ("number", Num())))
    spec = Obj(min_props=n, max_props=n, extra=value, extra_keys=TOPICS[topic])
    prompt = (f"Create a JSON object with exactly {n} key-value pairs whose keys are {topic} and whose "
              f"values are all of type {vtype}.")
    return prompt, spec


def entity_card(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    s, nk, b = rng.choice(pools.string_keys), rng.choice(pools.num_keys), rng.choice(pools.bool_keys)
    note = rng.choice(("note", "comment", "remark", "memo"))
    spec = Obj({s: Str(), nk: Num(), b: Bool(), note: Nullable(Str())})
    prompt = (f"Write a JSON card for {a(entity)} with the keys {field_list(spec.fields)}; "
              f'"{note}" may be null when there is nothing to say.')
    return prompt, spec


def object_array(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    s, i = rng.choice(pools.string_keys), rng.choice(pools.int_keys)
    n = pools.count(rng, 2, 5)
    spec = Arr(Obj({s: Str(), i: Int()}, closed=True), min_items=n, max_items=n)
    prompt = (f"Output a JSON array of exactly {n} objects, one per {entity}; each object has only the keys "
              f"{field_list(spec.item.fields)}.")
    return prompt, spec


def flat_list_field(rng, pools: Pools):
    s = rng.choice(pools.string_keys)
    kind, item = rng.choice((("strings", Str()), ("integers", Int()), ("booleans", Bool())))
    key = rng.choice(("items", "entries", "flags", "samples", "tags", "options"))
    n = pools.count(rng, 3, 7)
    spec = Obj({s: Str(), key: Arr(item, min_items=n)})
    prompt = (f'Give a JSON object with "{s}" (a string) and "{key}", a flat array of at least {n} {kind}.')
    return prompt, spec


def abbreviation_map(rng, pools: Pools):
    domain = rng.choice(pools.abbreviation_domains)
    n = pools.count(rng, 3, 6)
    expansions = dict(ABBREVIATION_DOMAINS[domain])
    base = Obj(min_props=n, max_props=n, extra=Str(), key_pattern="^[A-Z]{2,5}$")
    spec = WithGold(base, lambda r: {k: expansions[k] for k in r.sample(sorted(expansions), n)})
    prompt = (f"Return a JSON object mapping exactly {n} {domain} abbreviations to their full names. Every key "
              f"is an abbreviation of 2 to 5 upper-case letters (A-Z) and every value is a string.")
    return prompt, spec


TEMPLATES = (("typed_record", typed_record), ("string_list", string_list),
             ("object_with_int_array", object_with_int_array), ("uniform_map", uniform_map),
             ("entity_card", entity_card), ("object_array", object_array),
             ("flat_list_field", flat_list_field), ("abbreviation_map", abbreviation_map))
