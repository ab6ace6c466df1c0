"""Linear-equation tasks: unique exact solutions, checkable answers, held-out split."""
import re
from fractions import Fraction

import pytest

from curriculum.linear_equations import TIER_BY_VARS, determinant, generate_linear_tasks
from curriculum.prompts import format_gold
from curriculum.task import Task
from rewards import score
from rewards.math_answer import parse_expected

TASKS = generate_linear_tasks(300, seed=3, split="train", rational=True)
TERM = re.compile(r"([+-]?\s*\d*)([xyz])")


def _system(prompt):
    rows, rhs = [], []
    names = sorted(set(re.findall(r"[xyz]", prompt.split(":", 1)[1])))
    for line in prompt.splitlines()[1:]:
        lhs, b = line.split("=")
        coeffs = dict.fromkeys(names, 0)
        constant = 0
        for sign_num, var in TERM.findall(lhs):
            s = sign_num.replace(" ", "")
            coeffs[var] = int(s + "1") if s in ("", "+", "-") else int(s)
        for c in re.findall(r"([+-])\s*(\d+)(?![\dxyz])", lhs):
            constant += int(c[0] + c[1])
        rows.append([coeffs[n] for n in names])
        rhs.append(int(b) - constant)
    return names, rows, rhs


def test_every_system_has_a_unique_solution_equal_to_the_answer():
    for t in TASKS:
        names, rows, rhs = _system(t.prompt)
        assert determinant([[Fraction(c) for c in r] for r in rows]) != 0, f"singular system: {t.prompt}"
        sol = parse_expected(t.answer)
        for r, b in zip(rows, rhs):
            assert sum(c * sol[n] for c, n in zip(r, names)) == b, f"answer {t.answer} does not solve {t.prompt}"


def test_tier_is_the_number_of_unknowns():
    for t in TASKS:
        assert t.tier == TIER_BY_VARS[len(parse_expected(t.answer))]


@pytest.mark.parametrize("thinking", [False, True])
def test_gold_solution_earns_full_correctness_and_strict_pass(thinking):
    batch = score([format_gold(t, thinking) for t in TASKS], TASKS)
    assert batch.strict_pass.all() and batch.format_pass.all()
    assert (batch.components["correctness"] == 1.0).all()


def test_a_wrong_value_fails_strict_pass_with_partial_credit():
    t = next(t for t in TASKS if t.tier == "medium")
    sol = parse_expected(t.answer)
    x, y = sol["x"], sol["y"] + 1
    batch = score([f"Answer: x = {x}, y = {y}"], [t])
    assert not batch.strict_pass[0] and batch.components["correctness"][0] == 0.5


def test_splits_are_disjoint_and_generation_is_deterministic():
    train = {t.prompt for t in generate_linear_tasks(2000, 0, "train")}
    evals = {t.prompt for t in generate_linear_tasks(500, 0, "eval")}
    assert not train & evals, "eval systems must never occur in training"
    assert [t.prompt for t in generate_linear_tasks(50, 9, "eval")] == [t.prompt for t in generate_linear_tasks(50, 9, "eval")]


def test_gsm8k_style_answers_are_checked_from_the_hash_line():
    task = Task(id="g", kind="math", prompt="q", answer="18", gold="16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 18")
    gold = format_gold(task, thinking=False)
    assert gold.endswith("Answer: 18") and "<<" not in gold
    batch = score([gold, "She makes $18 every day.\n#### 18", "#### 1,800"], [task] * 3)
    assert batch.strict_pass.tolist() == [True, True, False]
