"""Systems of linear equations with a unique, exactly known solution (seed 001's in-domain task).

Contract: `generate_linear_tasks(n, seed, split, ...)` is pure in its arguments. Each task has
kind="math", tier by number of unknowns (simple: 1, medium: 2, hard: 3), `answer` the canonical
string "x=3, y=-1/2" (variables in order, integers or reduced fractions p/q with q > 0), and
`gold` a worked solution ending in the line "Answer: x = 3, y = -1/2" (the format
SYSTEM_PROMPT_MATH asks for; rewards.math_answer checks it).

Uniqueness: the coefficient matrix is drawn until its determinant is non-zero (exact Fraction
arithmetic), so the solution is unique; it is chosen first, and the right-hand sides computed from
it, so it is exact. With `rational=True` a share of solutions are fractions, and each equation is
scaled to integer coefficients. Held-out split by construction: a system belongs to "eval" iff
the SHA-1 of its canonical text falls in bucket 3 of 4; each split redraws until it gets its own.
"""
from __future__ import annotations

import hashlib
import random
from fractions import Fraction
from math import lcm
from typing import Literal

from curriculum.task import Task

VARIABLES = ("x", "y", "z")
TIER_BY_VARS = {1: "simple", 2: "medium", 3: "hard"}
DEFAULT_VAR_MIX = {1: 0.2, 2: 0.4, 3: 0.4}
COEFFICIENTS = tuple(c for c in range(-9, 10) if c != 0)   # no zero terms: every unknown in every equation


