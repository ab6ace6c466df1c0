"""Final-answer extraction and checking for math tasks (linear systems, GSM8K).

Contract: pure functions of text; never raise; linear time. Numbers are compared exactly as
fractions (so "18", "18.0", "$18", "18 dollars", "1,8" is NOT 18 but "1,800" is 1800).

Where the final answer is looked for (the first rule that finds something wins, and within a rule
the LAST occurrence counts, because models restate the answer at the end):
1. an "Answer: …" line (the format SYSTEM_PROMPT_MATH asks for; also "final answer: …",
   "the answer is …");
2. `\\boxed{…}`;
3. GSM8K's "#### …" (its reference answers end that way; github.com/openai/grade-school-math);
4. the last number of the text (single-number answers only).
Expected answers are canonical strings: a number ("18", "-3/4", "2.5") or assignments
("x=3, y=-1/2"); for assignments credit is the share of variables that are right.
"""
from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?/\s?\d+)?|-?\.\d+"
NUMBER_RE = re.compile(_NUM)
FRAC_RE = re.compile(r"\\d?t?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}")
ANSWER_LINE_RE = re.compile(r"\b(?:final answer|answer is|answer)\b\s*[:=]?\s*([^\n]{0,300})", re.IGNORECASE)
STRICT_ANSWER_LINE_RE = re.compile(r"^[ \t*#]*answer[ \t*]*:[ \t]*(\S[^\n]{0,300})", re.IGNORECASE | re.MULTILINE)
BOXED_RE = re.compile(r"\\boxed\{([^{}\n]{0,200}(?:\{[^{}\n]{0,100}\}[^{}\n]{0,100})*)\}")
GSM8K_RE = re.compile(r"####\s*([^\n]{0,100})")
ASSIGN_RE = re.compile(r"\b([a-zA-Z])\s*=\s*(" + _NUM + r")(?![\w.(*^/])(?!\s*[+*/^(]|\s*-\s*\d)")


def parse_number(s: str) -> Fraction | None:
    """'1,234.5' / '$18' / '-3/4' / '\\frac{3}{4}' / '18%' -> Fraction; None when there is no number."""
    if not s:
        return None
    s = FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    m = NUMBER_RE.search(s)
    if m is None:
        return None
    raw = m.group(0).replace(",", "").replace(" ", "")
    try:
        if "/" in raw:
            num, den = raw.split("/", 1)
            return Fraction(num) / Fraction(den) if Fraction(den) != 0 else None
        return Fraction(raw)
    except (ValueError, ZeroDivisionError):
        return None


def final_answer_text(text: str) -> str | None:
    """The raw text of the final answer (rules 1-3 of the module docstring), None if absent."""
    for regex in (ANSWER_LINE_RE, BOXED_RE, GSM8K_RE):
        last = None
        for last in regex.finditer(text):
            pass
        if last is not None and last.group(1).strip():
            return FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", last.group(1))
    return None


def has_answer_line(text: str) -> bool:
    """The instructed format: a line that starts with 'Answer:'."""
    return STRICT_ANSWER_LINE_RE.search(text) is not None


def parse_expected(answer: str) -> dict[str, Fraction] | Fraction | None:
    """Canonical answer -> {var: value} for assignments, a Fraction for one number."""
    pairs = {v: parse_number(x) for v, x in ASSIGN_RE.findall(answer or "")}
    if pairs and all(x is not None for x in pairs.values()):
        return pairs
    return parse_number(answer or "")


def check_answer(text: str, expected: str) -> tuple[float, bool]:
    """(credit in [0, 1], an answer was found). Credit 1.0 iff every expected value is right."""
    target = parse_expected(expected)
    if target is None:
        return 0.0, False
    final = final_answer_text(text)
    if isinstance(target, dict):
        if len(target) == 1 and final is not None and not ASSIGN_RE.search(final):
            got = parse_number(final)           # "Answer: 4" for a one-variable equation
            if got is not None:
                return float(got == next(iter(target.values()))), True
        source = final if final is not None and ASSIGN_RE.search(final) else text
        found: dict[str, Fraction | None] = {}
        for var, raw in ASSIGN_RE.findall(source):   # later assignments overwrite earlier ones
            found[var] = parse_number(raw)
        if not found:
            return 0.0, False
        right = sum(1 for var, value in target.items() if found.get(var) == value)
        return right / len(target), True
    if final is not None:
        got = parse_number(final)
    else:
        last = None
        for last in NUMBER_RE.finditer(text):
            pass
        got = parse_number(last.group(0)) if last is not None else None
    if got is None:
        return 0.0, False
    return float(got == target), True


def canonical_number(value: Fraction) -> str:
    """Fraction -> '3', '-3/4' (the canonical answer strings the generators write)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
