"""grpo-export: the PEFT folder and the merged model load elsewhere and compute what the adapter computes."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_path, tmp_path_factory):
    """A tiny model's LoRA with non-zero B (a fresh adapter is the identity, which would prove nothing)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    folder = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(folder)
    return folder


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_merged_export_matches_adapter(trained_adapter, tiny_model_path, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.export import main
    out = tmp_path / "merged"
    assert main([str(trained_adapter), "--out", str(out), "--merge"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    record = json.loads((out / "grpo_export.json").read_text())
    assert record["merged"] and "```json" in record["system_prompt"]

    ids = torch.tensor([[1, 5, 9, 33, 70, 2, 8, 100]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    with_adapter = _logits(PeftModel.from_pretrained(base, str(trained_adapter)), ids)
    merged = _logits(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32), ids)
    plain = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32), ids)
    err, effect = (merged - with_adapter).abs().max(), (with_adapter - plain).abs().max()
    assert effect > 0.05, "the test adapter must change the logits"
    assert err < 0.1 * effect, f"merged differs from base+adapter by {err:.4f} (adapter effect {effect:.4f})"
    AutoTokenizer.from_pretrained(out)   # the tokenizer travels with the model


def test_peft_export_is_portable(trained_adapter, tmp_path):
    from grpo.export import main
    out = tmp_path / "lora"
    assert main([str(trained_adapter), "--out", str(out)]) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "grpo_export.json").read_text())["merged"] is False


def test_bf16_peft_export_halves_the_weights_and_keeps_their_values(trained_adapter, tmp_path):
    from safetensors.torch import load_file

    from grpo.export import main
    out = tmp_path / "lora-bf16"
    assert main([str(trained_adapter), "--out", str(out), "--bf16"]) == 0
    full, half = load_file(trained_adapter / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert full.keys() == half.keys() and all(v.dtype == torch.bfloat16 for v in half.values())
    assert all(torch.equal(half[k], full[k].to(torch.bfloat16)) for k in full)


def test_embedded_base_points_upstream_and_records_the_gguf(tmp_path):
    from grpo.export import base_origin
    from rollout.models import cache_root
    portable, origin = base_origin(str(cache_root() / "models" / "smollm2-135m"))
    assert portable == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert origin["embedded"] == "embedded:smollm2-135m" and origin["gguf"].endswith(".gguf")
    assert base_origin(str(tmp_path))[0] == str(tmp_path)


@pytest.mark.parametrize("case", ["missing", "no_weights", "bad_json", "out_not_empty"])
def test_bad_input_is_one_line_and_writes_nothing(case, trained_adapter, tmp_path, capsys):
    from grpo.export import main
    adapter, out = tmp_path / "adapter", tmp_path / "out"
    if case != "missing":
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text((trained_adapter / "adapter_config.json").read_text())
        if case != "no_weights":
            (adapter / "adapter_model.safetensors").write_bytes(b"x")
        if case == "bad_json":
            (adapter / "adapter_config.json").write_text("{not json")
    if case == "out_not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main([str(adapter), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grpo-export: ") and "\n" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
