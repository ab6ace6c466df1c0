"""bf16 against float32 on this machine: why `model.dtype = "auto"` exists.

    python scripts/bench_dtype.py [--out benchmarks/dtype_cpu.json]

bf16 halves the weights' bytes, and where the CPU multiplies it natively (AVX512-BF16, AMX) it is the
faster dtype (benchmarks/roofline.json, an AMX machine: bf16 GEMMs 2.4x float32's). A CPU with AVX2
only (AMD EPYC Milan, e.g.) emulates it, and then every phase of a step is slower in bf16. This script
measures, on the machine it runs on, each dtype in turn (float32, bf16, float32: the ratio is taken
against the mean of the two float32 rounds, so a drift of the machine shows):
  - GEMM: the forward of SmolLM2-135M's projections (q 576x576, gate 576x1536, down 1536x576) at 512 rows;
  - train: one forward + backward of the LoRA policy on a 2 x 128-token micro-batch (the SFT loss);
  - generate: vLLM decoding 32 completions of exactly 128 new tokens (one engine per dtype and round,
    each in its own process: two engines in one process share vLLM's global state).
It also records what `rollout.models.native_bf16` says and which dtype "auto" picks.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "embedded:smollm2-135m"
SHAPES = (("q_proj", 576, 576), ("gate_proj", 576, 1536), ("down_proj", 1536, 576))
ROUNDS = ("float32", "bfloat16", "float32")
LOAD_BEFORE = os.getloadavg()


def gemm_gflops(dtype: torch.dtype, m: int = 512, reps: int = 3) -> float:
    flops = secs = 0.0
    for _, k, n in SHAPES:
        x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        torch.nn.functional.linear(x, w)   # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            torch.nn.functional.linear(x, w)
        secs += time.perf_counter() - t
        flops += reps * 2.0 * m * k * n
    return flops / secs / 1e9


def make_train_step(dtype_name: str, rows: int = 2, tokens: int = 128):
    """A function that runs one forward + backward of the SFT loss (LoRA r16 on 7 projections) on a fixed
    random rows x tokens batch and returns its seconds; already warmed up once."""
    from grpo.config import LoraSection, ModelSection
    from grpo.model import load_policy, lora_in_base_dtype
    from grpo.sft import Batch, sft_loss_sum
    from rollout.models import resolve_model

    policy, _ = load_policy(resolve_model(MODEL), ModelSection(dtype=dtype_name), LoraSection())
    ids = torch.randint(0, 49152, (rows, tokens), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, : tokens // 2] = -100   # the prompt half carries no loss
    batch = Batch(ids, torch.ones_like(ids), labels)

    def step() -> float:
        t = time.perf_counter()
        with lora_in_base_dtype(policy):
            nll, n = sft_loss_sum(policy, batch)
        (nll / n).backward()
        policy.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    step()
    return step


def train_step_s(dtype_name: str) -> float:
    """Seconds of one forward + backward of the SFT loss on 2 x 128 tokens, after a warm-up."""
    return make_train_step(dtype_name)()


def generate_tok_s(dtype_name: str) -> dict:
    """vLLM decode throughput in a fresh process (see the module docstring)."""
    code = f"""
import json, time
from rollout.models import resolve_model
from rollout.types import Sampling
from rollout.vllm_engine import VLLMEngine
engine = VLLMEngine(resolve_model({MODEL!r}), max_model_len=1024, seed=0, dtype={dtype_name!r}, enable_lora=False)
ids = engine.tokenizer("Write a JSON object describing a city: its name, population and three landmarks.")["input_ids"]
engine.generate([ids] * 2, Sampling(n=1, temperature=0.8, max_tokens=8))
t = time.perf_counter()
out = engine.generate([ids] * 32, Sampling(n=1, temperature=0.8, max_tokens=128, min_tokens=128))
s = time.perf_counter() - t
print("RESULT " + json.dumps({{"seconds": s, "tokens": sum(len(r.completion_ids) for r in out)}}))
"""
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"engine run ({dtype_name}) failed:\n{proc.stderr[-2000:]}")
    r = json.loads(line[len("RESULT "):])
    return {"seconds": round(r["seconds"], 2), "tokens": r["tokens"], "tok_s": round(r["tokens"] / r["seconds"], 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "dtype_cpu.json"))
    args = p.parse_args()
    from rollout.models import native_bf16, resolve_dtype
    from rollout.preload import reexec_with_preloads   # the allocator and OpenMP runtime the trainer runs with
    reexec_with_preloads()

    rounds = []
    for dtype_name in ROUNDS:
        dtype = getattr(torch, dtype_name)
        with torch.inference_mode():
            gemm = gemm_gflops(dtype)
        row = {"dtype": dtype_name, "gemm_GFLOPs": round(gemm, 2), "train_step_s": round(train_step_s(dtype_name), 3),
               "generate": generate_tok_s(dtype_name)}
        print(json.dumps(row), flush=True)
        rounds.append(row)
    fp32 = [r for r in rounds if r["dtype"] == "float32"]
    bf16 = next(r for r in rounds if r["dtype"] == "bfloat16")
    mean = lambda xs: sum(xs) / len(xs)
    result = {
        "benchmark": "dtype_cpu", "command": "python scripts/bench_dtype.py", "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"processor": _cpu_name(), "cores": os.cpu_count(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()), "amx": bool(torch.cpu._is_amx_tile_supported()),
                    "native_bf16": native_bf16(), "auto_picks": resolve_dtype("auto"),
                    "load_average_before": list(LOAD_BEFORE), "platform": platform.platform()},
        "rounds": rounds,
        "fp32_over_bf16": {
            "gemm_speed": round(mean([r["gemm_GFLOPs"] for r in fp32]) / bf16["gemm_GFLOPs"], 2),
            "train_speed": round(bf16["train_step_s"] / mean([r["train_step_s"] for r in fp32]), 2),
            "generate_speed": round(mean([r["generate"]["tok_s"] for r in fp32]) / bf16["generate"]["tok_s"], 2)},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["fp32_over_bf16"]), "->", args.out)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

if __name__ == "__main__":
    main()
