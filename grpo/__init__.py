"""A hand-written GRPO trainer (torch + peft) that teaches small LLMs strict, schema-conformant JSON.

Read in this order: config.py (every knob), train.py (the loop), step.py (one GRPO step),
advantages.py and loss.py (the math, pure tensor functions), logprobs.py (chunked selective
log-softmax), batch.py (padding and micro-batches), checkpoint.py (atomic save / resume).
Entry point: `grpo-train CONFIG` (grpo/cli.py), or `python -m grpo CONFIG`.
"""
