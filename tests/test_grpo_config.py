"""Config: every shipped TOML validates, bad input fails in one line naming key and file, overrides work."""
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grpo.config import Config, ConfigError, config_from_dict, dump_toml, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate_and_round_trip(path):
    cfg = load_config(path)
    assert config_from_dict(tomllib.loads(dump_toml(cfg))) == cfg, "dump_toml must reproduce the config"


def test_the_expected_configs_ship():
    names = {p.name for p in CONFIGS}
    for name in ("qwen.toml", "smollm2-135m-cpu.toml", "smollm2-135m.toml", "smollm2-360m.toml",
                 "tinyllama-1.1b.toml", "gemma2-2b.toml", "qwen2.5-1.5b-math.toml", "qwen-curriculum.toml",
                 # the strategies of docs/strategies.md
                 "smollm2-135m-cpu-curriculum.toml", "smollm2-135m-cpu-curriculum-gated.toml",
                 "smollm2-135m-cpu-think.toml", "smollm2-135m-cpu-sft.toml", "smollm2-135m-cpu-sft-grpo.toml"):
        assert name in names, f"configs/{name} should ship"


def test_strategy_configs_switch_what_they_say():
    gated = load_config(ROOT / "configs" / "smollm2-135m-cpu-curriculum-gated.toml")
    assert gated.curriculum.advance == "gated" and len(gated.curriculum.stages) == 3
    think = load_config(ROOT / "configs" / "smollm2-135m-cpu-think.toml")
    assert think.reward.thinking and think.rollout.think_prefill
    assert load_config(ROOT / "configs" / "smollm2-135m-cpu-sft.toml").run.mode == "sft"
    assert load_config(ROOT / "configs" / "smollm2-135m-cpu-sft-grpo.toml").model.init_adapter


def test_the_study_strategy_configs_change_only_their_switch():
    """docs/study.md, section 11: the curriculum arm is the main GRPO stage with the seed's three stages
    scaled to 100 steps; the think bootstrap is SFT in think format on the main job's task mix."""
    from curriculum.schedule import SEED_SCHEDULE
    main = load_config(ROOT / "configs" / "smollm2-135m-cpu-sft-grpo.toml")
    cur = load_config(ROOT / "configs" / "smollm2-135m-cpu-sft-grpo-curriculum.toml")
    assert cur.run.num_steps == sum(s.max_steps for s in cur.curriculum.stages) == 100
    assert [s.tier_mix for s in cur.curriculum.stages] == [s.tier_mix for s in SEED_SCHEDULE.stages]
    assert [s.temperature for s in cur.curriculum.stages] == [s.temperature for s in SEED_SCHEDULE.stages]
    for section in ("grpo", "optim", "reward", "lora", "model"):
        assert getattr(cur, section) == getattr(main, section), f"[{section}] differs from the main GRPO stage"
    assert cur.data.model_copy(update={"tier_mix": main.data.tier_mix}) == main.data
    boot = load_config(ROOT / "configs" / "smollm2-135m-cpu-sft-think-bootstrap.toml")
    assert boot.run.mode == "sft" and boot.reward.thinking and boot.rollout.think_prefill
    assert boot.model.init_adapter and boot.data == main.data


def test_the_seed_curriculum_ships_as_a_config():
    from curriculum.schedule import SEED_SCHEDULE
    cfg = load_config(ROOT / "configs" / "qwen-curriculum.toml")
    assert cfg.curriculum == SEED_SCHEDULE, "configs/qwen-curriculum.toml is the seed's 800/800/900 schedule"
    assert cfg.run.num_steps == sum(s.max_steps for s in SEED_SCHEDULE.stages) == 2500


def _error(data, overrides=()):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "configs/x.toml", list(overrides))
    msg = str(info.value)
    assert "\n" not in msg, "config errors are one line"
    return msg


def test_unknown_key_names_key_and_file():
    assert _error({"grpo": {"betta": 0.1}}) == "configs/x.toml: grpo.betta: unknown key"
    assert _error({"nonsense": {}}) == "configs/x.toml: nonsense: unknown key"


def test_wrong_type_and_range():
    assert _error({"grpo": {"beta": "high"}}).startswith("configs/x.toml: grpo.beta: Input should be a valid number")
    assert "rollout.group_size" in _error({"rollout": {"group_size": 1}})
    assert "grpo.loss_agg" in _error({"grpo": {"loss_agg": "sum"}})


