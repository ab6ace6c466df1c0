"""The packed group's attention: one call per completion (as shipped) against all in one batched call.

    python scripts/bench_packed_attention.py [--reps 4] [--out benchmarks/packed_attention.json]

The trainer forwards a GRPO group's completions packed into one row behind their prompt's KV cache
(grpo/attention.py, PackedSegments). Each completion attends to the prompt and causally to itself, and
`grpo.attention._segments_forward` runs the attention once per completion (`per_completion`): ~12 ops
per completion per layer, forward and backward. On a CPU whose GEMMs are fast (AMX bf16) the train phase
is bound by per-op overhead rather than by its GEMMs (docs/performance.md), so the candidate here
(`batched`) gathers the completions into one padded [S, nmax] batch and makes one call: S times fewer
ops, for attention FLOPs on the padding. Measured 2026-12-04 on the AMX machine: 1.07x as long, so
not adopted (the padding costs more than the ops it saves); the script stays as the record.

What is timed, in one process, the arms interleaved (ABBA...): one micro-batch's train-phase work on
SmolLM2-135M (the embedded copy, this machine's dtype, LoRA r16 on 7 projections) as grpo.step does it:
the reference forward (adapter disabled, no grad), the policy forward and the backward of a
token-mean policy-gradient loss. The group: 8 completions of lengths LENGTHS (mean 181, two truncated
at 256, about the bench_vs_trl workload's ~5,900 generated tokens per 32 completions) behind a
170-token prompt. Both arms' logprobs and LoRA gradients are compared (in bf16 they differ by the
summation order only).
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

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "embedded:smollm2-135m"
PROMPT_LEN = 170
LENGTHS = (256, 212, 180, 150, 131, 256, 97, 164)
VOCAB = 49152


def batched(module, query, key, value, segments, scaling, dropout, softcap, window):
    """The candidate for grpo.attention._segments_forward: every completion in one batched call. Each is
    gathered into a row of [S, nmax] (padded to the longest) behind its own copy of the prompt's keys,
    under one causal mask: a padding position sits after its completion's real ones, so causality keeps
    it out of every real row, and the gather back drops the padded rows."""
    from grpo.attention import grouped_attention_forward
    cached = key.shape[2] - query.shape[2]
    spans = [(s, e) for s, e in segments.bounds if e > s]
    nmax = max(e - s for s, e in spans)
    j = torch.arange(nmax)
    flat = torch.stack([torch.clamp(s + j, max=e - 1) for s, e in spans]).reshape(-1)   # [S * nmax] into N
    real = torch.cat([j < e - s for s, e in spans]).nonzero().squeeze(1)                 # [N] into S * nmax
    S = len(spans)

    def gather(x, offset=0):                                    # [1, h, *, d] -> [S, h, nmax, d]
        return x[0].index_select(1, flat + offset).view(x.shape[1], S, nmax, x.shape[3]).transpose(0, 1)

    k = torch.cat([key[:, :, :cached].expand(S, -1, -1, -1), gather(key, cached)], dim=2)
    v = torch.cat([value[:, :, :cached].expand(S, -1, -1, -1), gather(value, cached)], dim=2)
    mask = segments.mask(cached, nmax, window, query.dtype, query.device)
    out, _ = grouped_attention_forward(module, gather(query), k, v, mask, scaling, dropout, softcap)
    return out.reshape(S * nmax, *out.shape[2:]).index_select(0, real)[None], None


def embedded_policy():
    """(policy, dtype): the embedded model with the trainer's default LoRA, in this machine's dtype."""
    from grpo.config import LoraSection, ModelSection
    from grpo.model import load_policy
    from rollout.models import resolve_dtype, resolve_model
    dtype = resolve_dtype("auto")
    policy, _ = load_policy(resolve_model(MODEL), ModelSection(dtype=dtype), LoraSection())
    return policy, dtype


def packed_group(gen: torch.Generator, prompt_len: int, lengths):
    """One GRPO group as one packed micro-batch: random tokens, a random prompt of `prompt_len` tokens and
    completions of `lengths` (those of 256 count as truncated), advantages spread over [-1, 1)."""
    from grpo.batch import Episode, completion_mask, make_micro_batches
    from grpo.loss import LOSS_AGGREGATIONS
    prompt = torch.randint(1, VOCAB, (prompt_len,), generator=gen).tolist()
    eps = [Episode(prompt, torch.randint(1, VOCAB, (n,), generator=gen).tolist(), [], 0.0, i / 4 - 1, n == 256)
           for i, n in enumerate(lengths)]
    weights = LOSS_AGGREGATIONS["token_mean"](completion_mask(eps, False), max(lengths))
    (mb,) = make_micro_batches(eps, weights, len(eps), pad_id=0)
    return mb


def train_work(policy, mb) -> torch.Tensor:
    """One micro-batch's train-phase work as grpo.step does it: the reference forward (adapter disabled, no
    grad), the policy forward and the backward of a token-mean policy-gradient loss; the policy's logprobs."""
    from grpo.logprobs import completion_logprobs
    from grpo.model import lora_in_base_dtype
    with lora_in_base_dtype(policy):
        with torch.no_grad(), policy.disable_adapter():
            completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                temperature=0.7, share_prompt=True, with_entropy=False)
        logp, _ = completion_logprobs(policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                      temperature=0.7, share_prompt=True)
    (-(logp * mb.adv[:, None] * mb.token_weights).sum()).backward()
    return logp.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=4, help="timed runs per arm (after one warm-up each)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "packed_attention.json"))
    args = ap.parse_args()
    from rollout.preload import reexec_with_preloads
    reexec_with_preloads()

    import grpo.attention as attention

    policy, dtype = embedded_policy()
    mb = packed_group(torch.Generator().manual_seed(0), PROMPT_LEN, LENGTHS)
    per_completion = attention._segments_forward
    arms = {"per_completion": per_completion, "batched": batched}

    def run(arm: str) -> tuple[float, torch.Tensor, dict]:
        attention._segments_forward = arms[arm]
        policy.zero_grad(set_to_none=True)
        t = time.perf_counter()
        logp = train_work(policy, mb)
        secs = time.perf_counter() - t
        return secs, logp, {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}

    load_before = os.getloadavg()
    results = {arm: run(arm) for arm in arms}   # warm-up, and the numbers compared below
    times = {arm: [] for arm in arms}
    order = list(arms)
    for r in range(args.reps):
        for arm in (order if r % 2 == 0 else order[::-1]):
            times[arm].append(run(arm)[0])
    attention._segments_forward = per_completion
    (_, lp_b, g_b), (_, lp_p, g_p) = results["batched"], results["per_completion"]
    real = mb.mask > 0
    grad_rel = max(float((g_b[n] - g_p[n]).norm() / g_p[n].norm().clamp_min(1e-30)) for n in g_b)
    med = {arm: statistics.median(ts) for arm, ts in times.items()}
    doc = {"benchmark": "packed_attention", "command": "python " + " ".join(["scripts/bench_packed_attention.py"] + sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "dtype": dtype, "threads": torch.get_num_threads(),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
           "load_average_before": load_before, "load_average_at_end": os.getloadavg(),
           "workload": {"model": MODEL, "prompt_len": PROMPT_LEN, "completion_lengths": LENGTHS,
                        "what": "reference forward + policy forward + backward of one packed group"},
           "seconds": {arm: [round(t, 3) for t in ts] for arm, ts in times.items()},
           "median_s": {arm: round(v, 3) for arm, v in med.items()},
           "batched_over_per_completion": round(med["batched"] / med["per_completion"], 3),
           "same_numbers": {"max_abs_logprob_diff": float((lp_b - lp_p)[real].abs().max()),
                            "max_relative_grad_diff": grad_rel},
           "versions": {"torch": torch.__version__}}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("median_s", "batched_over_per_completion", "same_numbers")}), "->", args.out)


if __name__ == "__main__":
    main()
