"""Score a batch of completions against their tasks: one parse each, every component, one total.

Contract: `score(completions, tasks, config, truncated, output) -> RewardBatch` never raises on any text or
schema (only on a caller error: mismatched lengths); time is linear in the total text and bounded
per completion whatever the schema (tests/test_rewards_hardening.py: < 0.5 s). Component arrays
cover every name in COMPONENTS; a component that does not apply to a row's task kind is 0 there
(JSON components on math rows, correctness on JSON rows) and carries no weight for that row.

`output` is the reply format the prompt asked for (the run's `prompt.output`): "fenced", one ```json
block, or "bare", the JSON value alone (rewards.parse rule 5). It picks the extraction and the format
and strictness components (FORMATS); in bare mode strict pass and format pass also need the reply to
be the JSON alone, as a JSON-mode client's json.loads reads it, so a fenced reply there parses (syntax
pass, validity and schema credit) but fails strict pass with the error class "fenced". Math rows
ignore it.

Error classes (first that applies), shared with eval's error taxonomy:
  json: ok | truncated | no_json | parse_error:<kind> | schema_invalid | schema_unsupported | schema:<keyword>
        | fenced (bare output only: valid JSON, but inside a fence)
  math: ok | truncated | no_answer | wrong_answer
"truncated" means the engine cut the completion (finish_reason == "length") or the text looks cut
(an unclosed fence or <think>, open brackets) and nothing usable came out of it. The parse kinds
are rewards.parse's (duplicate_key, lone_surrogate, non_finite_number, too_deep, expecting_value, ...);
schema_invalid / schema_unsupported say the task's schema could not be used (rewards.validator).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curriculum.task import Task
from rewards import components as C
from rewards.config import COMPONENTS, GATE_COMPONENTS, RewardConfig
from rewards.math_answer import has_answer_line
from rewards.parse import OUTPUTS, Parsed, parse_completion
from rewards.validator import SCHEMA_INVALID, SCHEMA_UNSUPPORTED, compile_schema, failing_keywords, is_valid

# output -> (format component, strictness component): the components that judge the reply's wrapper
FORMATS = {"fenced": (C.format_score, C.strictness_score), "bare": (C.bare_format_score, C.bare_strictness_score)}


@dataclass
class RewardBatch:
    components: dict[str, np.ndarray]   # name -> float64 [N], every name in COMPONENTS
    total: np.ndarray                   # float64 [N], what the advantage is computed from
    strict_pass: np.ndarray             # bool [N]: parses AND validates (math: all values right)
    syntax_pass: np.ndarray             # bool [N]: the extracted JSON parses (math: an answer found)
    format_pass: np.ndarray             # bool [N]: a closed ```json block was extracted (bare: the reply is one
                                        # JSON value alone; math: "Answer:" line)
    has_think: np.ndarray               # bool [N]: a closed think block is present
    error_class: list[str]              # per row, see the module docstring
    schema_keywords: list[list[str]]    # per row, every failing JSON Schema keyword (empty if none)

    def __len__(self) -> int:
        return len(self.total)

    def metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Flat batch means for logging: reward/<component>, reward/total, reward/strict_pass, ..."""
        out = {f"{prefix}/{name}": float(v.mean()) if len(v) else 0.0 for name, v in self.components.items()}
        for name in ("total", "strict_pass", "syntax_pass", "format_pass", "has_think"):
            v = getattr(self, name)
            out[f"{prefix}/{name}"] = float(np.mean(v)) if len(v) else 0.0
        return out


