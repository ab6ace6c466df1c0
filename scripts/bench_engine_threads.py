"""Does the colocated vLLM engine slow the trainer's GEMMs? Before / after the engine, in one process.

    python scripts/bench_engine_threads.py [--rounds 2] [--out benchmarks/engine_threads.json]

scripts/profile_train.py found the train phase's GEMMs at about half the rate the same shapes reach in
a process without an engine (docs/performance.md). Our engine runs in the trainer's process
(VLLM_ENABLE_V1_MULTIPROCESSING=0), and vLLM's CPU worker touches that process: it sets the memory
policy (`init_cpu_memory_env`) and replaces `torch.set_num_threads` by a no-op. This script measures, in
one process with grpo-train's preloads and in this machine's dtype ("auto"):
  - gemm: forward and grad-input GEMMs at the trainer's shapes (scripts/roofline.py's: each distinct
    projection shape and the output head) at 1,024 rows, in GFLOP/s;
  - train: one forward + backward of the LoRA policy (SFT loss, 2 x 512 tokens; bench_dtype's), in seconds;
  - the thread state: torch's thread count, the process's and every thread's CPU affinity, the allowed
    memory nodes and the OpenMP variables;
first before any engine exists, then after a VLLMEngine is built the way grpo-train builds it, then
after it generated a GRPO-sized batch (32 x 128 tokens), each `--rounds` times. Each phase's figure is
the median of its rounds; the ratios after / before say whether the engine costs the trainer anything.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

MODEL = "embedded:smollm2-135m"


def thread_state() -> dict:
    """What could differ after the engine starts: threads, affinities, memory nodes, OpenMP variables."""
    import torch

    def status(path: Path) -> dict:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        return {k: fields.get(k, "").strip() for k in ("Cpus_allowed_list", "Mems_allowed_list")}

    tasks = sorted(Path("/proc/self/task").iterdir()) if Path("/proc/self/task").exists() else []
    per_thread = {}
    for t in tasks:
        try:
            per_thread[t.name] = status(t / "status")["Cpus_allowed_list"]
        except OSError:   # the thread ended meanwhile
            pass
    affinities = dict(Counter(per_thread.values()))
    return {"torch_threads": torch.get_num_threads(), "process_affinity": sorted(os.sched_getaffinity(0)),
            **(status(Path("/proc/self/status")) if Path("/proc/self/status").exists() else {}),
            "threads": len(per_thread), "thread_affinities": affinities,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "KMP_AFFINITY", "OMP_PROC_BIND",
                                                   "OMP_PLACES", "KMP_BLOCKTIME", "GOMP_CPU_AFFINITY")
                    if os.environ.get(k) is not None}}


def gemm_gflops(dtype, rows: int = 1024, reps: int = 3) -> float:
    """Forward and grad-input GEMMs of every projection and the output head (scripts/roofline.py's
    shapes for the model), each shape once, at `rows` rows."""
    import torch
    from roofline import gemm_shapes, model_config
    flops = secs = 0.0
    with torch.inference_mode():
        for k, n in sorted({(K, N) for _, K, N, _ in gemm_shapes(model_config(MODEL))}):
            x, w, g = torch.randn(rows, k, dtype=dtype), torch.randn(n, k, dtype=dtype), torch.randn(rows, n, dtype=dtype)
            torch.nn.functional.linear(x, w), g @ w   # warm-up
            t = time.perf_counter()
            for _ in range(reps):
                torch.nn.functional.linear(x, w)      # forward
                g @ w                                 # grad-input
            secs += time.perf_counter() - t
            flops += reps * 2 * 2.0 * rows * k * n
    return flops / secs / 1e9


def measure(label: str, dtype, train_step, rounds: int) -> dict:
    gemm = [gemm_gflops(dtype) for _ in range(rounds)]
    train = [train_step() for _ in range(rounds)]
    row = {"phase": label, "gemm_GFLOPs": [round(x, 1) for x in gemm], "train_s": [round(x, 3) for x in train],
           "gemm_GFLOPs_median": round(statistics.median(gemm), 1), "train_s_median": round(statistics.median(train), 3),
           "state": thread_state()}
    print(json.dumps({k: v for k, v in row.items() if k != "state"}), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "engine_threads.json"))
    args = ap.parse_args()
    from rollout.preload import reexec_with_preloads
    reexec_with_preloads()

    import torch
    from bench_dtype import make_train_step
    from rollout.models import resolve_dtype, resolve_model
    from rollout.types import Sampling
    from rollout.vllm_engine import VLLMEngine

    load_before = os.getloadavg()
    dtype_name = resolve_dtype("auto")
    dtype = getattr(torch, dtype_name)
    train_step = make_train_step(dtype_name, rows=2, tokens=512)
    phases = [measure("before_engine", dtype, train_step, args.rounds)]
    engine = VLLMEngine(resolve_model(MODEL), max_model_len=1024, seed=0, dtype=dtype_name, max_lora_rank=16)
    phases.append(measure("engine_built", dtype, train_step, args.rounds))
    ids = engine.tokenizer("Write a JSON object describing a city: its name, population and three landmarks.")["input_ids"]
    t = time.perf_counter()
    out = engine.generate([ids] * 4, Sampling(n=8, temperature=0.8, max_tokens=128, min_tokens=128))
    gen_s = time.perf_counter() - t
    phases.append(measure("after_generate", dtype, train_step, args.rounds))
    engine.close()
    base = phases[0]
    doc = {"benchmark": "engine_threads", "command": "python " + " ".join(["scripts/bench_engine_threads.py"] + sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "dtype": dtype_name, "rounds": args.rounds,
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
           "load_average_before": load_before, "load_average_at_end": os.getloadavg(),
           "generate": {"seconds": round(gen_s, 2), "tokens": sum(len(r.completion_ids) for r in out)},
           "phases": phases,
           "after_over_before": {p["phase"]: {"gemm_rate": round(p["gemm_GFLOPs_median"] / base["gemm_GFLOPs_median"], 3),
                                              "train_time": round(p["train_s_median"] / base["train_s_median"], 3)}
                                 for p in phases[1:]},
           "versions": {"torch": torch.__version__, "python": platform.python_version()}}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["after_over_before"]), "->", args.out)


if __name__ == "__main__":
    main()
