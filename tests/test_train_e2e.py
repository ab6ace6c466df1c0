"""End to end through the real vLLM engine with LoRA hot swaps: a tiny character-level model learns a
trivially learnable reward ("emit braces"), and a run killed with SIGKILL resumes to the same step count.

The tiny model (2 layers, hidden 128, a 100-symbol character vocabulary) is built here: with one
token per character, the reward "share of '{' and '}' among the generated characters" has signal in
almost every group from the first step (a random model emits a brace ~2 % of the time), and LoRA can
move it within a few dozen steps. Run this file as a script to train one run (the resume test does).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curriculum.task import Task  # noqa: E402
from rewards import RewardBatch  # noqa: E402

SPECIALS = ["<pad>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_char_model(folder: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama over printable ASCII, with a ChatML template, saved for vLLM and transformers."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (folder / "config.json").is_file():
        return folder
    chars = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>", chat_template=CHAT_TEMPLATE)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=1024,
                         tie_word_embeddings=True, initializer_range=0.07,  # logits can reach ~±6: learnable
                         bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"], pad_token_id=0)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def brace_reward(texts: list[str], tasks: list[Task], truncated: np.ndarray) -> RewardBatch:
    """Share of '{' and '}' among the completion's characters (0 for an empty completion)."""
    share = np.array([sum(c in "{}" for c in t) / max(len(t), 1) for t in texts])
    false = np.zeros(len(texts), dtype=bool)
    return RewardBatch(components={"braces": share}, total=share, strict_pass=share > 0.5, syntax_pass=false,
                       format_pass=false, has_think=false, error_class=["ok"] * len(texts),
                       schema_keywords=[[] for _ in texts])


TASKS = [Task(id=f"braces/{i}", kind="json", prompt=f"Emit {{}} ({i})") for i in range(8)]


def tiny_config(model_dir: Path, run_dir: Path, engine: str = "vllm", num_steps: int = 20, save_every: int = 5):
    from grpo.config import config_from_dict
    return config_from_dict({
        "run": {"name": run_dir.name, "out_dir": str(run_dir.parent), "num_steps": num_steps,
                "save_every": save_every, "sample_every": 10, "seed": 0},
        "model": {"path": str(model_dir), "dtype": "bfloat16"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]},
        "rollout": {"engine": engine, "prompts_per_step": 4, "group_size": 8, "temperature": 1.0,
                    "max_new_tokens": 16, "max_model_len": 512},
        "grpo": {"beta": 0.0, "micro_batch_size": 16},
        "optim": {"lr": 3e-3, "weight_decay": 0.0, "schedule": "constant", "warmup_ratio": 0.0, "max_grad_norm": 1.0},
    })


def run(model_dir: Path, run_dir: Path, resume: bool = False, **kwargs):
    from grpo.tasks import TaskSource
    from grpo.train import train
    cfg = tiny_config(model_dir, run_dir, **kwargs)
    return train(cfg, resume=resume, reward_fn=brace_reward, tasks=TaskSource(TASKS, seed=0), quiet=True)


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    return make_char_model(tmp_path_factory.mktemp("char-model"))


@pytest.mark.slow
def test_mean_reward_rises_through_vllm_with_hot_swaps(char_model, tmp_path):
    summary = run(char_model, tmp_path / "e2e")
    rewards = [h["reward"] for h in summary["history"]]
    assert summary["step"] == 20 and len(rewards) == 20
    first, last = np.mean(rewards[:5]), np.mean(rewards[-5:])
    print(f"mean reward, first 5 steps {first:.3f} -> last 5 steps {last:.3f}")
    assert last > first + 0.15, f"the brace reward should rise clearly: {first:.3f} -> {last:.3f} ({rewards})"
    canary = [h["canary/delivered"] for h in summary["history"] if "canary/delivered" in h]
    assert canary == [1.0, 1.0], "the canary (steps 10 and 20) must find the engine on the new adapter"


@pytest.mark.slow
def test_sigkill_then_resume_finishes_with_the_same_step_count(char_model, tmp_path):
    # The transformers engine keeps this test short (no vLLM start-up, twice); resume code is engine-agnostic
    # except for the adapter push at start-up, which the vLLM e2e test above exercises.
    from grpo import checkpoint
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, __file__, str(char_model), str(run_dir)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 480  # generous: CI machines are shared
    while time.time() < deadline and proc.poll() is None:  # kill once the second checkpoint is written
        if [p.name for p in checkpoint.list_checkpoints(run_dir)][-1:] >= ["step_000006"]:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run should still be going when we kill it"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = checkpoint.list_checkpoints(run_dir)[-1]

    out = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["step"] == 12 and summary["resumed_from"] >= int(killed_at.name.removeprefix("step_"))
    final = checkpoint.list_checkpoints(run_dir)
    assert final[-1].name == "step_000012" and not list((run_dir / "checkpoints").glob(".tmp-*"))
    for folder in final:  # every checkpoint left is complete and loads
        state = json.loads((folder / "state.json").read_text())
        assert state["step"] == int(folder.name.removeprefix("step_"))
        assert (folder / "adapter" / "adapter_model.safetensors").stat().st_size > 0


if __name__ == "__main__":  # python tests/test_train_e2e.py MODEL_DIR RUN_DIR [--resume]: 12 steps, HF engine
    summary = run(Path(sys.argv[1]), Path(sys.argv[2]), resume="--resume" in sys.argv, engine="hf",
                  num_steps=12, save_every=3)
    print(json.dumps({"step": summary["step"], "resumed_from": summary["resumed_from"]}))
