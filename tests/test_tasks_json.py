"""JSON task generator: gold validates and maxes every component, negatives fail, eval is held out."""
import json
import random
import re
from collections import Counter

import pytest

from curriculum.json_tasks import TIERS, generate_json_tasks, tier_counts
from curriculum.mutations import mutate, mutation_sites
from curriculum.prompts import SYSTEM_PROMPT_THINK, format_gold, system_prompt
from curriculum.templates import TEMPLATES
from rewards import RewardConfig, score, validate

TRAIN = generate_json_tasks(600, seed=11, split="train", tier_mix={t: 1 for t in TIERS})
EVAL = generate_json_tasks(300, seed=11, split="eval")
MAX = {"format": 1.0, "validity": 1.0, "schema": 1.0, "reasoning": 1.0, "truncation": 1.0, "repetition": 1.0,
       "strictness": 1.0}


def test_templates_cover_at_least_24_structures_over_three_tiers():
    assert sum(len(v) for v in TEMPLATES.values()) >= 24 and set(TEMPLATES) == set(TIERS)
    assert {t.template_id for t in TRAIN} == {tid for v in TEMPLATES.values() for tid, _ in v}, "every template is used"


def test_every_task_carries_prompt_tier_template_schema_and_gold():
    for t in TRAIN + EVAL:
        assert t.kind == "json" and t.prompt and t.tier in TIERS and t.template_id
        assert t.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_gold_instance_validates_against_its_schema():
    bad = [(t.template_id, validate(t.gold, t.schema)[1]) for t in TRAIN + EVAL if not validate(t.gold, t.schema)[0]]
    assert not bad, f"gold instances must validate: {bad[:5]}"


@pytest.mark.parametrize("thinking", [False, True])
def test_formatted_gold_gets_strict_pass_and_every_component_at_its_max(thinking):
    tasks = TRAIN + EVAL
    batch = score([format_gold(t, thinking) for t in tasks], tasks, RewardConfig.defaults(thinking=thinking))
    assert batch.strict_pass.all() and batch.format_pass.all(), "gold must strictly pass"
    for name, top in MAX.items():
        if name == "reasoning" and not thinking:
            continue
        low = [tasks[i].template_id for i, v in enumerate(batch.components[name]) if v != top]
        assert not low, f"{name} should be {top} on every gold reply; not on {Counter(low).most_common(3)}"
    assert batch.total.min() == pytest.approx(1.0)


def test_each_mutation_of_the_gold_fails_strict_pass_with_the_expected_keyword():
    rng, seen = random.Random(0), Counter()
    completions, tasks, expected, root_replaced = [], [], [], []
    for t in TRAIN[:300]:
        for kind in sorted({k for k, _ in mutation_sites(t.gold, t.schema)}):
            bad, kind, keyword = mutate(t.gold, t.schema, rng, kind)
            completions.append("```json\n" + json.dumps(bad) + "\n```")
            tasks.append(t)
            expected.append(keyword)
            root_replaced.append(type(bad) is not type(t.gold))
            seen[kind] += 1
    batch = score(completions, tasks)
    assert not batch.strict_pass.any(), "a mutated gold must never strictly pass"
    assert all(k in kws for k, kws in zip(expected, batch.schema_keywords)), "the broken keyword must be reported"
    credit = batch.components["schema"]
    assert all(0.0 < c < 1.0 for c, root in zip(credit, root_replaced) if not root), \
        "one broken constraint inside the document should leave partial, non-zero schema credit"
    assert all(c == 0.0 for c, root in zip(credit, root_replaced) if root), "a wrong top-level type earns nothing"
    assert {"drop_required", "wrong_type", "too_few", "too_many", "extra_key", "bad_enum"} <= set(seen)


def test_same_seed_same_tasks_and_other_seed_other_tasks():
    again = generate_json_tasks(600, seed=11, split="train", tier_mix={t: 1 for t in TIERS})
    assert [(t.prompt, t.gold, t.id) for t in again] == [(t.prompt, t.gold, t.id) for t in TRAIN]
    other = generate_json_tasks(600, seed=12, split="train", tier_mix={t: 1 for t in TIERS})
    assert [t.prompt for t in other] != [t.prompt for t in TRAIN]


def test_eval_prompts_never_appear_verbatim_in_training_sets():
    train = {t.prompt for seed in range(3) for t in generate_json_tasks(3000, seed, "train")}
    evals = {t.prompt for seed in range(3) for t in generate_json_tasks(1000, seed, "eval")}
    assert not (train & evals), f"{len(train & evals)} eval prompts leaked into training"