def fmt(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def equation_text(coeffs: list[int], rhs: int, names: tuple[str, ...]) -> str:
    """[2, -1], 7 -> '2x - y = 7' (zero terms dropped, unit coefficients implicit)."""
    parts = []
    for c, v in zip(coeffs, names):
        if c == 0:
            continue
        mag = "" if abs(c) == 1 else str(abs(c))
        sign = "-" if c < 0 else "+"
        parts.append(f"{'-' if c < 0 else ''}{mag}{v}" if not parts else f"{sign} {mag}{v}")
    return f"{' '.join(parts)} = {rhs}"


def determinant(m: list[list[Fraction]]) -> Fraction:
    m = [row[:] for row in m]
    det, k = Fraction(1), len(m)
    for col in range(k):
        pivot = next((r for r in range(col, k) if m[r][col] != 0), None)
        if pivot is None:
            return Fraction(0)
        if pivot != col:
            m[col], m[pivot], det = m[pivot], m[col], -det
        det *= m[col][col]
        for r in range(col + 1, k):
            f = m[r][col] / m[col][col]
            m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    return det


def draw_system(rng: random.Random, k: int, rational: bool) -> tuple[list[list[int]], list[int], list[Fraction]]:
    """Integer coefficients, integer right-hand sides, unique solution (exact)."""
    while True:
        sol = [Fraction(rng.randint(-9, 9)) if not (rational and rng.random() < 0.5)
               else Fraction(rng.randint(-19, 19), rng.choice((2, 3, 4, 5))) for _ in range(k)]
        A = [[rng.choice(COEFFICIENTS) for _ in range(k)] for _ in range(k)]
        if determinant([[Fraction(c) for c in r] for r in A]) == 0:
            continue
        rows, rhs = [], []
        for row in A:
            b = sum(Fraction(c) * s for c, s in zip(row, sol))
            scale = lcm(b.denominator, 1)
            rows.append([c * scale for c in row])
            rhs.append(int(b * scale))
        return rows, rhs, sol


def solution_text(rows: list[list[int]], rhs: list[int], sol: list[Fraction], names: tuple[str, ...]) -> str:
    """A short worked solution: eliminate, back-substitute, check, answer line."""
    k = len(names)
    lines = [f"Solve by elimination for {', '.join(names)}."]
    if k == 1:
        lines.append(f"Divide both sides of {equation_text(rows[0], rhs[0], names)} by {rows[0][0]}: "
                     f"{names[0]} = {fmt(Fraction(rhs[0], rows[0][0]))}.")
    else:
        m = [[Fraction(c) for c in row] + [Fraction(b)] for row, b in zip(rows, rhs)]
        for col in range(k):
            pivot = next(r for r in range(col, k) if m[r][col] != 0)
            m[col], m[pivot] = m[pivot], m[col]
            for r in range(col + 1, k):
                f = m[r][col] / m[col][col]
                if f != 0:
                    m[r] = [a - f * b for a, b in zip(m[r], m[col])]
            if col + 1 < k:
                reduced = [equation_text_frac(m[r][:k], m[r][k], names) for r in range(col + 1, k)]
                lines.append(f"Eliminate {names[col]}: " + "; ".join(reduced) + ".")
        for i in reversed(range(k)):
            lines.append(f"Back-substitute: {names[i]} = {fmt(sol[i])}.")
    checks = [" + ".join(f"{c}*({fmt(v)})" for c, v in zip(row, sol)) + f" = {b}" for row, b in zip(rows, rhs)]
    lines.append("Check: " + "; ".join(checks) + ".")
    lines.append("Answer: " + ", ".join(f"{v} = {fmt(s)}" for v, s in zip(names, sol)))
    return "\n".join(lines)


def equation_text_frac(coeffs: list[Fraction], rhs: Fraction, names: tuple[str, ...]) -> str:
    scale = lcm(*(c.denominator for c in coeffs), rhs.denominator)
    return equation_text([int(c * scale) for c in coeffs], int(rhs * scale), names)


def split_of(text: str) -> str:
    return "eval" if int(hashlib.sha1(text.encode()).hexdigest(), 16) % 4 == 3 else "train"


def generate_linear_tasks(n: int, seed: int, split: Literal["train", "eval"],
                          var_mix: dict[int, float] | None = None, rational: bool = False) -> list[Task]:
    """n systems of the split; `var_mix` maps number of unknowns (1-3) to weight."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    mix = var_mix or DEFAULT_VAR_MIX
    if not mix or set(mix) - set(TIER_BY_VARS) or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"var_mix maps 1, 2 or 3 unknowns to non-negative weights, got {mix}")
    rng = random.Random(f"linear:{split}:{seed}:{rational}")
    ks, weights = zip(*sorted(mix.items()))
    tasks = []
    for i in range(n):
        k = rng.choices(ks, weights)[0]
        names = VARIABLES[:k]
        while True:
            rows, rhs, sol = draw_system(rng, k, rational)
            system, first_step = "\n".join(equation_text(row, b, names) for row, b in zip(rows, rhs)), ""
            if k == 1:  # "ax + c = d": one move more than a division
                c = rng.choice([v for v in range(-20, 21) if v != 0])
                lhs = equation_text(rows[0], 0, names).split(" = ")[0]
                system = f"{lhs} {'+' if c > 0 else '-'} {abs(c)} = {rhs[0] + c}"
                move = f"Subtract {c} from" if c > 0 else f"Add {-c} to"
                first_step = f"{move} both sides: {equation_text(rows[0], rhs[0], names)}.\n"
            if split_of(system) == split:
                break
        unknowns = names[0] if k == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        prompt = (f"Solve the following {'equation' if k == 1 else 'system of linear equations'} "
                  f"for {unknowns}:\n{system}")
        answer = ", ".join(f"{v}={fmt(s)}" for v, s in zip(names, sol))
        tasks.append(Task(id=f"linear/{split}/{seed}/{i}/{k}var", kind="math", prompt=prompt, tier=TIER_BY_VARS[k],
                          template_id=f"linear_{k}var", gold=first_step + solution_text(rows, rhs, sol, names),
                          answer=answer,
                          meta={"split": split, "seed": seed, "rational": rational}))
    return tasks
