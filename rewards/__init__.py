"""Rule-based rewards for strict JSON (and math answers): pure functions of (completion text, task).

No torch, no models, no network. Each completion is extracted and parsed once (`rewards.parse`),
every component reads that parse (`rewards.components`), and `score` returns per-component numpy
arrays, the weighted total and the per-completion diagnostics that eval reuses.

    >>> from rewards import score, RewardConfig
    >>> batch = score(completions, tasks, RewardConfig.defaults(thinking=False))
    >>> batch.total, batch.strict_pass, batch.error_class
    >>> score(completions, tasks, output="bare")   # replies asked for as the JSON alone, no ```json fence
"""
from rewards.config import COMPONENTS, GATE_COMPONENTS, NO_THINK_WEIGHTS, THINK_WEIGHTS, RewardConfig
from rewards.parse import Parsed, parse_completion
from rewards.score import RewardBatch, score
from rewards.validator import compile_schema, validate

__all__ = ["COMPONENTS", "GATE_COMPONENTS", "NO_THINK_WEIGHTS", "THINK_WEIGHTS", "RewardConfig",
           "RewardBatch", "score", "validate", "compile_schema", "parse_completion", "Parsed"]
