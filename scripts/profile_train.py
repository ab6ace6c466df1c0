"""Where the train phase's time goes: one GRPO step of the bench_vs_trl workload under torch.profiler.

    python scripts/profile_train.py [--steps 2] [--out benchmarks/train_profile.json]

Our trainer on bench_vs_trl.py's workload (4 prompts x 8 completions, up to 256 new tokens, beta 0.04,
LoRA r16 on 7 projections, weights in this machine's dtype), in this process, with grpo-train's
preloads. The steps before the last run unprofiled (warm-up: the fused logprob kernels compile, oneDNN
and the allocator settle); the last step's train phase (`grpo.step.accumulate_gradients`, forward and
backward of every micro-batch) runs under torch.profiler with FLOP counting. Each op's self CPU time
(the forward's and the autograd thread's) goes into one category:
  - gemm: mm / addmm / bmm / baddbmm, with the FLOPs the profiler counts for them, so their rate can be
    set beside scripts/roofline.py's GEMM figure for the same dtype; also listed by input shapes
    (`gemm_by_shape`), which tells the frozen weights' GEMMs from the LoRA factors' thin ones;
  - compiled: the inductor kernels of grpo/logprobs.py (output head, log-softmax, entropy);
  - softmax, elementwise, copy/layout (copies, cats, slices, views' backward), reduction, other;
  - outside ops: the phase's wall time less every op's self time (Python, autograd's engine, peft's
    module calls). The gradient clip and optimizer step, which grpo_step times with the train phase,
    run after this function and are not profiled.
The phase time under the profiler is a little above an unprofiled one (the profiler's own overhead);
the split is what this measures, not the speed. Right before and right after the profiled phase the same
process times standalone GEMMs at the trainer's shapes (bench_engine_threads.gemm_gflops: each projection
and the output head, forward and grad-input, at 512 rows, the low end of a step's), so the in-step GEMM
rate can be set beside the rate the same shapes reach in the same process at the same moment.

Writes benchmarks/train_profile.json: the categories (seconds, share), the top ops by self time, the GEMM
FLOPs and rate, the step's tokens, and the unprofiled train phase of the step before it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine_threads import gemm_gflops  # noqa: E402
from bench_vs_trl import OURS_MICRO, ROOT, WEIGHTS_DTYPE, bench_ours, workload_tasks  # noqa: E402

GEMM = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
SOFTMAX = {"aten::_softmax", "aten::_softmax_backward_data", "aten::softmax"}
COPY = {"aten::copy_", "aten::cat", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to",
        "aten::slice_backward", "aten::index", "aten::index_select", "aten::embedding_dense_backward",
        "aten::embedding", "aten::fill_", "aten::zero_", "aten::zeros", "aten::empty", "aten::empty_strided",
        "aten::new_zeros", "aten::masked_fill", "aten::masked_fill_", "aten::transpose", "aten::reshape",
        "aten::view", "aten::t", "aten::expand", "aten::unsqueeze", "aten::as_strided", "aten::select",
        "aten::slice", "aten::split", "aten::narrow", "aten::permute", "aten::_unsafe_view", "aten::resize_",
        "aten::stack", "aten::set_", "aten::detach", "aten::alias", "aten::squeeze", "aten::lift_fresh"}
REDUCTION = {"aten::sum", "aten::mean", "aten::max", "aten::amax", "aten::logsumexp", "aten::norm",
             "aten::linalg_vector_norm"}
ELEMENTWISE = {"aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::sub", "aten::div", "aten::div_",
               "aten::neg", "aten::exp", "aten::pow", "aten::rsqrt", "aten::silu", "aten::silu_backward",
               "aten::sigmoid", "aten::where", "aten::clamp", "aten::clamp_", "aten::minimum", "aten::maximum",
               "aten::mul_out", "aten::tanh", "aten::cos", "aten::sin", "aten::gt", "aten::lt", "aten::ge",
               "aten::le", "aten::eq", "aten::ne", "aten::abs", "aten::sqrt", "aten::reciprocal", "aten::log",
               "aten::sub_", "aten::addcmul_", "aten::threshold_backward", "aten::_log_softmax",
               "aten::pow_", "aten::rsub", "aten::exp_", "aten::neg_"}


def category(name: str) -> str:
    if name in GEMM:
        return "gemm"
    if "Compiled" in name or name.startswith(("cpp_fused", "Torch-Compiled", "inductor")) or "triton" in name:
        return "compiled"
    for label, names in (("softmax", SOFTMAX), ("copy_layout", COPY), ("reduction", REDUCTION),
                         ("elementwise", ELEMENTWISE)):
        if name in names:
            return label
    return "other"


class NoGate:
    """bench_ours' step gate without a coordinator: every step runs at once; reports are kept."""

    def __init__(self):
        self.steps = []

    def wait(self) -> None:
        pass

    def report(self, **fields) -> None:
        self.steps.append(fields)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2, help="steps in all; the last one's train phase is profiled")
    ap.add_argument("--top", type=int, default=25, help="ops listed by self time")
    ap.add_argument("--micro", type=int, default=OURS_MICRO, help="micro_batch_size (bench_vs_trl's --ours-micro)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "train_profile.json"))
    args = ap.parse_args()
    if args.steps < 2:
        raise SystemExit("profile_train: --steps must be >= 2 (the first step is the warm-up)")
    from rollout.preload import reexec_with_preloads
    reexec_with_preloads()

    import torch
    from torch.profiler import ProfilerActivity, profile

    import grpo.step as step_module
    from rollout.models import resolve_model

    real, calls, captured = step_module.accumulate_gradients, [0], {}
    dtype = getattr(torch, WEIGHTS_DTYPE)

    def profiled(ctx, micro, first_pass, stats):
        calls[0] += 1
        if calls[0] < args.steps:  # mu = 1: one call per step
            return real(ctx, micro, first_pass, stats)
        standalone_before = gemm_gflops(dtype, rows=512)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
            loss = real(ctx, micro, first_pass, stats)
        captured.update(wall_s=time.perf_counter() - t0, prof=prof, micro_batches=len(micro),
                        train_tokens=sum(mb.num_tokens for mb in micro),
                        standalone=[standalone_before, gemm_gflops(dtype, rows=512)])
        return loss

    step_module.accumulate_gradients = profiled
    load_before = os.getloadavg()
    gate = NoGate()
    bench_ours(resolve_model("embedded:smollm2-135m"), workload_tasks(args.steps), args.steps, gate, micro=args.micro)

    events = captured["prof"].key_averages()
    cats: dict[str, float] = {}
    gemm_flops, rows = 0.0, []
    for e in events:
        self_s, label = e.self_cpu_time_total / 1e6, category(e.key)
        cats[label] = cats.get(label, 0.0) + self_s
        if label == "gemm":
            gemm_flops += e.flops
        rows.append({"op": e.key, "self_s": round(self_s, 3), "calls": e.count, "category": label})
    wall = captured["wall_s"]
    cats["outside_ops"] = max(wall - sum(cats.values()), 0.0)
    rows.sort(key=lambda r: -r["self_s"])
    by_shape = [{"op": e.key, "shapes": [list(x) for x in e.input_shapes if x], "calls": e.count,
                 "self_s": round(e.self_cpu_time_total / 1e6, 3),
                 "GFLOPs": round(e.flops / max(e.self_cpu_time_total / 1e6, 1e-9) / 1e9, 1)}
                for e in captured["prof"].key_averages(group_by_input_shape=True) if e.key in GEMM]
    by_shape.sort(key=lambda r: -r["self_s"])
    doc = {"benchmark": "train_profile", "command": "python " + " ".join(["scripts/profile_train.py"] + sys.argv[1:]),
           "dtype": WEIGHTS_DTYPE, "micro_batch_size": args.micro, "torch": torch.__version__,
           "threads": torch.get_num_threads(),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
           "load_average_before": load_before, "load_average_at_end": os.getloadavg(),
           "profiled_step": args.steps, "profiled_train_s": round(wall, 2),
           "unprofiled_train_s_step_before": gate.steps[-2]["breakdown_s"].get("train"),
           "gen_tokens": gate.steps[-1]["gen_tokens"], "micro_batches": captured["micro_batches"],
           "train_tokens": captured["train_tokens"],
           "categories_s": {k: round(v, 2) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
           "categories_share": {k: round(v / wall, 3) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
           "gemm": {"flops": gemm_flops, "seconds": round(cats.get("gemm", 0.0), 2),
                    "GFLOPs": round(gemm_flops / max(cats.get("gemm", 0.0), 1e-9) / 1e9, 1)},
           "gemm_standalone_GFLOPs": {"before": round(captured["standalone"][0], 1),
                                      "after": round(captured["standalone"][1], 1)},
           "top_ops": rows[:args.top], "gemm_by_shape": by_shape[:args.top], "date": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"train phase {wall:.1f} s profiled ({doc['unprofiled_train_s_step_before']} s unprofiled, step before); "
          f"GEMMs {doc['gemm']['seconds']} s at {doc['gemm']['GFLOPs']} GFLOP/s "
          f"(standalone in this process, before / after: {doc['gemm_standalone_GFLOPs']['before']} / "
          f"{doc['gemm_standalone_GFLOPs']['after']})")
    for k, v in doc["categories_s"].items():
        print(f"  {k:>12} {v:7.2f} s  {doc['categories_share'][k]:.0%}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
