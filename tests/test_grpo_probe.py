"""The held-out probe (grpo/probe.py): fixed eval-split prompts, greedy, both families reported apart."""
from __future__ import annotations

from grpo.config import config_from_dict
from grpo.probe import probe_pass, probe_tasks


def test_probe_is_the_fixed_eval_split_in_the_pools_family_mix():
    cfg = config_from_dict({"run": {"probe_every": 5, "probe_prompts": 10}, "data": {"schema_prompt_share": 0.3}})
    tasks = probe_tasks(cfg)
    assert [t.id for t in tasks] == [t.id for t in probe_tasks(cfg)], "the same prompts at every probe"
    assert all(t.meta["split"] == "eval" for t in tasks)
    assert sum(t.source == "synthetic-schema" for t in tasks) == 3


def test_probe_scores_the_engines_greedy_replies(tiny_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.tasks import PromptRenderer
    from grpo.train import default_reward_fn
    from rollout.hf_engine import HFEngine
    cfg = config_from_dict({"run": {"probe_every": 1, "probe_prompts": 4}, "data": {"schema_prompt_share": 0.5}})
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    engine = HFEngine(AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.bfloat16), tok)
    render = PromptRenderer(tok)
    tasks = probe_tasks(cfg)
    first = probe_pass(engine, render, default_reward_fn(cfg), tasks, max_tokens=16)
    again = probe_pass(engine, render, default_reward_fn(cfg), tasks, max_tokens=16)
    assert first == again, "greedy: the same policy gives the same probe"
    assert set(first) == {"probe/strict", "probe/syntax", "probe/strict_synthetic", "probe/strict_synthetic-schema"}
    assert all(0.0 <= v <= 1.0 for v in first.values())
