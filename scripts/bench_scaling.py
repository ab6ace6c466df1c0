"""What data-parallel GRPO communicates per step, how long it takes with 2 gloo ranks here, and a model
of the step time at 2, 8 and 64 ranks built from those measurements and a real run's phase times.

    python scripts/bench_scaling.py [--reps 20] [--phases docs/study/grpo-group-scalars.csv]

Measured (2 real processes, gloo over loopback, one thread each, the machine otherwise idle):
  - the step's gradient all-reduce: one flat float32 vector of the LoRA parameters (grpo.distributed),
    for SmolLM2-135M r16 on 7 projections and, for scale, for a 7B model (Qwen2.5-7B shapes) r16;
  - the step's small collectives: the prompt-shortfall gather, the rewards gather, the metrics gather
    (a step's real MeanAccumulators), the loss-normaliser and has-work sums;
  - the adapter hash check (BLAKE2b of the flat vector, then a gather of 16-byte digests).

Modelled (weak scaling: every rank keeps the one-process run's prompts per step, so N ranks do N
times the work per step): T(N) = E[max over N ranks of the generate time] + train + sync + hash
+ all-reduce(N) + small collectives(N); speed-up S(N) = N * T(1) / T(N). The generate-time spread
across ranks is taken from the spread across the steps of a real run (the same task mix and sampling),
by resampling; train time is the run's median (every rank has the same amount of work on average,
and the step waits for the slowest only in generation, where the lengths vary most). A ring
all-reduce moves 2 (N-1)/N of the vector through each link, in 2 (N-1) latency-bound hops. The
bandwidths and latencies for GPUs are assumptions, written into the JSON beside the result.

Writes benchmarks/scaling.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Qwen2.5-7B (config.json on the hub): the 7B example of docs/scaling.md.
QWEN_7B = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
           "num_attention_heads": 28, "num_key_value_heads": 4, "head_dim": 128}
# Assumed links for the GPU model (not measured here: this machine has no GPU).
LINKS = {
    "8 GPUs, one node (NVLink, NCCL ring)": {"bandwidth_GBps": 150.0, "latency_us": 10.0},
    "64 GPUs, 8 nodes (400 Gb/s InfiniBand per node, NCCL ring)": {"bandwidth_GBps": 40.0, "latency_us": 20.0},
}


def lora_parameters(cfg: dict, rank: int = 16) -> int:
    """LoRA parameters of r=`rank` adapters on the 7 projections of a Llama-shaped model."""
    h, i, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    head = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * head, cfg["num_key_value_heads"] * head
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
              "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    return L * sum(rank * (a + b) for a, b in (shapes[p] for p in PROJECTIONS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_seconds(fn, reps: int, warmup: int = 3) -> float:
    import torch.distributed as dist
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rank_main(rank: int, world: int, port: int, sizes: dict[str, int], reps: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from grpo.distributed import TorchWorld, params_hash
    from grpo.monitor import MeanAccumulator
    w = TorchWorld("gloo")
    result: dict[str, dict] = {"all_reduce_s": {}, "hash_check_s": {}}
    for name, n in sizes.items():
        torch.manual_seed(0)  # the same adapter on both ranks, as after grpo.distributed's broadcast
        params = [torch.nn.Parameter(torch.randn(n))]
        params[0].grad = torch.randn(n)
        result["all_reduce_s"][name] = median_seconds(lambda: w.all_reduce_grads(params), reps)
        result["hash_check_s"][name] = median_seconds(lambda: w.check_same(params, "bench"), max(3, reps // 4))
        if rank == 0:
            print(f"{name}: {n:,} parameters, all-reduce {result['all_reduce_s'][name] * 1e3:.1f} ms, "
                  f"hash check {result['hash_check_s'][name] * 1e3:.1f} ms", flush=True)
    # The small collectives of one step (grpo.step): a real step's metric accumulators.
    stats = MeanAccumulator()
    stats.add({f"metric_{k}": float(k) for k in range(40)}, weight=3.0)
    rewards = torch.rand(2, 8)
    def small():
        w.gather(2)                                                   # prompt shortfalls
        w.gather(rewards)                                             # rewards of the kept groups
        w.sum(torch.tensor(1234.0))                                   # loss normaliser
        w.sum(torch.tensor(8))                                        # some rank has work
        w.gather((stats, stats, {"sampled": 2, "loss": 0.1}, {"generate": 1.0, "train": 2.0}))  # metrics
    result["small_collectives_s"] = median_seconds(small, reps)
    one_float = torch.zeros(1)
    result["latency_s"] = median_seconds(lambda: w.dist.all_reduce(one_float), reps * 5)
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    w.close()


def measure(sizes: dict[str, int], reps: int) -> dict:
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rank0.json")
        mp.spawn(rank_main, args=(2, free_port(), sizes, reps, out), nprocs=2, join=True)
        return json.loads(Path(out).read_text())


def ring_all_reduce_s(nbytes: int, ranks: int, bandwidth_Bps: float, latency_s: float) -> float:
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth_Bps + 2 * (ranks - 1) * latency_s


def expected_max(samples: np.ndarray, ranks: int, draws: int = 20000, seed: int = 0) -> float:
    """E[max of `ranks` independent draws from `samples`] by resampling."""
    rng = np.random.default_rng(seed)
    return float(rng.choice(samples, size=(draws, ranks)).max(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--phases", default=str(ROOT / "docs/study/grpo-group-scalars.csv"),
                        help="a run's scalars CSV (time/generate_s, time/train_s, time/sync_s per step)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/scaling.json"))
    args = parser.parse_args()

    from rollout.models import resolve_model
    smol_cfg = json.loads((Path(resolve_model("embedded:smollm2-135m")) / "config.json").read_text())
    n_smol, n_7b = lora_parameters(smol_cfg), lora_parameters(QWEN_7B)
    sizes = {"smollm2-135m r16": n_smol, "qwen2.5-7b r16": n_7b}
    t0 = time.time()
    measured = measure(sizes, args.reps)

    rows = list(csv.DictReader(open(args.phases)))
    gen = np.array([float(r["time/generate_s"]) for r in rows])
    train = statistics.median(float(r["time/train_s"]) for r in rows)
    sync = statistics.median(float(r["time/sync_s"]) for r in rows)
    nbytes = 4 * n_smol
    # Gloo here: the effective bandwidth of the measured 2-rank ring (2 (N-1)/N = 1 vector per link).
    gloo_Bps = nbytes / measured["all_reduce_s"]["smollm2-135m r16"]
    small = measured["small_collectives_s"]
    hash_s = measured["hash_check_s"]["smollm2-135m r16"]

    def step_time(ranks: int, bandwidth_Bps: float, latency_s: float) -> dict:
        generate = expected_max(gen, ranks)
        comm = ring_all_reduce_s(nbytes, ranks, bandwidth_Bps, latency_s) + (small * np.log2(ranks) if ranks > 1 else 0.0)
        total = generate + train + sync + (hash_s if ranks > 1 else 0.0) + comm
        return {"step_s": round(total, 3), "generate_s": round(generate, 3), "communication_s": round(comm, 4)}

    one = step_time(1, gloo_Bps, 0.0)["step_s"]
    model = {}
    gloo = {"bandwidth_GBps": gloo_Bps / 1e9, "latency_us": measured["latency_s"] / 2 * 1e6}  # 2 hops per all-reduce
    for label, link in [("CPU ranks, gloo as measured here", gloo),
                        *LINKS.items()]:
        rows_out = {}
        for ranks in (2, 8, 64):
            t = step_time(ranks, link["bandwidth_GBps"] * 1e9, link["latency_us"] * 1e-6)
            rows_out[str(ranks)] = t | {"speedup": round(ranks * one / t["step_s"], 2),
                                        "efficiency": round(one / t["step_s"], 3)}
        model[label] = {"link": link, "ranks": rows_out}

    result = {
        "command": "python scripts/bench_scaling.py" + (f" --reps {args.reps}" if args.reps != 20 else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "measured_2_gloo_ranks": {
            "lora_parameters": sizes,
            "bytes_per_all_reduce": {k: 4 * v for k, v in sizes.items()},
            "all_reduce_s": measured["all_reduce_s"],
            "hash_check_s": measured["hash_check_s"],
            "small_collectives_s": small,
            "one_float_all_reduce_s": measured["latency_s"],
            "effective_bandwidth_GBps": round(gloo_Bps / 1e9, 3),
            "note": "one flat float32 all-reduce per optimizer step (x grpo.num_iterations); the small "
                    "collectives are 3 gathers and 2 sums of a few hundred bytes each, plus one gather per refill round",
        },
        "phases_from": {"file": os.path.relpath(args.phases, ROOT), "steps": len(rows),
                        "generate_s_median": round(float(np.median(gen)), 3),
                        "generate_s_p90": round(float(np.percentile(gen, 90)), 3),
                        "train_s_median": round(train, 3), "sync_s_median": round(sync, 3)},
        "model": {"one_rank_step_s": round(one, 3), "by_link": model},
        "assumptions": [
            "weak scaling: each rank keeps the one-process prompts per step (N ranks, N times the prompts)",
            "a rank's generate time is a draw from the run's per-step generate times; the step waits for the slowest rank",
            "train and sync times do not depend on N (same work per rank); the optimizer step is inside train",
            "ring all-reduce: 2 (N-1)/N x bytes over the slowest link, 2 (N-1) hops of the link latency",
            "small collectives grow with log2 N (tree gathers) from the 2-rank measurement",
            "GPU links (NVLink, InfiniBand) are assumed figures, not measured; the phase times are this CPU run's, "
            "so the GPU rows show how communication scales against this step, not a GPU step time",
        ],
        "wall_s": round(time.time() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["model"], indent=2))


if __name__ == "__main__":
    main()
