"""Scoring tables of the components, weights, modes and the math answer checker."""
import numpy as np
import pytest
from pydantic import ValidationError

from curriculum.task import Task
from rewards import COMPONENTS, NO_THINK_WEIGHTS, THINK_WEIGHTS, RewardConfig, score
from rewards import components as C
from rewards.config import redistribute_reasoning
from rewards.math_answer import check_answer
from rewards.parse import parse_completion as P

SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
          "required": ["name", "tags"], "additionalProperties": False,
          "properties": {"name": {"type": "string"},
                         "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}}}
TASK = Task(id="t", kind="json", prompt="p", schema=SCHEMA)
GOOD = '```json\n{"name": "a", "tags": ["x", "y", "z"]}\n```'


def test_format_scores_json_fence_1_other_fence_half_none_0():
    assert [C.format_score(P(t)) for t in (GOOD, '```\n{}\n```', '{"a": 1}')] == [1.0, 0.5, 0.0]


ECHOED_INSTRUCTION = ("Reply ONLY with one JSON code block: start with ```json on its own line, then the JSON, "
                      "then ``` on its own line.\n\nOutput a JSON object with the key \"a\".")


@pytest.mark.parametrize("text, expected", [
    (ECHOED_INSTRUCTION, 0.0),                          # two mid-line markers pair up: no fence
    ('Here it is: ```json\n{"a": 1}\n```', 0.0),         # opener after prose on its line
    ('```json {"a": 1}```', 0.0),                       # content on the opener's line
    ('Sure.\n  ```json\n{"a": 1}\n```', 1.0),            # an indented opener on its own line
    ('```json  \r\n{"a": 1}\n```', 1.0),                 # trailing blanks and CRLF after the tag
    ('<think>ok</think>```json\n{"a": 1}\n```', 1.0),     # the answer region starts at the marker
])
def test_format_credit_needs_a_fence_opened_on_its_own_line(text, expected):
    assert C.format_score(P(text)) == expected


def test_mid_line_fences_are_still_extracted_for_syntax():
    """Only format credit is strict about the opener: the JSON of "Here it is: ```json ..." still parses."""
    p = P('Here it is: ```json\n{"a": 1}\n```')
    assert p.ok and p.value == {"a": 1} and p.source == "json_fence" and not p.fence_on_own_line
    echo = P(ECHOED_INSTRUCTION)
    assert echo.source == "json_fence" and not echo.ok, "the echoed 'block' is prose, it must not parse"
    batch = score([ECHOED_INSTRUCTION, GOOD], [TASK, TASK], RewardConfig())
    assert batch.format_pass.tolist() == [False, True]


def test_validity_is_graduated_by_error_position_like_the_seed():
    assert C.validity_score(P('{"a": 1, "b": [1, 2, 3], "c": "long enough text here"')) == 0.7
    assert C.validity_score(P("{oops: 1, and more text that follows here}")) == 0.2
    assert C.validity_score(P("no json")) == 0.0 and C.validity_score(P("[1]")) == 1.0


def test_reasoning_ramp_and_placeholder_detection_match_the_seed():
    assert C.reasoning_score(P("```json\n{}\n```")) == -0.5
    assert C.reasoning_score(P("<think>tiny</think>")) == -0.2
    assert C.reasoning_score(P("<think>" + "a" * 50 + "</think>")) == pytest.approx(40 / 70)
    assert C.reasoning_score(P("<think>" + "b" * 200 + "</think>")) == 1.0
    assert C.reasoning_score(P("<think>Your reasoning here.</think>")) == -0.5, "placeholder parroting"


def test_strictness_rewards_nothing_outside_the_block():
    assert C.strictness_score(P(GOOD)) == 1.0
    assert C.strictness_score(P("Ok.\n" + GOOD)) == 0.5
    assert C.strictness_score(P("Here is a long explanation of what I did and why. " * 3 + GOOD)) == -1.0
    assert C.strictness_score(P('{"a": 1}')) == 0.0, "no fence: strictness is neutral"


def test_repetition_ignores_a_valid_json_document_but_catches_loops():
    valid_repetitive = "```json\n[true, true, true, true, true, true]\n```"
    assert C.repetition_score(P(valid_repetitive)) == 1.0, "a valid array of equal items is the schema's business"
    assert C.repetition_score(P("ha " * 40)) == -1.0
    assert C.repetition_score(P(GOOD + "\n" + GOOD)) == -1.0, "two fenced blocks"


def test_truncation_uses_the_engine_flag_and_unclosed_fences():
    assert C.truncation_score(P(GOOD), truncated=True) == -1.0
    assert C.truncation_score(P('```json\n{"a": 1'), None) == -1.0
    assert C.truncation_score(P("plain prose"), None) == 0.0
    assert C.truncation_score(P(GOOD), None) == 1.0


def test_default_weights_are_the_seeds_and_sum_to_one():
    assert RewardConfig().effective_weights() == {k: v for k, v in NO_THINK_WEIGHTS.items() if k != "reasoning"}
    assert sum(RewardConfig.defaults(thinking=True).effective_weights().values()) == pytest.approx(1.0)


def test_reasoning_weight_is_redistributed_in_proportion_when_thinking_is_off():
    out = redistribute_reasoning({"format": 0.2, "validity": 0.35, "schema": 0.35, "reasoning": 0.1})
    assert out == pytest.approx({"format": 0.2 / 0.9, "validity": 0.35 / 0.9, "schema": 0.35 / 0.9})
    cfg = RewardConfig(weights=dict(THINK_WEIGHTS), thinking=False)
    assert "reasoning" not in cfg.effective_weights() and sum(cfg.effective_weights().values()) == pytest.approx(1.0)


def test_unknown_component_name_is_a_clear_config_error():
    with pytest.raises(ValidationError, match="unknown reward component"):
        RewardConfig(weights={"formatt": 1.0})
    with pytest.raises(ValidationError):
        RewardConfig(weigths={"format": 1.0})


def test_batch_has_every_component_and_gold_scores_one():
    batch = score([GOOD, "nothing"], [TASK, TASK])
    assert set(batch.components) == set(COMPONENTS)
    assert all(v.dtype == np.float64 and v.shape == (2,) for v in batch.components.values())
    assert batch.total[0] == pytest.approx(1.0) and batch.strict_pass.tolist() == [True, False]
    assert batch.error_class == ["ok", "no_json"]


def test_schema_component_is_partial_and_error_class_names_the_keyword():
    batch = score(['```json\n{"name": "a", "tags": ["x"]}\n```'], [TASK])
    assert 0 < batch.components["schema"][0] < 1, "one constraint broken: partial credit"
    assert batch.error_class == ["schema:minItems"] and batch.schema_keywords == [["minItems"]]


def test_strict_mode_is_binary_strict_pass():
    batch = score([GOOD, '{"name": "a", "tags": ["x", "y", "z"]}', "x"], [TASK] * 3, RewardConfig(mode="strict"))
    assert batch.total.tolist() == [1.0, 1.0, 0.0], "strict pass = parses AND validates"


def test_gated_mode_drops_content_components_until_a_fenced_block_parses():
    unfenced = '{"name": "a", "tags": ["x", "y", "z"]}'
    plain, gated = score([unfenced], [TASK]), score([unfenced], [TASK], RewardConfig(gated=True))
    w = RewardConfig().effective_weights()
    expected = plain.total[0] - w["schema"] * 1.0 - w["repetition"] * plain.components["repetition"][0]
    assert gated.total[0] == pytest.approx(expected), "schema/repetition/strictness count only behind the gate"
    assert score([GOOD], [TASK], RewardConfig(gated=True)).total[0] == pytest.approx(1.0)


def test_mismatched_lengths_are_a_caller_error():
    with pytest.raises(ValueError, match="one task per completion"):
        score([GOOD], [TASK, TASK])


@pytest.mark.parametrize("text,expected,credit", [
    ("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18", "18", 1.0),
    ("So she pays $1,250 in total.\nAnswer: $1,250", "1250", 1.0),
    ("The answer is 18 dollars.", "18", 1.0),
    ("We get \\boxed{42}.", "42", 1.0),
    ("Answer: 3/4", "0.75", 1.0),
    ("Answer: x = 3, y = -1/2", "x=3, y=-1/2", 1.0),
    ("Answer: x = 3, y = 2", "x=3, y=-1/2", 0.5),
    ("Answer: \\frac{-1}{2}", "-1/2", 1.0),
    ("Answer: 17", "18", 0.0),
])
def test_math_answers_are_extracted_tolerantly_and_compared_exactly(text, expected, credit):
    got, found = check_answer(text, expected)
    assert found and got == credit, f"{text!r} vs {expected!r}: expected credit {credit}, got {got}"


def test_math_rows_get_correctness_and_error_classes():
    task = Task(id="m", kind="math", prompt="p", answer="18")
    batch = score(["Answer: 18", "Answer: 19", "no idea"], [task] * 3)
    assert batch.components["correctness"].tolist() == [1.0, 0.0, 0.0]
    assert batch.error_class == ["ok", "wrong_answer", "no_answer"]
    assert batch.total.tolist() == [1.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- bare output

BARE = '{"name": "a", "tags": ["x", "y", "z"]}'


@pytest.mark.parametrize("text, fmt, strictness", [
    (BARE, 1.0, 1.0),                                    # exactly one JSON value
    ("\n  " + BARE + "\n", 1.0, 1.0),                    # whitespace around it is allowed
    (BARE + "\nHope this helps, let me know!", 0.5, -0.5),  # a value, then text: graded by that text
    ('{"name": "a", "tags": [', 0.5, 0.0),               # opens as JSON, broken: strictness neutral
    (GOOD, 0.0, -0.5),                                   # a fence: no format credit, the markers are extra text
    ("Sure! " + BARE, 0.0, 0.0),                         # prose first: no JSON at all
])
def test_bare_format_and_strictness_scoring_tables(text, fmt, strictness):
    p = P(text, output="bare")
    assert C.bare_format_score(p) == fmt and C.bare_strictness_score(p) == strictness


@pytest.mark.parametrize("thinking", [False, True])
def test_bare_gold_earns_every_component_at_its_max_and_strict_pass(thinking):
    from curriculum.json_tasks import generate_json_tasks
    from curriculum.prompts import format_gold
    tasks = generate_json_tasks(30, seed=3, split="train", tier_mix={"simple": 1, "medium": 1, "hard": 1})
    golds = [format_gold(t, thinking, output="bare") for t in tasks]
    assert not any("```" in g for g in golds), "bare gold has no fence"
    batch = score(golds, tasks, RewardConfig.defaults(thinking=thinking), output="bare")
    assert batch.strict_pass.all() and batch.format_pass.all() and set(batch.error_class) == {"ok"}
    for name in ("format", "validity", "schema", "truncation", "repetition", "strictness") + (("reasoning",) * thinking):
        assert (batch.components[name] == 1.0).all(), f"{name} should be at its max on every bare gold"
    assert batch.total.min() == pytest.approx(1.0)


def test_a_fenced_reply_in_bare_mode_parses_but_loses_format_credit_and_strict_pass():
    fenced, bare = score([GOOD], [TASK], output="bare"), score([BARE], [TASK], output="bare")
    assert fenced.syntax_pass[0] and fenced.components["schema"][0] == 1.0, "its JSON still earns content credit"
    assert fenced.components["format"][0] == 0.0 and not fenced.format_pass[0]
    assert not fenced.strict_pass[0] and fenced.error_class == ["fenced"], "a JSON-mode client cannot json.loads it"
    assert bare.total[0] == pytest.approx(1.0) and fenced.total[0] < bare.total[0]
    assert score([BARE], [TASK], RewardConfig(mode="strict"), output="bare").total[0] == 1.0
    assert score([GOOD], [TASK], RewardConfig(mode="strict"), output="bare").total[0] == 0.0


def test_bare_mode_leaves_math_rows_alone_and_rejects_an_unknown_output():
    task = Task(id="m", kind="math", prompt="p", answer="18")
    assert score(["Answer: 18"], [task], output="bare").total.tolist() == [1.0]
    with pytest.raises(ValueError, match="output"):
        score([BARE], [TASK], output="json")
