"""Property tests: the reward never crashes, stays in range and runs in bounded time on any text."""
import json
import math
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curriculum.task import Task
from rewards import COMPONENTS, RewardConfig, score, validate

RANGES = {"format": (0, 1), "validity": (0, 1), "schema": (0, 1), "reasoning": (-0.5, 1), "truncation": (-1, 1),
          "repetition": (-1, 1), "strictness": (-1, 1), "correctness": (0, 1)}
SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["a"],
          "properties": {"a": {"type": "array", "minItems": 2, "items": {"type": "integer"}},
                         "when": {"type": "string", "format": "date"}}, "additionalProperties": False}
JSON_TASK = Task(id="j", kind="json", prompt="p", schema=SCHEMA)
MATH_TASK = Task(id="m", kind="math", prompt="p", answer="x=3, y=-1/2")
SETTINGS = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
                           max_leaves=30)
pieces = st.sampled_from(["```json\n", "```", "\n", "<think>", "</think>", "{", "}", "[", "]", '"', ",", ":", "\\",
                          "\x00", "\ud800", "NaN", "Answer: ", "x = 3", "#### ", "\\boxed{", "ab" * 20])
hostile_text = st.lists(st.one_of(pieces, st.text(max_size=30)), max_size=60).map("".join)


def assert_well_formed(batch, n):
    for name in COMPONENTS:
        values = batch.components[name]
        lo, hi = RANGES[name]
        assert values.shape == (n,), f"{name} must have one value per completion"
        assert all(math.isfinite(v) and lo <= v <= hi for v in values), f"{name} left [{lo}, {hi}]: {values}"
    assert all(math.isfinite(t) for t in batch.total), "the total must be finite"
    assert len(batch.error_class) == n and all(isinstance(e, str) and e for e in batch.error_class)


@SETTINGS
@given(st.lists(hostile_text, min_size=1, max_size=4), st.booleans(), st.booleans())
def test_any_text_gives_finite_in_range_scores_in_every_mode(texts, thinking, gated):
    cfg = RewardConfig.defaults(thinking=thinking, gated=gated)
    tasks = [JSON_TASK if i % 2 == 0 else MATH_TASK for i in range(len(texts))]
    assert_well_formed(score(texts, tasks, cfg, truncated=[i % 3 == 0 for i in range(len(texts))]), len(texts))


@SETTINGS
@given(json_values, st.integers(min_value=0, max_value=400), st.booleans())
def test_truncated_json_never_crashes_and_never_passes_strictly_unless_complete(value, cut, fenced):
    text = json.dumps(value)
    piece = text[:cut]
    body = f"```json\n{piece}" if fenced else piece
    batch = score([body], [JSON_TASK])
    assert_well_formed(batch, 1)
    assert not batch.strict_pass[0] or validate(json.loads(piece), SCHEMA)[0], "strict pass needs a valid document"


@SETTINGS
@given(json_values)
def test_schema_credit_is_one_exactly_when_the_validator_accepts(value):
    batch = score(["```json\n" + json.dumps(value) + "\n```"], [JSON_TASK])
    valid, _ = validate(value, SCHEMA)
    assert (batch.components["schema"][0] == 1.0) == valid, "schema credit is 1.0 iff the instance validates"
    assert batch.strict_pass[0] == valid


MONSTERS = {
    "100 KB prose": "lorem ipsum dolor " * 6000,
    "100 KB single char": "a" * 100_000,
    "10k-deep arrays": "[" * 10_000 + "]" * 10_000,
    "10k-deep objects in a fence": "```json\n" + '{"a":' * 10_000 + "1" + "}" * 10_000 + "\n```",
    "NUL bytes": "```json\n{\"a\": [1, 2]}\x00\x00\n```" + "\x00" * 1000,
    "lone surrogates": '```json\n{"a": [1, 2], "b": "\\ud800"}\n```\ud800\udfff',
    "regex-hostile near repeats": ("abcdefghijklmnopqrstuvwxyz0123" * 4 + "!") * 800,
    "escaped quotes": '```json\n"' + '\\"' * 50_000,
    "many fences": "```json\n```" * 20_000,
    "many think tags": "</think><think>" * 10_000,
    "huge valid array": "```json\n{\"a\": [" + ",".join(["1"] * 30_000) + "]}\n```",
}


def test_monster_inputs_are_scored_fast_and_in_range():
    texts = list(MONSTERS.values())
    t0 = time.perf_counter()
    batch = score(texts, [JSON_TASK] * len(texts), truncated=[False] * len(texts))
    dt = time.perf_counter() - t0
    assert_well_formed(batch, len(texts))
    assert dt < 3.0, f"scoring {len(texts)} monster completions took {dt:.2f}s; every rule must be (near) linear"
    assert batch.strict_pass[list(MONSTERS).index("huge valid array")], "a big valid document still passes"


def test_each_monster_alone_is_bounded_in_time():
    for name, text in MONSTERS.items():
        t0 = time.perf_counter()
        score([text], [MATH_TASK])
        score([text], [JSON_TASK])
        assert time.perf_counter() - t0 < 1.0, f"{name} took too long"
