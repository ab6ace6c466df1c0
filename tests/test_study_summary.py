"""scripts/study_summary.py pools the two held-out families by prompt count and picks the best GRPO arm,
never the SFT-only row, for the seed's table."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import study_summary  # noqa: E402


def _stat(rate: float, num: int) -> dict:
    return {"rate": rate, "lo": max(rate - 0.05, 0.0), "hi": min(rate + 0.05, 1.0), "num": num}


def _run(label: str, strict: float, num: int) -> dict:
    tiers = {t: {"strict": _stat(strict, num // 3)} for t in study_summary.TIERS}
    return {"label": label, "num_prompts": num, "strict": _stat(strict, num), "syntax": _stat(0.9, num),
            "format": _stat(1.0, num), "per_tier": tiers}


def _eval_dir(tmp_path: Path, label: str, words: float, schema: float) -> Path:
    sets = {"synthetic": {"runs": {"baseline": _run("baseline", 0.0, 300), label: _run(label, words, 300)}},
            "synthetic-schema": {"runs": {"baseline": _run("baseline", 0.3, 100), label: _run(label, schema, 100)}}}
    out = tmp_path / label
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"sets": sets}))
    return out


def test_pooled_strict_weights_each_family_by_its_prompts(tmp_path):
    row = study_summary.arm_rows("a", _eval_dir(tmp_path, "a", words=0.4, schema=0.8))
    assert row["heldout_strict"] == pytest.approx((0.4 * 300 + 0.8 * 100) / 400)
    assert row["sets"]["synthetic"]["per_tier_strict"] == {"simple": 0.4, "medium": 0.4, "hard": 0.4}
    assert "vs_sft" not in row["sets"]["synthetic"], "no vs-sft.json, no paired counts"


def test_seed_table_takes_the_best_grpo_arm_and_the_pooled_baseline(tmp_path):
    rows = [study_summary.arm_rows(label, _eval_dir(tmp_path, label, w, s))
            for label, w, s in (("sft", 0.9, 0.9), ("standard", 0.5, 0.5), ("curriculum", 0.6, 0.4))]
    table = study_summary.seed_table(rows)
    best = (0.6 * 300 + 0.4 * 100) / 400          # 0.55 beats standard's 0.50; sft's 0.90 is not a GRPO arm
    assert f"| {best:.3f} | curriculum |" in table
    assert "| 0.075 |" in table, "baseline pooled over both families: (0 * 300 + 0.3 * 100) / 400"
    assert f"{100 * (best - 0.075):+.1f} pp" in table
