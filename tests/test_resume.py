"""Resume: a run killed with SIGKILL during generation, during a checkpoint write or during the final
adapter write resumes to the adapter an uninterrupted run ends with; a config change that alters the
run is refused on resume (one line naming the keys) unless allowed, and then really applied;
TensorBoard shows each step once; scratch folders of dead processes are removed.

A killed run is this file run as a script: it patches one function so that the run hangs at the named
point of step 3 after writing a marker file; the test waits for the marker and sends SIGKILL. Runs use
the transformers engine and test_train_e2e's tiny character model, 4 steps, a checkpoint every step.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from test_train_e2e import TASKS, brace_reward, make_char_model, tiny_config  # noqa: E402

NUM_STEPS = 4
PAUSE_STEP = 3


def config(model_dir: Path, run_dir: Path, overrides: list[str] = (), num_steps: int = NUM_STEPS):
    from grpo.config import config_from_dict
    data = tiny_config(model_dir, run_dir, engine="hf", num_steps=num_steps, save_every=1).model_dump(mode="json")
    data["run"]["num_threads"] = 1  # the killed child and this process then compute alike (and fast on 2 cores)
    return config_from_dict(data, overrides=overrides)


def run(model_dir: Path, run_dir: Path, resume: bool = False, overrides: list[str] = (), num_steps: int = NUM_STEPS,
        allow_config_change: bool = False):
    from grpo.tasks import TaskSource
    from grpo.train import train
    return train(config(model_dir, run_dir, overrides, num_steps), resume=resume,
                 allow_config_change=allow_config_change, reward_fn=brace_reward, tasks=TaskSource(TASKS, seed=0),
                 quiet=True)


def pause_at(point: str, run_dir: Path) -> None:
    """Make this process hang at `point` of step PAUSE_STEP, once run_dir/../paused is written."""
    from grpo import checkpoint
    from rollout.hf_engine import HFEngine

    def hang():
        (run_dir.parent / "paused").write_text(point)
        time.sleep(600)

    if point == "generation":  # step 3's rollout: the newest checkpoint is step 2's
        generate = HFEngine.generate
        def paused_generate(self, *args, **kwargs):
            if [p.name for p in checkpoint.list_checkpoints(run_dir)][-1:] == [f"step_{PAUSE_STEP - 1:06d}"]:
                hang()
            return generate(self, *args, **kwargs)
        HFEngine.generate = paused_generate
    else:  # every file written and fsynced in the .tmp- folder, nothing renamed yet
        name = {"checkpoint_write": f"step_{PAUSE_STEP:06d}", "adapter_write": "adapter"}[point]
        move = checkpoint._move_into_place
        def paused_move(tmp, final):
            if final.name == name:
                hang()
            move(tmp, final)
        checkpoint._move_into_place = paused_move


def kill_at(model_dir: Path, run_dir: Path, point: str) -> None:
    marker, log = run_dir.parent / "paused", run_dir.parent / "child.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, __file__, str(model_dir), str(run_dir), point],
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=out, stderr=out)
    deadline = time.time() + 300  # generous: CI machines are shared
    while not marker.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the run should have paused at {point}; its log ends:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def tensorboard_steps(log_dir: Path, tag: str) -> list[int]:
    """Steps of `tag` as TensorBoard shows them (events hidden by a restart's purge_step left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


@pytest.fixture(autouse=True, scope="module")
def restore_threads():
    before = torch.get_num_threads()  # the runs set run.num_threads = 1 in this process
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    return make_char_model(tmp_path_factory.mktemp("char-model"))


@pytest.fixture(scope="module")
def reference(char_model, tmp_path_factory) -> Path:
    """An uninterrupted run: the folder whose final adapter every resumed run must reproduce."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert run(char_model, run_dir)["step"] == NUM_STEPS
    return run_dir


# ----------------------------------------------------------------------------- kill -9, then resume

@pytest.mark.slow
@pytest.mark.parametrize("point, resumed_from", [("generation", 2), ("checkpoint_write", 2), ("adapter_write", 4)])
def test_killed_run_resumes_to_the_uninterrupted_adapter(char_model, reference, tmp_path, point, resumed_from):
    from safetensors.torch import load_file

    from grpo import checkpoint
    run_dir = tmp_path / "run"
    kill_at(char_model, run_dir, point)
    summary = run(char_model, run_dir, resume=True)
    assert summary["step"] == NUM_STEPS and summary["resumed_from"] == resumed_from, summary
    assert len(summary["history"]) == NUM_STEPS - resumed_from, "the resumed run should do only the missing steps"
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == ["step_000002", "step_000003", "step_000004"]
    assert not list(run_dir.rglob(".tmp-*")) and not list(run_dir.rglob(".old-*")), "no partial folder should be left"
    got = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    want = load_file(reference / "adapter" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6,
                                   msg=lambda m: f"{key}: the resumed adapter should equal the uninterrupted one; {m}")
    # A kill in the checkpoint write comes after step 3 was logged; the resumed run logs it again.
    assert tensorboard_steps(run_dir / "tb", "reward") == [1, 2, 3, 4], "TensorBoard should show each step once"


# ----------------------------------------------------------------------------- config changes on resume

def test_resume_refuses_a_change_of_meaning_in_one_line(tmp_path, capsys):
    from grpo import checkpoint
    from grpo.cli import main
    from grpo.config import dump_toml, load_config
    path = tmp_path / "run.toml"
    path.write_text(f'[run]\nname = "r"\nout_dir = "{tmp_path}"\nnum_steps = 10\n')
    saved = dump_toml(load_config(path))
    (tmp_path / "r" / "checkpoints" / "step_000002").mkdir(parents=True)  # all start_run reads of a checkpoint
    (tmp_path / "r" / "checkpoints" / "step_000002" / "config.toml").write_text(saved)
    (tmp_path / "r" / "config.toml").write_text(saved)

    code = main([str(path), "--resume", "--set", "optim.lr=1e-6", "--set", "grpo.beta=0.0",
                 "--set", "run.num_steps=20"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, f"one line, exit status 2: {err!r}"
    assert "optim.lr (5e-06 -> 1e-06)" in err and "grpo.beta (0.04 -> 0.0)" in err and "--allow-config-change" in err
    assert "run.num_steps" not in err, "extending a run is not a change of meaning"
    assert (tmp_path / "r" / "config.toml").read_text() == saved, "a refused resume must leave config.toml as it was"
    free = ["run.num_steps=20", "run.save_every=1", "run.tensorboard=false"]
    changes = checkpoint.config_changes(saved, load_config(path, free))
    assert set(changes) == {"run.num_steps", "run.save_every", "run.tensorboard"} <= checkpoint.FREE_KEYS


def test_follow_config_puts_the_new_lr_into_a_restored_optimizer(tmp_path):
    from grpo import checkpoint
    from grpo.config import OptimSection
    from grpo.optim import build_optimizer, follow_config, lr_multiplier
    from test_grpo_logprobs import tiny_policy
    policy = tiny_policy()
    old = OptimSection(lr=1e-2, schedule="cosine", warmup_ratio=0.0, weight_decay=0.1)
    optimizer, scheduler = build_optimizer(policy, old, total_steps=10)
    for _ in range(3):
        optimizer.step(); scheduler.step()
    folder = checkpoint.save_checkpoint(tmp_path, 3, policy, optimizer, scheduler, {}, "")

    new = OptimSection(lr=1e-3, schedule="cosine", warmup_ratio=0.0, weight_decay=0.0)
    optimizer, scheduler = build_optimizer(policy, new, total_steps=10)
    checkpoint.load_checkpoint(folder, policy, optimizer, scheduler)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * lr_multiplier(3, 10, old)), "restored as saved"
    follow_config(optimizer, scheduler, new)
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(1e-3 * lr_multiplier(3, 10, new)) == scheduler.get_last_lr()[0]
    assert group["weight_decay"] == 0.0 and scheduler.base_lrs == [1e-3]
    optimizer.step(); scheduler.step()
    assert group["lr"] == pytest.approx(1e-3 * lr_multiplier(4, 10, new)), "the schedule should go on from the new base"


@pytest.mark.slow
def test_grpo_resume_with_allow_config_change_trains_at_the_new_lr(char_model, reference, tmp_path):
    from grpo.config import ConfigError
    run_dir = tmp_path / "moved"   # a copy elsewhere: run.out_dir and run.name change freely
    shutil.copytree(reference, run_dir)
    with pytest.raises(ConfigError, match=r"optim\.lr \(0\.003 -> 0\.001\)"):
        run(char_model, run_dir, resume=True, overrides=["optim.lr=1e-3"], num_steps=5)
    summary = run(char_model, run_dir, resume=True, overrides=["optim.lr=1e-3"], num_steps=5, allow_config_change=True)
    assert summary["resumed_from"] == 4 and [h["lr"] for h in summary["history"]] == [pytest.approx(1e-3)], \
        "step 5 should train at the new rate (constant schedule)"
    state = torch.load(run_dir / "checkpoints" / "step_000005" / "trainer_state.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert "lr = 0.001" in (run_dir / "checkpoints" / "step_000005" / "config.toml").read_text()


@pytest.mark.slow
def test_sft_resume_refuses_then_applies_a_new_lr(tiny_model_path, tmp_path):
    from grpo.config import ConfigError
    from grpo.sft import run_sft
    from test_sft import TASKS as SFT_TASKS, sft_config
    cfg = sft_config(tiny_model_path, tmp_path / "sft", num_steps=2)
    run_sft(cfg, tasks=SFT_TASKS[:4], quiet=True)
    more = sft_config(tiny_model_path, tmp_path / "sft", num_steps=3)
    more = more.model_copy(update={"optim": more.optim.model_copy(update={"lr": 1e-4})})
    with pytest.raises(ConfigError, match=r"optim\.lr \(0\.003 -> 0\.0001\)"):
        run_sft(more, resume=True, tasks=SFT_TASKS[:4], quiet=True)
    run_sft(more, resume=True, allow_config_change=True, tasks=SFT_TASKS[:4], quiet=True)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "sft" / "tb"))
    events.Reload()
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("lr")] == [(1, 3e-3), (2, 3e-3), (3, 1e-4)]


# ----------------------------------------------------------------------------- TensorBoard, /dev/shm

def test_a_restart_hides_the_steps_it_logs_again(tmp_path):
    from grpo.monitor import Monitor
    first = Monitor(tmp_path)                   # killed after logging step 5, last checkpoint at step 3
    for step in range(1, 6):
        first.scalars({"reward": step}, step)
    first.close()
    time.sleep(1.1)  # event files are named by the second they were opened in
    resumed = Monitor(tmp_path, first_step=4)
    for step in range(4, 7):
        resumed.scalars({"reward": 10 * step}, step)
    resumed.close()
    assert tensorboard_steps(tmp_path, "reward") == [1, 2, 3, 4, 5, 6], "each step once, the resumed run's from 4 on"


def test_scratch_folders_of_dead_processes_are_removed(tmp_path):
    from rollout.vllm_engine import SCRATCH_PREFIX, ram_dir, remove_stale_scratch
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    dead, alive = tmp_path / f"{SCRATCH_PREFIX}{child.pid}-abc", tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    unknown = tmp_path / f"{SCRATCH_PREFIX}x1y2z3"   # the old naming, without a pid: not ours to judge
    for folder in (dead, alive, unknown):
        (folder / "adapter-1").mkdir(parents=True)
    assert remove_stale_scratch(tmp_path) == 1
    assert not dead.exists() and alive.exists() and unknown.exists()
    mine = ram_dir()
    try:
        assert mine.name.startswith(f"{SCRATCH_PREFIX}{os.getpid()}-"), "the scratch folder should name its owner"
    finally:
        shutil.rmtree(mine)


if __name__ == "__main__":  # python tests/test_resume.py MODEL_DIR RUN_DIR POINT: train, hang at POINT of step 3
    model_dir, run_dir, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    pause_at(point, run_dir)
    run(model_dir, run_dir)
