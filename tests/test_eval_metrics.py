"""eval metrics and statistics against hand-made completions and known values (no model)."""
import json
import math

import numpy as np
import pytest

from curriculum.json_tasks import generate_json_tasks
from curriculum.linear_equations import generate_linear_tasks
from curriculum.prompts import format_gold
from eval.metrics import coarse_error, evaluate, outcomes
from eval.records import Completion, Decoding, Generated
from eval.stats import bootstrap_mean, pass_at_k, paired_outcomes, prompt_rate, wilson


# ---- pass@k (Chen et al. 2021) ---------------------------------------------------------------
def naive_pass_at_k(n, c, k):
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n,c,k", [(10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 10, 10), (20, 1, 10), (5, 4, 2), (100, 7, 10)])
def test_pass_at_k_matches_binomial_formula(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(naive_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_known_values():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3), "pass@1 is c/n"
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5), "1 - C(3,2)/C(4,2) = 1 - 3/6"
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 3, 3) == 1.0, "n - c < k means a pass is certain"
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


# ---- confidence intervals ---------------------------------------------------------------------
def test_wilson_known_value_and_bounds():
    lo, hi = wilson(5, 10)   # textbook: 0.2366, 0.7634
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.08, "an all-fail sample still has a non-zero upper bound"
    lo, hi = wilson(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.95
    assert wilson(0, 0) == (0.0, 1.0), "no data: the whole interval"


def test_bootstrap_ci_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, big = rng.random(30), rng.random(3000)
    lo_s, hi_s = bootstrap_mean(small)
    lo_b, hi_b = bootstrap_mean(big)
    assert lo_s <= small.mean() <= hi_s and lo_b <= big.mean() <= hi_b
    assert hi_b - lo_b < (hi_s - lo_s) / 5, "10x... 100x more data gives a much tighter interval"
    assert bootstrap_mean(small, seed=1) == bootstrap_mean(small, seed=1), "same seed, same interval"


def test_prompt_rate_uses_prompt_means_for_n_above_one():
    success = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)   # [P=3, n=4]
    r = prompt_rate(success)
    assert r["rate"] == pytest.approx(0.5) and r["num"] == 3
    assert prompt_rate(np.array([[1], [0], [0], [1]]))["rate"] == 0.5
    none = prompt_rate(np.zeros((40, 5), dtype=bool))
    assert none["lo"] == 0.0 and none["hi"] > 0.05, "an all-fail sample still bounds the rate from above"


def test_paired_outcomes_counts():
    base = np.array([[1], [1], [0], [0], [0]])
    new = np.array([[1], [0], [1], [1], [0]])
    c = paired_outcomes(base, new)
    assert (c["both_pass"], c["regressed"], c["rescued"], c["both_fail"]) == (1, 1, 2, 1)
    assert c["delta"] == pytest.approx(0.2)


# ---- metrics on hand-made completions --------------------------------------------------------
def _generated(rows, label="baseline", thinking=False):
    return Generated(label=label, task_ids=[tid for tid, _ in rows],
                     completions=[[Completion(t, len(t.split()), f) for t, f in samples] for _, samples in rows],
                     meta={"decoding": Decoding(thinking=thinking).to_dict()})


