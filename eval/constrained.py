"""Constrained decoding as a reference point: vLLM structured outputs (JSON-schema guided decoding).

Contract: `generate_constrained(engine, prompts, schemas, decoding)` samples every prompt with its own
JSON Schema enforced by the grammar backend pinned in the engine (xgrammar; vLLM v1 runs one backend
per engine), from the engine's current weights: the base model, or the adapter `load_adapter` swapped
in (`VLLMEngine.generate_requests` passes the LoRA request in "request" mode; "unmerged" and "merge"
write it into the weights), so an adapter is guided exactly as the base is. It returns one row of
completions per prompt, None for a prompt whose schema the backend rejects, and
{index: "grammar_rejected"} for those. It never raises for a bad schema: each request is validated
alone first, and a batch that still fails is split in halves down to the request that fails.

What this reference does and does not guarantee: the output is (near-)always JSON that the grammar
accepts, so syntax pass is ~1 by construction; strict pass is not (xgrammar does not enforce every
keyword, e.g. some formats or patterns, and a completion cut at max_tokens is still invalid), and
speed is not (grammar masks cost CPU per token). Whitespace outside strings is disabled
(`disable_any_whitespace`) so a small model cannot pad forever with newlines. The output is bare
JSON, never a ```json block, so "format pass" is not meaningful here unless the prompt asked for bare
JSON too (`Decoding.output = "bare"`). Knows nothing of rewards.
"""
from __future__ import annotations

from typing import Any

from tqdm import tqdm

from eval.records import Completion, Decoding

CHUNK_PROMPTS = 64


def _params(schema: Any, decoding: Decoding) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    return SamplingParams(n=1 if decoding.greedy else decoding.n, temperature=decoding.temperature,
                          top_p=decoding.top_p, max_tokens=decoding.max_tokens,
                          structured_outputs=StructuredOutputsParams(json=schema, disable_any_whitespace=True))


def schema_supported(schema: Any, decoding: Decoding) -> bool:
    """Whether xgrammar (vLLM's validation of it) accepts the schema; never raises."""
    try:
        from vllm.sampling_params import check_json_nesting
        from vllm.v1.structured_output.backend_xgrammar import validate_xgrammar_grammar
        params = _params(schema, decoding)
        check_json_nesting(params.structured_outputs.json)
        validate_xgrammar_grammar(params)
        return True
    except Exception:  # noqa: BLE001 - any rejection by the backend counts as "rejected"
        return False


def _run(engine: Any, prompts: list[list[int]], params: list[Any]) -> list[list[Completion]] | None:
    """Generate one batch; None if vLLM raised (a schema the pre-check let through)."""
    try:
        outs = engine.generate_requests(prompts, params)
    except Exception:  # noqa: BLE001 - isolated below by bisection
        return None
    return [[Completion(c.text, len(c.token_ids), c.finish_reason or "length") for c in o.outputs] for o in outs]


def _bisect(engine: Any, prompts: list[list[int]], params: list[Any], index: list[int],
            rows: list, rejected: dict[int, str]) -> None:
    out = _run(engine, prompts, params)
    if out is not None:
        for i, row in zip(index, out):
            rows[i] = row
        return
    if len(prompts) == 1:
        rejected[index[0]] = "grammar_rejected"
        return
    mid = len(prompts) // 2
    _bisect(engine, prompts[:mid], params[:mid], index[:mid], rows, rejected)
    _bisect(engine, prompts[mid:], params[mid:], index[mid:], rows, rejected)


def generate_constrained(engine: Any, prompts: list[list[int]], schemas: list[Any], decoding: Decoding,
                         progress: bool = True, desc: str = "constrained"
                         ) -> tuple[list[list[Completion] | None], dict[int, str]]:
    if not hasattr(engine, "generate_requests"):
        raise ValueError("constrained decoding needs the vLLM engine (engine='vllm')")
    rows: list[list[Completion] | None] = [None] * len(prompts)
    rejected = {i: "grammar_rejected" for i, s in enumerate(schemas)
                if not isinstance(s, dict) or not schema_supported(s, decoding)}
    todo = [i for i in range(len(prompts)) if i not in rejected]
    with tqdm(total=len(todo), desc=desc, unit="prompt", disable=not progress, leave=False) as bar:
        for start in range(0, len(todo), CHUNK_PROMPTS):
            index = todo[start:start + CHUNK_PROMPTS]
            _bisect(engine, [prompts[i] for i in index], [_params(schemas[i], decoding) for i in index],
                    index, rows, rejected)
            bar.update(len(index))
    return rows, rejected
