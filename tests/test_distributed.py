"""Data-parallel GRPO with real torchrun processes on CPU (gloo): 2 ranks give the 1-rank update on the
same episodes, hold the same adapter after every step, resume to the uninterrupted run, refuse a batch
that does not split, and fail loudly when the ranks' adapters differ.

Every run is this file started as a script under `python -m torch.distributed.run` (the test is the
launcher): it trains test_train_e2e's tiny character model with the transformers engine and the brace
reward, one thread per rank. It records, per rank, the hash that `check_same` compares after every
optimizer step, and on rank 0 the all-reduced LoRA gradient that the optimizer step uses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_train_e2e import TASKS, brace_reward, make_char_model, tiny_config  # noqa: E402

TIMEOUT = 240


def config(model_dir: Path, run_dir: Path, overrides: list[str], num_steps: int, engine: str = "hf"):
    from grpo.config import config_from_dict
    data = tiny_config(model_dir, run_dir, engine=engine, num_steps=num_steps, save_every=1).model_dump(mode="json")
    data["run"]["num_threads"] = 1
    return config_from_dict(data, overrides=overrides)


def worker(mode: str, model_dir: Path, run_dir: Path, num_steps: int, resume: bool, overrides: list[str]) -> None:
    """One rank of a run (this file as a torchrun script)."""
    from grpo import distributed, step
    from grpo.tasks import TaskSource
    from grpo.train import train
    from rollout.testing import FixedCompletions

    rank = int(os.environ.get("RANK", "0"))
    out = run_dir.parent / f"{run_dir.name}-rank{rank}"
    out.mkdir(parents=True, exist_ok=True)

    check_same = distributed.TorchWorld.check_same
    def recording_check_same(self, params, what):  # the hash every rank compares, as the ranks see it
        with open(out / "hashes.txt", "a") as f:
            f.write(distributed.params_hash(params) + "\n")
        return check_same(self, params, what)
    distributed.TorchWorld.check_same = recording_check_same

    clip = torch.nn.utils.clip_grad_norm_
    grads = []
    def recording_clip(params, max_norm):  # the summed gradient the optimizer step is about to use
        grads.append(torch.cat([p.grad.reshape(-1) for p in params]).clone())
        return clip(params, max_norm)
    step.torch.nn.utils.clip_grad_norm_ = recording_clip  # type: ignore[attr-defined]

    engine = None
    if mode == "fixed":
        from transformers import AutoTokenizer
        engine = FixedCompletions(AutoTokenizer.from_pretrained(model_dir))
    try:
        train(config(model_dir, run_dir, overrides, num_steps, "vllm" if mode == "vllm" else "hf"),
              resume=resume, engine=engine,
              reward_fn=brace_reward, tasks=TaskSource(TASKS, seed=0), quiet=True)
    except Exception as err:  # the test reads the first line of each rank's error
        (out / "error.txt").write_text(f"{type(err).__name__}: {err}")
        raise
    torch.save(grads, out / "grads.pt")


def torchrun(nproc: int, mode: str, model_dir: Path, run_dir: Path, num_steps: int = 1, resume: bool = False,
             overrides: tuple[str, ...] = (), check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           __file__, mode, str(model_dir), str(run_dir), str(num_steps), str(int(resume)), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def assert_same_adapter(a: Path, b: Path, atol: float = 1e-6) -> None:
    wa, wb = adapter(a), adapter(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=1e-4, msg=key)


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    return make_char_model(tmp_path_factory.mktemp("char_model"))


@pytest.mark.parametrize("overrides", [
    ("grpo.adv_scale=group", "grpo.loss_agg=token_mean", "grpo.beta=0.04"),
    ("grpo.adv_scale=batch", "grpo.loss_agg=constant", "grpo.beta=0.0"),
    ("grpo.adv_scale=none", "grpo.loss_agg=seq_mean", "grpo.beta=0.04", "grpo.num_iterations=2"),
], ids=["group-token_mean-kl", "batch-constant", "none-seq_mean-mu2"])
def test_two_ranks_give_the_one_rank_update(tmp_path, char_model, overrides):
    """The same 4 prompts x 8 fixed completions, split 2 + 2 over two ranks or taken whole by one: the
    summed gradient (before clipping) and the adapter after the step agree to float tolerance. Adam's
    first step is nearly sign(gradient), so a wrong normaliser would hide in the adapter: the gradient is
    compared as well."""
    one, two = tmp_path / "one", tmp_path / "two"
    torchrun(1, "fixed", char_model, one, overrides=overrides)
    torchrun(2, "fixed", char_model, two, overrides=overrides)
    g1, g2 = torch.load(tmp_path / "one-rank0" / "grads.pt"), torch.load(tmp_path / "two-rank0" / "grads.pt")
    assert len(g1) == len(g2) >= 1
    for a, b in zip(g1, g2):
        assert a.abs().max() > 0, "the fixed completions must give a learning signal"
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-7)
    assert_same_adapter(one, two)
    assert torch.load(tmp_path / "two-rank1" / "grads.pt")[0].equal(g2[0])  # the all-reduce result, on both


def test_two_rank_training_keeps_one_adapter_and_resumes(tmp_path, char_model):
    """2 real GRPO steps (the transformers engine samples, each rank from its own seed) with 2 ranks: the
    adapters' hashes agree on both ranks after every optimizer step; a run stopped after step 1 and
    resumed ends with the uninterrupted run's adapter (each rank's RNG streams come back)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    torchrun(2, "hf", char_model, straight, num_steps=2)
    h0 = (tmp_path / "straight-rank0" / "hashes.txt").read_text().split()
    h1 = (tmp_path / "straight-rank1" / "hashes.txt").read_text().split()
    assert len(h0) == 3 and h0 == h1  # at start, after step 1, after step 2
    assert len(set(h0)) == 3           # and the adapter did move every step
    state = json.loads((straight / "checkpoints" / "step_000002" / "state.json").read_text())
    assert state["step"] == 2 and state["ranks"] == 2
    ranks_rng = torch.load(straight / "checkpoints" / "step_000002" / "trainer_state.pt", weights_only=True)["rng_ranks"]
    assert len(ranks_rng) == 2 and not ranks_rng[0]["torch"].equal(ranks_rng[1]["torch"])

    torchrun(2, "hf", char_model, resumed, num_steps=1)
    torchrun(2, "hf", char_model, resumed, num_steps=2, resume=True)
    assert_same_adapter(straight, resumed)
    assert [p.name for p in sorted((resumed / "checkpoints").iterdir())] == ["step_000001", "step_000002"]


