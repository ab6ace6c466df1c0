"""`grpo-eval`: parse and check the arguments, build an `EvalPlan`, call `eval.run.run_eval`. Nothing else.

    grpo-eval --pass-at-1 configs/smollm2-135m-cpu.toml --adapter runs/x/stage1 runs/x/stage2 \\
        --bench synthetic Glaiveai2K gsm8k --n 1 --out out/eval
    grpo-eval --pass-at-1 --model embedded:smollm2-135m --greedy --constrained --limit 50

A CONFIG (the trainer's TOML) is read tolerantly for the CONFIG_KEYS only - [model].path,
[model].dtype, [reward].thinking, [prompt].output/system, [rollout].temperature/top_p/max_new_tokens/max_model_len -
with `tomllib`, not through `grpo.config`, so eval never depends on the trainer's internals. Flags
override it. So an adapter trained to answer in bare JSON is asked and judged in bare JSON.
`--report-only DIR` re-renders report.md and the figures from DIR/metrics.json.

Every argument is checked before a model loads (numbers in range; the model, the adapters, the
prompt sets and their external data there; --out writable). A bad one prints one line
`grpo-eval: ...` and exits with status 2, having written nothing.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import tomllib
from pathlib import Path

from rollout.models import DTYPE_NAMES

# setting -> (section, key) in the trainer's TOML, and the value without flag or config
CONFIG_KEYS = {"model": ("model", "path"), "dtype": ("model", "dtype"), "thinking": ("reward", "thinking"),
               "temperature": ("rollout", "temperature"), "top_p": ("rollout", "top_p"),
               "max_tokens": ("rollout", "max_new_tokens"), "max_model_len": ("rollout", "max_model_len"),
               "output": ("prompt", "output"), "system": ("prompt", "system")}
DEFAULTS = {"model": "embedded:smollm2-135m", "dtype": "auto", "thinking": False, "temperature": 0.7, "top_p": 1.0,
            "max_tokens": 512, "max_model_len": 2048, "output": "fenced", "system": None}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# each setting's check and what it wants (the same for a flag and a config value)
WANTS = {"model": (lambda v: isinstance(v, str) and v != "", "a model spec"),
         "dtype": (lambda v: v in DTYPE_NAMES, ", ".join(map(repr, DTYPE_NAMES[:-1])) + f" or {DTYPE_NAMES[-1]!r}"),
         "thinking": (lambda v: isinstance(v, bool), "true or false"),
         "temperature": (lambda v: _number(v) and v >= 0, "a finite number >= 0 (0 = greedy)"),
         "top_p": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
         "max_tokens": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
         "max_model_len": (lambda v: _integer(v) and v >= 2, "an integer >= 2"),
         "output": (lambda v: v in ("fenced", "bare"), "'fenced' or 'bare'"),
         "system": (lambda v: v is None or (isinstance(v, str) and v != ""), "a non-empty string")}


class InputError(Exception):
    """A bad argument; str(err) is the one line grpo-eval prints."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every other bad input; the usage is in --help
        self.exit(2, f"{self.prog}: error: {message}\n")


