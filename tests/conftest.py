"""Shared fixtures: the embedded model, a tiny random model, and one vLLM engine per session.

Engines are expensive (~10-15 s to build on 2 cores), so tests share them per session and reset
the adapter to base weights after use.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def embedded_model_path() -> str:
    from rollout.models import prepare_embedded_model
    return str(prepare_embedded_model())


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    from rollout.testing import make_tiny_model
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
def tiny_vllm(tiny_model_path):
    """The engine training uses on CPU: compiled, the adapter's low-rank product beside each base GEMM."""
    from rollout.vllm_engine import VLLMEngine
    engine = VLLMEngine(tiny_model_path, max_lora_rank=16, max_model_len=512, seed=0, dtype="bfloat16")
    assert engine.lora_mode == "unmerged"
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_vllm_merge(tiny_model_path):
    """The explicit merge option: W + dW rounded to bf16 in the compiled engine's weights."""
    from rollout.vllm_engine import VLLMEngine
    engine = VLLMEngine(tiny_model_path, max_lora_rank=16, max_model_len=512, seed=0, dtype="bfloat16", lora_mode="merge")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_vllm_lora(tiny_model_path):
    """The LoRA-request engine (GPU default; uncompiled on CPU, with rollout.lora_fast_path)."""
    from rollout.vllm_engine import VLLMEngine
    engine = VLLMEngine(tiny_model_path, max_lora_rank=16, max_model_len=512, seed=0, dtype="bfloat16", lora_mode="request")
    yield engine
    engine.close()


@pytest.fixture(params=["unmerged", "merge", "request"])
def swap_engine(request):
    """Each hot-swap test runs against every way of serving the adapter."""
    return request.getfixturevalue({"unmerged": "tiny_vllm", "merge": "tiny_vllm_merge",
                                    "request": "tiny_vllm_lora"}[request.param])
