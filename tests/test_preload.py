"""rollout.preload: the command line tools re-execute themselves once with the libraries preloaded."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBC = next((p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6") if os.path.isfile(p)), None)
# Stands in for tcmalloc + libiomp5 (which a machine may lack): a library every process loads anyway.
CHILD = f"""
import os, rollout.preload as p
p.preload_libraries = lambda: [{LIBC!r}]
print("start", os.getpid(), flush=True)
p.reexec_with_preloads()
print("LD_PRELOAD=" + os.environ.get("LD_PRELOAD", ""), flush=True)
"""


def run_child(**env) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GRPO_PRELOADED", "GRPO_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=base | env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split("\n")


@pytest.mark.skipif(LIBC is None or sys.platform != "linux", reason="needs Linux with glibc")
def test_reexecs_once_with_the_libraries_in_ld_preload():
    lines = run_child()
    starts = [line for line in lines if line.startswith("start")]
    assert len(starts) == 2 and len({s.split()[1] for s in starts}) == 1  # exec: same pid, started twice
    assert f"LD_PRELOAD={LIBC}" in lines


@pytest.mark.skipif(LIBC is None or sys.platform != "linux", reason="needs Linux with glibc")
def test_keeps_an_existing_ld_preload_and_can_be_turned_off():
    assert f"LD_PRELOAD={LIBC}:/nonexistent.so" in run_child(LD_PRELOAD="/nonexistent.so")  # ours go first
    lines = run_child(LD_PRELOAD=LIBC)  # already there: no exec
    assert sum(line.startswith("start") for line in lines) == 1
    lines = run_child(GRPO_PRELOAD="0")
    assert sum(line.startswith("start") for line in lines) == 1 and "LD_PRELOAD=" in lines
