"""grpo-eval's CLI: the tolerant config reader and argument handling (no model)."""
from pathlib import Path

import pytest

from eval.cli import InputError, parse_args, read_config

ROOT = Path(__file__).resolve().parents[1]


def test_read_config_takes_only_what_eval_needs():
    cfg = read_config(str(ROOT / "configs" / "smollm2-135m-cpu.toml"))
    assert cfg["model"] == "embedded:smollm2-135m" and cfg["thinking"] is False
    assert cfg["temperature"] == 0.8, "eval samples at the config's temperature by default"


def test_read_config_tolerates_missing_sections(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\npath = "/some/folder"\n[unknown]\nx = 1\n')
    assert read_config(str(path)) == {"model": "/some/folder"}


def test_args():
    a = parse_args(["--pass-at-1", "cfg.toml", "--adapter", "a/s1", "b/s2", "--bench", "synthetic", "gsm8k",
                    "--n", "10", "--k", "1,5,10", "--greedy"])
    assert a.config == "cfg.toml" and a.adapter == ["a/s1", "b/s2"] and a.bench == ["synthetic", "gsm8k"]
    assert a.greedy and a.n == 10 and a.k == "1,5,10"


def test_adapter_labels(tmp_path):
    from eval.run import adapter_spec
    final = tmp_path / "my-run" / "adapter"
    stage = tmp_path / "my-run" / "stages" / "stage_2_progressive"
    for folder in (final, stage):
        folder.mkdir(parents=True)
    assert adapter_spec(str(final)) == ("my-run", str(final)), "a run's final adapter is labelled by the run"
    assert adapter_spec(str(stage)) == ("stage_2_progressive", str(stage))
    assert adapter_spec(f"sft={final}") == ("sft", str(final))


def _plan(tmp_path, *argv):
    from eval.cli import build_plan
    args = parse_args([*argv, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    return build_plan(args, "grpo-eval")


def test_token_limits_default_to_the_config(tmp_path):
    config = str(ROOT / "configs" / "smollm2-135m-cpu.toml")
    plan = _plan(tmp_path, config)
    assert (plan.decoding.max_tokens, plan.max_model_len) == (192, 1024), \
        "without flags, eval generates as many tokens in as long a context as the trainer did"
    plan = _plan(tmp_path, config, "--max-tokens", "256", "--max-model-len", "2048")
    assert (plan.decoding.max_tokens, plan.max_model_len) == (256, 2048), "flags override the config"
    plan = _plan(tmp_path)
    assert (plan.decoding.max_tokens, plan.max_model_len) == (512, 2048), "no config: the built-in defaults"


def test_pass_at_1_reports_k_1_only(tmp_path):
    assert _plan(tmp_path, "--n", "5").ks == (1, 5), "without --pass-at-1, --k defaults to 1 and n"
    assert _plan(tmp_path, "--n", "5", "--pass-at-1").ks == (1,), "--pass-at-1: pass@1 over the n samples, only"
    assert _plan(tmp_path, "--pass-at-1").ks == (1,)
    assert _plan(tmp_path, "--n", "5", "--k", "1,3").ks == (1, 3)


def test_output_format_and_system_prompt_come_from_the_config_unless_flagged(tmp_path):
    config = tmp_path / "bare.toml"
    config.write_text('[reward]\nthinking = true\n[prompt]\noutput = "bare"\nsystem = "Only \\"JSON\\"."\n')
    plan = _plan(tmp_path, str(config))
    assert (plan.decoding.output, plan.decoding.system, plan.decoding.thinking) == ("bare", 'Only "JSON".', True), \
        "eval asks and judges the format the adapter was trained for"
    assert _plan(tmp_path, str(config), "--output", "fenced").decoding.output == "fenced", "the flag overrides"
    assert _plan(tmp_path).decoding.output == "fenced" and _plan(tmp_path).decoding.system is None
    config.write_text('[prompt]\noutput = "yaml"\n')
    with pytest.raises(InputError, match=r"prompt\.output = 'yaml': needs 'fenced' or 'bare'"):
        _plan(tmp_path, str(config))


def test_constrained_adapter_labels_must_not_collide(tmp_path):
    """--constrained adds "<label>+constrained" runs; an adapter may not be labelled like one."""
    with pytest.raises(InputError, match="'x\\+constrained' is taken"):
        _plan(tmp_path, "--constrained", "--adapter", "x=runs/a", "x+constrained=runs/b")
