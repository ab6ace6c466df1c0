"""The embedded model converts once, loads in transformers, and model specs resolve or fail clearly."""
from pathlib import Path

import pytest

from rollout.models import prepare_embedded_model, resolve_model


def test_embedded_model_is_a_plain_hf_folder(embedded_model_path):
    folder = Path(embedded_model_path)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (folder / name).is_file(), f"{name} should be in the converted folder"
    assert "quantization_config" not in (folder / "config.json").read_text(), "config must be a dense bf16 model"


def test_prepare_is_idempotent(embedded_model_path):
    before = (Path(embedded_model_path) / "model.safetensors").stat().st_mtime
    assert str(prepare_embedded_model()) == embedded_model_path
    assert (Path(embedded_model_path) / "model.safetensors").stat().st_mtime == before, "second call must not rewrite"


def test_embedded_model_loads_and_has_chatml(embedded_model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_model_path)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_path, dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n"), "ChatML template should open the assistant turn"


def test_resolve_model_specs(embedded_model_path, tmp_path):
    assert resolve_model("embedded:smollm2-135m") == embedded_model_path
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model(embedded_model_path) == embedded_model_path
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ValueError, match="unknown embedded model"):
        resolve_model("embedded:nope")
