"""Rollout throughput: vLLM with a hot-swapped LoRA adapter vs transformers and vs base weights.

What is measured (one process, one run, so the ratios share the machine's state):
- `hf_lora`          transformers `generate`, PEFT LoRA r16 on all 7 projections (the reference)
- `vllm_base`        vLLM engine built without LoRA support (compiled), base weights
- `vllm_unmerged`    the same kind of engine (compiled) with the adapter's low-rank product beside each
                     base GEMM (`rollout.unmerged_lora`; exact; what training uses on CPU)
- `vllm_merged`      the same kind of engine with the adapter merged into its bf16 weights at each swap
                     (`rollout.merged_lora`, `lora_mode = "merge"`: rounds most of a small update away)
- `vllm_lora_base`   a LoRA-enabled engine (vLLM runs it uncompiled on CPU) generating with no adapter
- `vllm_lora`        that engine with the adapter through `rollout.lora_fast_path`
- `vllm_lora_slow`   the same with vLLM's own CPU LoRA ops (first round only: it is slow)
- `swap_s`           hot swap into the unmerged engine = adapter save to RAM + buffer writes + delivery
                     read-back + first token (`swap_s_merged`, `swap_s_lora`: the same for the other modes)
- `delivered_fraction` <dW_engine, dW> / |dW|^2 over every adapted module, read back from each engine
                     after loading an adapter with |B| ~ 1e-4 (about one Adam step at lr 1e-4)

Workload: one chat prompt, n completions forced to exactly max_tokens (min_tokens = max_tokens) so
every engine generates the same number of tokens. vLLM variants are interleaved over `--reps`
rounds and the median taken, because this 2-core machine is noisy. The roof is the smaller of the
bf16 matmul roof (measured here on a large GEMM / FLOPs per token) and the weight-streaming roof
(bytes of weights per decode step / measured copy bandwidth, times the batch). The headline ratios
(`lora_vs_hf`, `lora_vs_base`, `swap_share`, `roof_fraction`, `delivered_fraction`) are for the unmerged
engine, the path training uses; `merged_vs_base` and `delivered_fraction_merged` for the merge option;
`lora_engine_vs_base` and `fast_vs_slow_lora` describe the LoRA-request path.

Usage: python scripts/bench_rollout.py [--n 64] [--max-tokens 128] [--reps 3] [--out benchmarks/rollout.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from rollout import lora_fast_path  # noqa: E402
from rollout.chat import render_prompt  # noqa: E402
from rollout.models import prepare_embedded_model  # noqa: E402
from rollout.testing import random_lora  # noqa: E402
from rollout.types import Sampling  # noqa: E402

SYSTEM = "You are a helpful assistant. Reply only with one ```json fenced block."
USER = "Generate a JSON object describing a library book with keys title, author, year and tags."


def tokens_per_s(engine, prompt, sampling) -> float:
    t0 = time.perf_counter()
    rollouts = engine.generate([prompt], sampling)
    dt = time.perf_counter() - t0
    return sum(len(r.completion_ids) for r in rollouts) / dt


def measure_roof(num_params: int) -> dict:
    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    b = torch.randn(2048, 2048, dtype=torch.bfloat16)
    a @ b
    t0 = time.perf_counter(); reps = 10
    for _ in range(reps):
        a @ b
    gflops = 2 * 2048**3 * reps / (time.perf_counter() - t0) / 1e9
    x = torch.empty(64 * 2**20, dtype=torch.uint8)
    y = torch.empty_like(x)
    y.copy_(x)
    t0 = time.perf_counter()
    for _ in range(5):
        y.copy_(x)
    gbps = 2 * x.numel() * 5 / (time.perf_counter() - t0) / 1e9    # read + write
    flops_per_token = 2 * num_params
    return {"bf16_matmul_gflops": gflops, "copy_gb_per_s": gbps, "flops_per_token": flops_per_token,
            "compute_roof_tok_per_s": gflops * 1e9 / flops_per_token,
            "weights_bytes": 2 * num_params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--skip-hf", action="store_true", help="omit the (slow) transformers reference")
    ap.add_argument("--out", default="benchmarks/rollout.json")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rollout.hf_engine import HFEngine
    from rollout.vllm_engine import VLLMEngine

    model_path = str(prepare_embedded_model())
    tok = AutoTokenizer.from_pretrained(model_path)
    prompt = render_prompt(tok, SYSTEM, USER)
    sampling = Sampling(n=args.n, temperature=args.temperature, max_tokens=args.max_tokens,
                        min_tokens=args.max_tokens)
    warm = Sampling(n=args.n, temperature=args.temperature, max_tokens=8)
    # A LoRA whose B is non-zero, as after a few training steps (scale of trained SmolLM2 adapters).
    peft_model = random_lora(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16),
                             rank=args.rank, scale=0.002)
    num_params = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" not in n)
    # A freshly trained adapter: |B| ~ 1e-4, where bf16 merging loses the most.
    small_lora = random_lora(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16),
                             rank=args.rank, scale=1e-4, seed=1)
    results: dict[str, list[float]] = {k: [] for k in ("vllm_base", "vllm_unmerged", "vllm_merged", "vllm_lora_base",
                                                       "vllm_lora", "vllm_lora_slow")}

    print("building engines ...", flush=True)
    base_engine = VLLMEngine(model_path, enable_lora=False, max_model_len=1024, seed=0)
    unmerged_engine = VLLMEngine(model_path, max_lora_rank=args.rank, max_model_len=1024, seed=0, lora_mode="unmerged")
    merged_engine = VLLMEngine(model_path, max_lora_rank=args.rank, max_model_len=1024, seed=0, lora_mode="merge")
    lora_engine = VLLMEngine(model_path, max_lora_rank=args.rank, max_model_len=1024, seed=0, lora_mode="request")
    engines = (base_engine, unmerged_engine, merged_engine, lora_engine)
    for e in engines:
        e.generate([prompt], warm)
    delivered = {}
    for name, e in (("unmerged", unmerged_engine), ("merged", merged_engine), ("lora", lora_engine)):
        e.set_adapter(small_lora)
        delivered[name] = e.delivery

    def swap_seconds(engine) -> list[float]:
        """Hot-swap cost: save + load (merge or register) + remove previous + first token, 5 times."""
        out = []
        for _ in range(5):
            t0 = time.perf_counter()
            engine.set_adapter(peft_model)
            engine.generate([prompt], Sampling(n=1, max_tokens=1))
            out.append(time.perf_counter() - t0)
        return out

    swap_s, swap_s_merged, swap_s_lora = (swap_seconds(e) for e in (unmerged_engine, merged_engine, lora_engine))
    for rep in range(args.reps):
        results["vllm_base"].append(tokens_per_s(base_engine, prompt, sampling))
        results["vllm_unmerged"].append(tokens_per_s(unmerged_engine, prompt, sampling))
        results["vllm_merged"].append(tokens_per_s(merged_engine, prompt, sampling))
        lora_engine.load_adapter(None)
        results["vllm_lora_base"].append(tokens_per_s(lora_engine, prompt, sampling))
        lora_engine.set_adapter(peft_model)
        results["vllm_lora"].append(tokens_per_s(lora_engine, prompt, sampling))
        if rep == 0:
            lora_fast_path.uninstall()
            results["vllm_lora_slow"].append(tokens_per_s(lora_engine, prompt, sampling))
            lora_fast_path.install()
        print(f"round {rep + 1}/{args.reps}: " + "  ".join(f"{k} {v[-1]:.0f}" for k, v in results.items()), flush=True)
    rollout_s = args.n * args.max_tokens / statistics.median(results["vllm_unmerged"])
    for e in engines:
        e.close()

    if not args.skip_hf:
        hf = HFEngine(peft_model, tok, batch_size=args.n)
        hf.generate([prompt], Sampling(n=4, max_tokens=4))
        results["hf_lora"] = [tokens_per_s(hf, prompt, sampling)]

    roof = measure_roof(num_params)
    streaming_roof = roof["copy_gb_per_s"] * 1e9 / roof["weights_bytes"] * args.n
    roof["streaming_roof_tok_per_s"] = streaming_roof
    roof["roof_tok_per_s"] = min(roof["compute_roof_tok_per_s"], streaming_roof)

    tok_per_s = {k: statistics.median(v) for k, v in results.items()}
    swap = statistics.median(swap_s)
    ratios = {"lora_vs_base": tok_per_s["vllm_unmerged"] / tok_per_s["vllm_base"],
              "swap_share": swap / rollout_s,
              "roof_fraction": tok_per_s["vllm_unmerged"] / roof["roof_tok_per_s"],
              "delivered_fraction": delivered["unmerged"]["sync/delivered_fraction"],
              "merged_vs_base": tok_per_s["vllm_merged"] / tok_per_s["vllm_base"],
              "unmerged_vs_merged": tok_per_s["vllm_unmerged"] / tok_per_s["vllm_merged"],
              "delivered_fraction_merged": delivered["merged"]["sync/delivered_fraction"],
              "delivered_fraction_lora": delivered["lora"]["sync/delivered_fraction"],
              "lora_engine_vs_base": tok_per_s["vllm_lora"] / tok_per_s["vllm_base"],
              "fast_vs_slow_lora": tok_per_s["vllm_lora"] / tok_per_s["vllm_lora_slow"]}
    if "hf_lora" in tok_per_s:
        ratios["lora_vs_hf"] = tok_per_s["vllm_unmerged"] / tok_per_s["hf_lora"]

    print(f"\n{'engine':<16}{'tok/s':>10}")
    for k, v in tok_per_s.items():
        print(f"{k:<16}{v:>10.1f}")
    print(f"hot swap {swap * 1000:.0f} ms = {ratios['swap_share']:.2%} of a {rollout_s:.1f} s rollout")
    print(f"roof {roof['roof_tok_per_s']:.0f} tok/s; the unmerged engine reaches {ratios['roof_fraction']:.1%}")
    for k, v in ratios.items():
        print(f"{k:<20}{v:>8.3f}")

    import transformers
    import vllm
    doc = {"bench": "rollout", "device": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "torch": torch.__version__, "vllm": vllm.__version__,
           "transformers": transformers.__version__,
           "workload": {"model": "SmolLM2-135M-Instruct (embedded, bf16)", "prompts": 1, "n": args.n,
                        "max_tokens": args.max_tokens, "forced_length": True, "temperature": args.temperature,
                        "lora_rank": args.rank, "lora_targets": "q,k,v,o,gate,up,down", "reps": args.reps},
           "tok_per_s": tok_per_s, "tok_per_s_all": results, "swap_s": swap, "swap_s_all": swap_s,
           "swap_s_merged": statistics.median(swap_s_merged), "swap_s_merged_all": swap_s_merged,
           "swap_s_lora": statistics.median(swap_s_lora), "swap_s_lora_all": swap_s_lora,
           "delivery": delivered, "delivery_adapter": "random_lora(rank, scale=1e-4, seed=1): |B| ~ 1e-4",
           "rollout_s": rollout_s, "roof": roof, "ratios": ratios}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
