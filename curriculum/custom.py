"""Tasks from the user's own data: a JSON Lines file, or a `datasets` source (data.kind "jsonl" / "dataset").

Contract: `load_jsonl(path)` and `load_dataset_tasks(path, split, columns)` return JSON tasks, one per
row, in the source's order, or raise ValueError with ONE line that names the source, the row (jsonl:
"line N", 1-based; dataset: "row N", 0-based as in `ds[N]`) and what is wrong, plus how many other rows
are bad. A source with any bad row is refused whole, never half-used. `load_custom(kind, ...)` picks one.
Paths are used as given (relative to the current directory, as every path in a config).

A row (a JSON object per line; in a dataset, columns, renamed by `columns`, e.g. {"prompt": "question"}):
  prompt  required  the user message, a non-empty string
  schema  required  a JSON Schema object, valid for its "$schema" draft (default 2020-12), that the reward's
                    validator can run (rewards.validator: no remote $ref, not too big)
  gold      -       a JSON instance that validates against `schema` (judged as the strict pass judges),
                    the reply SFT trains on; rows without one (or with null) are skipped by SFT only
  id        -       a string or an integer, unique in the source; default "<name>/<line or row>"
  tier      -       a label for per-tier metrics (e.g. simple/medium/hard); default "untiered"
  system    -       a system prompt that replaces the default JSON one (curriculum.prompts) for this row,
                    in think mode too (it should then ask for the think block itself)
Any other key in a jsonl row is refused (a typo like "golds" would silently drop the gold); a dataset's
other columns are ignored. Each task's `source` is "custom/<name>" and its `template_id` is <name>, the
file's stem (a folder's or hub id's last part).

Datasets: `path` is a folder written by `save_to_disk`, a data file (.jsonl .json .parquet .csv .arrow),
a folder of data files, or a hub id (offline: one in the local cache). `datasets` is imported only here,
only for them. Schema and gold cells may hold a JSON text (a string) or a dict. Arrow stores a dict
column as one struct type for all rows, padding each row with the other rows' keys as null, so dict
cells of struct columns are read with null-valued keys dropped: a schema's `"const": null`, or a null
inside a gold, needs the JSON-text form (or a `datasets.Json` column, read as it is).

What it does not do: split the data. Evaluating on the file trained on (`grpo-eval --bench FILE.jsonl`)
measures the same rows; keep a separate file for held-out evaluation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for

from curriculum.task import Task
from rewards.validator import compile_schema, validate

FIELDS = ("prompt", "schema", "gold", "id", "tier", "system")
REQUIRED = ("prompt", "schema")
KINDS = ("jsonl", "dataset")
DEFAULT_TIER = "untiered"
DATA_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")   # what save_to_disk writes
MAX_DETAIL_CHARS = 160


def load_custom(kind: str, path: str | Path, split: str = "train", columns: dict[str, str] | None = None) -> list[Task]:
    if kind == "jsonl":
        return load_jsonl(path)
    if kind == "dataset":
        return load_dataset_tasks(str(path), split, columns)
    raise ValueError(f"unknown custom data kind {kind!r}; known: {KINDS}")


# ----------------------------------------------------------------------------- one row

def _short(text: Any) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_DETAIL_CHARS else line[:MAX_DETAIL_CHARS - 3] + "..."


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_schema(schema: Any, checked: set[str]) -> None:
    if not isinstance(schema, dict):
        raise ValueError(f"schema: needs a JSON Schema object, got {_json_type(schema)}")
    key = json.dumps(schema, sort_keys=True, default=str)
    if key in checked:   # rows often share a schema; check each once
        return
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as err:
        at = "/".join(str(p) for p in err.absolute_path)
        raise ValueError(f"schema is not a valid JSON Schema ({_short((f'at {at}: ' if at else '') + err.message)})")
    compiled = compile_schema(schema)
    if compiled.validator is None:
        raise ValueError(f"schema cannot be used by the reward's validator ({_short(compiled.error)})")
    checked.add(key)


def _check_gold(gold: Any, schema: dict) -> None:
    valid, keywords = validate(gold, schema)
    if valid:
        return
    detail = ", ".join(keywords)
    try:   # the validator's first error names the place ('"age" is a required property')
        first = next(iter(compile_schema(schema).validator.iter_errors(gold)), None)
        if first is not None:
            at = "/".join(str(p) for p in first.instance_path)
            detail = (f"at {at}: " if at else "") + first.message
    except Exception:
        pass
    raise ValueError(f"gold does not validate against its schema ({_short(detail)})")


def _optional_text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{key}: needs a non-empty string, got {_json_type(value)}")
    return value


def _task(row: dict[str, Any], name: str, unit: str, n: int, source: str, checked: set[str]) -> Task:
    for key in REQUIRED:
        if row.get(key) is None:
            raise ValueError(f"missing key {key!r}")
    prompt = row["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt: needs a non-empty string, got {_json_type(prompt)}")
    schema = row["schema"]
    _check_schema(schema, checked)
    gold = row.get("gold")
    if gold is not None:
        _check_gold(gold, schema)
    task_id = row.get("id")
    if task_id is None:
        task_id = f"{name}/{n}"
    elif isinstance(task_id, bool) or not isinstance(task_id, (str, int)) or task_id == "":
        raise ValueError(f"id: needs a non-empty string or an integer, got {_json_type(task_id)}")
    return Task(id=str(task_id), kind="json", prompt=prompt, tier=_optional_text(row, "tier") or DEFAULT_TIER,
                template_id=name, schema=schema, gold=gold, source=f"custom/{name}",
                system=_optional_text(row, "system"), meta={"file": source, unit: n})


def _tasks(source: str, name: str, unit: str, items: Iterable[tuple[int, Any]],
           parse: Callable[[Any], dict[str, Any]]) -> list[Task]:
    """Every row as a task, or ValueError naming the first bad row (and counting the others)."""
    tasks, errors, first_at, checked = [], [], {}, set()
    for n, item in items:
        try:
            task = _task(parse(item), name, unit, n, source, checked)
            if task.id in first_at:
                raise ValueError(f"duplicate id {task.id!r} (first on {unit} {first_at[task.id]})")
            first_at[task.id] = n
            tasks.append(task)
        except ValueError as err:
            errors.append(f"{unit} {n}: {err}")
    if errors:
        more = f" (+{len(errors) - 1} more bad {unit}s)" if len(errors) > 1 else ""
        raise ValueError(f"{source}: {errors[0]}{more}")
    if not tasks:
        raise ValueError(f"{source}: no rows")
    return tasks


# ----------------------------------------------------------------------------- JSON Lines

def _jsonl_row(raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw.decode("utf-8-sig"))   # -sig: a BOM some editors write
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"a row is a JSON object, got {_json_type(row)}")
    unknown = [k for k in row if k not in FIELDS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; a row has {', '.join(FIELDS)}")
    return row


def load_jsonl(path: str | Path) -> list[Task]:
    """The tasks of a JSON Lines file (blank lines are skipped)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a JSON Lines file") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    lines = ((n, raw) for n, raw in enumerate(data.split(b"\n"), 1) if raw.strip())
    return _tasks(str(path), path.stem, "line", lines, _jsonl_row)


