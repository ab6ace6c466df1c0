"""System prompts and gold assistant replies in the instructed format (for SFT and reward tests).

Contract: `system_prompt(kind, thinking, output)` picks one of the prompts below, `task_system_prompt(task,
thinking, output, system)` the one a task is rendered with (its own `system`, else the run's configured
`system` for JSON tasks, else that default); `format_gold(task, thinking, output)` renders a task's gold
in exactly the format that prompt asks for, so the gold reply earns the maximum of every reward
component (tests check this). No tokenizer, no chat template.

`output` is the JSON reply format (the run's `prompt.output`): "fenced", one ```json block (the
default, the seed's), or "bare", the JSON value alone with no fence and no other text, as JSON-mode
and API clients read it (rewards.parse rule 5). Math tasks have one format ("Answer: ...") and ignore
both `output` and the configured `system`.

The think prompt describes the format in words and gives no sample reply: the seed's example
("<think>Your reasoning here.</think>") was parroted verbatim by small models (study 4.2, 9.2).
"""
from __future__ import annotations

import json
import re

from curriculum.task import Task
from rewards.parse import OUTPUTS   # the reply formats the reward knows how to judge

SYSTEM_PROMPT_JSON = (
    "You are a helpful assistant that generates valid JSON. Reply ONLY with one JSON code block: "
    "start with ```json on its own line, then the JSON, then ``` on its own line. Write no text "
    "before or after the block, and satisfy every requirement of the request (keys, types, counts, "
    "allowed values, formats).")

SYSTEM_PROMPT_THINK = (
    "You are a helpful assistant that generates valid JSON. First think inside <think> and </think>: "
    "list the keys, types, counts, allowed values and formats the request demands, and how you will "
    "meet each. Then, after </think>, reply with one JSON code block (```json on its own line, the "
    "JSON, ``` on its own line) and no other text.")

SYSTEM_PROMPT_JSON_BARE = (
    "You are a helpful assistant that generates valid JSON. Reply ONLY with the JSON value itself, as "
    "raw text: no Markdown code fence and no text before or after it, and satisfy every requirement of "
    "the request (keys, types, counts, allowed values, formats).")

SYSTEM_PROMPT_THINK_BARE = (
    "You are a helpful assistant that generates valid JSON. First think inside <think> and </think>: "
    "list the keys, types, counts, allowed values and formats the request demands, and how you will "
    "meet each. Then, after </think>, reply with the JSON value itself, as raw text, with no Markdown "
    "code fence and no other text.")

SYSTEM_PROMPT_MATH = (
    "You are a careful math assistant. Solve the problem step by step, briefly. End with a final line "
    "of the form \"Answer: <value>\". For a system of equations give every unknown, as in "
    "\"Answer: x = 3, y = -1/2\", using integers or reduced fractions; for a single quantity give "
    "just the number, as in \"Answer: 42\".")

SYSTEM_PROMPT_MATH_THINK = (
    "You are a careful math assistant. Reason step by step inside <think> and </think>. After "
    "</think>, write one final line of the form \"Answer: <value>\" (for a system of equations every "
    "unknown, as in \"Answer: x = 3, y = -1/2\"; for a single quantity just the number).")

_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
               "object": "an object", "array": "an array", "null": "null"}
_CALCULATOR_RE = re.compile(r"<<[^<>]*>>")   # GSM8K's calculator annotations "<<16-3-4=9>>"
_GSM8K_FINAL_RE = re.compile(r"\n?####\s*(.+?)\s*$")


_JSON_PROMPTS = {("fenced", False): SYSTEM_PROMPT_JSON, ("fenced", True): SYSTEM_PROMPT_THINK,
                 ("bare", False): SYSTEM_PROMPT_JSON_BARE, ("bare", True): SYSTEM_PROMPT_THINK_BARE}


def system_prompt(kind: str, thinking: bool, output: str = "fenced") -> str:
    if output not in OUTPUTS:
        raise ValueError(f"unknown output format {output!r}; expected one of {OUTPUTS}")
    if kind == "json":
        return _JSON_PROMPTS[output, bool(thinking)]
    if kind == "math":
        return SYSTEM_PROMPT_MATH_THINK if thinking else SYSTEM_PROMPT_MATH
    raise ValueError(f"unknown task kind {kind!r}; expected 'json' or 'math'")