def test_strict_syntax_format_and_taxonomy():
    task = generate_json_tasks(3, seed=0, split="eval")[0]
    gold = format_gold(task, thinking=False)
    bare = json.dumps(task.gold)
    cases = [
        (gold, "stop"),                                       # strict, syntax, format
        (bare, "stop"),                                       # strict, syntax, NOT format
        ("```json\n" + json.dumps({"zzz_unexpected": 1}) + "\n```", "stop"),   # syntax + format, not strict
        ("Sure! I cannot produce JSON today.", "stop"),       # no JSON at all
        ("```json\n{\"a\": [1, 2,", "length"),                # cut by max_tokens
        ("```json\n{\"a\": 1,}\n```", "stop"),                 # parse error
    ]
    gen = _generated([(task.id, cases)])
    metrics, rows = evaluate(gen, [task], ks=(1, 2, 6))
    assert [r["strict"] for r in rows] == [True, True, False, False, False, False]
    assert [r["syntax"] for r in rows] == [True, True, True, False, False, False]
    assert [r["format"] for r in rows] == [True, False, True, False, False, True], "a fenced block counts as format even if it does not parse"
    assert rows[3]["error_class"] == "no_json" and rows[4]["error_class"] == "truncated"
    assert rows[5]["error_class"].startswith("parse_error:"), rows[5]["error_class"]
    assert rows[2]["error_class"].startswith("schema:") and rows[2]["schema_keywords"], "a schema violation names its keyword"
    assert metrics["strict"]["rate"] == pytest.approx(2 / 6) and metrics["syntax"]["rate"] == pytest.approx(3 / 6)
    assert metrics["pass_at_k"]["1"]["rate"] == pytest.approx(2 / 6)
    assert metrics["pass_at_k"]["2"]["rate"] == pytest.approx(naive_pass_at_k(6, 2, 2))
    assert metrics["pass_at_k"]["6"]["rate"] == 1.0
    assert metrics["errors_coarse"]["schema_violation"] == 1 and metrics["errors_coarse"]["ok"] == 2
    assert set(metrics["per_tier"]) == {task.tier} and metrics["num_completions"] == 6
    assert "format" in metrics["components"] and "correctness" not in metrics["components"]


def test_a_bare_output_run_is_judged_as_bare_json():
    task = generate_json_tasks(3, seed=0, split="eval")[0]
    cases = [(format_gold(task, False, "bare"), "stop"), (format_gold(task, False), "stop")]
    gen = Generated(label="baseline", task_ids=[task.id], completions=[[Completion(t, 9, f) for t, f in cases]],
                    meta={"decoding": Decoding(output="bare").to_dict()})
    metrics, rows = evaluate(gen, [task], ks=(1,))
    assert [r["strict"] for r in rows] == [True, False] and [r["format"] for r in rows] == [True, False]
    assert [r["syntax"] for r in rows] == [True, True], "the fenced reply still parses"
    assert rows[1]["error_class"] == "fenced" and coarse_error("fenced") == "fenced"
    assert "output" not in Decoding().to_dict(), "a default field added later must not change cached baselines' keys"


def test_per_tier_and_skipped_and_outcomes():
    tasks = generate_json_tasks(6, seed=1, split="eval")
    rows = [(t.id, [(format_gold(t, False) if i % 2 == 0 else "no json", "stop")]) for i, t in enumerate(tasks[:4])]
    gen = _generated(rows)
    gen.skipped = {tasks[4].id: "context", tasks[5].id: "grammar_rejected"}
    metrics, recs = evaluate(gen, tasks, ks=(1,))
    assert metrics["num_prompts"] == 4 and metrics["skipped"] == {"context": 1, "grammar_rejected": 1}
    assert metrics["strict"]["rate"] == 0.5 and 0 < metrics["strict"]["lo"] < 0.5 < metrics["strict"]["hi"] < 1
    assert sum(v["strict"]["num"] for v in metrics["per_tier"].values()) == 4
    out = outcomes(gen, recs)
    assert list(out) == [t.id for t in tasks[:4]] and out[tasks[0].id].tolist() == [True]


def test_math_exact_answer():
    task = generate_linear_tasks(1, seed=0, split="eval")[0]
    right = "Work.\nAnswer: " + task.answer.replace("=", " = ")
    gen = _generated([(task.id, [(right, "stop"), ("Answer: x = 12345", "stop"), ("I am not sure", "stop")])])
    metrics, rows = evaluate(gen, [task])
    assert [r["strict"] for r in rows] == [True, False, False], [r["error_class"] for r in rows]
    assert [r["error_class"] for r in rows] == ["ok", "wrong_answer", "no_answer"]


def test_coarse_error():
    assert coarse_error("schema:required") == "schema_violation"
    assert coarse_error("parse_error:extra_data") == "parse_error"
    assert coarse_error("no_json") == "no_json"


def test_everything_skipped_gives_empty_rates_not_errors():
    task = generate_json_tasks(1, seed=0, split="eval")[0]
    gen = Generated(label="constrained", task_ids=[], completions=[], skipped={task.id: "grammar_rejected"})
    metrics, rows = evaluate(gen, [task])
    assert rows == [] and metrics["num_prompts"] == 0 and metrics["strict"]["num"] == 0
    assert metrics["skipped"] == {"grammar_rejected": 1}
