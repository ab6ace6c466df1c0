"""Small statistics for evaluation: confidence intervals, unbiased pass@k, paired outcomes.

Pure numpy / math on arrays of outcomes; knows nothing of models, tasks or rewards.

- `wilson(successes, total)`: the Wilson score interval of a binomial rate (Wilson 1927). Unlike the
  normal approximation it stays inside [0, 1] and behaves at rates near 0 or 1, which is exactly
  where a 135M model's strict pass sits.
- `prompt_rate(success)`: pass rate over [P, n] outcomes, Wilson with the prompt as the unit.
- `bootstrap_mean(values)`: percentile bootstrap CI of a mean, for non-binary quantities (reward
  components, per-prompt pass@k, paired deltas). Resampling is over *prompts*, the unit that is
  independent; the n samples of one prompt are not.
- `pass_at_k(n, c, k)`: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language
  Models Trained on Code", eq. 1): 1 - C(n-c, k) / C(n, k), computed as a stable product.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054   # two-sided 95 % normal quantile
TIER_ORDER = ("simple", "medium", "hard")


def tier_key(tier: str) -> tuple[int, str]:
    """Sort key: simple, medium, hard first, then anything else alphabetically."""
    return (TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER), tier)


def wilson(successes: int | float, total: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval for successes/total; (0, 1) when total == 0 (nothing known)."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)      # exact ends, no 1e-17 rounding
    hi = 1.0 if successes >= total else min(1.0, centre + half)
    return lo, hi


def bootstrap_mean(values: Sequence[float] | np.ndarray, num_resamples: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (one value per independent unit)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(num_resamples, x.size))].mean(axis=1)   # [R]
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i)  ==  1 - C(n-c, k) / C(n, k), without huge binomials
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def rate(flags: Sequence[bool] | np.ndarray) -> dict[str, float]:
    """{rate, lo, hi, num} for a flat array of binary outcomes (Wilson interval)."""
    x = np.asarray(flags, dtype=bool)
    lo, hi = wilson(int(x.sum()), x.size)
    return {"rate": float(x.mean()) if x.size else 0.0, "lo": lo, "hi": hi, "num": int(x.size)}


def prompt_rate(success: np.ndarray) -> dict[str, float]:
    """Mean success over an [P, n] array of outcomes with a CI that treats the prompt as the unit.

    Wilson with P trials at the observed rate. For n == 1 that is the exact Wilson interval; for
    n > 1 it is conservative (a per-prompt mean in [0, 1] has variance <= p(1-p)), never collapses
    to [0, 0] the way a bootstrap of an all-fail sample does, and ignores no prompt correlation.
    """
    success = np.asarray(success, dtype=np.float64)
    if success.size == 0:
        return {"rate": 0.0, "lo": 0.0, "hi": 1.0, "num": 0}
    per_prompt = success.reshape(len(success), -1).mean(axis=1)                    # [P]
    mean = float(per_prompt.mean())
    lo, hi = wilson(mean * per_prompt.size, per_prompt.size)
    return {"rate": mean, "lo": lo, "hi": hi, "num": int(per_prompt.size)}


def paired_outcomes(base: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Per-prompt comparison of two [P, n] outcome arrays on the same prompts.

    A prompt "passes" when its mean success over the n samples is >= 0.5 (for n = 1: it passed).
    Counts rescued (fail -> pass), regressed (pass -> fail), both_pass, both_fail, and the mean
    paired difference of per-prompt success with a bootstrap CI over prompts.
    """
    b = np.asarray(base, dtype=np.float64).reshape(len(base), -1).mean(axis=1)      # [P]
    o = np.asarray(other, dtype=np.float64).reshape(len(other), -1).mean(axis=1)    # [P]
    if b.shape != o.shape:
        raise ValueError(f"paired outcomes need the same prompts, got {b.shape} and {o.shape}")
    bp, op = b >= 0.5, o >= 0.5
    lo, hi = bootstrap_mean(o - b)
    return {"rescued": int((~bp & op).sum()), "regressed": int((bp & ~op).sum()),
            "both_pass": int((bp & op).sum()), "both_fail": int((~bp & ~op).sum()),
            "delta": float((o - b).mean()) if b.size else 0.0, "delta_lo": lo, "delta_hi": hi}