def task_system_prompt(task: Task, thinking: bool, output: str = "fenced", system: str | None = None) -> str:
    """The system prompt a task is rendered with: its own (a user's task file row), else for a JSON task
    the run's configured `system` (prompt.system), else its kind's default for `thinking` and `output`."""
    if task.system is not None:
        return task.system
    if system is not None and task.kind == "json":
        return system
    return system_prompt(task.kind, thinking, output)


def _type_phrase(schema: dict) -> str:
    if "const" in schema:
        return f"exactly {json.dumps(schema['const'])}"
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    t = schema.get("type", "value")
    phrase = " or ".join(_TYPE_WORDS.get(x, x) for x in t) if isinstance(t, list) else _TYPE_WORDS.get(t, t)
    if "format" in schema:
        phrase += f" in {schema['format']} format"
    lo, hi = schema.get("minItems", schema.get("minProperties")), schema.get("maxItems", schema.get("maxProperties"))
    unit = "items" if t == "array" else "entries"
    if lo is not None and lo == hi:
        phrase += f" with exactly {lo} {unit}"
    elif lo is not None:
        phrase += f" with at least {lo} {unit}"
    elif hi is not None:
        phrase += f" with at most {hi} {unit}"
    return phrase


def describe_schema(schema: dict, reply: str = "the block") -> str:
    """A short, task-specific plan derived from the schema's top two levels (the gold <think>)."""
    sentences = [f"The request asks for {_type_phrase(schema)}."]
    node = schema
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        node = schema["items"]
        sentences.append(f"Each item is {_type_phrase(node)}.")
    props = node.get("properties", {}) if isinstance(node, dict) else {}
    if props:
        required = set(node.get("required", []))
        keys = "; ".join(f'"{k}" is {_type_phrase(v) if isinstance(v, dict) else "any value"}'
                         + ("" if k in required else " (optional)")
                         for k, v in props.items())
        sentences.append(f"Keys: {keys}.")
        if node.get("additionalProperties") is False:
            sentences.append("No other keys are allowed.")
    sentences.append("I will fill in plausible values of the right types, then check every count, "
                     f"allowed value and format before writing {reply}.")
    return " ".join(sentences)


def _math_solution(task: Task) -> str:
    """The gold solution ending in "Answer: ..." (GSM8K golds are converted from their '#### N')."""
    text = _CALCULATOR_RE.sub("", str(task.gold or "")).strip()
    final = _GSM8K_FINAL_RE.search(text)
    if final is not None:
        text = text[:final.start()].rstrip() + f"\nAnswer: {final.group(1)}"
    elif not re.search(r"^Answer:", text, re.MULTILINE) and task.answer:
        text = (text + "\n" if text else "") + f"Answer: {task.answer}"
    return text


def format_gold(task: Task, thinking: bool, output: str = "fenced") -> str:
    """The gold assistant reply in the instructed format (what SFT trains on): a ```json block, or
    with output "bare" the JSON alone; in think mode after a <think> plan."""
    if task.kind == "math":
        solution = _math_solution(task)
        if not thinking:
            return solution
        work, _, answer = solution.rpartition("\nAnswer:")
        return f"<think>\n{work.strip()}\n</think>\nAnswer:{answer}" if work else solution
    if output not in OUTPUTS:
        raise ValueError(f"unknown output format {output!r}; expected one of {OUTPUTS}")
    # Indented: compact one-line golds were measured (docs/study.md, section 5): fewer tokens and fewer
    # hard-tier truncations, but more unclosed brackets and lower strict pass on the easy tiers.
    body = json.dumps(task.gold, indent=2, ensure_ascii=False)
    reply = f"```json\n{body}\n```" if output == "fenced" else body
    if not thinking:
        return reply
    plan = (describe_schema(task.schema, "the block" if output == "fenced" else "the JSON")
            if isinstance(task.schema, dict) else "I will write the JSON requested.")
    return f"<think>\n{plan}\n</think>\n{reply}"
