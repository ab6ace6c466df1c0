"""Where metrics go: TensorBoard (or nowhere), plus small helpers to time phases and average metrics.

`Monitor.scalars(metrics, step)` writes one scalar per key; `Monitor.text(tag, text, step)` writes
HTML-escaped sample completions. `NullMonitor` has the same methods and does nothing, so call sites
never test whether logging is on (nanochat's DummyWandb).

A run (re)starting at step s opens its Monitor with `first_step=s` (SummaryWriter's purge_step):
TensorBoard then hides whatever earlier event files logged from step s on. Those are the steps a
killed run did after its last checkpoint, which the resumed run does again; without the purge each
of them would show twice.
"""
from __future__ import annotations

import html
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path


class NullMonitor:
    def scalars(self, metrics: dict[str, float], step: int) -> None: ...
    def text(self, tag: str, text: str, step: int) -> None: ...
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
        # TensorBoard renders text as Markdown; a <pre> block keeps JSON and whitespace as generated.
        self.writer.add_text(tag, "<pre>" + html.escape(text) + "</pre>", step)

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
