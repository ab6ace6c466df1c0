"""Render (system, user) messages into prompt token ids with the model's own chat template.

Two things the templates do not do for us:
- Some templates (Gemma) have no system role and raise on one: the system text is then prepended
  to the user message, separated by a blank line (the seed's workaround).
- Think mode can *prefill* the assistant turn with "<think>\n": the model then continues inside a
  think block instead of having to discover one (the seed's think runs produced none for 4 of 5
  models). The prefill is part of the prompt, so the completion starts after it; rewards must see
  `THINK_PREFILL + completion` (use `full_completion`).
"""
from __future__ import annotations

from typing import Any

THINK_PREFILL = "<think>\n"


def render_text(tokenizer: Any, system: str | None, user: str, *, think_prefill: bool = False) -> str:
    """The prompt as text, ending where the assistant's reply starts (after the prefill if any)."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # jinja raises TemplateError("System role not supported") for Gemma
        if not system or "system" not in str(err).lower():
            raise
        merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
        text = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    return text + THINK_PREFILL if think_prefill else text


def render_prompt(tokenizer: Any, system: str | None, user: str, *, think_prefill: bool = False) -> list[int]:
    """Prompt token ids. The template already holds BOS/special tokens, so none are added again."""
    text = render_text(tokenizer, system, user, think_prefill=think_prefill)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def full_completion(completion: str, *, think_prefill: bool) -> str:
    """What the model 'said': the prefilled opening plus the generated text (for rewards and eval)."""
    return THINK_PREFILL + completion if think_prefill else completion