def test_tier_mix_is_exact_and_configurable():
    assert tier_counts(10, {"simple": 0.2, "medium": 0.3, "hard": 0.5}) == {"simple": 2, "medium": 3, "hard": 5}
    tasks = generate_json_tasks(30, 0, "train", {"simple": 1, "medium": 0, "hard": 2})
    assert Counter(t.tier for t in tasks) == {"simple": 10, "hard": 20}
    with pytest.raises(ValueError):
        generate_json_tasks(5, 0, "train", {"easy": 1.0})


def _schema_nodes(schema):
    yield schema
    for key in ("properties",):
        for sub in (schema.get(key) or {}).values():
            yield from _schema_nodes(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _schema_nodes(schema[key])


def test_prompt_states_every_key_enum_value_count_and_format_of_the_schema():
    for t in TRAIN + EVAL:
        for node in _schema_nodes(t.schema):
            for key in (node.get("properties") or {}):
                assert f'"{key}"' in t.prompt, f"{t.template_id}: key {key!r} is checked but not named in the prompt"
            for value in node.get("enum", []) + ([node["const"]] if "const" in node else []):
                assert str(value) in t.prompt, f"{t.template_id}: allowed value {value!r} not in the prompt"
            for kw in ("minItems", "maxItems", "minProperties", "maxProperties", "minimum", "maximum"):
                if kw == "maxItems" and node.get(kw) == 0:
                    assert "empty" in t.prompt, f"{t.template_id}: maxItems=0 needs 'empty' in the prompt"
                elif kw in node:
                    assert re.search(rf"\b{node[kw]}\b", t.prompt), f"{t.template_id}: {kw}={node[kw]} not stated"
            if node.get("format") == "date":
                assert "YYYY-MM-DD" in t.prompt
            if node.get("additionalProperties") is False:
                assert re.search(r"\bonly\b|no other", t.prompt), f"{t.template_id}: closed object but no 'only'"


def test_system_prompts_ask_for_one_json_block_and_avoid_the_parroted_placeholder():
    assert "```json" in system_prompt("json", False) and "<think>" in system_prompt("json", True)
    assert "Your reasoning here" not in SYSTEM_PROMPT_THINK
    assert "Answer:" in system_prompt("math", False)
    with pytest.raises(ValueError):
        system_prompt("poetry", False)


SCHEMA_TRAIN = generate_json_tasks(300, seed=11, split="train", family="schema")
SCHEMA_EVAL = generate_json_tasks(300, seed=11, split="eval", family="schema")


def test_schema_family_prompts_carry_their_own_schema_and_gold_still_validates():
    for t in SCHEMA_TRAIN + SCHEMA_EVAL:
        minified = json.dumps(t.schema, separators=(",", ":"), ensure_ascii=False)
        assert minified in t.prompt, f"{t.id}: the prompt must show the task's schema"
        assert t.source == "synthetic-schema" and t.id.startswith("json-schema/") and t.meta["family"] == "schema"
        assert validate(t.gold, t.schema)[0]
    assert {t.tier for t in SCHEMA_EVAL} == set(TIERS)
    phrasings = Counter(t.prompt.split("\n")[0][:30] for t in SCHEMA_TRAIN if not t.prompt.startswith(("{", "[")))
    assert len(phrasings) >= 3, "several instruction phrasings, not one"


def test_schema_family_eval_prompts_never_occur_in_training():
    train = generate_json_tasks(2000, seed=42, split="train", family="schema")
    held_out = generate_json_tasks(300, seed=0, split="eval", family="schema")
    assert not {t.prompt for t in train} & {t.prompt for t in held_out}
    nl = generate_json_tasks(300, seed=11, split="train")
    assert not {t.prompt for t in nl} & {t.prompt for t in SCHEMA_TRAIN}, "the families are different tasks"


def test_training_pool_mixes_the_families_by_schema_prompt_share():
    from grpo.config import config_from_dict
    from grpo.tasks import build_task_source
    cfg = config_from_dict({"data": {"num_tasks": 200, "schema_prompt_share": 0.25}})
    sources = Counter(t.source for t in build_task_source(cfg.data, seed=0).tasks)
    assert sources == {"synthetic": 150, "synthetic-schema": 50}


GENERATED_TRAIN = generate_json_tasks(400, seed=11, split="train", tier_mix={t: 1 for t in TIERS}, family="generated")
GENERATED_EVAL = generate_json_tasks(300, seed=11, split="eval", family="generated")


def _property_keys(schema):
    for node in _schema_nodes(schema):
        yield from (node.get("properties") or {})


def test_generated_family_draws_varied_shapes_whose_golds_validate():
    for t in GENERATED_TRAIN + GENERATED_EVAL:
        assert t.source == "synthetic-generated" and t.id.startswith("json-generated/") and t.meta["family"] == "generated"
        assert validate(t.gold, t.schema)[0], t.id
        shown = {k: v for k, v in t.schema.items() if k != "$schema"}
        assert any(json.dumps(s, separators=(",", ":"), ensure_ascii=False, sort_keys=sort) in t.prompt
                   for s, sort in ((t.schema, False), (shown, True))), f"{t.id}: the prompt must show the task's schema"
        assert format_gold(t, thinking=False).count('"') >= 2
    keywords = Counter(k for t in GENERATED_TRAIN for node in _schema_nodes(t.schema) for k in node)
    for keyword in ("properties", "required", "description", "enum", "format", "minimum", "items", "minItems",
                    "additionalProperties"):
        assert keywords[keyword] > 0, f"no generated schema uses {keyword!r}"
    shapes = {json.dumps(t.schema, sort_keys=True) for t in GENERATED_TRAIN}
    assert len(shapes) == len(GENERATED_TRAIN), "every generated schema is a different one"
    optional = sum(len(n.get("properties", {})) > len(n.get("required", [])) for t in GENERATED_TRAIN
                   for n in _schema_nodes(t.schema))
    assert optional > 50, "some properties are optional"


def test_some_generated_objects_ask_for_keys_beyond_their_properties():
    # the templates' "at least n keys" tasks (minProperties) need golds that add keys the schema does not name
    def adds_keys(schema, gold):
        return isinstance(gold, dict) and schema.get("minProperties", 0) > len(schema.get("properties", {})) \
            and len(gold) >= schema["minProperties"] and set(gold) - set(schema.get("properties", {}))
    opened = [t for t in GENERATED_TRAIN if adds_keys(t.schema, t.gold)]
    assert 0.1 < len(opened) / len(GENERATED_TRAIN) < 0.5
    typed = [t for t in opened if isinstance(t.schema.get("additionalProperties"), dict)]
    assert typed and len(typed) < len(opened), "extra keys come both typed and untyped"


def test_generated_sorted_prompts_list_the_gold_keys_in_the_order_shown():
    sorted_tasks = [t for t in GENERATED_TRAIN if '"$schema"' not in t.prompt]
    assert 0.3 < len(sorted_tasks) / len(GENERATED_TRAIN) < 0.7
    for t in sorted_tasks:
        assert json.dumps(t.gold, sort_keys=True) == json.dumps(t.gold)


def test_generated_eval_keys_never_name_a_training_property():
    train_keys = {k for t in generate_json_tasks(2000, seed=42, split="train", family="generated")
                  for k in _property_keys(t.schema)}
    eval_keys = {k for t in GENERATED_EVAL for k in _property_keys(t.schema)}
    # "email" is the one fixed key both splits use (as "name" is in the templates)
    assert eval_keys - {"email"} and not (eval_keys & train_keys) - {"email"}


def test_training_pool_mixes_three_families_and_refuses_shares_above_one():
    from grpo.config import ConfigError, config_from_dict
    from grpo.tasks import build_task_source
    cfg = config_from_dict({"data": {"num_tasks": 200, "schema_prompt_share": 0.25, "generated_share": 0.5}})
    sources = Counter(t.source for t in build_task_source(cfg.data, seed=0).tasks)
    assert sources == {"synthetic": 50, "synthetic-schema": 50, "synthetic-generated": 100}
    with pytest.raises((ConfigError, ValueError), match="generated_share"):
        config_from_dict({"data": {"schema_prompt_share": 0.6, "generated_share": 0.5}})


def test_generated_family_is_a_named_held_out_eval_set():
    from eval.sets import check_set, load_set
    assert check_set("Synthetic-Generated") == "synthetic-generated"
    tasks = load_set("synthetic-generated", limit=9)
    assert [t.id for t in tasks] == [t.id for t in generate_json_tasks(9, 0, "eval", family="generated")]
    assert {t.tier for t in tasks} == set(TIERS) and all(t.meta["split"] == "eval" for t in tasks)
