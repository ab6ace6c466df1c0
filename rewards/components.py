"""The reward components. Each reads the shared `Parsed` of a completion and returns one float.

Contract: every function here is total (never raises) and returns a finite float in the range its
docstring gives; `rewards.score` maps them over a batch. They know nothing of weights or configs.
Formulas are the seed's (seed-repo-study.md section 4.2) unless a docstring says "Fix:".
"""
from __future__ import annotations

import re

from rewards.math_answer import check_answer
from rewards.parse import Parsed
from rewards.schema_credit import schema_credit
from rewards.validator import Compiled

CLOSED_FENCE_SOURCES = ("json_fence", "fence", "other_fence")

# The seed's degenerate-loop detector: a 2-30 char unit repeated 5+ times in a row. On long texts
# Python's backtracking makes it slow (each start position tries 29 unit lengths), so only the
# first and last REPEAT_WINDOW chars are searched: loops that matter sit at the end of a
# completion that ran into max_tokens, or start early and fill it.
REPEAT_RE = re.compile(r"(.{2,30})\1{4,}")
REPEAT_WINDOW = 2048
PLACEHOLDER_WORDS = frozenset("your reasoning here thinking thoughts thought goes think insert step steps by "
                              "reason the".split())
WORD_RE = re.compile(r"\w+")


def format_score(p: Parsed) -> float:
    """1.0: the answer is a closed ```json block; 0.5: another closed fence; 0: anything else.
    Fix: credit follows the block that was actually extracted, and fences inside <think> do not
    count (the seed matched a ```json pair anywhere, even in the reasoning). Beyond the seed: the
    block must open as a Markdown fence (marker at a line start, info string alone on its line),
    so echoing the instruction "start with ```json on its own line, then ..." earns nothing."""
    if not p.fence_on_own_line:
        return 0.0
    if p.source == "json_fence":
        return 1.0
    return 0.5 if p.source in ("fence", "other_fence") else 0.0


def bare_format_score(p: Parsed) -> float:
    """Bare output (rewards.parse rule 5). 1.0: the answer is exactly one JSON value (whitespace
    around it allowed); 0.5: it opens as a JSON document does ({ or [) but is not one value alone
    (broken, cut off, or text after it); 0: anything else - a fence, prose first, nothing."""
    if p.source != "bare":
        return 0.0
    return 1.0 if p.ok else 0.5


def validity_score(p: Parsed) -> float:
    """1.0 parses; no candidate 0; else graduated by where the parser failed (error offset / length):
    > 0.85 -> 0.7, > 0.40 -> 0.4, else 0.2; 0.1 when the error has no offset (too deep, and what
    I-JSON rejects: NaN, duplicate keys, lone surrogates; rewards.parse rule 4).
    Fix: "Unterminated string" is placed at the end of the text (the decoder read to the end; the
    seed used the string's start and under-rated nearly complete but cut documents)."""
    if p.candidate is None:
        return 0.0
    if p.ok:
        return 1.0
    if p.error_pos is None:
        return 0.1
    ratio = p.error_pos / max(len(p.candidate), 1)
    return 0.7 if ratio > 0.85 else 0.4 if ratio > 0.40 else 0.2


def schema_score(p: Parsed, compiled: Compiled | None) -> float:
    """[0, 1]: share of the schema's constraints satisfied (rewards.schema_credit), exactly 1.0 iff
    the instance validates; 0 when nothing parsed. A json task without a schema accepts any JSON.
    Fix: a real validator replaces the seed's 13 hand-written checks (study 10.3)."""
    if not p.ok:
        return 0.0
    return 1.0 if compiled is None else schema_credit(p.value, compiled)


def reasoning_score(p: Parsed) -> float:
    """[-0.5, 1]: no closed think block -> -0.5; placeholder parroting -> -0.5; < 10 chars -> -0.2;
    else min((len - 10) / 70, 1), a ramp from 10 to 80 characters (the seed's).
    Fix: a prefilled "<think>" (completion starts inside the block, only "</think>" is seen) counts;
    parroting covers any short text made only of template words ("Your reasoning here.",
    "Thinking goes here"), not only the seed's three words."""
    if p.think is None or not p.think_closed:
        return -0.5
    body = p.think.strip()
    words = WORD_RE.findall(body[:200].lower())
    if len(body) < 200 and len(words) >= 2 and set(words) <= PLACEHOLDER_WORDS:
        return -0.5
    if len(body) < 10:
        return -0.2
    return min((len(body) - 10) / 70.0, 1.0)