# ----------------------------------------------------------------------------- datasets

def _is_struct(feature: Any) -> bool:
    """A struct column (or a list of structs), whose dict cells Arrow pads with the other rows' keys."""
    return isinstance(feature, dict) or (feature is not None and _is_struct(getattr(feature, "feature", None)))


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _cell(field: str, value: Any, struct: bool) -> Any:
    if field in ("schema", "gold") and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{field}: a string cell holds JSON text, and this is not valid JSON "
                             f"({err.msg} at column {err.colno})") from None
    return _drop_nulls(value) if struct else value


def _open_dataset(path: str, split: str):
    local = Path(path).expanduser()
    if local.is_file() and local.suffix.lower() not in DATA_FILE_BUILDERS:
        raise ValueError(f"{path}: unknown data file type {local.suffix!r}; known: {', '.join(DATA_FILE_BUILDERS)}")
    if not local.exists() and (path.startswith((".", "/", "~")) or local.suffix.lower() in DATA_FILE_BUILDERS):
        raise ValueError(f"{path}: no such file or folder")
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{path}: reading a dataset needs the `datasets` package (pip install datasets)") from None
    bars_were_on, verbosity = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()             # a failed start prints one line; no bars or warnings
    datasets.logging.set_verbosity_error()
    try:
        if local.is_dir() and any((local / m).is_file() for m in SAVED_MARKERS):
            data = datasets.load_from_disk(str(local))
        elif local.is_file():
            data = datasets.load_dataset(DATA_FILE_BUILDERS[local.suffix.lower()], data_files={split: str(local)},
                                         split=split)
        else:                                    # a folder of data files, or a hub id
            data = datasets.load_dataset(str(local) if local.is_dir() else path, split=split)
    except Exception as err:                     # FileNotFoundError, DatasetNotFoundError, unknown split, ...
        raise ValueError(f"{path}: cannot load the dataset ({type(err).__name__}: {_short(err)})") from None
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.enable_progress_bars()
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"{path}: no split {split!r}; splits: {', '.join(data)}")
        data = data[split]
    return data                                  # (a saved Dataset is one split: `split` does not apply)


def load_dataset_tasks(path: str, split: str = "train", columns: dict[str, str] | None = None) -> list[Task]:
    """The tasks of one split of a dataset; `columns` maps a row field to its column (default: same name)."""
    unknown = [f for f in (columns or {}) if f not in FIELDS]
    if unknown:
        raise ValueError(f"columns: unknown task field {unknown[0]!r}; known: {', '.join(FIELDS)}")
    ds = _open_dataset(path, split)
    mapping = {f: (columns or {}).get(f, f) for f in FIELDS}
    for f in FIELDS:
        if mapping[f] not in ds.column_names and (f in REQUIRED or f in (columns or {})):
            raise ValueError(f"{path}: no column {mapping[f]!r} for {f}; columns: {', '.join(ds.column_names)}")
    used = {f: c for f, c in mapping.items() if c in ds.column_names}
    struct = {f: _is_struct(ds.features[c]) for f, c in used.items()}

    def parse(record: dict[str, Any]) -> dict[str, Any]:
        return {f: _cell(f, record[c], struct[f]) for f, c in used.items() if record[c] is not None}

    local = Path(path).expanduser()
    name = local.stem if local.is_file() else local.name
    rows = enumerate(ds.select_columns(sorted(set(used.values()))))
    return _tasks(path, name, "row", rows, parse)
