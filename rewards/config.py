"""Reward configuration: which components count, with which weights, in which mode.

Contract: a `RewardConfig` is validated once (pydantic, extra="forbid"); an unknown component name
or a non-finite weight is a ValidationError that names it. `effective_weights(kind)` is the only
place weights are derived; `rewards.score` reads nothing else.

Weights (seed-repo-study.md 4.4, the weights of every reported run):

    mode      format validity schema reasoning truncation repetition strictness
    no-think   0.20   0.25    0.25    0.00       0.10       0.10       0.10
    think      0.10   0.15    0.20    0.25       0.10       0.10       0.10

When `thinking` is False the reasoning weight is set to 0 and spread over the other positive
weights in proportion (each is multiplied by 1 + w_reasoning / sum(others)), as the seed does.
Math tasks use `math_weights` (default: correctness only, the outcome reward of seed 001).

Modes: "weighted" sums w_c * r_c. "strict" is the outcome-only reward 1[strict pass] (JSON parses
AND validates; math: every value right). `gated` (seed 002's hierarchical reward): the gate
components (format, validity, truncation) always count; the others count only on rows whose gate
holds (format pass - a closed ```json block, or in bare output the JSON value alone - and a parse;
math: a final answer was found).
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

COMPONENTS = ("format", "validity", "schema", "reasoning", "truncation", "repetition", "strictness",
              "correctness")
GATE_COMPONENTS = ("format", "validity", "truncation")
NO_THINK_WEIGHTS = {"format": 0.20, "validity": 0.25, "schema": 0.25, "reasoning": 0.0,
                    "truncation": 0.10, "repetition": 0.10, "strictness": 0.10}
THINK_WEIGHTS = {"format": 0.10, "validity": 0.15, "schema": 0.20, "reasoning": 0.25,
                 "truncation": 0.10, "repetition": 0.10, "strictness": 0.10}
MATH_WEIGHTS = {"correctness": 1.0}


def redistribute_reasoning(weights: dict[str, float]) -> dict[str, float]:
    """Drop the reasoning weight and scale the other positive weights up to keep the same sum."""
    w_reasoning = weights.get("reasoning", 0.0)
    others = sum(w for name, w in weights.items() if name != "reasoning" and w > 0)
    out = {name: w for name, w in weights.items() if name != "reasoning"}
    if w_reasoning and others > 0:
        out = {name: (w * (1 + w_reasoning / others) if w > 0 else w) for name, w in out.items()}
    return out


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(default_factory=lambda: dict(NO_THINK_WEIGHTS))  # json tasks
    math_weights: dict[str, float] = Field(default_factory=lambda: dict(MATH_WEIGHTS))  # math tasks
    thinking: bool = False                      # completions are asked to reason in <think> first
    gated: bool = False                         # content components count only once the gate holds
    mode: Literal["weighted", "strict"] = "weighted"

    @field_validator("weights", "math_weights")
    @classmethod
    def _known_finite(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown reward component(s) {unknown}; valid names: {list(COMPONENTS)}")
        bad = [name for name, w in weights.items() if not math.isfinite(w)]
        if bad:
            raise ValueError(f"reward weight(s) {bad} must be finite numbers")
        return weights

    @classmethod
    def defaults(cls, thinking: bool = False, **overrides) -> "RewardConfig":
        """The seed's weights for think or no-think runs; `overrides` set any other field."""
        weights = dict(THINK_WEIGHTS if thinking else NO_THINK_WEIGHTS)
        return cls(weights=overrides.pop("weights", weights), thinking=thinking, **overrides)

    def effective_weights(self, kind: str = "json") -> dict[str, float]:
        """Weights actually applied to rows of this task kind (reasoning redistributed if not thinking)."""
        weights = dict(self.math_weights if kind == "math" else self.weights)
        return weights if self.thinking else redistribute_reasoning(weights)
