"""grpo-eval end to end on a tiny random 2-layer Llama: real engines, real files, CI time.

One vLLM engine load serves baseline, two adapters ("stages") and constrained decoding of the base and
of each adapter; a second run must take baseline and constrained from the cache without loading any engine.
"""
import json

import pytest

from eval.records import Decoding
from eval.run import EvalPlan, run_eval


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from rollout.testing import make_tiny_model, random_lora
    root = tmp_path_factory.mktemp("tiny")
    model_dir = make_tiny_model(root / "model")
    adapters = []
    for seed in (1, 2):
        peft = random_lora(AutoModelForCausalLM.from_pretrained(model_dir), rank=8, seed=seed)
        peft.save_pretrained(root / f"stage{seed}")
        adapters.append(str(root / f"stage{seed}"))
    return str(model_dir), adapters, root


def test_report_end_to_end_vllm_with_adapters_constrained_and_cache(tiny, tmp_path, monkeypatch):
    model, adapters, _ = tiny
    plan = EvalPlan(model=model, adapters=adapters, sets=["synthetic", "Glaiveai2K"], limit=4,
                    decoding=Decoding(temperature=0.7, max_tokens=12, n=2), ks=(1, 2), constrained=True,
                    out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), max_model_len=1024)
    metrics = run_eval(plan)
    out = tmp_path / "out"
    for name in ("metrics.json", "completions.jsonl", "report.md", "figures/overview.png"):
        assert (out / name).is_file(), f"{name} should be written"
    on_disk = json.loads((out / "metrics.json").read_text())
    runs = on_disk["sets"]["synthetic"]["runs"]
    assert list(runs) == ["baseline", "constrained", "stage1", "stage1+constrained", "stage2", "stage2+constrained"], \
        "each model's constrained run sits beside its unconstrained one"
    assert runs["stage1+constrained"]["decoding"]["constrained"] and not runs["stage1"]["decoding"]["constrained"]
    for label, m in runs.items():
        total = m["num_prompts"] + sum(m["skipped"].values())
        assert total == 4, f"{label}: every prompt is either scored or counted as skipped"
        for key in ("strict", "syntax", "format"):
            assert 0 <= m[key]["lo"] <= m[key]["rate"] <= m[key]["hi"] <= 1
        assert "2" in m["pass_at_k"] and m["samples_per_prompt"] == 2
    assert set(on_disk["sets"]["synthetic"]["comparisons"]) == set(runs) - {"baseline"}
    assert set(on_disk["sets"]["synthetic"]["constrained_vs_unconstrained"]) == {"baseline", "stage1", "stage2"}
    lines = (out / "completions.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    assert {"prompt", "completion", "strict", "syntax", "format", "error_class", "label", "set"} <= set(rec)
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"pass_synthetic.png", "errors_synthetic.png", "rewards_synthetic.png", "lengths_synthetic.png",
            "paired_synthetic.png", "progression_synthetic.png"} <= figures
    report = (out / "report.md").read_text()
    assert "strict" in report and "stage2+constrained" in report and "rescued" in report
    assert "Constrained vs the same model unconstrained" in report

    # Second run, no adapters: baseline and constrained come from the cache, no engine is built.
    import eval.generate as generate
    monkeypatch.setattr(generate, "Generator", lambda *a, **k: pytest.fail("cached baseline should not load an engine"))
    plan2 = EvalPlan(**{**plan.__dict__, "adapters": [], "out": str(tmp_path / "out2")})
    again = run_eval(plan2)
    for name in ("synthetic", "Glaiveai2K"):
        assert again["sets"][name]["runs"]["baseline"]["from_cache"] is True
        assert again["sets"][name]["runs"]["baseline"]["strict"] == metrics["sets"][name]["runs"]["baseline"]["strict"]


def test_transformers_engine_math_set(tiny, tmp_path):
    model, _, _ = tiny
    plan = EvalPlan(model=model, sets=["linear"], limit=2, decoding=Decoding(temperature=0.0, max_tokens=6, engine="hf"),
                    math_max_tokens=6, out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    m = run_eval(plan)["sets"]["linear"]["runs"]["baseline"]
    assert m["num_prompts"] == 2 and m["samples_per_prompt"] == 1 and m["length_tokens"]["max"] <= 6
    assert (tmp_path / "out" / "report.md").is_file()
