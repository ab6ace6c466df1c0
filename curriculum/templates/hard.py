"""Hard-tier JSON templates: real-world documents with many constraints at several depths.

Contract: as in simple.py, each template is `fn(rng, pools) -> (prompt, spec)`; the prompt states
every constraint of its spec, nothing more. Golds with internal references (step ids, orders,
pages) are written by hand through `WithGold` so SFT sees coherent documents.
"""
from __future__ import annotations

from curriculum.templates.spec import (a, plural, DRAFT, Arr, Bool, Const, DateTime, Enum, Int, Nullable, Obj, Pattern,
                                       Str, WithGold, field_list, words)
from curriculum.templates.vocab import Pools

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
STEP_TYPES = ("action", "condition", "loop")
WIDGET_TYPES = ("chart", "table", "metric", "map")
MIGRATION_OPS = ("create_table", "add_column", "create_index", "add_constraint")


def _slug(text: str) -> str:
    return text.lower().replace(" ", "_").replace("-", "_")


def json_schema_doc(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    n = pools.count(rng, 3, 6)
    prop = Obj({"type": Enum(JSON_TYPES)})
    base = Obj({"$schema": Const(DRAFT), "title": Str(), "type": Const("object"),
                "properties": Obj(min_props=n, extra=prop), "required": Arr(Str(), min_items=1)})
    keys = pools.string_keys + pools.int_keys + pools.bool_keys

    def gold(r):
        names = r.sample(keys, n)
        props = {k: {"type": "integer" if k in pools.int_keys else "boolean" if k in pools.bool_keys else "string"}
                 for k in names}
        return {"$schema": DRAFT, "title": entity.title(), "type": "object", "properties": props,
                "required": names[:max(1, n // 2)]}

    prompt = (f'Write a JSON Schema document for {a(entity)}. It is an object with "$schema" set to exactly '
              f'"{DRAFT}", "title" (string), "type" set to exactly "object", "properties" (an object with at least '
              f'{n} property definitions, each an object whose "type" is {prop.fields["type"].phrase}) and '
              f'"required" (an array of at least 1 string).')
    return prompt, WithGold(base, gold)


def paginated_response(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    n, f = pools.count(rng, 2, 4), pools.count(rng, 4, 6)
    item = Obj({"id": Int(), "attributes": Obj(min_props=1, extra_keys=("color", "size", "origin"))}, min_props=f,
               extra_keys=("name", "status", "created_by", "category", "score", "region"))
    base = Obj({"page": Int(minimum=1), "per_page": Int(minimum=1), "total": Int(minimum=0),
                "total_pages": Int(minimum=0), "results": Arr(item, min_items=n, max_items=n)}, closed=True)

    def gold(r):
        page, total = r.randint(1, 5), r.randint(10, 200)
        return {"page": page, "per_page": n, "total": total, "total_pages": -(-total // n),
                "results": [item.sample(r) for _ in range(n)]}

    prompt = (f"Return a paginated API response listing {entity} records as JSON. At the top level, and with no "
              f'other keys, give "page" (integer, at least 1), "per_page" (integer, at least 1), "total" '
              f'(integer, at least 0), "total_pages" (integer, at least 0) and "results", an array of exactly {n} '
              f'objects. Each result has at least {f} fields, including "id" (integer) and "attributes" (a nested '
              f"object with at least 1 field).")
    return prompt, WithGold(base, gold)


def deep_hierarchy(rng, pools: Pools):
    levels = rng.choice(pools.hierarchies)
    node = Obj({"type": Const(levels[3]), "name": Str(), "id": Int(), "children": Arr(Str(), max_items=0)})
    for level in reversed(levels[:3]):
        node = Obj({"type": Const(level), "name": Str(), "id": Int(),
                    "children": Arr(node, min_items=1, gold_max=2)})
    chain = ", ".join(f"{a(x)}'s children are {plural(y)}" for x, y in zip(levels, levels[1:]))
    prompt = (f"Build a JSON tree exactly 4 levels deep for {a(levels[0])}. Every node is an object with "
              f'"type" (exactly its level name: "{levels[0]}", "{levels[1]}", "{levels[2]}" or "{levels[3]}"), '
              f'"name" (string), "id" (integer) and "children" (an array of nodes). The root is the {levels[0]}; '
              f"{chain}. Every {levels[0]}, {levels[1]} and {levels[2]} has at least 1 child, and every "
              f'{levels[3]} has an empty "children" array.')
    return prompt, node


def openapi_endpoint(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    resource = f"/{_slug(plural(entity))}"
    param = Obj({"name": Str(values=("id", "limit", "offset", "sort", "filter")),
                 "in": Enum(("query", "path", "header")), "required": Bool()}, closed=True)
    spec = Obj({"path": Pattern("^/", (resource, f"{resource}/{{id}}")), "method": Enum(HTTP_METHODS),
                "summary": Str(), "parameters": Arr(param, min_items=1, gold_max=3),
                "request_body": Obj({"content_type": Const("application/json")}),
                "responses": Obj({"200": Obj({"description": Str()})})})
    prompt = (f"Describe one REST API endpoint for {entity} records as a JSON object in an OpenAPI-like style, "
              f'with "path" (a string starting with "/"), "method" ({spec.fields["method"].phrase}), "summary" '
              f'(string), "parameters" (an array of at least 1 object, each with only {field_list(param.fields)}), '
              f'"request_body" (an object whose "content_type" is exactly "application/json") and "responses" '
              f'(an object with a "200" key holding an object with "description", a string).')
    return prompt, spec


def workflow(rng, pools: Pools):
    domain = rng.choice(pools.domains)
    n = pools.count(rng, 4, 6)
    step = Obj({"id": Str(), "name": Str(), "type": Enum(STEP_TYPES), "config": Obj(), "next": Nullable(Str())},
               closed=True)
    base = Obj({"workflow_name": Str(), "steps": Arr(step, min_items=n)})

    def gold(r):
        steps = [{"id": f"step_{k}", "name": words(r), "type": r.choice(STEP_TYPES),
                  "config": {"timeout_s": r.randint(5, 120)}, "next": f"step_{k + 1}" if k < n else None}
                 for k in range(1, n + 1)]
        return {"workflow_name": f"{domain} {words(r)}", "steps": steps}

    prompt = (f'Define {a(domain)} automation workflow in JSON: an object with "workflow_name" (string) and "steps", '
              f"an array of at least {n} steps. Each step has only {field_list(step.fields)}.")
    return prompt, WithGold(base, gold)


def dashboard(rng, pools: Pools):
    domain = rng.choice(pools.domains)
    n = pools.count(rng, 3, 6)
    position = Obj({k: Int(minimum=0) for k in ("x", "y", "w", "h")}, closed=True)
    source = Obj({"endpoint": Str(values=("/api/sales", "/api/users", "/api/orders", "/api/latency")),
                  "params": Obj(), "refresh_interval": Int(minimum=1)})
    widget = Obj({"id": Str(), "type": Enum(WIDGET_TYPES), "title": Str(), "position": position,
                  "data_source": source})
    spec = Obj({"dashboard_name": Str(), "widgets": Arr(widget, min_items=n, max_items=n)})
    prompt = (f'Create a JSON layout for {a(domain)} monitoring dashboard: an object with "dashboard_name" (string) '
              f'and "widgets", an array of exactly {n} widgets. Each widget has "id" (string), "type" '
              f'({widget.fields["type"].phrase}), "title" (string), "position" (an object with only "x", "y", "w" '
              f'and "h", all integers of at least 0) and "data_source" (an object with "endpoint" (string), '
              f'"params" (object) and "refresh_interval" (integer, at least 1)).')
    return prompt, spec


def cloud_event(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    n = pools.count(rng, 4, 7)
    data = Obj(min_props=n, extra_keys=("id", "status", "amount", "currency", "actor", "reason", "region", "channel"))
    event_type = f"com.example.{_slug(entity)}.{rng.choice(('created', 'updated', 'deleted', 'shipped'))}"
    spec = Obj({"specversion": Const("1.0"), "id": Str(), "source": Str(values=("/services/inventory", "/app/web")),
                "type": Const(event_type), "subject": Str(), "time": DateTime(),
                "datacontenttype": Const("application/json"), "data": data}, closed=True)
    prompt = (f'Emit a CloudEvents 1.0 event as JSON for {a(entity)}, with only these keys: "specversion" (exactly '
              f'"1.0"), "id" (string), "source" (string), "type" (exactly "{event_type}"), "subject" (string), '
              f'"time" ({spec.fields["time"].phrase}), "datacontenttype" (exactly "application/json") and "data" '
              f"(an object with at least {n} fields).")
    return prompt, spec


def migration_plan(rng, pools: Pools):
    entity = rng.choice(pools.entities)
    n = pools.count(rng, 3, 6)
    op = Obj({"order": Int(minimum=1), "type": Enum(MIGRATION_OPS), "table": Str(), "definition": Obj()},
             closed=True)
    base = Obj({"migration_id": Str(), "operations": Arr(op, min_items=n, max_items=n)})
    table = _slug(plural(entity))

    def gold(r):
        ops = [{"order": k, "type": MIGRATION_OPS[0] if k == 1 else r.choice(MIGRATION_OPS[1:]), "table": table,
                "definition": {"column": f"col_{k}", "sql_type": r.choice(("TEXT", "INTEGER", "BOOLEAN"))}}
               for k in range(1, n + 1)]
        return {"migration_id": f"{r.randint(2020, 2030)}_{r.randint(1, 999):03d}_{table}", "operations": ops}

    prompt = (f'Write a database migration plan for {a(entity)} table as JSON: an object with "migration_id" '
              f'(string) and "operations", an array of exactly {n} operations. Each operation has only '
              f'"order" (integer, at least 1), "type" ({op.fields["type"].phrase}), "table" (string) and '
              f'"definition" (object).')
    return prompt, WithGold(base, gold)


TEMPLATES = (("json_schema_doc", json_schema_doc), ("paginated_response", paginated_response),
             ("deep_hierarchy", deep_hierarchy), ("openapi_endpoint", openapi_endpoint), ("workflow", workflow),
             ("dashboard", dashboard), ("cloud_event", cloud_event), ("migration_plan", migration_plan))
