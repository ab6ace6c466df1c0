"""System prompts and gold assistant replies in the instructed format (for SFT and reward tests).

Contract: `system_prompt(kind, thinking)` picks one of the four prompts below, `task_system_prompt(task,
thinking)` the one a task is rendered with (its own `system`, else that default); `format_gold(task,
thinking)` renders a task's gold in exactly the format that prompt asks for, so the gold reply
earns the maximum of every reward component (tests check this). No tokenizer, no chat template.

The think prompt describes the format in words and gives no sample reply: the seed's example
("<think>Your reasoning here.</think>") was parroted verbatim by small models (study 4.2, 9.2).
"""
from __future__ import annotations

import json
import re
from curriculum.task import Task

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


def system_prompt(kind: str, thinking: bool) -> str:
    if kind == "json":
        return SYSTEM_PROMPT_THINK if thinking else SYSTEM_PROMPT_JSON
    if kind == "math":
        return SYSTEM_PROMPT_MATH_THINK if thinking else SYSTEM_PROMPT_MATH
    raise ValueError(f"unknown task kind {kind!r}; expected 'json' or 'math'")


def task_system_prompt(task: Task, thinking: bool) -> str:
    """The system prompt a task is rendered with: its own (a user's task file row), else its kind's default."""
    return task.system if task.system is not None else system_prompt(task.kind, thinking)


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


def describe_schema(schema: dict) -> str:
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
                     "allowed value and format before writing the block.")
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


def format_gold(task: Task, thinking: bool) -> str:
    """The gold assistant reply in the instructed format (what SFT trains on)."""
    if task.kind == "math":
        solution = _math_solution(task)
        if not thinking:
            return solution
        work, _, answer = solution.rpartition("\nAnswer:")
        return f"<think>\n{work.strip()}\n</think>\nAnswer:{answer}" if work else solution
    body = json.dumps(task.gold, indent=2, ensure_ascii=False)
    block = f"```json\n{body}\n```"
    if not thinking:
        return block
    plan = describe_schema(task.schema) if isinstance(task.schema, dict) else "I will write the JSON requested."
    return f"<think>\n{plan}\n</think>\n{block}"
