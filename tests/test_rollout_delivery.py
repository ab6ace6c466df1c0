"""Exact delivery: the engine samples the policy being trained, and the canary catches when it does not.

The three canary failures are built deliberately on the real vLLM engine (tiny random Llama): base
weights left in place, the previous adapter left in place, and an adapter written into half the layers.
The delivery tests train a real adapter (3 AdamW steps at the seed's lr of 5e-6) on the embedded model.
"""
from __future__ import annotations

import pytest
import torch

from rollout.canary import NOISE_NATS, check_adapter, lora_state
from rollout.chat import render_prompt
from rollout.types import Sampling

USER = "Give a JSON object with a key name."
# The bf16 engines on the embedded model: vLLM's start-up warm-up forwards max_num_batched_tokens dummy
# tokens (4,096 on CPU by default), and this test's prompts and 16 x 24-token samples need a small
# fraction of that. On a CPU that only emulates bf16 the smaller budget took the test from 475 to 397 s;
# most of the rest is still the engines' start-up.
SMALL_ENGINE = dict(max_model_len=512, max_num_seqs=16, max_num_batched_tokens=512)


def _peft(model_path: str, seed: int, scale: float = 0.5):
    from transformers import AutoModelForCausalLM

    from rollout.testing import random_lora
    return random_lora(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16), seed=seed, scale=scale)


def _prompt(engine) -> list[int]:
    return render_prompt(engine.tokenizer, "Reply with JSON only.", USER)


def test_canary_passes_on_the_delivered_adapter(tiny_vllm, tiny_model_path):
    peft_model = _peft(tiny_model_path, seed=11)
    previous = lora_state(peft_model)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.mul_(-1.0)                 # a different adapter than `previous`
    try:
        tiny_vllm.set_adapter(peft_model)
        report = check_adapter(tiny_vllm, peft_model, _prompt(tiny_vllm), previous=previous)
    finally:
        tiny_vllm.load_adapter(None)
    assert report["reason"] == "" and report["canary/delivered"] == 1.0, report
    assert report["canary/policy_diff"] < NOISE_NATS, report
    assert report["canary/update_effect"] > 10 * report["canary/policy_diff"], "the test adapters must differ clearly"


def test_canary_fails_when_the_engine_keeps_base_weights(tiny_vllm, tiny_model_path):
    peft_model = _peft(tiny_model_path, seed=12)
    tiny_vllm.load_adapter(None)                         # the "swap" never happened
    report = check_adapter(tiny_vllm, peft_model, _prompt(tiny_vllm))
    assert report["canary/delivered"] == 0.0 and report["reason"], report


def test_canary_fails_when_the_engine_keeps_the_previous_adapter(tiny_vllm, tiny_model_path):
    peft_model = _peft(tiny_model_path, seed=13)
    try:
        tiny_vllm.set_adapter(peft_model)
        previous = lora_state(peft_model)
        with torch.no_grad():                            # an update the engine never receives
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.add_(torch.randn_like(p) * 0.5)
        report = check_adapter(tiny_vllm, peft_model, _prompt(tiny_vllm), previous=previous)
    finally:
        tiny_vllm.load_adapter(None)
    assert report["canary/delivered"] == 0.0, report
    assert report["canary/previous_diff"] < report["canary/policy_diff"], "the engine sits at the previous adapter"


def _write_half(engine, monkeypatch):
    """Make the engine's swaps silently drop the packed writes of half its adapted layers (o_proj and
    down_proj of every block: a partial delivery bug); the swap's read-back goes through the kernels,
    so it sees what really is there."""
    from rollout import unmerged_lora
    dropped = engine.llm.apply_model(lambda model: {id(h) for n, m in model.named_modules()
                                                    if n.endswith(("o_proj", "down_proj")) and "grpo_lora" in m.__dict__
                                                    for h in (m.grpo_lora["shrink"], m.grpo_lora["expand"])})[0]
    write = unmerged_lora._Packed.write
    monkeypatch.setattr(unmerged_lora._Packed, "write", lambda self, w: None if id(self) in dropped else write(self, w))