def test_impossible_combinations():
    assert _error({"rollout": {"max_new_tokens": 2048, "max_model_len": 1024}}).startswith(
        "configs/x.toml: rollout.max_new_tokens:")
    assert "data.tier_mix" in _error({"data": {"kind": "math", "tier_mix": {"simple": 1.0}}})
    assert "model.load_in_4bit" in _error({"model": {"load_in_4bit": True, "dtype": "float32"}})
    assert "reward.weights" in _error({"reward": {"weights": {"bogus": 1.0}}})
    assert "rollout.think_prefill" in _error({"rollout": {"think_prefill": True}})
    stages = {"stages": [{"name": "a", "tier_mix": {"simple": 1.0}, "max_steps": 3}]}
    assert "data.tier_mix" in _error({"curriculum": stages, "data": {"tier_mix": {"simple": 1.0}}})
    assert "curriculum" in _error({"curriculum": stages, "run": {"mode": "sft"}})
    assert _error({"curriculum": {"stages": [{"name": "a", "tier_mix": {"easy": 1.0}, "max_steps": 3}]}}
                  ).startswith("configs/x.toml: curriculum.stages.0: tier_mix:")


def test_prompt_section_sets_the_output_format_and_system_prompt_and_round_trips():
    cfg = config_from_dict({"prompt": {"output": "bare", "system": 'Reply with "JSON" only.\nNo fence.'}})
    assert cfg.prompt.output == "bare" and cfg.prompt.system.startswith('Reply with "JSON"')
    assert config_from_dict(tomllib.loads(dump_toml(cfg))) == cfg, "a quoted, multi-line system prompt round-trips"
    assert Config().prompt.output == "fenced" and Config().prompt.system is None, "default: today's fenced prompt"
    assert _error({"prompt": {"output": "yaml"}}).startswith("configs/x.toml: prompt.output: Input should be")
    assert _error({"prompt": {"system": ""}}).startswith("configs/x.toml: prompt.system:")
    assert _error({"data": {"kind": "math"}, "prompt": {"output": "bare"}}).startswith(
        "configs/x.toml: prompt.output: [prompt] describes JSON replies")


def test_overrides_are_typed_and_checked():
    cfg = config_from_dict({}, "x", ["grpo.beta=0.02", "optim.lr=1e-4", "rollout.engine=hf",
                                     "lora.target_modules=['q_proj']", "run.name=abc"])
    assert (cfg.grpo.beta, cfg.optim.lr, cfg.rollout.engine, cfg.lora.target_modules, cfg.run.name) == \
        (0.02, 1e-4, "hf", ("q_proj",), "abc")
    assert _error({}, ["grpo.betaa=1"]) == "configs/x.toml: grpo.betaa (from --set): unknown key"
    assert "(from --set)" in _error({}, ["rollout.max_new_tokens=4096"])


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(Exception):
        cfg.grpo.beta = 1.0


def test_cli_bad_config_prints_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[grpo]\nbeta = 'x'\n")
    out = subprocess.run([sys.executable, "-m", "grpo", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    lines = [l for l in out.stderr.splitlines() if l.strip() and "kernels" not in l]
    assert lines == [f"grpo-train: config error: {bad}: grpo.beta: Input should be a valid number, "
                     "unable to parse string as a number (got 'x')"], out.stderr
    assert "Traceback" not in out.stderr


def test_cli_missing_init_adapter_is_a_one_line_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[model]\npath = "embedded:smollm2-135m"\ninit_adapter = "{tmp_path}/nowhere"\n'
                   f'[run]\nout_dir = "{tmp_path}/runs"\n[rollout]\nengine = "hf"\n')
    out = subprocess.run([sys.executable, "-m", "grpo", str(cfg)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert f"model.init_adapter: no PEFT adapter (adapter_config.json) in {tmp_path}/nowhere" in out.stderr


def test_device_and_attention_resolve_to_what_this_machine_has():
    import torch

    from grpo.attention import resolve_attn_implementation
    from grpo.model import resolve_device
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_attn_implementation("auto", "cpu") == "grouped"
    assert resolve_attn_implementation("auto", "cuda") == "sdpa"
    assert resolve_attn_implementation("eager", "cpu") == "eager"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="model.device"):
            resolve_device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_dtype_auto_picks_bf16_only_where_the_machine_has_it(native, monkeypatch):
    import rollout.models as models
    monkeypatch.setattr(models, "native_bf16", lambda: native)
    assert config_from_dict({}).model.resolved_dtype == ("bfloat16" if native else "float32")
    assert config_from_dict({"model": {"dtype": "float32"}}).model.resolved_dtype == "float32"
    assert config_from_dict({"model": {"dtype": "bfloat16"}}).model.resolved_dtype == "bfloat16"
    nf4 = config_from_dict({"model": {"load_in_4bit": True}})
    assert nf4.model.resolved_dtype == "bfloat16", "an NF4 base computes in bf16"
    with pytest.raises(ValueError, match="dtype"):
        models.resolve_dtype("float16")
