"""`grpo-train CONFIG [--resume [--allow-config-change]] [--set key=value ...] [--nproc N]`: parse, load
the config, call grpo.train.train (or grpo.sft.run_sft when the config says run.mode = "sft").

`--nproc N` starts N data-parallel ranks on this machine through torchrun, which runs this same module
(`python -m torch.distributed.run --standalone --nproc_per_node N -m grpo.cli ...`); for several
machines call torchrun yourself (README, "Multiple GPUs and nodes").

A bad config, or a path in it that does not exist or cannot be written (grpo.config.check_paths,
checked before any model loads), prints one line naming the key (exit status 2), never a traceback,
and leaves no run folder behind.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every other bad input; the usage is in --help
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command line (not a caller in this process): tcmalloc + Intel OpenMP (rollout/preload.py)
        from rollout.preload import reexec_with_preloads
        reexec_with_preloads()
    parser = OneLineParser(prog="grpo-train", description="GRPO training of a LoRA adapter.")
    parser.add_argument("config", help="TOML config, e.g. configs/smollm2-135m-cpu.toml")
    parser.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: apply config changes beyond logging and run length (e.g. a new optim.lr) "
                             "instead of refusing them")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set grpo.beta=0.02 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-step lines")
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="data-parallel ranks on this machine, started through torchrun (default 1)")
    args = parser.parse_args(argv)
    if args.nproc < 1:
        parser.error(f"--nproc {args.nproc}: needs at least 1 rank")
    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        return launch_torchrun(args.nproc, sys.argv[1:] if argv is None else argv)

    from grpo.config import ConfigError, check_paths, load_config
    from rollout.models import offline_unless_hub
    try:
        cfg = load_config(args.config, args.overrides)
        offline_unless_hub(cfg.model.path)  # before check_paths, which asks whether a hub id can be fetched
        check_paths(cfg)
    except ConfigError as err:
        print(f"grpo-train: config error: {err}", file=sys.stderr)
        return 2
    from grpo.distributed import launched_by_torchrun
    if cfg.run.mode == "sft" and launched_by_torchrun():
        print("grpo-train: run.mode = \"sft\" runs on one process; start it without torchrun / --nproc", file=sys.stderr)
        return 2
    # heavy imports only once the config is known to be good
    if cfg.run.mode == "sft":
        from grpo.sft import run_sft as run
    else:
        from grpo.train import train as run
    new_dirs = [d for d in (cfg.run_dir, *cfg.run_dir.parents) if not d.exists()]  # what this start may create
    try:
        summary = run(cfg, resume=args.resume, allow_config_change=args.allow_config_change, quiet=args.quiet)
    except BaseException as err:
        remove_unused(new_dirs)
        if not isinstance(err, ConfigError):
            raise
        print(f"grpo-train: {err}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"done: {summary['step']} steps, run folder {summary['run_dir']}, adapter {summary['adapter']}")
    return 0


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Run this command again as `nproc` torchrun ranks on this machine (c10d rendezvous on localhost)."""
    import subprocess
    rest = [a for i, a in enumerate(argv) if a != "--nproc" and not a.startswith("--nproc=")
            and not (i > 0 and argv[i - 1] == "--nproc")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "grpo.cli", *rest]
    return subprocess.call(cmd)


def remove_unused(new_dirs: list[Path]) -> None:
    """After a failed start: remove the run folder (and the missing parents it was made with, innermost
    first) while it holds nothing but the config.toml this start wrote."""
    if new_dirs and new_dirs[0].is_dir() and [p.name for p in new_dirs[0].iterdir()] == ["config.toml"]:
        (new_dirs[0] / "config.toml").unlink()
    for folder in new_dirs:
        if folder.is_dir():
            if any(folder.iterdir()):
                return
            folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
