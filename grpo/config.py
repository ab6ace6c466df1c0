"""The trainer's configuration: TOML file -> one frozen, validated `Config`.

Every knob is a field below, next to its default and the reason for it; nothing else in the package
holds a hyper-parameter. `load_config(path, overrides)` reads the TOML, applies `--set key=value`
overrides, validates with pydantic (unknown keys, wrong types and impossible combinations are
rejected) and raises `ConfigError` with ONE line naming the key and where it came from.
`dump_toml(config)` writes the resolved config back (saved in every run folder and checkpoint).

Sizes per optimizer step (printed at start-up by grpo.train):
  completions/step = rollout.prompts_per_step (P) x rollout.group_size (G)
  micro-batches    = ceil(completions in the loss / grpo.micro_batch_size), or with packed groups
                     (grpo.share_prompt on CPU) chunks of <= grpo.micro_batch_tokens completion tokens
  optimizer steps  = run.num_steps x grpo.num_iterations (mu)
"""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curriculum.json_tasks import tier_counts
from curriculum.schedule import Schedule
from rewards.config import RewardConfig


class ConfigError(Exception):
    """A bad config; str(err) is one line naming the file and the key."""


class Section(BaseModel):
    # allow_inf_nan=False: `lr = inf` or `temperature = nan` passes every gt/ge bound, then ruins the run
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RunSection(Section):
    name: str = "run"                 # run folder = out_dir/name
    mode: Literal["grpo", "sft"] = "grpo"  # sft: supervised warm start on gold replies (grpo/sft.py)
    out_dir: str = "runs"
    seed: int = 0                     # torch/numpy/python RNGs and the engine's sampler
    num_steps: int = Field(100, ge=1)  # GRPO steps (each = 1 rollout batch, mu optimizer steps)
    save_every: int = Field(20, ge=1)  # checkpoint period in steps (the last step is always saved)
    keep_last: int = Field(3, ge=1)    # older checkpoints are deleted
    sample_every: int = Field(10, ge=1)  # sample text to TensorBoard every N steps (and at step 1)
    num_samples_logged: int = Field(1, ge=0)  # whole groups in it: prompt, G completions, components, advantages
    canary_every: int = Field(10, ge=0)  # engine-vs-trainer logprob check after the swap (rollout.canary); 0 = never
    probe_every: int = Field(0, ge=0)    # held-out greedy strict pass every N steps (grpo/probe.py); 0 = never
    probe_prompts: int = Field(30, ge=1)  # size of that fixed held-out probe
    num_threads: int = Field(0, ge=0)  # torch intra-op threads; 0 = torch's default
    tensorboard: bool = True


class ModelSection(Section):
    path: str = "embedded:smollm2-135m"  # hub id, local HF folder, or embedded:smollm2-135m|gemma3-270m
    # auto: bfloat16 where the machine multiplies it natively (CUDA, AVX512-BF16 / AMX CPUs), else float32
    # (an AVX2 CPU emulates bf16: 27x slower training, 4.3x slower generation; benchmarks/dtype_cpu.json)
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    load_in_4bit: bool = False         # NF4 base via bitsandbytes (seed); LoRA stays full precision
    gradient_checkpointing: bool = False  # trade compute for memory on long sequences / big models
    init_adapter: str | None = None    # start from a saved PEFT adapter (e.g. SFT warm start)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # the trainer's device; auto: cuda when there is one
    # The trainer's attention kernel. "auto": "grouped" on CPU (grpo/attention.py: grouped-query attention
    # as batched matmuls, ~1.5x faster forward + backward than torch's CPU flash kernel, keeps the bf16
    # attention probabilities for the backward), "sdpa" on GPU.
    attn_implementation: Literal["auto", "grouped", "eager", "sdpa", "flash_attention_2"] = "auto"

    @property
    def resolved_dtype(self) -> str:
        """dtype with "auto" resolved for this machine; an NF4 base always computes in bfloat16."""
        from rollout.models import resolve_dtype
        return "bfloat16" if self.load_in_4bit and self.dtype == "auto" else resolve_dtype(self.dtype)


class LoraSection(Section):
    r: int = Field(16, ge=1)           # seed: r=16, alpha=32, dropout 0, all 7 projections
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)  # > 0 makes old/ref logprobs noisy; the seed uses 0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj",
                                       "gate_proj", "up_proj", "down_proj")