def read_config(path: str) -> dict:
    """The CONFIG_KEYS a trainer TOML sets; missing keys (or sections) are simply absent."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    out = {}
    for name, (section, key) in CONFIG_KEYS.items():
        table = doc.get(section)
        if isinstance(table, dict) and key in table:
            out[name] = table[key]
    return out


def _at_least_1(text: str) -> int:
    """argparse type: an integer >= 1 (--n 0 would divide by zero once the model is loaded)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="grpo-eval", description="Strict-JSON evaluation: pass@1/pass@k, "
                      "error taxonomy, baseline vs adapters, constrained decoding, report.")
    p.add_argument("config", nargs="?", help="trainer TOML (model, thinking, sampling, token limits are read from it)")
    p.add_argument("--pass-at-1", action="store_true",
                   help="report pass@1 only: k = 1 (with --n > 1, the mean over each prompt's n samples); "
                        "refuses any other --k")
    p.add_argument("--model", help="model spec: embedded:smollm2-135m, embedded:gemma3-270m, a local HF folder or a hub id")
    p.add_argument("--adapter", nargs="+", default=[], help="PEFT adapter folders, as PATH or LABEL=PATH (a run's <run>/adapter is labelled <run>)")
    p.add_argument("--baseline", action="store_true", help="re-run the baseline even if cached")
    p.add_argument("--bench", nargs="+", default=["synthetic"],
                   help="prompt sets: synthetic linear gsm8k Glaiveai2K Github_easy Github_medium Snowplow WashingtonPost ... "
                        "or a task file PATH.jsonl (curriculum.custom; named by its stem)")
    p.add_argument("--limit", type=_at_least_1, help="prompts per set (default: synthetic 300, JSONSchemaBench 200, gsm8k 300, "
                   "linear 150, a task file all its rows)")
    p.add_argument("--n", type=_at_least_1, help="samples per prompt (default 1)")
    p.add_argument("--k", help="comma-separated k for pass@k, each <= n (default: 1 and n; with --pass-at-1: 1)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the config's, else 0.7)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (default: the config's, else 1.0)")
    p.add_argument("--greedy", action="store_true", help="temperature 0, n = 1")
    p.add_argument("--max-tokens", type=int, help="new tokens per JSON completion (default: the config's "
                   "rollout.max_new_tokens, else 512)")
    p.add_argument("--math-max-tokens", type=_at_least_1, default=384, help="new tokens per math completion")
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--output", choices=("fenced", "bare"), help="JSON reply format asked for and judged: one ```json "
                   "block, or the JSON alone (default: the config's prompt.output, else fenced)")
    p.add_argument("--system", help="system prompt of JSON tasks (default: the config's prompt.system, else the "
                   "built-in one for --thinking and --output; a task file row's own still wins)")
    p.add_argument("--constrained", action="store_true", help="also run JSON sets with vLLM structured outputs, "
                   "the base model and each adapter (labels constrained, <label>+constrained)")
    p.add_argument("--engine", choices=("vllm", "hf"), default="vllm")
    p.add_argument("--dtype", choices=DTYPE_NAMES, help="the engine's weights and compute "
                   "(default: the config's model.dtype, else auto: bfloat16 where the machine has it natively)")
    p.add_argument("--max-model-len", type=int, help="context length, prompt + completion (default: the config's "
                   "rollout.max_model_len, else 2048)")
    p.add_argument("--seed", type=int, default=0, help="engine seed")
    p.add_argument("--set-seed", type=int, default=0, help="which prompts: generator seed / external subset draw")
    p.add_argument("--data-dir", help="external_data folder (default: $GRPO_EXTERNAL_DATA or <repo>/../shared/external_data)")
    p.add_argument("--cache-dir", help="baseline cache folder (default: $GRPO_CACHE_DIR/eval-baselines)")
    p.add_argument("--out", default="out/eval")
    p.add_argument("--report-only", metavar="DIR", help="re-render report.md + figures from DIR/metrics.json")
    return p.parse_args(argv)


def _settings(args: argparse.Namespace) -> tuple[dict, dict]:
    """Each CONFIG_KEYS setting from its flag, else the config, else DEFAULTS, checked against WANTS;
    ({name: value}, {name: where it came from})."""
    cfg = {}
    if args.config:
        try:
            cfg = read_config(args.config)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise InputError(f"cannot read config {args.config}: {err}") from None
    out, origin = {}, {}
    for name in CONFIG_KEYS:
        flag = "--" + name.replace("_", "-")
        if getattr(args, name) is not None:
            value, where = getattr(args, name), flag
        elif name in cfg:
            value, where = cfg[name], f"{args.config}: {'.'.join(CONFIG_KEYS[name])}"
        else:
            value, where = DEFAULTS[name], flag
        ok, want = WANTS[name]
        if not ok(value):
            raise InputError(f"{where} = {value!r}: needs {want}")
        out[name], origin[name] = value, where
    if out["max_tokens"] >= out["max_model_len"]:
        raise InputError(f"--max-tokens {out['max_tokens']} leaves no room for a prompt in a context of "
                         f"{out['max_model_len']} tokens (--max-model-len)")
    return out, origin


def _ks(args: argparse.Namespace, n: int) -> tuple[int, ...]:
    if args.k is None:
        return (1,) if args.pass_at_1 else tuple(sorted({1, n}))
    try:
        ks = tuple(int(k) for k in args.k.split(",") if k.strip())
    except ValueError:
        raise InputError(f"--k {args.k}: needs comma-separated integers, e.g. 1,5") from None
    if not ks or min(ks) < 1:
        raise InputError(f"--k {args.k}: every k must be >= 1")
    if args.pass_at_1 and ks != (1,):
        raise InputError(f"--k {args.k}: --pass-at-1 reports pass@1 only; drop one of them")
    if max(ks) > n:
        raise InputError(f"--k {args.k}: pass@k needs n >= k samples per prompt, and n = {n}"
                         + (" (--greedy)" if args.greedy else ""))
    return ks


def build_plan(args: argparse.Namespace, command: str):
    """The EvalPlan of the arguments, each checked first (InputError, one line). Loads no model."""
    from eval.records import Decoding
    from eval.run import BASELINE, CONSTRAINED, EvalPlan, adapter_spec, constrained_label
    from eval.sets import check_set, is_file_set
    from rollout.checks import check_adapter, check_model, check_output_folder
    from rollout.models import cache_root, offline_unless_hub

    s, origin = _settings(args)
    offline_unless_hub(s["model"])  # before check_model, which asks whether a hub id can be fetched
    n = 1 if args.greedy else args.n or 1
    ks = _ks(args, n)
    if args.constrained and args.engine != "vllm":
        raise InputError("--constrained: structured outputs need --engine vllm")
    checks = [(origin["model"], check_model, s["model"]),
              ("--out", check_output_folder, args.out),
              ("--cache-dir", check_output_folder, args.cache_dir or cache_root() / "eval-baselines")]
    checks += [(f"--bench {name}", lambda name: check_set(name, args.data_dir), name) for name in args.bench]
    named: dict[str, str] = {}   # a task file is named by its stem in reports: two sets must not share a name
    for name in args.bench:
        key = (Path(name).stem if is_file_set(name) else name).lower()
        if key in named and (is_file_set(name) or is_file_set(named[key])):
            raise InputError(f"--bench {name}: --bench {named[key]} has the same name in reports; rename the file")
        named.setdefault(key, name)
    labels = [BASELINE, CONSTRAINED]
    for spec in args.adapter:
        label, path = adapter_spec(spec)
        if label in labels or (args.constrained and constrained_label(label) in labels):
            raise InputError(f"--adapter {spec}: the label {label!r} is taken; name it as LABEL=PATH")
        labels += [label, constrained_label(label)] if args.constrained else [label]
        checks.append((f"--adapter {spec}", check_adapter, path))
    for where, check, value in checks:
        try:
            check(value)
        except ValueError as err:
            raise InputError(f"{where}: {err}") from None

    decoding = Decoding(temperature=0.0 if args.greedy else s["temperature"], top_p=s["top_p"],
                        max_tokens=s["max_tokens"], n=n, seed=args.seed, engine=args.engine, thinking=s["thinking"],
                        output=s["output"], system=s["system"])
    return EvalPlan(model=s["model"], adapters=args.adapter, sets=args.bench, decoding=decoding,
                    math_max_tokens=args.math_max_tokens, ks=ks, limit=args.limit, set_seed=args.set_seed,
                    out=args.out, cache_dir=args.cache_dir, force_baseline=args.baseline,
                    constrained=args.constrained, max_model_len=s["max_model_len"], data_dir=args.data_dir,
                    command=command, dtype=s["dtype"])


def report_only(folder: Path) -> Path:
    """Re-render report.md and figures/ from folder/metrics.json (checked first, as every input)."""
    from rollout.checks import check_output_folder, read_json_object
    if not folder.is_dir():
        raise InputError(f"--report-only {folder}: no such folder")
    try:
        metrics = read_json_object(folder / "metrics.json", f"no metrics.json in {folder}")
        check_output_folder(folder)
    except ValueError as err:
        raise InputError(f"--report-only: {err}") from None
    if not isinstance(metrics.get("sets"), dict):
        raise InputError(f"--report-only: {folder / 'metrics.json'} holds no per-set results (no 'sets')")
    from eval.figures import make_figures
    from eval.report import write_report
    return write_report(metrics, make_figures(metrics, folder / "figures"), folder / "report.md")


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command line: tcmalloc + Intel OpenMP preloaded (rollout/preload.py)
        from rollout.preload import reexec_with_preloads
        reexec_with_preloads()
    args = parse_args(argv)
    try:
        if args.report_only:
            print(report_only(Path(args.report_only)))
            return 0
        plan = build_plan(args, "grpo-eval " + shlex.join(sys.argv[1:] if argv is None else argv))
    except InputError as err:
        print(f"grpo-eval: {err}", file=sys.stderr)
        return 2
    from eval.run import run_eval
    metrics = run_eval(plan)
    for name, s in metrics["sets"].items():
        for label, m in s["runs"].items():
            print(f"{name:14s} {label:14s} strict {m['strict']['rate']:.3f} [{m['strict']['lo']:.3f}, {m['strict']['hi']:.3f}]"
                  f"  syntax {m['syntax']['rate']:.3f}  format {m['format']['rate']:.3f}  n={m['num_prompts']}")
    print(Path(plan.out) / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
