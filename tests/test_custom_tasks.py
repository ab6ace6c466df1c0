"""Tasks from the user's own files (curriculum.custom): a good file gives tasks with every field right,
each kind of bad row is one line naming the file and the line, a file with any bad row is refused
whole, the `datasets` source maps columns, SFT skips rows without a gold, a row's own system prompt
reaches every renderer, and grpo-train / grpo-eval take such files (or refuse them in one line) before
any model loads. No model is loaded here."""
import json
import sys
import types
from pathlib import Path

import pytest

import eval.run
from curriculum.custom import DEFAULT_TIER, load_custom, load_dataset_tasks, load_jsonl
from curriculum.prompts import SYSTEM_PROMPT_JSON, format_gold
from curriculum.task import Task
from rewards import validate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tasks.jsonl"
USER = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
        "additionalProperties": False}
GOOD_ROW = {"prompt": "A user as JSON.", "schema": USER, "gold": {"name": "Ann"}}


def write_rows(path: Path, *rows) -> Path:
    """One line per row: a dict is dumped as JSON, a str is written as it is."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- jsonl

def test_a_good_file_gives_one_task_per_row_with_every_field(tmp_path):
    path = write_rows(tmp_path / "mine.jsonl", GOOD_ROW, "",
                      {"prompt": "A number.", "schema": {"type": "integer"}, "id": 7, "tier": "hard",
                       "system": "Reply with one ```json block."})
    first, second = load_jsonl(path)
    assert (first.id, first.kind, first.prompt, first.schema, first.gold) == ("mine/1", "json", GOOD_ROW["prompt"], USER, {"name": "Ann"})
    assert (first.tier, first.system, first.source, first.template_id) == (DEFAULT_TIER, None, "custom/mine", "mine")
    assert first.meta == {"file": str(path), "line": 1}
    assert (second.id, second.tier, second.gold, second.meta["line"]) == ("7", "hard", None, 3), \
        "an integer id becomes a string; blank lines still count in line numbers"
    assert second.system == "Reply with one ```json block."


BAD_ROWS = [  # (case, the bad line, a piece of the error)
    ("invalid-json", '{"prompt": "x", "schema": {}', "not valid JSON"),
    ("not-an-object", "[1, 2]", "a row is a JSON object, got an array"),
    ("missing-prompt", {"schema": USER}, "missing key 'prompt'"),
    ("missing-schema", {"prompt": "x"}, "missing key 'schema'"),
    ("prompt-wrong-type", {"prompt": 3, "schema": USER}, "prompt: needs a non-empty string, got an integer"),
    ("prompt-empty", {"prompt": "  ", "schema": USER}, "prompt: needs a non-empty string"),
    ("schema-wrong-type", {"prompt": "x", "schema": "object"}, "schema: needs a JSON Schema object, got a string"),
    ("schema-invalid", {"prompt": "x", "schema": {"type": "strin"}}, "schema is not a valid JSON Schema (at type:"),
    ("schema-bad-regex", {"prompt": "x", "schema": {"type": "string", "pattern": "(["}}, "not a valid JSON Schema"),
    ("schema-remote-ref", {"prompt": "x", "schema": {"$ref": "https://example.com/s.json"}},
     "schema cannot be used by the reward's validator"),
    ("gold-invalid", {"prompt": "x", "schema": USER, "gold": {"nome": "A"}}, "gold does not validate against its schema"),
    ("gold-bad-format", {"prompt": "x", "schema": {"type": "string", "format": "date"}, "gold": "31/01/2025"},
     "gold does not validate"),
    ("duplicate-id", {**GOOD_ROW, "id": "mine/1"}, "duplicate id 'mine/1' (first on line 1)"),
    ("id-wrong-type", {**GOOD_ROW, "id": [1]}, "id: needs a non-empty string or an integer"),
    ("tier-wrong-type", {**GOOD_ROW, "tier": 2}, "tier: needs a non-empty string"),
    ("system-empty", {**GOOD_ROW, "system": ""}, "system: needs a non-empty string"),
    ("unknown-key", {"prompt": "x", "schema": USER, "golds": {"name": "A"}}, "unknown key 'golds'"),
]


@pytest.mark.parametrize("bad, piece", [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_a_bad_row_is_one_line_naming_file_and_line_and_refuses_the_file(tmp_path, bad, piece):
    path = write_rows(tmp_path / "mine.jsonl", GOOD_ROW, "", bad, {**GOOD_ROW, "id": "last"})
    with pytest.raises(ValueError) as err:
        load_jsonl(path)
    message = str(err.value)
    assert "\n" not in message, f"one line: {message!r}"
    assert message.startswith(f"{path}: line 3: "), f"the error names the file and the line (3): {message}"
    assert piece in message, f"the error says what is wrong ({piece!r}): {message}"


def test_every_bad_row_is_counted_and_unreadable_files_are_one_line(tmp_path):
    path = write_rows(tmp_path / "two.jsonl", GOOD_ROW, {"prompt": "x"}, "oops")
    with pytest.raises(ValueError, match=r"two.jsonl: line 2: missing key 'schema' \(\+1 more bad lines\)$"):
        load_jsonl(path)
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps(GOOD_ROW).encode() + b'\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin1.jsonl: line 2: not UTF-8 text"):
        load_jsonl(tmp_path / "latin1.jsonl")
    with pytest.raises(ValueError, match="no such file"):
        load_jsonl(tmp_path / "nowhere.jsonl")
    with pytest.raises(ValueError, match="no rows"):
        load_jsonl(write_rows(tmp_path / "blank.jsonl", "", "  "))
    with pytest.raises(ValueError, match="is a folder"):
        load_jsonl(tmp_path)


def test_the_example_file_loads_clean_with_every_gold_valid():
    tasks = load_jsonl(EXAMPLE)
    assert 25 <= len(tasks) <= 40, "examples/tasks.jsonl is a small file of ~30 rows"
    assert {t.tier for t in tasks} == {"simple", "medium", "hard"}
    golds = [t for t in tasks if t.gold is not None]
    assert len(golds) >= 0.8 * len(tasks), "most example rows carry a gold"
    for t in golds:
        assert validate(t.gold, t.schema) == (True, []), f"{t.id}: the gold must validate against its schema"
    assert any(t.system for t in tasks), "the example shows a row with its own system prompt"
    assert all("```json" in t.system for t in tasks if t.system), "a row's system prompt should still ask for the block the reward wants"


# ----------------------------------------------------------------------------- datasets

@pytest.fixture
def datasets_lib(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))  # not the user's cache
    return datasets


def test_a_saved_dataset_maps_columns_and_reads_json_text_and_dicts(datasets_lib, tmp_path):
    rows = [{"question": "A user as JSON.", "json_schema": json.dumps(USER), "answer": json.dumps({"name": "Ann"}), "n": 1},
            {"question": "A number.", "json_schema": json.dumps({"type": "integer"}), "answer": None, "n": 2}]
    datasets_lib.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    columns = {"prompt": "question", "schema": "json_schema", "gold": "answer"}
    first, second = load_custom("dataset", str(tmp_path / "saved"), columns=columns)
    assert (first.id, first.prompt, first.schema, first.gold) == ("saved/0", "A user as JSON.", USER, {"name": "Ann"})
    assert (second.id, second.schema, second.gold, second.meta["row"]) == ("saved/1", {"type": "integer"}, None, 1)

    # dict cells: Arrow pads every row of a struct column with the other rows' keys as null; they are dropped
    structs = [{"prompt": "A user.", "schema": USER, "gold": {"name": "Bo"}},
               {"prompt": "A city.", "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                                "additionalProperties": False}, "gold": {"city": "Oslo"}}]
    splits = datasets_lib.DatasetDict({"train": datasets_lib.Dataset.from_list(structs),
                                       "test": datasets_lib.Dataset.from_list(structs[1:])})
    splits.save_to_disk(str(tmp_path / "splits"))
    tasks = load_dataset_tasks(str(tmp_path / "splits"), split="train")
    assert [(t.schema, t.gold) for t in tasks] == [(s["schema"], s["gold"]) for s in structs], \
        "struct padding must not reach the schema or the gold"
    assert [t.prompt for t in load_dataset_tasks(str(tmp_path / "splits"), split="test")] == ["A city."]
    with pytest.raises(ValueError, match="no split 'validation'; splits: train, test"):
        load_dataset_tasks(str(tmp_path / "splits"), split="validation")


def test_a_data_file_loads_through_datasets_and_bad_rows_name_the_row(datasets_lib, tmp_path):
    path = write_rows(tmp_path / "rows.jsonl", {"q": "A user.", "s": json.dumps(USER)}, {"q": "x", "s": "{oops"})
    with pytest.raises(ValueError) as err:
        load_dataset_tasks(str(path), columns={"prompt": "q", "schema": "s"})
    assert str(err.value).startswith(f"{path}: row 1: schema: a string cell holds JSON text"), str(err.value)
    with pytest.raises(ValueError, match=r"no column 'question' for prompt; columns: q, s"):
        load_dataset_tasks(str(path), columns={"prompt": "question", "schema": "s"})
    with pytest.raises(ValueError, match="no such file or folder"):
        load_dataset_tasks(str(tmp_path / "nowhere.parquet"))
    good = write_rows(tmp_path / "good.jsonl", {"q": "A user.", "s": json.dumps(USER)})
    (task,) = load_dataset_tasks(str(good), split="validation", columns={"prompt": "q", "schema": "s"})
    assert (task.id, task.schema) == ("good/0", USER), "any split name works for a data file"


# ----------------------------------------------------------------------------- renderers and SFT

class EchoTokenizer:
    """A chat template that writes roles and contents out, one id per character."""
    eos_token_id = 0

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def _text(ids) -> str:
    return "".join(chr(i) for i in ids if i)


def test_a_rows_own_system_prompt_reaches_training_sft_and_eval():
    from eval.generate import Generator
    from grpo.sft import build_example
    from grpo.tasks import PromptRenderer
    own = Task(id="a", kind="json", prompt="A user.", schema=USER, gold={"name": "A"}, system="Be a user API; one ```json block.")
    default = Task(id="b", kind="json", prompt="A user.", schema=USER, gold={"name": "A"})
    tok = EchoTokenizer()
    for render in (lambda t: PromptRenderer(tok)(t), lambda t: build_example(tok, t, False).input_ids,
                   lambda t: Generator.render(types.SimpleNamespace(tokenizer=tok), [t], False)[0]):
        assert _text(render(own)).startswith("<system>Be a user API") and SYSTEM_PROMPT_JSON not in _text(render(own))
        assert _text(render(default)).startswith(f"<system>{SYSTEM_PROMPT_JSON}"), "no own prompt: the default"


def test_sft_skips_rows_without_gold_and_refuses_a_pool_without_any():
    from grpo.config import ConfigError
    from grpo.sft import gold_tasks
    tasks = load_jsonl(EXAMPLE)
    kept, skipped = gold_tasks(tasks)
    assert skipped == sum(t.gold is None for t in tasks) > 0 and len(kept) + skipped == len(tasks)
    assert all(t.gold is not None for t in kept) and "```json" in format_gold(kept[0], False)
    with pytest.raises(ConfigError, match="none of the 2 tasks has a gold"):
        gold_tasks([t for t in tasks if t.gold is None][:2])


# ----------------------------------------------------------------------------- config and CLIs

def _config(tmp_path: Path, data: str, mode: str = "grpo") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[run]\nout_dir = "{tmp_path}/runs"\nmode = "{mode}"\n[data]\n{data}\n')
    return path


@pytest.mark.parametrize("data, piece", [
    ('kind = "jsonl"', "data.path: data.kind = 'jsonl' reads its tasks from data.path"),
    ('kind = "math"\npath = "x.jsonl"', "data.path: only data.kind = 'jsonl' or 'dataset' reads a file"),
    ('kind = "jsonl"\npath = "x.jsonl"\ncolumns = {prompt = "q"}', "data.columns: only data.kind = 'dataset'"),
    ('kind = "jsonl"\npath = "x.jsonl"\nsplit = "test"', "data.split: only data.kind = 'dataset'"),
    ('kind = "dataset"\npath = "x"\ncolumns = {answer = "a"}', "data.columns: unknown task field 'answer'"),
    ('kind = "jsonl"\npath = "x.jsonl"\ntier_mix = {simple = 1.0}', "data.tier_mix"),
])
def test_config_rejects_what_a_file_kind_cannot_use(tmp_path, data, piece):
    from grpo.config import ConfigError, load_config
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, data))
    assert piece in str(err.value), str(err.value)


def test_a_curriculum_draws_from_the_generators_only(tmp_path):
    from grpo.config import ConfigError, config_from_dict
    stages = {"stages": [{"name": "a", "tier_mix": {"simple": 1.0}, "max_steps": 3}]}
    with pytest.raises(ConfigError, match="curriculum: stages draw from the generators"):
        config_from_dict({"curriculum": stages, "data": {"kind": "jsonl", "path": "x.jsonl"}})


@pytest.fixture
def stubbed(monkeypatch):
    """grpo-train and grpo-eval with their entry points replaced: reaching one means the checks passed."""
    calls = []
    monkeypatch.setitem(sys.modules, "grpo.train", types.SimpleNamespace(train=lambda cfg, **kw: calls.append(cfg) or 1 / 0))
    monkeypatch.setitem(sys.modules, "grpo.sft", types.SimpleNamespace(run_sft=lambda cfg, **kw: calls.append(cfg) or 1 / 0))
    monkeypatch.setattr(eval.run, "run_eval", lambda plan: calls.append(plan) or 1 / 0)
    return calls


def test_grpo_train_refuses_a_bad_row_in_one_line_before_any_model_load(tmp_path, stubbed, capsys):
    from grpo.cli import main
    bad = write_rows(tmp_path / "bad.jsonl", GOOD_ROW, {"prompt": "x", "schema": USER, "gold": {}})
    assert main([str(_config(tmp_path, f'kind = "jsonl"\npath = "{bad}"'))]) == 2
    err = capsys.readouterr().err
    assert err == f"grpo-train: config error: data.path: {bad}: line 2: gold does not validate against its schema " \
                  "(\"name\" is a required property)\n", err
    assert not stubbed and not (tmp_path / "runs").exists(), "nothing ran, no run folder"


def test_a_good_file_gets_past_every_check(tmp_path, stubbed, capsys):
    from eval.cli import main as eval_main
    from grpo.cli import main as train_main
    with pytest.raises(ZeroDivisionError):
        train_main([str(_config(tmp_path, f'kind = "jsonl"\npath = "{EXAMPLE}"', mode="sft"))])
    assert stubbed[-1].data.path == str(EXAMPLE)
    with pytest.raises(ZeroDivisionError):
        eval_main(["--bench", str(EXAMPLE), "synthetic", "--out", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "c")])
    assert stubbed[-1].sets == [str(EXAMPLE), "synthetic"]
    assert capsys.readouterr().err == ""


def test_grpo_eval_refuses_a_bad_file_in_one_line(tmp_path, stubbed, capsys):
    from eval.cli import main
    bad = write_rows(tmp_path / "bad.jsonl", GOOD_ROW, "{nope")
    assert main(["--bench", str(bad), "--out", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"grpo-eval: --bench {bad}: {bad}: line 2: not valid JSON") and err.count("\n") == 1, err
    assert not stubbed and not (tmp_path / "eval").exists()


def test_a_file_set_is_named_by_its_stem_and_drawn_reproducibly(tmp_path):
    from eval.sets import canonical_name, load_set, set_hash, set_label
    path = str(EXAMPLE)
    assert canonical_name(path) == path and set_label(path) == "tasks"
    every = load_set(path)
    assert [t.id for t in every] == [t.id for t in load_jsonl(EXAMPLE)], "no limit: every row, in file order"
    some = load_set(path, limit=5, seed=1)
    assert len(some) == 5 and [t.id for t in some] == [t.id for t in load_set(path, limit=5, seed=1)]
    assert [t.id for t in some] == [t.id for t in every if t in some], "a drawn subset keeps the file order"
    base = Task(id="a", kind="json", prompt="p", schema=USER)
    assert set_hash([base]) != set_hash([Task(id="a", kind="json", prompt="p", schema=USER, system="s")]), \
        "a row's own system prompt changes what is generated, so it keys the baseline cache"
    with pytest.raises(ValueError, match="no such file"):
        canonical_name(str(tmp_path / "nowhere.jsonl"))