def truncation_score(p: Parsed, truncated: bool | None, math: bool = False) -> float:
    """-1: cut off; 0: nothing JSON-like (neutral); 1: complete. Math rows: -1 cut off, else 1.
    Cut off = the engine says finish_reason == "length", or an opening fence never closes, or a
    <think> never closes, or bare JSON fails to parse with open brackets / a dangling ',' ':' / an
    open string. A closed fence is complete (its content may still be invalid: that is validity's).
    Fix: the engine's truncation flag is used when given; an unclosed <think> counts as cut."""
    if truncated or not p.think_closed or p.source == "unclosed_fence":
        return -1.0
    if math:
        return 1.0
    if p.source == "none":
        return 0.0
    if p.source == "bare" and not p.ok and p.looks_truncated:
        return -1.0
    return 1.0


def _uniqueness(text: str) -> float:
    lines = [s for s in (line.strip() for line in text.splitlines()) if len(s) > 5]
    line_ratio = len(set(lines)) / len(lines) if len(lines) >= 6 else 1.0
    tokens = text.split()
    if len(tokens) >= 20:
        trigrams = list(zip(tokens, tokens[1:], tokens[2:]))
        return min(line_ratio, len(set(trigrams)) / len(trigrams))
    return line_ratio


def repetition_score(p: Parsed) -> float:
    """-1 / 0 / 1: two or more fenced blocks -> -1; a 2-30 char unit repeated 5+ times -> -1; text
    under 80 chars -> 1; else min(line uniqueness, word-trigram uniqueness): > 0.5 -> 1, > 0.3 -> 0,
    else -1 (the seed's rules).
    Fix: the JSON document that parsed is left out of the text examined. A valid array of five
    `true`s or a pretty-printed list of similar objects is the schema's business, and the seed's
    regex and line-uniqueness rules punished them. Fix: the regex is bounded (REPEAT_WINDOW)."""
    if len(p.blocks) >= 2:
        return -1.0
    if p.ok and p.span is not None:
        text = p.answer[:p.span[0]] + "\n" + p.answer[p.span[1]:] + "\n" + (p.think or "")
    else:
        text = p.text
    windows = (text,) if len(text) <= 2 * REPEAT_WINDOW else (text[:REPEAT_WINDOW], text[-REPEAT_WINDOW:])
    if any(REPEAT_RE.search(w) for w in windows):
        return -1.0
    if len(text.strip()) < 80:
        return 1.0
    ratio = _uniqueness(text)
    return 1.0 if ratio > 0.5 else 0.0 if ratio > 0.3 else -1.0


def strictness_score(p: Parsed) -> float:
    """-1 .. 1: no closed fence (or empty answer) -> 0 (neutral); else by the text outside the
    extracted block (think removed): none -> 1; <= 10 chars -> 0.5; share of the answer < 0.2 -> 0;
    < 0.5 -> -0.5; else -1. Fix: "outside" is measured around the block actually extracted."""
    answer = p.answer.strip()
    if not answer or p.source not in CLOSED_FENCE_SOURCES or p.span is None:
        return 0.0
    return _extra_text_score((p.answer[:p.span[0]] + p.answer[p.span[1]:]).strip(), answer)


def bare_strictness_score(p: Parsed) -> float:
    """Bare output: the same table over the text that is not the JSON value itself. Exactly one value
    -> 1; a value followed by text (the parse stopped at "extra data") -> graded by that text; a
    fenced reply -> graded by everything around the fenced content (the markers count: a JSON-mode
    client's json.loads fails on them); no JSON, or a value broken before its end -> 0 (neutral)."""
    answer = p.answer.strip()
    if not answer or p.candidate is None:
        return 0.0
    if p.source == "bare":
        if p.ok:
            return 1.0
        if p.error_kind != "extra_data" or p.error_pos is None:
            return 0.0
        return _extra_text_score(p.candidate[p.error_pos:].strip(), answer)
    at = max(p.answer.find(p.candidate, p.span[0] if p.span else 0), 0)  # a stripped slice of the answer: found
    return _extra_text_score((p.answer[:at] + p.answer[at + len(p.candidate):]).strip(), answer)


def _extra_text_score(extra: str, answer: str) -> float:
    if not extra:
        return 1.0
    if len(extra) <= 10:
        return 0.5
    ratio = len(extra) / len(answer)
    return 0.0 if ratio < 0.20 else -0.5 if ratio < 0.50 else -1.0


def correctness_score(p: Parsed, expected: str | None) -> tuple[float, bool]:
    """[0, 1] for math tasks: share of the expected values right (1.0 iff all); and whether any
    final answer was found. The answer is read from the answer region (think blocks removed)."""
    if not expected:
        return 0.0, False
    return check_answer(p.answer, expected)