def _json_row(p: Parsed, task: Task, truncated: bool, output: str) -> tuple[dict[str, float], bool, str, list[str]]:
    compiled = compile_schema(task.schema) if task.schema is not None else None
    format_fn, strictness_fn = FORMATS[output]
    scores = {"format": format_fn(p), "validity": C.validity_score(p),
              "schema": C.schema_score(p, compiled), "strictness": strictness_fn(p)}
    keywords: list[str] = []
    valid = p.ok and (compiled is None or is_valid(compiled, p.value))
    strict = valid and (output == "fenced" or p.source == "bare")
    cut = truncated or p.looks_truncated or not p.think_closed
    if strict:
        error = "ok"
    elif valid:
        error = "fenced"
    elif p.candidate is None:
        error = "truncated" if cut else "no_json"
    elif not p.ok:
        error = "truncated" if cut else f"parse_error:{p.error_kind}"
    else:
        keywords = failing_keywords(compiled, p.value)
        unusable = keywords[0] in (SCHEMA_INVALID, SCHEMA_UNSUPPORTED)
        error = keywords[0] if unusable else f"schema:{keywords[0]}"
    return scores, strict, error, keywords


def _math_row(p: Parsed, task: Task, truncated: bool) -> tuple[dict[str, float], bool, bool, str]:
    credit, found = C.correctness_score(p, task.answer)
    strict = found and credit == 1.0
    cut = truncated or not p.think_closed
    error = "ok" if strict else "wrong_answer" if found else "truncated" if cut else "no_answer"
    return {"correctness": credit}, strict, found, error


def score(completions: Sequence[str], tasks: Sequence[Task], config: RewardConfig | None = None,
          truncated: Sequence[bool] | np.ndarray | None = None, output: str = "fenced") -> RewardBatch:
    """Score completion i against tasks[i]. `truncated[i]`: the engine stopped it at max_tokens;
    `output`: "fenced" or "bare", the reply format the prompt asked for."""
    config = config or RewardConfig()
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    N = len(completions)
    if len(tasks) != N:
        raise ValueError(f"score() needs one task per completion, got {N} completions and {len(tasks)} tasks")
    if truncated is not None and len(truncated) != N:
        raise ValueError(f"truncated has {len(truncated)} flags for {N} completions")
    cut_flags = [False] * N if truncated is None else [bool(t) for t in truncated]

    comps = {name: np.zeros(N) for name in COMPONENTS}
    strict, syntax, fmt, think = (np.zeros(N, dtype=bool) for _ in range(4))
    gate = np.zeros(N, dtype=bool)
    weight_rows = np.zeros((N, len(COMPONENTS)))
    weight_by_kind = {kind: np.array([config.effective_weights(kind).get(c, 0.0) for c in COMPONENTS])
                      for kind in ("json", "math")}
    errors: list[str] = [""] * N
    keywords: list[list[str]] = [[] for _ in range(N)]

    for i, (text, task) in enumerate(zip(completions, tasks)):
        p = parse_completion(text, output)  # the one parse of this completion
        is_math = task.kind == "math"
        shared = {"reasoning": C.reasoning_score(p), "truncation": C.truncation_score(p, cut_flags[i], is_math),
                  "repetition": C.repetition_score(p)}
        if is_math:
            row, strict[i], syntax[i], errors[i] = _math_row(p, task, cut_flags[i])
            fmt[i] = has_answer_line(p.answer)
            gate[i] = syntax[i]
        else:
            row, strict[i], errors[i], keywords[i] = _json_row(p, task, cut_flags[i], output)
            syntax[i] = p.ok
            fmt[i] = row["format"] == 1.0   # fenced: a ```json block opened on its own line; bare: one JSON value
            gate[i] = fmt[i] and p.ok
        for name, value in {**shared, **row}.items():
            comps[name][i] = value
        think[i] = p.think is not None and p.think_closed
        weight_rows[i] = weight_by_kind["math" if is_math else "json"]

    values = np.stack([comps[c] for c in COMPONENTS], axis=1)      # [N, K]
    if config.mode == "strict":
        total = strict.astype(np.float64)
    elif config.gated:
        in_gate = np.array([c in GATE_COMPONENTS for c in COMPONENTS])  # [K]
        mask = np.where(in_gate[None, :], 1.0, gate[:, None].astype(np.float64))  # [N, K]
        total = (values * weight_rows * mask).sum(axis=1)
    else:
        total = (values * weight_rows).sum(axis=1)
    return RewardBatch(components=comps, total=total, strict_pass=strict, syntax_pass=syntax,
                       format_pass=fmt, has_think=think, error_class=errors, schema_keywords=keywords)
