"""GPU check: 5 GRPO steps on CUDA with the transformers engine, bf16 and (if bitsandbytes runs) NF4.

For a lent GPU machine that has PyTorch, transformers and peft but no vLLM, no package registry and
no model files: the model is a small random Llama of SmolLM2-135M's architecture (its config, fewer
layers), built here with the tokenizer that travels in `.gpu-carry/tokenizer` (scripts/gpu_check.sh).
Prints and writes, per precision: step times, the delivery figures (`sync/delivered_fraction`,
`is/kl_sampler_trainer`), the canary after every step, and peak CUDA memory.

    python scripts/gpu_check.py --tokenizer .gpu-carry/tokenizer --out benchmarks/gpu_check.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

# SmolLM2-135M's architecture (config.json of the embedded model) with 4 of its 30 layers.
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
               head_dim=64, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
               max_position_embeddings=2048, num_hidden_layers=4)
KEEP = ("reward", "pass/syntax", "pass/strict", "step_time_s", "time/generate_s", "time/train_s", "time/sync_s",
        "sync/delivered_fraction", "is/kl_sampler_trainer", "canary/delivered", "canary/policy_diff",
        "canary/base_diff", "canary/previous_diff")


def make_model(folder: Path, tokenizer_dir: str) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **SMOLLM2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run(model_dir: Path, out_dir: Path, nf4: bool, device: str, steps: int) -> dict:
    from grpo.config import config_from_dict
    from grpo.train import train
    cfg = config_from_dict({
        "run": {"name": "nf4" if nf4 else "bf16", "out_dir": str(out_dir), "num_steps": steps, "save_every": steps,
                "canary_every": 1, "tensorboard": False, "seed": 0},
        "model": {"path": str(model_dir), "dtype": "bfloat16", "load_in_4bit": nf4, "device": device},
        "rollout": {"engine": "hf", "prompts_per_step": 4, "group_size": 8, "max_new_tokens": 64, "temperature": 1.0},
        "data": {"kind": "json", "num_tasks": 64, "tier_mix": {"simple": 1.0, "medium": 0.0, "hard": 0.0}},
        "grpo": {"beta": 0.04, "zero_variance": "keep", "micro_batch_size": 8},
        "optim": {"lr": 1e-3}}, source="gpu_check")
    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    summary = train(cfg, quiet=False)
    return {"wall_s": time.perf_counter() - t0,
            "peak_cuda_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "steps": [{k: v for k, v in h.items() if k in KEEP} for h in summary["history"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", default=".gpu-carry/tokenizer")
    ap.add_argument("--out", default="benchmarks/gpu_check.json")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of this script where there is no GPU")
    args = ap.parse_args()
    doc = {"bench": "gpu_check", "cuda": torch.cuda.is_available(), "torch": torch.__version__,
           "python": platform.python_version()}
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device")
    doc["device"] = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (smoke test)"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model(Path(tmp) / "model", args.tokenizer)
        for name, nf4 in (("bf16", False), ("nf4", True)):
            try:
                if nf4:
                    import bitsandbytes  # noqa: F401
                doc[name] = run(model_dir, Path(tmp) / "runs", nf4, args.device, args.steps)
            except Exception as e:  # one precision failing must not hide the other's figures
                doc[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            print(json.dumps({name: doc[name]}, indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
