"""Extraction and parsing rules of rewards.parse (one parse per completion)."""
from rewards.parse import parse_completion


def test_first_non_empty_json_fence_is_extracted_when_there_are_several():
    p = parse_completion('```json\n{"a": 1}\n```\ntext\n```json\n{"b": 2}\n```')
    assert p.source == "json_fence" and p.value == {"a": 1}, "the FIRST non-empty ```json block is the answer"
    assert len(p.blocks) == 2, "both closed blocks should be listed for the repetition component"


def test_empty_double_fence_does_not_hide_the_json_seed_gemma_collapse():
    p = parse_completion('```json\n```json\n{"a": [1, 2]}\n```')
    assert p.ok and p.value == {"a": [1, 2]}, f"an empty fence pair must be skipped, got {p.candidate!r}"


def test_json_tagged_block_wins_over_an_earlier_untagged_block():
    p = parse_completion('```\nnot json\n```\n```json\n[1]\n```')
    assert p.source == "json_fence" and p.value == [1], "json-tagged blocks have priority over untagged ones"


def test_untagged_fence_is_used_when_no_json_fence_exists():
    p = parse_completion('```\n{"a": 1}\n```')
    assert p.source == "fence" and p.ok


def test_think_blocks_are_removed_and_fences_inside_them_ignored():
    p = parse_completion('<think>draft ```json\n{"x": 0}\n``` hmm</think>\n```json\n{"y": 1}\n```')
    assert p.value == {"y": 1}, "a block inside <think> must not be extracted"
    assert p.think is not None and "draft" in p.think


def test_prefilled_think_closing_tag_only_counts_as_a_think_block():
    p = parse_completion('I need one key.</think>\n```json\n{"k": 1}\n```')
    assert p.think == "I need one key." and p.think_closed and p.value == {"k": 1}


def test_unclosed_think_leaves_no_answer():
    p = parse_completion('<think>still thinking ```json\n{"a": 1}\n```')
    assert p.source == "none" and not p.think_closed, "everything after an unclosed <think> is thinking"


def test_unclosed_fence_content_is_the_candidate_and_looks_truncated():
    p = parse_completion('```json\n{"a": [1, 2')
    assert p.source == "unclosed_fence" and not p.ok and p.looks_truncated


def test_bare_json_must_be_the_whole_answer():
    assert parse_completion('  {"a": 1}  ').ok
    p = parse_completion('{"a": 1} Hope this helps!')
    assert p.source == "bare" and not p.ok and p.error_kind == "extra_data", "trailing prose breaks bare JSON"


def test_prose_without_json_has_no_candidate():
    p = parse_completion("Sure, here you go: a = 1")
    assert p.source == "none" and p.candidate is None and not p.ok


def test_nan_and_infinity_are_rejected_as_not_json():
    p = parse_completion('```json\n{"a": NaN}\n```')
    assert not p.ok and p.error_kind == "non_finite_number", "Python accepts NaN, JSON does not"


def test_deep_nesting_is_a_parse_error_not_a_crash():
    p = parse_completion("[" * 10_000 + "]" * 10_000)
    assert not p.ok and p.error_kind == "too_deep"


def test_json_null_parses_as_ok_with_value_none():
    p = parse_completion("```json\nnull\n```")
    assert p.ok and p.value is None


def test_duplicate_member_names_do_not_parse_at_any_depth():
    for text in ('{"a": 1, "a": 1}', '[{"b": {"c": 1, "c": 2}}]', '{"x": [[{"k": 0, "k": 0}]]}'):
        p = parse_completion(text)
        assert not p.ok and p.error_kind == "duplicate_key", f"{text}: parsers disagree on which value wins"
    assert parse_completion('[{"a": 1}, {"a": 2}]').ok, "the same name in two objects is fine"


def test_lone_surrogates_do_not_parse_but_pairs_and_escaped_backslashes_do():
    for text in ('["\\ud800"]', '{"\\udc00": 1}', '["\ud800"]', '["\\ud83d"]'):
        assert parse_completion(text).error_kind == "lone_surrogate", f"{text!r} is not Unicode"
    assert parse_completion('["\\ud83d\\ude00"]').value == ["\U0001F600"]
    assert parse_completion('["\\\\ud800"]').value == ["\\ud800"], "an escaped backslash, then plain text"


def test_floats_beyond_a_double_are_non_finite_but_big_integers_parse():
    assert parse_completion("[1e999]").error_kind == "non_finite_number", "Python would make it inf"
    assert parse_completion("[1" + "0" * 400 + "]").value == [10 ** 400]
    assert parse_completion("[1e-400]").value == [0.0], "underflow is finite"


# ----------------------------------------------------------------------------- bare output (rule 5)

def test_bare_output_parses_the_whole_answer_whatever_json_value_it_is():
    for text, value in (('  {"a": 1}\n', {"a": 1}), ("[1, 2]", [1, 2]), ('"text"', "text"), ("42", 42)):
        p = parse_completion(text, output="bare")
        assert p.source == "bare" and p.ok and p.value == value, f"{text!r} is one JSON value"
    p = parse_completion('{"a": 1}\nHope this helps!', output="bare")
    assert p.source == "bare" and p.error_kind == "extra_data", "text after the value breaks the bare reply"


def test_bare_output_treats_prose_as_no_json_and_fences_inside_strings_as_content():
    p = parse_completion('Sure: {"a": 1}', output="bare")
    assert p.source == "none" and p.candidate is None, "prose before the JSON is not a bare JSON reply"
    p = parse_completion('{"code": "```py\\nprint(1)\\n```"}', output="bare")
    assert p.ok and p.value == {"code": "```py\nprint(1)\n```"}, "a fence inside a string is content, not a block"


def test_bare_output_still_extracts_a_reply_that_opens_with_a_fence():
    """The documented choice: a fenced reply in bare mode parses (dense validity/schema credit), but
    rewards.score gives it no format credit and no strict pass."""
    p = parse_completion('```json\n{"a": 1}\n```', output="bare")
    assert p.source == "json_fence" and p.ok and p.value == {"a": 1}


def test_bare_output_reads_the_json_after_the_think_block():
    p = parse_completion('<think>one key</think>\n{"k": 1}', output="bare")
    assert p.think == "one key" and p.source == "bare" and p.value == {"k": 1}
