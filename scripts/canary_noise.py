"""Why the canary read a delivered engine as partly stale: the trainer's own bf16 noise, measured.

    python scripts/canary_noise.py [--adapter adapters/smollm2-135m-json] [--steps 3]

Starts from a trained adapter (the shipped one by default), builds the CPU engine (unmerged hot swap),
then for each learning rate takes `--steps` real AdamW steps (SFT loss on 8 gold replies of training
tasks each), hot-swaps every update into the engine and scores 16 engine samples at T = 1 twice:

- "bf16": the trainer's loss forward (LoRA matmuls in bf16 under autocast, grpo.model.lora_in_base_dtype),
  the canary's scoring before this script;
- "fp32": rollout.canary.exact_forward, float32 arithmetic on the weights the engine holds (the canary now).

Per scoring it records t = toward_previous with the plain, the per-completion clustered and the
jackknife se (the canary's, `rollout.canary.toward`), and
|c - p| (the update's effect on the sampled tokens as that scoring sees it). The engine holds the update
in both cases (`sync/delivered_fraction` is read back at each swap), so a t far from 0 is the scoring's
bias. Writes benchmarks/canary_noise.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grpo.config import load_config  # noqa: E402
from grpo.model import load_policy, lora_in_base_dtype  # noqa: E402
from grpo.sft import build_example, make_batches, sft_loss_sum  # noqa: E402
from grpo.tasks import PromptRenderer, build_task_source  # noqa: E402
from grpo.train import build_engine  # noqa: E402
from rollout.canary import _weights, exact_forward, lora_state, score_completions, toward  # noqa: E402
from rollout.models import resolve_model  # noqa: E402
from rollout.types import Sampling  # noqa: E402

LRS = (1e-5, 3e-5, 1e-4)


def plain_se(e: torch.Tensor, p: torch.Tensor, c: torch.Tensor) -> float:
    """The se of t with every token independent (what the canary used before the clustered se)."""
    d, v = (e - p).double(), (c - p).double()
    vv = float(v @ v)
    t = float(d @ v) / vv
    return float((d - t * v).square().mean().sqrt()) / vv ** 0.5


def clustered_se(e: torch.Tensor, p: torch.Tensor, c: torch.Tensor, sizes: list[int]) -> float:
    """The per-completion clustered sandwich se (the canary's before the jackknife of `toward`)."""
    d, v = (e - p).double(), (c - p).double()
    vv = float(v @ v)
    t = float(d @ v) / vv
    scores = torch.split(v * (d - t * v), sizes)
    return float(torch.stack([x.sum() for x in scores]).square().sum().sqrt()) / vv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--adapter", default=str(ROOT / "adapters" / "smollm2-135m-json"))
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per learning rate")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "canary_noise.json"))
    args = ap.parse_args()
    cfg = load_config(ROOT / "configs" / "smollm2-135m-cpu-sft-grpo.toml", [f"model.init_adapter={args.adapter}"])
    model_path = resolve_model(cfg.model.path)
    policy, tokenizer = load_policy(model_path, cfg.model, cfg.lora)
    engine = build_engine(cfg, model_path, policy, tokenizer)
    render = PromptRenderer(tokenizer, False, False, cfg.prompt.output, cfg.prompt.system)
    tasks = build_task_source(cfg.data, cfg.run.seed).tasks
    batches = make_batches([build_example(tokenizer, t, False) for t in tasks[100:164]], 8, tokenizer.pad_token_id)
    scorings = {"bf16": lambda: lora_in_base_dtype(policy), "fp32": lambda: exact_forward(policy, torch.bfloat16)}
    rows, load_before = [], os.getloadavg()
    for lr in LRS:
        optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
        for k in range(args.steps):
            previous = lora_state(policy)
            with lora_in_base_dtype(policy):
                nll, n_tok = sft_loss_sum(policy, batches[(len(rows)) % len(batches)])
            (nll / n_tok).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            engine.set_adapter(policy)
            prompt = render(tasks[k])
            rollouts = engine.generate([prompt], Sampling(n=16, temperature=1.0, max_tokens=32, logprobs=True))
            e = torch.cat([torch.tensor(r.logprobs) for r in rollouts])
            sizes = [len(r.logprobs) for r in rollouts]
            row = {"lr": lr, "step": k + 1, "delivered_fraction": engine.delivery["sync/delivered_fraction"]}
            policy.eval()
            for name, context in scorings.items():
                def score():
                    with context():
                        return score_completions(policy, prompt, [r.completion_ids for r in rollouts])
                p = score()
                with _weights(policy, previous):
                    c = score()
                t, se_jackknife = toward(e, p, c, sizes)
                row[name] = {"toward_previous": round(t, 4), "se_plain": round(plain_se(e, p, c), 4),
                             "se_clustered": round(clustered_se(e, p, c, sizes), 4),
                             "se_jackknife": round(se_jackknife, 4),
                             "update_effect": round(float((p - c).abs().mean()), 5),
                             "policy_diff": round(float((e - p).abs().mean()), 5)}
            policy.train()
            rows.append(row)
            print(json.dumps(row), flush=True)
    engine.close()
    result = {"command": "python scripts/canary_noise.py " + " ".join(sys.argv[1:]), "adapter": args.adapter,
              "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_before": load_before,
              "num_samples": 16, "num_tokens": 32, "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