class RolloutSection(Section):
    engine: Literal["vllm", "hf"] = "vllm"  # vllm: fast, LoRA hot-swapped; hf: reference, slow
    prompts_per_step: int = Field(4, ge=1)  # P
    group_size: int = Field(8, ge=2)        # G; the seed's num_generations
    temperature: float = Field(0.7, gt=0)   # > 0: identical greedy samples carry no signal
    top_p: float = Field(1.0, gt=0, le=1)   # < 1 only for evaluation configs (see _combinations)
    # How the vLLM engine serves the adapter (rollout.vllm_engine): auto = "unmerged" on CPU (exact,
    # compiled), "request" on GPU (vLLM LoRA kernels); "merge" rounds W + dW to bf16 and loses most of it.
    lora_mode: Literal["auto", "unmerged", "request", "merge"] = "auto"
    max_new_tokens: int = Field(256, ge=1)
    max_model_len: int = Field(1024, ge=2)  # prompt + completion, for the engine's KV cache
    think_prefill: bool = False             # think mode: the assistant turn starts with "<think>\n" (rollout.chat)
    gpu_memory_utilization: float = Field(0.4, gt=0, le=1)  # GPU only; the seed used 0.35-0.42


class DataSection(Section):
    # json / math: the generators (curriculum.json_tasks, curriculum.linear_equations); jsonl / dataset: the
    # user's own rows (curriculum.custom: prompt + schema required, gold/id/tier/system optional), all of them
    kind: Literal["json", "math", "jsonl", "dataset"] = "json"
    num_tasks: int = Field(4000, ge=1)      # generators only: training pool, walked in a reshuffled order each epoch
    seed: int = 42                          # generators only: generator seed (the seed repo's data seed)
    tier_mix: dict[str, float] | None = None  # json only, e.g. {simple=0.2, medium=0.3, hard=0.5}
    # json only: the share of the pool whose prompt gives the JSON Schema itself (curriculum.json_tasks "schema")
    schema_prompt_share: float = Field(0.0, ge=0, le=1)
    # json only: the share whose schema's shape is drawn at random too (curriculum.json_tasks "generated")
    generated_share: float = Field(0.0, ge=0, le=1)
    # jsonl: a .jsonl file; dataset: a save_to_disk folder, a data file (.jsonl/.parquet/.csv) or a hub id.
    # Relative to the current directory. Checked row by row before any model loads (check_paths).
    path: str | None = None
    split: str = "train"                    # dataset only
    columns: dict[str, str] | None = None   # dataset only: task field -> column, e.g. {prompt = "question"}

    @field_validator("tier_mix")
    @classmethod
    def _known_tiers(cls, tier_mix: dict[str, float] | None) -> dict[str, float] | None:
        if tier_mix is not None:
            tier_counts(1, tier_mix)  # the generator's own check (known tiers, weights >= 0, sum > 0), up front
        return tier_mix

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str] | None) -> dict[str, str] | None:
        from curriculum.custom import FIELDS
        unknown = [f for f in columns or {} if f not in FIELDS]
        if unknown:
            raise ValueError(f"unknown task field {unknown[0]!r}; known: {', '.join(FIELDS)}")
        return columns


class GRPOSection(Section):
    beta: float = Field(0.04, ge=0)         # KL weight (seed/TRL); 0 skips the reference forward
    eps_low: float = Field(0.2, ge=0, lt=1)  # clip: rho >= 1 - eps_low (PPO/GRPO 0.2)
    eps_high: float = Field(0.2, ge=0)      # clip: rho <= 1 + eps_high (DAPO clip-higher: 0.28)
    num_iterations: int = Field(1, ge=1)    # mu; 1 = on-policy, old logprobs come free with the grad pass
    adv_scale: Literal["group", "batch", "none"] = "group"  # grpo.advantages
    adv_eps: float = Field(1e-4, gt=0)      # TRL's epsilon in (r - mean) / (std + eps); > 0 keeps tied groups at 0
    loss_agg: Literal["seq_mean", "token_mean", "constant"] = "token_mean"  # DAPO: no length bias toward short
    zero_variance: Literal["keep", "filter"] = "filter"  # keep: adv 0 (still in normalisers, KL); filter: drop+refill
    max_refill_rounds: int = Field(1, ge=0)  # filter only: extra generation rounds to replace dropped groups
    mask_truncated: bool = False            # drop completions cut by max_new_tokens from the loss (DAPO)
    is_correction: Literal["none", "tis"] = "tis"  # engine-vs-trainer truncated importance sampling
    is_cap: float = Field(2.0, ge=1)        # TIS cap C (Yao et al. 2025 use 2)
    micro_batch_size: int = Field(8, ge=1)  # sequences per forward/backward (gradient accumulation)
    share_prompt: bool = True               # forward each group's prompt once, KV cache shared (exact; ~40 % fewer FLOPs)
    micro_batch_tokens: int | None = Field(None, ge=1)  # share_prompt with the CPU "grouped" attention packs a
                                            # group's completions unpadded: completion tokens per micro-batch
                                            # (None: micro_batch_size x rollout.max_new_tokens, the padded worst case)
    logprob_chunk_tokens: int = Field(512, ge=1)  # rows of the output head at a time (memory: rows x V x 4 B)