def test_half_delivered_adapter_raises_at_the_swap_and_fails_the_canary(tiny_vllm, tiny_model_path, monkeypatch):
    peft_model = _peft(tiny_model_path, seed=14)
    _write_half(tiny_vllm, monkeypatch)
    try:
        with pytest.raises(RuntimeError, match="reached the engine"):
            tiny_vllm.set_adapter(peft_model)
        assert 0.2 < tiny_vllm.delivery["sync/delivered_fraction"] < 0.8, tiny_vllm.delivery
        assert tiny_vllm.delivery["sync/delivered_fraction_min"] == pytest.approx(0.0, abs=1e-6)
        assert tiny_vllm.delivery["sync/modules"] == 14, "every adapted module is read back, written or not"
        report = check_adapter(tiny_vllm, peft_model, _prompt(tiny_vllm))   # what a run that ignored it would sample
        assert report["canary/delivered"] == 0.0 and report["reason"], {k: v for k, v in report.items() if "toward" in k}
    finally:
        monkeypatch.undo()
        tiny_vllm.load_adapter(None)


def test_adapter_module_without_engine_layer_raises(tiny_vllm, tiny_model_path, tmp_path):
    from safetensors.torch import load_file, save_file
    peft_model = _peft(tiny_model_path, seed=15)
    peft_model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "adapter_model.safetensors"))
    renamed = {k.replace("layers.1.self_attn.q_proj", "layers.7.self_attn.q_proj"): v for k, v in weights.items()}
    save_file(renamed, str(tmp_path / "adapter_model.safetensors"))
    try:
        with pytest.raises(RuntimeError, match="no engine layer"):
            tiny_vllm.load_adapter(tmp_path)
    finally:
        tiny_vllm.load_adapter(None)


def test_adapter_rank_above_the_reserved_rank_raises(tiny_vllm, tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM

    from rollout.testing import random_lora
    big = random_lora(AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.bfloat16), rank=32)
    big.save_pretrained(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="rank <= 16"):
            tiny_vllm.load_adapter(tmp_path)
    finally:
        tiny_vllm.load_adapter(None)


