"""Rooflines: how fast this machine could at best run the phases of one `bench_vs_trl.py` step.

    python scripts/roofline.py [--prompt-len 170] [--gen-tokens 6900] [--decode-steps 256] [--quick]

A measured phase time means little without the fastest time the hardware allows for the same work;
`phase_limits` gives that lower bound, so limit / measured phase time is the fraction of the roof a
trainer reaches (bench_vs_trl.py imports `measure` and `phase_limits` for that).

Measured (torch's default threads, warm-up calls, then the median of several reps):
  - GEMM throughput in fp32, and in bf16 where the CPU multiplies it natively (or --dtype bf16 asks),
    at the trainer's shapes for the model's config.json (SmolLM2-135M:
    q, o 576->576; k, v 576->192; gate, up 576->1536; down 1536->576; lm_head 576->49152), for M = 1024
    and 2048 rows (a micro-batch's 1,024 completion tokens, plus the prompt): the forward x @ W^T and
    the two backward GEMMs, grad_input dY @ W and grad_weight dY^T @ X, each 2 M K N FLOPs. The overall
    figure is total FLOPs / total time over all of them, each shape counted as often as a pass through
    the model runs it (30 times per layer projection, once for lm_head): the rate that predicts a pass.
  - memory bandwidth: a sum over (read) and a copy of (read + write bytes) a 256 MB tensor, far larger
    than the caches, in the same dtypes; the best read figure is the bandwidth the limits use.

Limits (lower bounds: attention score FLOPs, norms, the LoRA adapters' own small GEMMs, sampling
and the optimizer are left out, so the true best time is a little above them):
  - generate: decode is memory-bound. Each of the `decode_steps` steps (~ the 256-token maximum: the 32
    completions decode together until the longest ends) reads every weight once (2 bytes x parameters,
    the tied lm_head counted once), and every generated token at position j reads the bf16 KV cache of
    prompt_len + j tokens (2 x layers x kv_heads x head_dim x 2 bytes per token); with mean completion
    length c that sums to gen_tokens x (prompt_len + (c - 1) / 2) tokens. memory_s = bytes / read
    bandwidth; compute_s = 2 x parameters x gen_tokens / GEMM FLOP/s; the limit is the larger.
  - train: N = the layers' GEMM weights, over T = gen_tokens + prompts x prompt_len tokens (a group's
    prompt is forwarded once, grpo.logprobs' shared prompt), plus the lm_head GEMM, large here (V x H
    = 28 M of the 135 M), over the completion tokens only (grpo.logprobs applies the head to those).
    With F = 2 (N T + V H gen_tokens), one forward: policy forward F, reference forward F (beta > 0),
    policy backward 2F (the issue's 4 N T: grad_input plus grad_weight GEMMs) -> limit = 4F / GEMM
    FLOP/s. With LoRA the frozen weights need no grad_weight, so the backward could be F alone;
    that 3F figure is reported beside it (`train_grad_input_only_s`), the limit is the 4F one.
  - dtype: the limits are those of the dtype the trainer computes in on this machine (`--dtype`, by
    default rollout.models.resolve_dtype("auto")): bf16 where the CPU multiplies it natively (AVX512-BF16
    or AMX), else fp32, whose bytes above are 4 instead of 2 and whose GEMM rate is the fp32 one. On an
    AVX2-only CPU bf16 GEMMs are emulated (7x slower than fp32, benchmarks/dtype_cpu.json), so a bf16
    roof there would be a floor no trainer should run at, not a ceiling.

Writes benchmarks/roofline.json (`--out`); `--quick` (a smoke test of a few seconds: tiny M and reps,
a 64 MB tensor) writes to a temporary file unless --out is given, and its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "embedded:smollm2-135m"
P, G, MAX_NEW, BETA, MU, LORA_R, LORA_ALPHA = 4, 8, 256, 0.04, 1, 16, 32  # bench_vs_trl.py's workload
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def model_config(spec: str = MODEL) -> dict:
    from rollout.models import resolve_model
    cfg = json.loads((Path(resolve_model(spec)) / "config.json").read_text())
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "vocab_size")
    out = {k: cfg[k] for k in keys}
    out["head_dim"] = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    out["tie_word_embeddings"] = bool(cfg.get("tie_word_embeddings", False))
    return out


def gemm_shapes(cfg: dict) -> list[tuple[str, int, int, int]]:
    """(name, K in, N out, times per model pass) of every GEMM of a Llama-shaped model."""
    h, i, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    q, kv = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    return [("q", h, q, L), ("k", h, kv, L), ("v", h, kv, L), ("o", q, h, L),
            ("gate", h, i, L), ("up", h, i, L), ("down", i, h, L), ("lm_head", h, V, 1)]


def param_counts(cfg: dict) -> dict:
    h, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    layer_gemm = sum(K * N * n for name, K, N, n in gemm_shapes(cfg) if name != "lm_head")
    head = V * h
    total = head * (1 if cfg["tie_word_embeddings"] else 2) + layer_gemm + L * 2 * h + h  # + RMSNorms
    return {"total": total, "layer_gemm": layer_gemm, "lm_head": head}


def median_s(fn, reps: int, target_s: float) -> float:
    """Median seconds of `fn` after warm-up; at least `reps` reps, more (up to 10) while cheap."""
    t0, calls = time.perf_counter(), 0
    while calls < 1 or (calls < 3 and time.perf_counter() - t0 < 0.1):  # warm-up: pool, caches, oneDNN
        fn()
        calls += 1
    first = (time.perf_counter() - t0) / calls
    times = []
    for _ in range(max(reps, min(10, int(target_s / max(first, 1e-9))))):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_gemm(cfg: dict, ms: tuple[int, ...], reps: int, target_s: float, dtypes: tuple[str, ...]) -> dict:
    result, cache = {}, {}
    for dname in dtypes:
        dtype = DTYPES[dname]
        rows, flops, secs = [], 0.0, 0.0
        by_m = {m: [0.0, 0.0] for m in ms}
        for m in ms:
            for name, K, N, count in gemm_shapes(cfg):
                key = (dname, m, K, N)
                if key not in cache:  # q/o, k/v and gate/up share a shape: time it once
                    x, w, dy = (torch.randn(*s, dtype=dtype) for s in ((m, K), (N, K), (m, N)))
                    cache[key] = {
                        "fwd": median_s(lambda: torch.nn.functional.linear(x, w), reps, target_s),
                        "grad_input": median_s(lambda: dy @ w, reps, target_s),
                        "grad_weight": median_s(lambda: dy.t() @ x, reps, target_s)}
                f = 2.0 * m * K * N
                rows.append({"name": name, "M": m, "K": K, "N": N, "count": count,
                             **{f"{op}_GFLOPs": round(f / s / 1e9, 2) for op, s in cache[key].items()}})
                for s in cache[key].values():
                    flops, secs = flops + count * f, secs + count * s
                    by_m[m][0] += count * f
                    by_m[m][1] += count * s
        result[dname] = {"shapes": rows, "overall_GFLOPs": round(flops / secs / 1e9, 2),
                         "overall_by_M_GFLOPs": {str(m): round(f / s / 1e9, 2) for m, (f, s) in by_m.items()}}
    return result


def measure_bandwidth(megabytes: int, reps: int, dtypes: tuple[str, ...]) -> dict:
    out = {}
    for dname in dtypes:
        dtype = DTYPES[dname]
        src = torch.ones(megabytes * 2**20 // (torch.finfo(dtype).bits // 8), dtype=dtype)
        dst = torch.empty_like(src)
        nbytes = src.numel() * src.element_size()
        out[f"read_{dname}_GBps"] = round(nbytes / median_s(lambda: src.sum(), reps, 1.0) / 1e9, 2)
        out[f"copy_{dname}_GBps"] = round(2 * nbytes / median_s(lambda: dst.copy_(src), reps, 1.0) / 1e9, 2)
        del src, dst
    out["tensor_MB"] = megabytes
    out["read_GBps"] = max(out[f"read_{d}_GBps"] for d in dtypes)  # the one the limits use
    return out


def measured_dtypes(extra: str | None = None) -> tuple[str, ...]:
    """fp32 always; bf16 where this machine multiplies it natively, or when asked for (`extra`). An emulated
    bf16 GEMM (AVX2-only CPUs: ~15 GFLOP/s, docs/performance.md) would take ~20 min to measure, for a rate
    no run here computes at."""
    return tuple(d for d in DTYPES if d == "fp32" or d == machine_dtype() or d == extra)


def measure(quick: bool, config: dict | None = None, dtypes: tuple[str, ...] | None = None) -> dict:
    """GEMM GFLOP/s at the model's shapes and memory GB/s on this machine (quick: a smoke test), for
    `dtypes` (default: measured_dtypes())."""
    cfg, dtypes = config or model_config(), dtypes or measured_dtypes()
    ms, reps, target_s, mb = ((32,), 1, 0.0, 64) if quick else ((1024, 2048), 3, 0.25, 256)
    with torch.inference_mode():
        return {"gemm": measure_gemm(cfg, ms, reps, target_s, dtypes),
                "bandwidth": measure_bandwidth(mb, reps + 2, dtypes), "quick": quick}


def machine_dtype() -> str:
    """The dtype (DTYPES' key) grpo-train computes in here: model.dtype "auto" resolved."""
    from rollout.models import resolve_dtype
    return "bf16" if resolve_dtype("auto") == "bfloat16" else "fp32"


def default_workload(prompt_len: float = 170, gen_tokens: float = 6900, decode_steps: int = MAX_NEW,
                     config: dict | None = None, dtype: str | None = None) -> dict:
    """bench_vs_trl.py's step, with the measured mean prompt length and generated tokens per step,
    computed in `dtype` ("bf16" or "fp32"; default: this machine's, machine_dtype)."""
    return {"dtype": dtype or machine_dtype(), "model": MODEL, "config": config or model_config(), "prompts": P, "group": G,
            "completions": P * G, "max_new_tokens": MAX_NEW, "beta": BETA, "mu": MU,
            "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "targets": 7}, "prompt_len": prompt_len,
            "gen_tokens": gen_tokens, "decode_steps": decode_steps}


def phase_limits(measured: dict, workload: dict) -> dict:
    """Lower bounds (seconds) on the generate and train phases of one step; see the module docstring."""
    cfg, params = workload["config"], param_counts(workload["config"])
    dtype = workload["dtype"]
    flops_s = measured["gemm"][dtype]["overall_GFLOPs"] * 1e9
    bw = measured["bandwidth"]["read_GBps"] * 1e9
    gen, plen, n_seq = workload["gen_tokens"], workload["prompt_len"], workload["completions"]
    mean_len = gen / n_seq
    elem = DTYPES[dtype].itemsize
    weight_bytes = elem * params["total"]
    kv_bytes_per_token = 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * cfg["head_dim"] * elem
    kv_tokens = gen * (plen + (mean_len - 1) / 2)
    gen_bytes = workload["decode_steps"] * weight_bytes + kv_tokens * kv_bytes_per_token
    memory_s, compute_s = gen_bytes / bw, 2 * params["total"] * gen / flops_s
    tokens = gen + workload["prompts"] * plen
    forward = 2 * (params["layer_gemm"] * tokens + params["lm_head"] * gen)
    reference = forward if workload["beta"] > 0 else 0.0
    mu = workload["mu"]
    old = forward if mu > 1 else 0.0  # mu > 1: the old policy's logprobs need their own forward
    train_flops = reference + old + mu * (forward + 2 * forward)
    train_gi_flops = reference + old + mu * (forward + forward)
    return {
        "dtype": dtype,
        "generate_s": max(memory_s, compute_s),
        "generate": {"bound": "memory" if memory_s >= compute_s else "compute", "memory_s": memory_s,
                     "compute_s": compute_s, "params": params["total"], "weight_bytes": weight_bytes,
                     "kv_bytes_per_token": kv_bytes_per_token, "mean_completion_len": mean_len,
                     "kv_tokens_read": kv_tokens, "bytes": gen_bytes, "flops": 2 * params["total"] * gen,
                     "read_GBps": bw / 1e9, "gemm_GFLOPs": flops_s / 1e9},
        "train_s": train_flops / flops_s,
        "train_grad_input_only_s": train_gi_flops / flops_s,
        "train": {"layer_gemm_params": params["layer_gemm"], "lm_head_params": params["lm_head"],
                  "tokens": tokens, "head_tokens": gen, "forward_flops": forward,
                  "reference_flops": reference, "old_policy_flops": old, "backward_flops": mu * 2 * forward,
                  "flops": train_flops, "grad_input_only_flops": train_gi_flops,
                  "gemm_GFLOPs": flops_s / 1e9, "limit": "train_s (backward = grad_input + grad_weight)"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt-len", type=float, default=170, help="mean prompt tokens")
    ap.add_argument("--gen-tokens", type=float, default=6900, help="generated tokens per step")
    ap.add_argument("--decode-steps", type=int, default=MAX_NEW, help="decode steps per rollout")
    ap.add_argument("--dtype", choices=tuple(DTYPES), help="the limits' dtype (default: this machine's, "
                    "bf16 with native bf16 GEMMs, else fp32)")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny shapes and reps")
    ap.add_argument("--out", default=None, help="default benchmarks/roofline.json (quick: a temp file)")
    args = ap.parse_args()
    out = args.out or (os.path.join(tempfile.gettempdir(), "roofline_quick.json") if args.quick
                       else str(ROOT / "benchmarks" / "roofline.json"))
    cfg, load = model_config(), round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    measured = measure(args.quick, cfg, measured_dtypes(args.dtype))
    work = default_workload(args.prompt_len, args.gen_tokens, args.decode_steps, cfg, args.dtype)
    limits = phase_limits(measured, work)
    result = {
        "command": "python " + " ".join(["scripts/roofline.py"] + sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "loadavg_1min_before": load},  # other tenants' load skews every figure
        "measure_s": round(time.perf_counter() - t0, 1), "measured": measured, "workload": work,
        "limits": limits}
    for dname, g in measured["gemm"].items():
        print(f"{dname} GEMM GFLOP/s (fwd / grad_input / grad_weight), overall {g['overall_GFLOPs']:.1f}:")
        for r in g["shapes"]:
            print(f"  {r['name']:>7} M={r['M']:<5} {r['K']:>5}->{r['N']:<6} {r['fwd_GFLOPs']:8.1f} "
                  f"{r['grad_input_GFLOPs']:8.1f} {r['grad_weight_GFLOPs']:8.1f}")
    bw = measured["bandwidth"]
    print("bandwidth GB/s: " + ", ".join(f"{k.removesuffix('_GBps')} {v}" for k, v in bw.items()
                                         if k.endswith("_GBps")))
    gl = limits["generate"]
    print(f"{limits['dtype']} limits: generate {limits['generate_s']:.2f} s ({gl['bound']}-bound; memory {gl['memory_s']:.2f} s "
          f"for {gl['bytes'] / 1e9:.1f} GB, compute {gl['compute_s']:.2f} s)")
    print(f"train {limits['train_s']:.2f} s ({limits['train']['flops'] / 1e12:.2f} TFLOP; grad_input-only "
          f"backward {limits['train_grad_input_only_s']:.2f} s); threads {torch.get_num_threads()}, "
          f"measured in {result['measure_s']} s")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