class OptimSection(Section):
    lr: float = Field(5e-6, gt=0)           # seed; LoRA on small models tolerates far more (see configs)
    weight_decay: float = Field(0.1, ge=0)  # seed
    betas: tuple[float, float] = (0.9, 0.99)
    schedule: Literal["constant", "cosine"] = "cosine"  # after warm-up; seed: cosine
    warmup_ratio: float = Field(0.1, ge=0, lt=1)  # of all optimizer steps; seed 0.1
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # cosine floor as a fraction of lr
    max_grad_norm: float = Field(0.1, gt=0)  # seed; clip the global grad norm of the LoRA weights


class PromptSection(Section):
    """How JSON tasks are asked for and how their replies are judged (curriculum.prompts, rewards.parse).
    Math tasks keep their built-in prompts and their one reply format; a task file row's own `system`
    still wins over `system` here."""
    system: str | None = Field(None, min_length=1)  # JSON tasks' system prompt; None: the built-in one for
                                                    # reward.thinking and `output` (curriculum.prompts)
    output: Literal["fenced", "bare"] = "fenced"    # fenced: one ```json block (the seed's); bare: the JSON
                                                    # value alone, as JSON-mode and API clients read it


class SFTSection(Section):
    """run.mode = "sft" only: how gold replies are batched (optimizer and schedule: [optim])."""
    micro_batch_size: int = Field(8, ge=1)   # sequences per forward/backward
    grad_accum: int = Field(2, ge=1)         # micro-batches per optimizer step (16 sequences by default)


class Config(Section):
    run: RunSection = RunSection()
    model: ModelSection = ModelSection()
    lora: LoraSection = LoraSection()
    rollout: RolloutSection = RolloutSection()
    data: DataSection = DataSection()
    grpo: GRPOSection = GRPOSection()
    optim: OptimSection = OptimSection()
    reward: RewardConfig = RewardConfig()
    prompt: PromptSection = PromptSection()
    sft: SFTSection = SFTSection()
    curriculum: Schedule | None = None  # stages (curriculum.schedule); None: one pool from [data]

    @model_validator(mode="after")
    def _combinations(self) -> "Config":
        r = self.rollout
        if r.max_new_tokens >= r.max_model_len:
            raise ValueError(f"rollout.max_new_tokens: {r.max_new_tokens} leaves no room for the prompt "
                             f"in rollout.max_model_len = {r.max_model_len}")
        d = self.data
        for name in ("schema_prompt_share", "generated_share"):
            if getattr(d, name) > 0 and d.kind != "json":
                raise ValueError(f"data.{name}: only generated JSON tasks have schema prompts (data.kind = {d.kind!r})")
        if d.schema_prompt_share + d.generated_share > 1:
            raise ValueError(f"data.schema_prompt_share + data.generated_share = "
                             f"{d.schema_prompt_share + d.generated_share:g} > 1; they are shares of one pool")
        if d.tier_mix is not None and d.kind != "json":
            raise ValueError(f"data.tier_mix: only generated JSON tasks have a tier mix (data.kind = {d.kind!r})")
        if d.kind in ("jsonl", "dataset") and d.path is None:
            raise ValueError(f"data.path: data.kind = {d.kind!r} reads its tasks from data.path; set it")
        if d.path is not None and d.kind not in ("jsonl", "dataset"):
            raise ValueError(f"data.path: only data.kind = 'jsonl' or 'dataset' reads a file (data.kind = {d.kind!r})")
        if (d.columns is not None or d.split != "train") and d.kind != "dataset":
            raise ValueError(f"data.{'columns' if d.columns is not None else 'split'}: only data.kind = 'dataset' "
                             f"has columns and splits (data.kind = {d.kind!r})")
        if self.curriculum is not None and d.kind in ("jsonl", "dataset"):
            raise ValueError(f"curriculum: stages draw from the generators; data.kind = {d.kind!r} trains on one pool")
        if self.model.load_in_4bit and self.model.dtype == "float32":
            raise ValueError("model.load_in_4bit: NF4 computes in bfloat16; set model.dtype = 'bfloat16'")
        if r.top_p < 1 and self.run.mode == "grpo":
            raise ValueError(f"rollout.top_p: {r.top_p} < 1 makes vLLM renormalise its logprobs over the nucleus "
                             "while the trainer scores the full softmax, so the importance ratios would be wrong; use 1.0")
        if d.kind == "math" and (self.prompt.system is not None or self.prompt.output != "fenced"):
            key = "system" if self.prompt.system is not None else "output"
            raise ValueError(f"prompt.{key}: [prompt] describes JSON replies; math tasks keep their built-in "
                             "prompt and 'Answer:' line (data.kind = 'math')")
        if r.think_prefill and not self.reward.thinking:
            raise ValueError("rollout.think_prefill: opens a think block; it needs reward.thinking = true")
        if self.curriculum is not None and self.data.tier_mix is not None:
            raise ValueError("data.tier_mix: a curriculum sets the tier mix per stage "
                             "(curriculum.stages.tier_mix); remove data.tier_mix")
        if self.curriculum is not None and self.run.mode == "sft":
            raise ValueError("curriculum: stages apply to GRPO runs; run.mode = 'sft' trains on one pool")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name

    @property
    def completions_per_step(self) -> int:
        return self.rollout.prompts_per_step * self.rollout.group_size