def _trained_adapter(model_path: str, steps: int = 3, lr: float = 5e-6):
    """A PEFT LoRA after `steps` real AdamW steps on a next-token loss (B starts at zero, as in training),
    and a function that takes one more step."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_path)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16),
                           LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                      "down_proj"]))
    ids = torch.tensor([tok.encode('```json\n{"name": "Ada", "year": 1843, "tags": ["math", "engine"]}\n```')])
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    torch.manual_seed(0)

    def step():
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        optim.step()
        optim.zero_grad()
        model.eval()
    for _ in range(steps):
        step()
    return model, step


@pytest.mark.slow
def test_exact_delivery_after_three_optimizer_steps(embedded_model_path):
    """Unmerged (the CPU default): all of the update arrives, and engine logprobs on tokens it sampled at
    T = 0.7 match the trainer's as closely as they do with no adapter at all (the bf16 noise floor of
    two implementations). The bf16 merge of the same adapter delivers a small part of it."""
    from rollout.vllm_engine import VLLMEngine
    peft_model, one_more_step = _trained_adapter(embedded_model_path)
    engine = VLLMEngine(embedded_model_path, seed=0, dtype="bfloat16", **SMALL_ENGINE)
    prompt = render_prompt(engine.tokenizer, "Reply only with a ```json block.", "An object with key a = 1.")
    sampling = Sampling(n=16, temperature=0.7, max_tokens=24, logprobs=True)
    try:
        assert engine.lora_mode == "unmerged"
        base_rollouts = engine.generate([prompt], sampling)
        engine.set_adapter(peft_model)
        assert engine.delivery["sync/delivered_fraction"] >= 0.999, engine.delivery
        assert engine.delivery["sync/modules"] == 7 * 30
        rollouts = engine.generate([prompt], sampling)
        # One more small step, delivered: an update that moves the logprobs less than bf16 noise does. A
        # canary scoring in the trainer's bf16 (autocast) failed here, its own noise on both sides of the
        # regression (rollout.canary); scored in float32 it passes.
        previous = lora_state(peft_model)
        one_more_step()
        engine.set_adapter(peft_model)
        canary = check_adapter(engine, peft_model, prompt, previous=previous, num_samples=16)
        assert canary["canary/delivered"] == 1.0, canary
    finally:
        engine.close()

    def gap(rollouts) -> tuple[float, float]:
        with torch.no_grad():
            e = torch.cat([torch.tensor(r.logprobs) for r in rollouts])
            t = torch.cat([_trained_logprobs(peft_model, prompt, r.completion_ids, 0.7) for r in rollouts])
        return (e - t).abs().mean().item(), (e - t).mean().item()

    with peft_model.disable_adapter():
        floor, _ = gap(base_rollouts)          # the same engine and trainer, no adapter: bf16 noise only
    adapted, signed = gap(rollouts)
    assert adapted < 1.3 * floor + 0.005, f"engine vs trainer {adapted:.4f} nats/token, noise floor {floor:.4f}"
    assert abs(signed) < 0.01, f"engine vs trainer mean logprob difference {signed:.4f}"

    merged = VLLMEngine(embedded_model_path, seed=0, dtype="bfloat16", lora_mode="merge", **SMALL_ENGINE)
    try:
        with pytest.warns(UserWarning, match="delivered only"):
            merged.set_adapter(peft_model)
        assert merged.delivery["sync/delivered_fraction"] < 0.9, merged.delivery
    finally:
        merged.close()


def test_float32_engine_receives_all_of_a_float32_adapter_and_samples_the_trainers_policy(tiny_model_path):
    """dtype "float32", what "auto" picks on a CPU without native bf16: the unmerged engine in float32
    holds the whole update, and its logprobs are the trainer's to float32 rounding (no bf16 noise floor)."""
    from transformers import AutoModelForCausalLM

    from rollout.testing import random_lora
    from rollout.vllm_engine import VLLMEngine
    model = random_lora(AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32), seed=21, scale=0.5)
    engine = VLLMEngine(tiny_model_path, max_lora_rank=16, max_model_len=512, seed=0, dtype="float32")
    try:
        assert engine.lora_mode == "unmerged"
        engine.set_adapter(model)
        assert engine.delivery["sync/delivered_fraction"] == pytest.approx(1.0, abs=1e-5), engine.delivery
        prompt = _prompt(engine)
        rollouts = engine.generate([prompt], Sampling(n=8, temperature=1.0, max_tokens=16, logprobs=True))
    finally:
        engine.close()
    with torch.no_grad():
        e = torch.cat([torch.tensor(r.logprobs) for r in rollouts])
        t = torch.cat([_trained_logprobs(model, prompt, r.completion_ids, 1.0) for r in rollouts])
    assert (e - t).abs().max().item() < 1e-3, (e - t).abs().max()


def _trained_logprobs(model, prompt_ids, completion_ids, temperature):
    ids = torch.tensor([prompt_ids + completion_ids])
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1: -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)


def test_request_mode_reads_delivery_back_from_vllm_slots(tiny_vllm_lora, tiny_model_path):
    peft_model = _peft(tiny_model_path, seed=16)
    try:
        tiny_vllm_lora.set_adapter(peft_model)
        assert tiny_vllm_lora.delivery["sync/delivered_fraction"] == pytest.approx(1.0, abs=1e-3)
        assert tiny_vllm_lora.delivery["sync/modules"] == 14
    finally:
        tiny_vllm_lora.load_adapter(None)


