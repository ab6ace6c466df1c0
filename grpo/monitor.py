"""Where metrics go: TensorBoard (or nowhere), plus small helpers to time phases and average metrics.

`Monitor.scalars(metrics, step)` writes one scalar per key; `Monitor.text(tag, text, step)` writes plain
text shown exactly as written, `Monitor.markdown(tag, md, step)` a Markdown document (e.g. `group_markdown`:
one GRPO group, its prompt, every completion with its reward components and advantage). `NullMonitor`
has the same methods and does nothing, so call sites never test whether logging is on (nanochat's
DummyWandb).

Text in TensorBoard: its text plugin renders Markdown (Python-Markdown with the fenced_code extension,
then an HTML sanitizer; tensorboard/plugin_util.py), so model output goes in an *indented* code block
(`verbatim`): Markdown escapes its content once and reads nothing inside it, and quotes, <think> tags
and ``` fences show as generated. A <pre> of html.escape'd text does not survive: the fenced_code
extension re-reads a ```json fence inside it and escapes it again, and the JSON shows as &quot;.

A run (re)starting at step s opens its Monitor with `first_step=s` (SummaryWriter's purge_step):
TensorBoard then hides whatever earlier event files logged from step s on. Those are the steps a
killed run did after its last checkpoint, which the resumed run does again; without the purge each
of them would show twice.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

INDENT = "    "   # a Markdown indented code block


def verbatim(text: str) -> str:
    """`text` as a Markdown indented code block, shown exactly as written (see the module docstring)."""
    return "\n".join(INDENT + line for line in text.split("\n")) if text.strip() else "*(empty)*"


def group_markdown(task_id: str, prompt: str, completions: list[str], rewards: np.ndarray,
                   components: dict[str, np.ndarray], advantages: np.ndarray | None) -> str:
    """One group as Markdown: the task and its prompt, a table of every completion's reward, advantage
    and reward components, then each completion verbatim. `advantages` None: the group was dropped
    (all rewards tied, grpo.zero_variance = "filter"), so it trained nothing."""
    names = list(components)
    adv = [f"{a:+.3f}" for a in advantages] if advantages is not None else ["dropped"] * len(completions)
    lines = [f"**task** `{task_id}`", "", "**prompt**", "", verbatim(prompt), "",
             "| # | reward | advantage | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
    lines += [f"| {i + 1} | {rewards[i]:.3f} | {adv[i]} | " + " | ".join(f"{components[n][i]:.2f}" for n in names)
              + " |" for i in range(len(completions))]
    for i, text in enumerate(completions):
        lines += ["", f"**completion {i + 1}** (reward {rewards[i]:.3f}, advantage {adv[i]})", "", verbatim(text)]
    return "\n".join(lines)


class NullMonitor:
    def scalars(self, metrics: dict[str, float], step: int) -> None: ...
    def text(self, tag: str, text: str, step: int) -> None: ...
    def markdown(self, tag: str, markdown: str, step: int) -> None: ...
    def close(self) -> None: ...


class Monitor(NullMonitor):
    def __init__(self, log_dir: Path, first_step: int = 1):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(log_dir), purge_step=first_step)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def text(self, tag: str, text: str, step: int) -> None:
        self.markdown(tag, verbatim(text), step)

    def markdown(self, tag: str, markdown: str, step: int) -> None:
        self.writer.add_text(tag, markdown, step)

    def close(self) -> None:
        self.writer.close()


class PhaseTimer:
    """Accumulates wall time per phase: `with timer("generate"): ...` -> metrics time/generate_s."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        # CPU training: every op is synchronous, so perf_counter brackets the real work.
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        return {f"time/{phase}_s": s for phase, s in self.seconds.items()}

    @classmethod
    def merged(cls, parts: list["PhaseTimer"]) -> "PhaseTimer":
        """The slowest part's time per phase (every rank's timer, grpo.distributed: a step waits for the
        slowest rank). A single part comes back unchanged."""
        if len(parts) == 1:
            return parts[0]
        out = cls()
        for part in parts:
            for phase, seconds in part.seconds.items():
                out.seconds[phase] = max(out.seconds[phase], seconds)
        return out


class MeanAccumulator:
    """Weighted means of per-micro-batch metrics (keys ending in '_max' keep the max instead)."""

    def __init__(self):
        self.sums: dict[str, float] = defaultdict(float)
        self.weights: dict[str, float] = defaultdict(float)
        self.maxes: dict[str, float] = {}

    def add(self, metrics: dict[str, float], weight: float = 1.0) -> None:
        for key, value in metrics.items():
            if key.endswith("_max"):
                self.maxes[key] = max(self.maxes.get(key, value), value)
            else:
                self.sums[key] += value * weight
                self.weights[key] += weight

    def means(self) -> dict[str, float]:
        out = {k: s / self.weights[k] for k, s in self.sums.items() if self.weights[k] > 0}
        return out | self.maxes

    @classmethod
    def merged(cls, parts: list["MeanAccumulator"]) -> "MeanAccumulator":
        """One accumulator over all of `parts` (every rank's, grpo.distributed): the weighted means of
        their union. A single part comes back unchanged."""
        if len(parts) == 1:
            return parts[0]
        out = cls()
        for part in parts:
            for key, value in part.sums.items():
                out.sums[key] += value
                out.weights[key] += part.weights[key]
            for key, value in part.maxes.items():
                out.maxes[key] = max(out.maxes.get(key, value), value)
        return out
