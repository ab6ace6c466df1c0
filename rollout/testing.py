"""Tiny, randomly initialised models for fast tests (vLLM and transformers both load them)."""
from __future__ import annotations

from pathlib import Path


def make_tiny_model(folder: str | Path, *, seed: int = 0, num_layers: int = 2) -> Path:
    """A 2-layer Llama with the embedded model's tokenizer and chat template, saved to `folder`.

    head_dim is 64 because vLLM's CPU attention kernels only support a fixed set of head sizes.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rollout.models import prepare_embedded_model

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded_model())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=num_layers, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=64, max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def random_lora(model, *, rank: int = 16, alpha: int = 32, seed: int = 0, scale: float = 0.05,
                target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")):
    """Wrap `model` in a PEFT LoRA whose B matrices are non-zero, so the adapter changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                                                  target_modules=list(target_modules)))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return peft_model


class FixedCompletions:
    """An engine (rollout.engine.Engine's interface) whose completions are a fixed function of the prompt:
    sample j of prompt p is `texts[(sum(p) + 3 * j) % len(texts)]`, whatever the adapter. Two runs
    that split the same prompts differently then train on exactly the same episodes (the data-parallel
    equivalence test). No sampler logprobs: the trainer's own stand in for them."""

    def __init__(self, tokenizer, texts=("{}{}", "ab{", "}}}}x", "hello", "{a}", "{{", "xyz}", "")):
        self.tokenizer, self.texts = tokenizer, list(texts)

    def generate(self, prompts, sampling):
        from rollout.types import Rollout
        out = []
        for i, prompt in enumerate(prompts):
            for j in range(sampling.n):
                text = self.texts[(sum(prompt) + 3 * j) % len(self.texts)]
                ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
                out.append(Rollout(prompt_index=i, prompt_ids=list(prompt), completion_ids=ids, text=text,
                                   finish_reason="stop"))
        return out

    def load_adapter(self, adapter_dir) -> None: ...

    def set_adapter(self, peft_model) -> None: ...

    def close(self) -> None: ...
