"""torch.compile on the decoder layers of the train phase: eager (as shipped) against compiled.

    python scripts/bench_compile.py [--groups 6] [--fixed-reps 3] [--out benchmarks/compile.json]

The candidate of docs/performance.md's last section: on a CPU whose bf16 GEMMs are fast the train phase
is bound by per-op overhead (Python, autograd, peft's module calls, one elementwise kernel per norm,
rotary and LoRA op), which inductor could fuse away. The compiled arm compiles, with dynamic shapes, every
decoder layer's MLP, both RMSNorms, the four (LoRA-wrapped) attention projections and grpo.attention's
attention core (the function each packed completion's attention calls); the output head's fused kernels
of grpo/logprobs.py are compiled in both arms, as shipped. The toggle is this script's: nothing in the
trainer changes.

What is timed, in one process, the arms taking turns on the same micro-batch (order swapped every other
round): one packed group's train-phase work on SmolLM2-135M (the embedded copy, this machine's dtype,
LoRA r16 on 7 projections) as grpo.step does it: the reference forward (adapter disabled, no grad), the
policy forward and the backward of a token-mean policy-gradient loss. Two workloads:
  - `varied`: a new group each round, prompt and completion lengths drawn as a GRPO step's are (prompts
    140-200 tokens, 8 completions of 30-256), so shapes change as they do in training; every round's
    compiled time includes whatever (re)compilation that group caused, counted from dynamo's counters;
  - `fixed`: the same group (bench_packed_attention.py's: a 170-token prompt, completions LENGTHS)
    repeated after `varied`, the best case for compilation: every graph is cached.
Both arms' logprobs and LoRA gradients on the first group are compared. Measured 2026-12-04 on an
AVX512-BF16 EPYC (docs/performance.md, last section): compiled / eager 0.95 on the fixed group, 0.90 on
the later varied groups, 1.53 on the first (compilation): 2-5 % of a step, not adopted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from bench_packed_attention import LENGTHS, MODEL, PROMPT_LEN, embedded_policy, packed_group, train_work  # noqa: E402


class Compiled:
    """Switches the decoder's compiled modules and attention core on and off in place."""

    def __init__(self, policy):
        import grpo.attention as attention
        from transformers import AttentionInterface
        base = policy.get_base_model()
        self.on = False
        self.modules = []
        for layer in base.model.layers:
            attn = layer.self_attn
            parts = [layer.mlp, layer.input_layernorm, layer.post_attention_layernorm,
                     attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj]
            for m in parts:
                m.compile(dynamic=True)
                self.modules.append((m, m._compiled_call_impl))
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        eager_attend, training_off = attention.grouped_attention_forward, types.SimpleNamespace(training=False)
        core = torch.compile(lambda q, k, v, mask, scaling, softcap:
                             eager_attend(training_off, q, k, v, mask, scaling, 0.0, softcap)[0], dynamic=True)

        def dispatch(module, query, key, value, attention_mask, scaling, dropout=0.0, softcap=None,
                     sliding_window=None, segments=None, **kwargs):
            if self.on and segments is None and not dropout:
                return core(query, key, value, attention_mask, scaling, softcap), None
            return eager_attend(module, query, key, value, attention_mask, scaling, dropout, softcap,
                                sliding_window, segments, **kwargs)

        attention.grouped_attention_forward = dispatch   # what _segments_forward calls per completion
        AttentionInterface.register(attention.NAME, dispatch)
        self.set(False)

    def set(self, on: bool) -> None:
        self.on = on
        for m, impl in self.modules:
            m._compiled_call_impl = impl if on else None