def test_hf_engine_ignores_the_models_repetition_penalty(tiny_model_path):
    """generation_config defaults (repetition_penalty, top_k, ...) must not reach the sampler."""
    from transformers import AutoTokenizer

    from rollout.hf_engine import HFEngine
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = _peft(tiny_model_path, seed=17).eval()
    model.generation_config.repetition_penalty = 3.0
    model.generation_config.top_k = 5
    engine = HFEngine(model, tok)
    prompt = render_prompt(tok, "Reply with JSON only.", USER)
    rollouts = engine.generate([prompt], Sampling(n=4, temperature=1.0, max_tokens=12, logprobs=True))
    with torch.no_grad():
        for r in rollouts:
            ref = _trained_logprobs(model, prompt, r.completion_ids, 1.0)
            assert torch.tensor(r.logprobs) == pytest.approx(ref, abs=0.05), "sampler logprobs = plain softmax"


def test_config_rejects_top_p_below_one_for_grpo():
    from grpo.config import ConfigError, config_from_dict
    with pytest.raises((ConfigError, ValueError), match="rollout.top_p"):
        config_from_dict({"rollout": {"top_p": 0.9}})
    assert config_from_dict({"rollout": {"lora_mode": "merge"}}).rollout.lora_mode == "merge"


def test_nf4_trainer_and_engine_share_the_dequantised_base(tiny_vllm, tiny_model_path):
    """load_in_4bit: the engine gets the NF4-rounded weights the trainer computes with (grpo.train.build_engine)."""
    from grpo.config import config_from_dict
    from grpo.model import dequantized_base_weights, load_policy
    from rollout.merged_lora import load_base_weights
    cfg = config_from_dict({"model": {"path": tiny_model_path, "load_in_4bit": True, "device": "cpu"}})
    policy, _ = load_policy(tiny_model_path, cfg.model, cfg.lora)
    nf4 = dequantized_base_weights(policy)
    assert len(nf4) == 14, sorted(nf4)
    prompt = _prompt(tiny_vllm)
    try:
        tiny_vllm.set_adapter(policy)
        bf16_base = check_adapter(tiny_vllm, policy, prompt)["canary/policy_diff"]
        tiny_vllm.set_base_weights(nf4)
        shared = check_adapter(tiny_vllm, policy, prompt)
    finally:
        tiny_vllm.set_base_weights({k: v for k, v in load_base_weights(tiny_model_path).items() if k in nf4})
        tiny_vllm.load_adapter(None)
    assert shared["canary/policy_diff"] < NOISE_NATS, shared
    assert shared["canary/policy_diff"] < bf16_base / 2, (shared, bf16_base)


def test_canary_scores_batched_completions_as_one_forward_each(tiny_model_path):
    """score_completions (one prompt forward, its cache repeated, completions right-padded) gives each
    completion's logprobs as a plain forward of prompt + completion does: under the trainer's CPU
    attention, in bf16 and under exact_forward's float32, with an adapter on and disabled."""
    from grpo.config import config_from_dict
    from grpo.model import load_policy
    from rollout.canary import _forward_logprobs, exact_forward, score_completions
    cfg = config_from_dict({"model": {"path": tiny_model_path, "device": "cpu", "dtype": "bfloat16"}})
    policy, _ = load_policy(tiny_model_path, cfg.model, cfg.lora)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 1.0)
    policy.eval()
    prompt, completions = [5, 9, 14, 3, 7, 22, 8], [[4, 11, 6], [30], [2, 2, 17, 40, 9], []]
    assert next(policy.get_base_model().parameters()).dtype == torch.bfloat16
    for context, tol in ((lambda: exact_forward(policy, torch.bfloat16), 1e-4), (torch.no_grad, 0.01),
                         (policy.disable_adapter, 0.01)):
        with context():
            batched = score_completions(policy, prompt, completions)
            one_by_one = torch.cat([_forward_logprobs(policy, prompt, c) for c in completions if c])
        assert batched.shape == (9,)
        assert torch.allclose(batched, one_by_one, atol=tol), (batched, one_by_one)
        assert one_by_one.std() > 10 * tol, "the tokens' logprobs must differ for the check to see a shift"