@pytest.mark.slow
def test_two_ranks_each_with_its_own_vllm_engine(tmp_path, char_model):
    """The CPU default: each rank builds its own compiled vLLM engine (vLLM's external launcher, on the
    rank's own core) with the exact unmerged hot swap; 2 steps, the adapters agree after each step and
    every swap delivered (a swap below 0.99 raises)."""
    run = tmp_path / "vllm"
    torchrun(2, "vllm", char_model, run, num_steps=2)
    h0 = (tmp_path / "vllm-rank0" / "hashes.txt").read_text().split()
    assert len(h0) == 3 and h0 == (tmp_path / "vllm-rank1" / "hashes.txt").read_text().split()
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


def test_a_batch_that_does_not_split_is_refused(tmp_path, char_model):
    proc = torchrun(2, "hf", char_model, tmp_path / "odd", overrides=("rollout.prompts_per_step=3",), check=False)
    assert proc.returncode != 0
    error = (tmp_path / "odd-rank0" / "error.txt").read_text()
    assert error.startswith("ConfigError: rollout.prompts_per_step: 3 prompts do not split evenly over 2 ranks")


def test_grpo_train_nproc_starts_the_ranks(tmp_path, char_model):
    """`grpo-train --nproc 2 CONFIG` runs torchrun itself: one step of the default JSON rewards with the
    transformers engine; rank 0 alone prints the step line and writes the run folder."""
    from grpo.config import dump_toml
    cfg = config(char_model, tmp_path / "runs" / "cli", ["data.num_tasks=32", "run.tensorboard=false"], num_steps=1)
    (tmp_path / "cli.toml").write_text(dump_toml(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "grpo.cli", str(tmp_path / "cli.toml"), "--nproc", "2"],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("step    1/1 |") == 1 and proc.stdout.count("done: 1 steps") == 1, proc.stdout
    assert (tmp_path / "runs" / "cli" / "adapter" / "adapter_model.safetensors").is_file()


def test_diverged_ranks_fail_loudly(tmp_path):
    """check_same raises on every rank when one rank's adapter differs; broadcast_params repairs it."""
    torchrun(2, "diverge", tmp_path, tmp_path / "diverge")
    for rank in (0, 1):
        lines = (tmp_path / f"diverge-rank{rank}" / "diverge.txt").read_text().splitlines()
        assert lines[0].startswith("RanksDiverged: test: the LoRA adapter differs between ranks"), lines
        assert lines[1] == "same after broadcast"


def diverge_worker(run_dir: Path) -> None:
    from grpo.distributed import RanksDiverged, init_world
    world = init_world()
    out = run_dir.parent / f"{run_dir.name}-rank{world.rank}"
    out.mkdir(parents=True, exist_ok=True)
    params = [torch.nn.Parameter(torch.full((3, 4), float(world.rank))), torch.nn.Parameter(torch.ones(5))]
    lines = []
    try:
        world.check_same(params, "test")
        lines.append("no error")
    except RanksDiverged as err:
        lines.append(f"RanksDiverged: {err}")
    world.broadcast_params(params)
    world.check_same(params, "after broadcast")
    lines.append("same after broadcast" if params[0].eq(0).all() else "broadcast did not copy rank 0")
    (out / "diverge.txt").write_text("\n".join(lines) + "\n")
    world.close()


if __name__ == "__main__":
    mode, model_dir, run_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if mode == "diverge":
        diverge_worker(run_dir)
    else:
        worker(mode, model_dir, run_dir, int(sys.argv[4]), bool(int(sys.argv[5])), sys.argv[6:])
