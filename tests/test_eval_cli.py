"""grpo-eval's CLI: the tolerant config reader and argument handling (no model)."""
from pathlib import Path

from eval.cli import parse_args, read_config

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
