"""grpo-train and grpo-eval reject every bad input before a model loads (issue 19): exit status 2,
exactly one line on stderr that starts with the program's name, no traceback, and no file created or
changed. The training and evaluation entry points are replaced by stubs that fail the test, so a
check that does not fire can never start a model load."""
import json
import os
import sys
import types
from pathlib import Path

import pytest

import eval.run
from eval.cli import main as eval_main
from grpo.cli import main as train_main
from grpo.cli import remove_unused

ROOT = Path(__file__).resolve().parents[1]
CPU_CONFIG = ROOT / "configs" / "smollm2-135m-cpu.toml"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0   # root writes into a 0o555 folder anyway


class ModelLoad(Exception):
    """What the stubs raise: the command got past its checks."""


def _no_model(*args, **kwargs):
    raise ModelLoad


@pytest.fixture
def world(tmp_path, monkeypatch):
    """tmp_path with one of every bad (and good) input, the entry points stubbed."""
    monkeypatch.setitem(sys.modules, "grpo.train", types.SimpleNamespace(train=_no_model))
    monkeypatch.setitem(sys.modules, "grpo.sft", types.SimpleNamespace(run_sft=_no_model))
    monkeypatch.setattr(eval.run, "run_eval", _no_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRPO_EXTERNAL_DATA", str(tmp_path / "no_external_data"))  # the default ../shared one, missing

    (tmp_path / "good.toml").write_text(f'[run]\nout_dir = "{tmp_path}/runs"\nname = "r"\n'
                                        '[model]\npath = "embedded:smollm2-135m"\n')
    (tmp_path / "latin1.toml").write_bytes(b'[run]\nname = "caf\xe9"\n')
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "closed").mkdir(mode=0o555)
    for name, config, weights in (("good_adapter", '{"r": 8}', True), ("no_weights", '{"r": 8}', False),
                                  ("broken_adapter", '{"r": 8', True), ("list_adapter", "[8]", True),
                                  ("rank_adapter", '{"r": "eight"}', True), ("no_config", None, True)):
        folder = tmp_path / name
        folder.mkdir()
        if config is not None:
            (folder / "adapter_config.json").write_text(config)
        if weights:
            (folder / "adapter_model.safetensors").write_bytes(b"\0")
    (tmp_path / "model_no_config").mkdir()
    (tmp_path / "model_bad_config").mkdir()
    (tmp_path / "model_bad_config" / "config.json").write_text("{oops")
    results = tmp_path / "results"   # an earlier evaluation's results: nothing may touch them
    results.mkdir()
    (results / "metrics.json").write_text('{"sets": {}}')
    (results / "completions.jsonl").write_text('{"set": "synthetic"}\n')
    (tmp_path / "empty_results").mkdir()
    (tmp_path / "broken_results").mkdir()
    (tmp_path / "broken_results" / "metrics.json").write_text("{")
    (tmp_path / "eval_inf.toml").write_text("[rollout]\ntemperature = inf\n")
    (tmp_path / "eval_hot.toml").write_text('[rollout]\ntemperature = "hot"\n')
    (tmp_path / "eval_len.toml").write_text("[rollout]\nmax_new_tokens = 1024\nmax_model_len = 1024\n")
    good_row = '{"prompt": "A user as JSON.", "schema": {"type": "object", "required": ["name"]}, "gold": {"name": "A"}}'
    (tmp_path / "tasks.jsonl").write_text(good_row + "\n")
    (tmp_path / "bad_row.jsonl").write_text(good_row + '\n{"prompt": "x", "schema": {"type": "integer"}, "gold": "1"}\n')
    (tmp_path / "no_gold.jsonl").write_text('{"prompt": "A number.", "schema": {"type": "integer"}}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tasks.jsonl").write_text(good_row + "\n")
    yield tmp_path
    (tmp_path / "closed").chmod(0o755)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` (itself included) with its mtime and size."""
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in [folder, *folder.rglob("*")]}


def run_cli(main, argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:   # argparse errors exit from inside parse_args
        code = exit_.code
    return code, capsys.readouterr().err


# (case id, argv with {t} for the tmp folder, a piece the one line must contain)
TRAIN_CASES = [
    ("config-not-utf8", ["{t}/latin1.toml"], "not UTF-8"),
    ("config-is-folder", ["{t}/folder.toml"], "is a folder"),
    ("config-missing", ["{t}/nowhere.toml"], "no such file"),
    ("unknown-flag", ["{t}/good.toml", "--bogus"], "unrecognized arguments"),
    ("model-missing-folder", ["{t}/good.toml", "--set", "model.path={t}/no_model"], "model.path"),
    ("model-unknown-embedded", ["{t}/good.toml", "--set", "model.path=embedded:nope"], "unknown embedded model"),
    ("model-hub-id-offline", ["{t}/good.toml", "--set", "model.path=nobody/no-such-model"], "Hugging Face cache"),
    ("model-folder-no-config", ["{t}/good.toml", "--set", "model.path={t}/model_no_config"], "has no config.json"),
    ("model-folder-bad-config", ["{t}/good.toml", "--set", "model.path={t}/model_bad_config"], "not valid JSON"),
    ("tier-mix-unknown-tier", ["{t}/good.toml", "--set", "data.tier_mix={easy=1.0}"], "data.tier_mix"),
    ("tier-mix-negative", ["{t}/good.toml", "--set", "data.tier_mix={simple=-1.0, hard=2.0}"], "data.tier_mix"),
    ("tier-mix-all-zero", ["{t}/good.toml", "--set", "data.tier_mix={simple=0.0}"], "data.tier_mix"),
    ("init-adapter-missing", ["{t}/good.toml", "--set", "model.init_adapter={t}/nowhere"], "no PEFT adapter"),
    ("init-adapter-no-config", ["{t}/good.toml", "--set", "model.init_adapter={t}/no_config"], "no PEFT adapter"),
    ("init-adapter-broken-json", ["{t}/good.toml", "--set", "model.init_adapter={t}/broken_adapter"], "not valid JSON"),
    ("init-adapter-not-object", ["{t}/good.toml", "--set", "model.init_adapter={t}/list_adapter"], "not a JSON object"),
    ("init-adapter-bad-rank", ["{t}/good.toml", "--set", "model.init_adapter={t}/rank_adapter"], "LoRA rank"),
    ("init-adapter-no-weights", ["{t}/good.toml", "--set", "model.init_adapter={t}/no_weights"], "no weights"),
    ("out-dir-under-a-file", ["{t}/good.toml", "--set", "run.out_dir={t}/a_file/runs"], "is not a folder"),
    ("out-dir-is-a-file", ["{t}/good.toml", "--set", "run.out_dir={t}/a_file"], "is not a folder"),
    ("out-dir-not-writable", ["{t}/good.toml", "--set", "run.out_dir={t}/closed/runs"], "not writable"),
    ("lr-inf", ["{t}/good.toml", "--set", "optim.lr=inf"], "finite"),
    ("temperature-inf", ["{t}/good.toml", "--set", "rollout.temperature=inf"], "finite"),
    ("temperature-nan", ["{t}/good.toml", "--set", "rollout.temperature=nan"], "finite"),
    ("data-jsonl-bad-row", ["{t}/good.toml", "--set", "data.kind=jsonl", "--set", "data.path={t}/bad_row.jsonl"],
     "bad_row.jsonl: line 2: gold does not validate"),
    ("data-jsonl-missing", ["{t}/good.toml", "--set", "data.kind=jsonl", "--set", "data.path={t}/nowhere.jsonl"],
     "no such file"),
    ("data-jsonl-no-path", ["{t}/good.toml", "--set", "data.kind=jsonl"], "data.path"),
    ("data-path-with-generator", ["{t}/good.toml", "--set", "data.path={t}/tasks.jsonl"], "data.path"),
    ("data-sft-no-gold", ["{t}/good.toml", "--set", "run.mode=sft", "--set", "data.kind=jsonl",
                          "--set", "data.path={t}/no_gold.jsonl"], "no row has a gold"),
    ("data-dataset-missing", ["{t}/good.toml", "--set", "data.kind=dataset", "--set", "data.path={t}/nowhere_ds"],
     "no such file or folder"),
    ("data-columns-unknown-field", ["{t}/good.toml", "--set", "data.kind=dataset", "--set", "data.path={t}/tasks.jsonl",
                                    "--set", "data.columns={answer = 'a'}"], "data.columns"),
]

EVAL_CASES = [
    ("unknown-flag", ["--bogus"], "unrecognized arguments"),
    ("n-zero", ["--n", "0"], "--n"),
    ("n-not-int", ["--n", "two"], "--n"),
    ("limit-zero", ["--limit", "0"], "--limit"),
    ("math-max-tokens-zero", ["--math-max-tokens", "0"], "--math-max-tokens"),
    ("k-zero", ["--k", "0"], "--k"),
    ("k-not-int", ["--k", "1,x"], "--k"),
    ("k-above-n", ["--k", "1,5"], "n >= k"),
    ("k-above-n-greedy", ["--greedy", "--n", "5", "--k", "5"], "--greedy"),
    ("pass-at-1-with-k", ["--pass-at-1", "--n", "5", "--k", "1,5"], "--pass-at-1"),
    ("temperature-inf", ["--temperature", "inf"], "--temperature"),
    ("temperature-negative", ["--temperature", "-1"], "--temperature"),
    ("top-p-zero", ["--top-p", "0"], "--top-p"),
    ("max-tokens-zero", ["--max-tokens", "0"], "--max-tokens"),
    ("max-tokens-fill-context", ["--max-tokens", "4096", "--max-model-len", "2048"], "no room"),
    ("config-temperature-inf", ["{t}/eval_inf.toml"], "rollout.temperature"),
    ("config-temperature-string", ["{t}/eval_hot.toml"], "rollout.temperature"),
    ("config-tokens-fill-context", ["{t}/eval_len.toml"], "no room"),
    ("config-not-utf8", ["{t}/latin1.toml"], "cannot read config"),
    ("config-is-folder", ["{t}/folder.toml"], "cannot read config"),
    ("config-missing", ["{t}/nowhere.toml"], "cannot read config"),
    ("unknown-bench", ["--bench", "synthetic", "nope"], "unknown prompt set"),
    ("external-data-missing", ["--bench", "Glaiveai2K"], "no_external_data"),
    ("data-dir-missing", ["--bench", "gsm8k", "--data-dir", "{t}/nowhere"], "gsm8k/test.jsonl not found"),
    ("adapter-missing", ["--adapter", "{t}/nowhere"], "no PEFT adapter"),
    ("adapter-no-config", ["--adapter", "{t}/no_config"], "no PEFT adapter"),
    ("adapter-broken-json", ["--adapter", "{t}/broken_adapter"], "not valid JSON"),
    ("adapter-not-object", ["--adapter", "{t}/list_adapter"], "not a JSON object"),
    ("adapter-no-weights", ["--adapter", "{t}/no_weights"], "no weights"),
    ("adapter-label-taken", ["--adapter", "a={t}/good_adapter", "a={t}/good_adapter"], "is taken"),
    ("adapter-label-baseline", ["--adapter", "baseline={t}/good_adapter"], "is taken"),
    ("model-missing", ["--model", "{t}/no_model"], "--model"),
    ("model-unknown-embedded", ["--model", "embedded:nope"], "unknown embedded model"),
    ("model-folder-no-config", ["--model", "{t}/model_no_config"], "has no config.json"),
    ("constrained-needs-vllm", ["--constrained", "--engine", "hf"], "--engine vllm"),
    ("out-is-a-file", ["--out", "{t}/a_file"], "--out"),
    ("out-under-a-file", ["--out", "{t}/a_file/eval"], "--out"),
    ("out-not-writable", ["--out", "{t}/closed/eval"], "not writable"),
    ("cache-dir-under-a-file", ["--cache-dir", "{t}/a_file/cache"], "--cache-dir"),
    ("report-only-missing", ["--report-only", "{t}/nowhere"], "no such folder"),
    ("report-only-no-metrics", ["--report-only", "{t}/empty_results"], "no metrics.json"),
    ("report-only-broken-metrics", ["--report-only", "{t}/broken_results"], "not valid JSON"),
    ("bench-jsonl-bad-row", ["--bench", "{t}/bad_row.jsonl"], "bad_row.jsonl: line 2: gold does not validate"),
    ("bench-jsonl-missing", ["--bench", "synthetic", "{t}/nowhere.jsonl"], "no such file"),
    ("bench-jsonl-same-name", ["--bench", "{t}/tasks.jsonl", "{t}/sub/tasks.jsonl"], "same name in reports"),
]


def _argv(template: list[str], t: Path) -> list[str]:
    return [a.replace("{t}", str(t)) for a in template]


def _assert_one_line_failure(code: int, err: str, prog: str, piece: str) -> None:
    lines = err.splitlines()
    assert code == 2, f"a bad input exits with status 2, got {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), f"exactly one line starting with '{prog}: ': {err!r}"
    assert "Traceback" not in err
    assert piece in lines[0], f"the line should name the problem ({piece!r}): {lines[0]}"


@pytest.mark.parametrize("argv, piece", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_grpo_train_rejects_before_any_model_load(world, capsys, argv, piece):
    if "closed" in " ".join(argv) and AS_ROOT:
        pytest.skip("root may write into a read-only folder")
    before = snapshot(world)
    code, err = run_cli(train_main, _argv(argv, world), capsys)
    _assert_one_line_failure(code, err, "grpo-train", piece)
    assert snapshot(world) == before, "a failed start creates or changes no file (no runs/<name>/config.toml)"


@pytest.mark.parametrize("argv, piece", [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES])
def test_grpo_eval_rejects_before_any_model_load(world, capsys, argv, piece):
    if "closed" in " ".join(argv) and AS_ROOT:
        pytest.skip("root may write into a read-only folder")
    before = snapshot(world)
    defaults = [] if "--out" in argv or "--report-only" in argv else ["--out", f"{world}/results"]
    defaults += [] if "--cache-dir" in argv else ["--cache-dir", f"{world}/cache"]
    code, err = run_cli(eval_main, _argv(argv, world) + defaults, capsys)
    _assert_one_line_failure(code, err, "grpo-eval", piece)
    assert snapshot(world) == before, "a rejected evaluation creates or changes no file (earlier results intact)"


def test_good_inputs_pass_the_checks(world, capsys):
    """The cases above fail for the reason they name: the same command with good inputs gets through."""
    with pytest.raises(ModelLoad):
        train_main([f"{world}/good.toml", "--set", f"model.init_adapter={world}/good_adapter"])
    assert not (world / "runs").exists(), "a start that fails leaves no empty run folder"
    with pytest.raises(ModelLoad):
        eval_main(["--adapter", f"{world}/good_adapter", "--out", f"{world}/results", "--cache-dir", f"{world}/cache"])
    assert capsys.readouterr().err == ""


def test_a_failed_start_removes_only_what_it_made(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    new_dirs = [run_dir, run_dir.parent]
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text("[run]\n")
    remove_unused(new_dirs)
    assert not (tmp_path / "runs").exists(), "a folder holding only the config.toml it was started with goes"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text("[run]\n")
    (run_dir / "tb").mkdir()
    remove_unused(new_dirs)
    assert (run_dir / "config.toml").is_file(), "a folder with anything else in it stays"


def test_an_unknown_set_never_truncates_earlier_results(tmp_path):
    """The data loss of issue 19: run_eval itself (not only the CLI) fails before it opens a file."""
    from eval.run import EvalPlan, run_eval
    (tmp_path / "completions.jsonl").write_text('{"earlier": true}\n')
    with pytest.raises(ValueError, match="unknown prompt set"):
        run_eval(EvalPlan(sets=["synthetic", "nope"], out=str(tmp_path), cache_dir=str(tmp_path / "cache")))
    assert (tmp_path / "completions.jsonl").read_text() == '{"earlier": true}\n'


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    from eval.records import write_atomic
    target = tmp_path / "metrics.json"
    write_atomic(target, json.dumps({"old": 1}))

    def crash(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(target, json.dumps({"new": 2}))
    assert json.loads(target.read_text()) == {"old": 1}, "the earlier result survives"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"], "no temp file is left behind"