def dynamo_counts() -> dict[str, int]:
    from torch._dynamo.utils import counters
    return {"unique_graphs": int(counters["stats"]["unique_graphs"]),
            "recompiles": int(sum(counters["recompiles"].values()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=6, help="rounds of the varied workload (a new group each)")
    ap.add_argument("--fixed-reps", type=int, default=3, help="rounds of the fixed group, after one untimed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "compile.json"))
    args = ap.parse_args()
    from rollout.preload import reexec_with_preloads
    reexec_with_preloads()

    policy, dtype = embedded_policy()
    compiled = Compiled(policy)

    def run(mb, on: bool) -> tuple[float, dict, torch.Tensor, dict]:
        compiled.set(on)
        policy.zero_grad(set_to_none=True)
        before = dynamo_counts()
        t = time.perf_counter()
        logp = train_work(policy, mb)
        secs = time.perf_counter() - t
        counts = {k: v - before[k] for k, v in dynamo_counts().items()}
        grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
        return secs, counts, logp, grads

    load_before = os.getloadavg()
    gen = torch.Generator().manual_seed(0)
    rounds, same = [], None
    for r in range(args.groups):
        prompt_len = int(torch.randint(140, 201, (1,), generator=gen))
        lengths = torch.randint(30, 257, (8,), generator=gen).tolist()
        mb = packed_group(gen, prompt_len, lengths)
        out = {}
        for on in ((False, True) if r % 2 == 0 else (True, False)):
            out[on] = run(mb, on)
        (t_e, _, lp_e, g_e), (t_c, counts, lp_c, g_c) = out[False], out[True]
        if same is None:
            real = mb.mask > 0
            same = {"max_abs_logprob_diff": float((lp_c - lp_e)[real].abs().max()),
                    "mean_abs_logprob_diff": float((lp_c - lp_e)[real].abs().mean()),
                    "max_relative_grad_diff": max(float((g_c[n] - g_e[n]).norm() / g_e[n].norm().clamp_min(1e-30))
                                                  for n in g_e)}
        rounds.append({"prompt_len": prompt_len, "completion_tokens": int(sum(lengths)), "eager_s": round(t_e, 3),
                       "compiled_s": round(t_c, 3), "compiled_over_eager": round(t_c / t_e, 3), **counts})
        print(json.dumps(rounds[-1]), flush=True)

    mb = packed_group(torch.Generator().manual_seed(1), PROMPT_LEN, LENGTHS)
    for on in (False, True):
        run(mb, on)                                  # the fixed group's own (re)compilation, untimed
    fixed = {False: [], True: []}
    for r in range(args.fixed_reps):
        for on in ((False, True) if r % 2 == 0 else (True, False)):
            fixed[on].append(run(mb, on)[0])
    med = {on: statistics.median(ts) for on, ts in fixed.items()}
    compiled.set(False)

    varied_e, varied_c = sum(x["eager_s"] for x in rounds), sum(x["compiled_s"] for x in rounds)
    later = rounds[len(rounds) // 2:]
    doc = {"benchmark": "compile", "command": "python " + " ".join(["scripts/bench_compile.py"] + sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "dtype": dtype, "threads": torch.get_num_threads(),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
           "load_average_before": load_before, "load_average_at_end": os.getloadavg(),
           "workload": {"model": MODEL, "what": "reference forward + policy forward + backward of one packed group",
                        "fixed_group": {"prompt_len": PROMPT_LEN, "completion_lengths": LENGTHS}},
           "varied": rounds,
           "varied_total_s": {"eager": round(varied_e, 2), "compiled": round(varied_c, 2)},
           "ratios": {"varied_compiled_over_eager_total": round(varied_c / varied_e, 3),
                      "varied_compiled_over_eager_later_half_median":
                          statistics.median(x["compiled_over_eager"] for x in later),
                      "fixed_compiled_over_eager": round(med[True] / med[False], 3)},
           "fixed_s": {"eager": [round(t, 3) for t in fixed[False]], "compiled": [round(t, 3) for t in fixed[True]]},
           "same_numbers_first_group": same,
           "dynamo_total": dynamo_counts(),
           "versions": {"torch": torch.__version__}}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("varied_total_s", "ratios", "same_numbers_first_group")}), "->", args.out)


if __name__ == "__main__":
    main()