# ----------------------------------------------------------------------------- loading

def parse_override(item: str) -> tuple[list[str], Any]:
    """'grpo.beta=0.02' -> (['grpo', 'beta'], 0.02). Values are TOML; bare words are strings."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value")
    key, raw = (s.strip() for s in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def _format_error(err: ValidationError, source: str, override_keys: set[str]) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    if not key:  # a combination check: its message starts with the key it names
        key, _, msg = msg.partition(": ")
    origin = " (from --set)" if key in override_keys else ""
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {key}{origin}: {msg}{more}"


def config_from_dict(data: dict[str, Any], source: str = "<dict>", overrides: list[str] = ()) -> Config:
    data = json.loads(json.dumps(data))  # deep copy; TOML values are JSON-compatible
    override_keys = set()
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: {part} is not a section")
        node[path[-1]] = value
        override_keys.add(".".join(path))
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source, override_keys)) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override, validate. Raises ConfigError (one line) on any problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return config_from_dict(data, str(path), overrides)


def check_paths(cfg: Config) -> None:
    """What the config points at, checked before any model loads (rollout.checks): model.path resolves
    without a download, model.init_adapter is a PEFT adapter with weights, the run folder is writable,
    and a user's task file (data.path) loads with every row good. Raises ConfigError naming the key."""
    from rollout.checks import check_adapter, check_model, check_output_folder
    checks = [("model.path", check_model, cfg.model.path), ("run.out_dir", check_output_folder, cfg.run_dir)]
    if cfg.model.init_adapter:
        checks.append(("model.init_adapter", check_adapter, cfg.model.init_adapter))
    if cfg.data.kind in ("jsonl", "dataset"):
        checks.append(("data.path", check_task_data, cfg))
    for key, check, value in checks:
        try:
            check(value)
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from None


def check_task_data(cfg: Config) -> None:
    """data.path loads (curriculum.custom: a bad row refuses the whole file); SFT needs a row with a gold."""
    from curriculum.custom import load_custom
    d = cfg.data
    tasks = load_custom(d.kind, d.path, d.split, d.columns)
    if cfg.run.mode == "sft" and all(t.gold is None for t in tasks):
        raise ValueError(f"{d.path}: no row has a gold, and run.mode = 'sft' trains on golds")


# ----------------------------------------------------------------------------- writing

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}"
                                for k, x in v.items() if x is not None) + " }"
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    return str(v)


def dump_toml(config: Config) -> str:
    """The resolved config as TOML (None values are left out: they are the defaults)."""
    lines = []
    for section, values in config.model_dump(mode="json").items():
        if values is None:
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)
