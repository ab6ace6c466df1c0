"""SFT warm start: labels mask the prompt exactly, the loss equals plain cross-entropy over the target
tokens, the think prefill moves "<think>\\n" from target to prompt, the loss falls on a tiny model,
and the saved adapter reloads with PeftModel.from_pretrained (and a run resumes from its checkpoint)."""
import json

import pytest
import torch

from curriculum.json_tasks import generate_json_tasks
from curriculum.prompts import format_gold, system_prompt
from grpo.sft import IGNORE, build_example, make_batches, run_sft, sft_loss_sum
from rollout.chat import THINK_PREFILL, render_prompt

TASKS = generate_json_tasks(8, seed=0, split="train", tier_mix={"simple": 1.0})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # On a shared, oversubscribed 2-core machine two intra-op threads ran these steps ~6x slower than one
    # (OpenMP threads spin at barriers while the other core is busy): measured 83 s vs 14 s.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.mark.parametrize("thinking", [False, True])
def test_labels_are_ignore_exactly_on_prompt_positions(tokenizer, thinking):
    task = TASKS[0]
    ex = build_example(tokenizer, task, thinking)
    prompt = render_prompt(tokenizer, system_prompt("json", thinking), task.prompt)
    n = len(prompt)
    assert ex.input_ids[:n] == prompt, "the example should start with the prompt GRPO renders"
    assert ex.labels[:n] == [IGNORE] * n, "every prompt position must carry no loss"
    assert ex.labels[n:] == ex.input_ids[n:] and IGNORE not in ex.labels[n:], "every reply token must carry loss"
    assert ex.input_ids[-1] == tokenizer.eos_token_id, "the reply should end with EOS so the model learns to stop"
    assert tokenizer.decode(ex.input_ids[n:-1]) == format_gold(task, thinking)


def test_think_prefill_moves_the_opening_tag_into_the_prompt(tokenizer):
    task = TASKS[1]
    ex = build_example(tokenizer, task, thinking=True, think_prefill=True)
    n = ex.labels.count(IGNORE)
    assert tokenizer.decode(ex.input_ids[:n]).endswith(THINK_PREFILL), "the prompt should end with the prefill"
    target = tokenizer.decode(ex.input_ids[n:-1])
    assert not target.startswith("<think>") and THINK_PREFILL + target == format_gold(task, True)


@pytest.mark.parametrize("thinking", [False, True])
def test_bare_output_renders_the_bare_prompt_and_bare_gold(tokenizer, thinking):
    task = TASKS[2]
    ex = build_example(tokenizer, task, thinking, output="bare")
    prompt = render_prompt(tokenizer, system_prompt("json", thinking, "bare"), task.prompt)
    n = len(prompt)
    assert ex.input_ids[:n] == prompt, "the prompt should carry the bare system prompt"
    target = tokenizer.decode(ex.input_ids[n:-1])
    assert target == format_gold(task, thinking, "bare") and "```" not in target, "the target is the JSON alone"
    assert json.loads(target.rpartition("</think>\n")[2]) == task.gold


def test_configured_system_prompt_replaces_the_built_in_one_but_not_a_rows_own(tokenizer):
    import dataclasses
    task = TASKS[3]
    ex = build_example(tokenizer, task, False, system="Answer in JSON.")
    assert ex.input_ids[:ex.labels.count(IGNORE)] == render_prompt(tokenizer, "Answer in JSON.", task.prompt)
    own = dataclasses.replace(task, system="My row's prompt.")
    ex = build_example(tokenizer, own, False, system="Answer in JSON.")
    assert ex.input_ids[:ex.labels.count(IGNORE)] == render_prompt(tokenizer, "My row's prompt.", task.prompt)


def test_padding_carries_no_loss_and_batches_are_length_sorted(tokenizer):
    examples = [build_example(tokenizer, t, False) for t in TASKS]
    batches = make_batches(examples, 3, tokenizer.pad_token_id)
    assert sum(b.input_ids.shape[0] for b in batches) == len(examples)
    lengths = [int(b.attention_mask.sum(1).max()) for b in batches]
    assert lengths == sorted(lengths), "micro-batches should come in length order"
    for b in batches:
        assert (b.labels[b.attention_mask == 0] == IGNORE).all(), "pad positions must carry no loss"
    assert sum(int((b.labels != IGNORE).sum()) for b in batches) == sum(e.num_target for e in examples)


def test_loss_equals_cross_entropy_over_target_tokens_only(tiny_model_path, tokenizer):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    batch = make_batches([build_example(tokenizer, t, False) for t in TASKS[:3]], 3, tokenizer.pad_token_id)[0]
    nll, n = sft_loss_sum(model, batch, chunk_tokens=64)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # [B, L, V]
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch.labels[:, 1:].flatten(),
                                            ignore_index=IGNORE, reduction="sum")
    assert n == int((batch.labels != IGNORE).sum())
    assert nll.item() == pytest.approx(ref.item(), rel=1e-4), "chunked SFT loss should equal plain masked CE"


def sft_config(model_path, run_dir, num_steps: int):
    from grpo.config import config_from_dict
    return config_from_dict({
        "run": {"name": run_dir.name, "out_dir": str(run_dir.parent), "num_steps": num_steps, "save_every": 5,
                "tensorboard": True, "num_threads": 1, "mode": "sft"},
        "sft": {"micro_batch_size": 2, "grad_accum": 2},   # 4 examples: the whole set every step
        "model": {"path": str(model_path), "dtype": "float32"},
        "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]},
        "optim": {"lr": 3e-3, "weight_decay": 0.0, "schedule": "constant", "warmup_ratio": 0.0,
                  "max_grad_norm": 1.0},
    })


def test_loss_falls_adapter_reloads_and_run_resumes(tiny_model_path, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = sft_config(tiny_model_path, tmp_path / "sft", num_steps=10)
    summary = run_sft(cfg, tasks=TASKS[:4], quiet=True)
    losses = [h["loss"] for h in summary["history"]]
    # a random model starts at ~ln(V) = 10.8 nats; LoRA on 5 projections moves it down steadily
    assert len(losses) == 10 and losses[-1] < losses[0] - 0.3 and losses[-1] < min(losses[:5]), \
        f"SFT loss should fall over 10 steps: {losses}"
    assert list((tmp_path / "sft" / "tb").glob("events.*")), "TensorBoard events should be written"

    base = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, summary["adapter"])
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "the saved adapter should hold trained weights"

    more = run_sft(sft_config(tiny_model_path, tmp_path / "sft", num_steps=12), resume=True,
                   tasks=TASKS[:4], quiet=True)
    assert more["resumed_from"] == 10 and len(more["history"]) == 2, "resume should continue after step 10"
