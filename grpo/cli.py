"""`grpo-train CONFIG [--resume] [--set key=value ...]`: parse, load the config, call grpo.train.train
(or grpo.sft.run_sft when the config says run.mode = "sft").

A bad config prints one line naming the key and the file (exit status 2), never a traceback.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grpo-train", description="GRPO training of a LoRA adapter.")
    parser.add_argument("config", help="TOML config, e.g. configs/smollm2-135m-cpu.toml")
    parser.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set grpo.beta=0.02 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-step lines")
    args = parser.parse_args(argv)

    from grpo.config import ConfigError, load_config
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"grpo-train: config error: {err}", file=sys.stderr)
        return 2
    # heavy imports only once the config is known to be good
    if cfg.run.mode == "sft":
        from grpo.sft import run_sft as run
    else:
        from grpo.train import train as run
    try:
        summary = run(cfg, resume=args.resume, quiet=args.quiet)
    except ConfigError as err:
        print(f"grpo-train: {err}", file=sys.stderr)
        return 2
    print(f"done: {summary['step']} steps, run folder {summary['run_dir']}, adapter {summary['adapter']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
