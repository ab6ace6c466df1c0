"""Medium-tier JSON templates: nested objects, arrays of objects, enums, dates, minimum sizes.

Contract: as in simple.py, each template is `fn(rng, pools) -> (prompt, spec)` and its prompt
states every constraint of its spec, nothing more.
"""
from __future__ import annotations

from curriculum.templates.spec import a, Arr, Bool, Date, Email, Enum, Int, Num, Obj, Str, field_list
from curriculum.templates.vocab import STRING_KEYS, Pools

LOG_LEVELS = ("debug", "info", "warning", "error")
FIELD_TYPES = ("text", "number", "email", "select")


def objects_with_nested(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    s, i = rng.choice(pools.string_keys), rng.choice(pools.int_keys)
    nest = rng.choice(("details", "location", "stats", "owner", "specs"))
    ns, ni = rng.choice([k for k in pools.string_keys if k != s]), rng.choice([k for k in pools.int_keys if k != i])
    inner = Obj({ns: Str(), ni: Int()})
    n = pools.count(rng, 2, 4)
    spec = Arr(Obj({s: Str(), i: Int(), nest: inner}), min_items=n, max_items=n)
    prompt = (f"Produce a JSON array of exactly {n} {entity} objects. Each object has {field_list(spec.item.fields)}; "
              f'"{nest}" must contain {field_list(inner.fields)}.')
    return prompt, spec


def entity_with_nested_and_array(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    n = pools.count(rng, 5, 8)
    nest, arr = rng.choice(("details", "profile", "info", "attributes")), rng.choice(("tags", "keywords", "aliases"))
    spec = Obj({"name": Str(), nest: Obj(min_props=1, extra_keys=("origin", "color", "size", "style")),
                arr: Arr(Str(), min_items=1)}, min_props=n,
               extra_keys=tuple(k for k in STRING_KEYS if k != "name"))
    prompt = (f"Create a JSON object representing {a(entity)} with at least {n} top-level fields in total. "
              f'It must include "name" (a string), "{nest}" (a nested object with at least 1 field) and '
              f'"{arr}" (an array with at least 1 string); add other fields of your choice.')
    return prompt, spec


def app_config(rng, pools: Pools):
    app = rng.choice(pools.app_types)
    section = rng.choice(pools.section_keys)
    spec = Obj({"app_name": Str(), "port": Int(minimum=1, maximum=65535),
                section: Obj({"enabled": Bool(), "log_level": Enum(LOG_LEVELS)}, closed=True)})
    prompt = (f'Write a JSON configuration file for {a(app)}. Top-level keys: "app_name" (string), "port" '
              f'(integer between 1 and 65535) and "{section}", a section object with only '
              f'{field_list(spec.fields[section].fields)}.')
    return prompt, spec


def parent_with_children(rng, pools: Pools):
    parent, children = rng.choice(pools.sub_entities)
    n = pools.count(rng, 2, 5)
    child = Obj({"name": Str()}, min_props=3, extra_keys=("id", "role", "note", "category", "status"))
    spec = Obj({"name": Str(), children: Arr(child, min_items=n, max_items=n)})
    prompt = (f'Describe {a(parent)} as a JSON object with "name" (string) and "{children}", an array of exactly '
              f'{n} objects; each of those objects has at least 3 fields, one of which is "name" (string).')
    return prompt, spec


def sectioned_document(rng, pools: Pools):
    topic = rng.choice(pools.domains)
    sections = rng.sample(("introduction", "background", "methods", "results", "summary", "appendix",
                           "overview", "timeline"), 3)
    body = Obj(min_props=2, extra_keys=("heading", "text", "author", "length", "status"))
    spec = Obj({s: body for s in sections})
    names = ", ".join(f'"{s}"' for s in sections[:-1]) + f' and "{sections[-1]}"'
    prompt = (f"Produce a JSON document about {topic} with the sections {names}; each section is a nested "
              f"object with at least 2 fields.")
    return prompt, spec


def dated_record(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    s = rng.choice(pools.string_keys)
    when = rng.choice(("created_on", "released_on", "opened_on", "due_date", "start_date"))
    arr = rng.choice(("measurements", "entries", "line_items", "readings"))
    ns, nn = rng.choice(pools.string_keys), rng.choice(pools.num_keys)
    inner = Obj({ns: Str(), nn: Num()})
    spec = Obj({s: Str(), when: Date(), arr: Arr(inner, min_items=1)})
    prompt = (f'Give a JSON record for {a(entity)} with "{s}" (string), "{when}" (a date in YYYY-MM-DD format) and '
              f'"{arr}", a non-empty array (at least 1 item) of objects each having {field_list(inner.fields)}.')
    return prompt, spec


def form_schema(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    n = pools.count(rng, 4, 7)
    item = Obj({"label": Str(), "type": Enum(FIELD_TYPES), "required": Bool()}, closed=True)
    spec = Obj({"form_title": Str(), "fields": Arr(item, min_items=n, max_items=n)})
    prompt = (f'Design a sign-up form for {a(entity)} as JSON: an object with "form_title" (string) and "fields", '
              f"an array of exactly {n} field objects. Each field object has only {field_list(item.fields)}.")
    return prompt, spec


def tagged_entity(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    contact = rng.random() < 0.5
    fields = {"id": Int(), "name": Str(), "tags": Arr(Str()),
              "metadata": Obj(min_props=3, extra=Str(), extra_keys=("source", "owner", "region", "tier", "note"))}
    if contact:
        fields["contact_email"] = Email()
    spec = Obj(fields)
    extra = ' and "contact_email" (an email address)' if contact else ""
    prompt = (f'Return a JSON object for {a(entity)} with "id" (integer), "name" (string), "tags" (an array of '
              f'strings), "metadata" (an object with at least 3 key-value pairs, all values strings){extra}.')
    return prompt, spec


TEMPLATES = (("objects_with_nested", objects_with_nested),
             ("entity_with_nested_and_array", entity_with_nested_and_array), ("app_config", app_config),
             ("parent_with_children", parent_with_children), ("sectioned_document", sectioned_document),
             ("dated_record", dated_record), ("form_schema", form_schema), ("tagged_entity", tagged_entity))
