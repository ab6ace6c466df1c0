"""Checkpoints: atomic layout, PEFT-loadable adapter, exact restore of optimizer/scheduler/RNG/tasks,
weights_only loading, and a folder replacement that a kill at any moment cannot lose."""
import json
import os
import random

import numpy as np
import pytest
import torch
from peft import PeftModel

from curriculum.task import Task
from grpo import checkpoint
from grpo.config import OptimSection
from grpo.optim import build_optimizer, lr_multiplier
from grpo.tasks import TaskSource

from test_grpo_logprobs import tiny_policy


def _train_a_bit(policy, optimizer, scheduler, steps=3):
    for _ in range(steps):
        loss = sum((p ** 2).sum() for p in policy.parameters() if p.requires_grad)
        loss.backward()
        optimizer.step(); scheduler.step(); optimizer.zero_grad()


def test_save_and_resume_restore_everything(tmp_path):
    policy = tiny_policy()
    optimizer, scheduler = build_optimizer(policy, OptimSection(lr=1e-2), total_steps=10)
    _train_a_bit(policy, optimizer, scheduler)
    tasks = TaskSource([Task(id=str(i), kind="json", prompt=f"p{i}") for i in range(5)], seed=3)
    tasks.next_batch(7)
    torch.manual_seed(123); random.seed(1); np.random.seed(2)
    folder = checkpoint.save_checkpoint(tmp_path, 3, policy, optimizer, scheduler,
                                        {"tasks": tasks.state_dict(), "totals": {"skipped_nonfinite": 1}}, "x = 1\n")
    expected_draws = (torch.rand(3), random.random(), np.random.rand())
    expected_next = [t.id for t in tasks.next_batch(4)]
    assert sorted(p.name for p in folder.iterdir()) == ["adapter", "config.toml", "state.json", "trainer_state.pt"]
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()

    fresh = tiny_policy(seed=7)
    opt2, sched2 = build_optimizer(fresh, OptimSection(lr=1e-2), total_steps=10)
    state = checkpoint.load_checkpoint(checkpoint.list_checkpoints(tmp_path)[-1], fresh, opt2, sched2)
    assert state["step"] == 3 and state["totals"] == {"skipped_nonfinite": 1}
    for (n, a), b in zip(policy.named_parameters(), fresh.parameters()):
        if "lora" in n:
            assert torch.equal(a, b), f"{n} not restored"
    assert sched2.last_epoch == 3 and opt2.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()
    assert (torch.rand(3), random.random(), np.random.rand())[1:] == expected_draws[1:]
    tasks2 = TaskSource(tasks.tasks, seed=3)
    tasks2.load_state_dict(state["tasks"])
    assert [t.id for t in tasks2.next_batch(4)] == expected_next


def test_adapter_loads_with_peft_from_pretrained(tmp_path):
    policy = tiny_policy()
    optimizer, scheduler = build_optimizer(policy, OptimSection(), total_steps=1)
    folder = checkpoint.save_checkpoint(tmp_path, 1, policy, optimizer, scheduler, {}, "")
    base = tiny_policy().get_base_model()  # a fresh copy would do; this one has its own LoRA layers unloaded below
    loaded = PeftModel.from_pretrained(base.__class__(base.config), folder / "adapter")
    names = {n for n, _ in loaded.named_parameters() if "lora" in n}
    assert names and all("lora" in n for n in names)
    cfg = json.loads((folder / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["peft_type"] == "LORA"


def test_keep_last_and_partial_folders(tmp_path):
    policy = tiny_policy()
    optimizer, scheduler = build_optimizer(policy, OptimSection(), total_steps=1)
    for step in (1, 2, 3, 4):
        checkpoint.save_checkpoint(tmp_path, step, policy, optimizer, scheduler, {}, "", keep_last=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step_000003", "step_000004"]
    (tmp_path / "checkpoints" / ".tmp-step_000005-abc").mkdir()  # as left by a kill during a save
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)][-1] == "step_000004"
    assert checkpoint.remove_partial(tmp_path) == 1


def test_lr_schedule_warmup_then_cosine_and_constant():
    cos = OptimSection(warmup_ratio=0.1, schedule="cosine", min_lr_ratio=0.0)
    assert [round(lr_multiplier(s, 20, cos), 3) for s in (0, 1, 2, 11, 19)] == [0.5, 1.0, 1.0, 0.5, 0.008]
    const = OptimSection(warmup_ratio=0.25, schedule="constant")
    assert [lr_multiplier(s, 8, const) for s in (0, 1, 2, 7)] == [0.5, 1.0, 1.0, 1.0]
    floor = OptimSection(warmup_ratio=0.0, schedule="cosine", min_lr_ratio=0.1)
    assert lr_multiplier(0, 10, floor) == 1.0 and abs(lr_multiplier(10, 10, floor) - 0.1) < 1e-12


def test_task_source_reshuffles_each_epoch_and_is_deterministic():
    tasks = [Task(id=str(i), kind="json", prompt="") for i in range(4)]
    a, b = TaskSource(tasks, seed=0), TaskSource(tasks, seed=0)
    first = [t.id for t in a.next_batch(8)]
    assert sorted(first[:4]) == sorted(first[4:]) == ["0", "1", "2", "3"], "each epoch covers every task once"
    assert first == [t.id for t in b.next_batch(8)]


def test_trainer_state_loads_with_weights_only_and_restores_rng(tmp_path):
    policy = tiny_policy()
    optimizer, scheduler = build_optimizer(policy, OptimSection(), total_steps=4)
    _train_a_bit(policy, optimizer, scheduler, steps=1)
    torch.manual_seed(5); random.seed(6); np.random.seed(7)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state, which must round-trip too
    folder = checkpoint.save_checkpoint(tmp_path, 1, policy, optimizer, scheduler, {}, "")
    expected = (torch.rand(2), random.random(), np.random.standard_normal())
    state = torch.load(folder / "trainer_state.pt", weights_only=True)  # no allowlist: plain types only
    assert set(state) == {"optimizer", "scheduler", "rng", "rng_ranks"} and state["rng_ranks"] == [] and set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    checkpoint.load_checkpoint(folder, policy, *build_optimizer(policy, OptimSection(), total_steps=4))
    got = (torch.rand(2), random.random(), np.random.standard_normal())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:], "every RNG should continue where it was saved"


def test_cuda_rng_states_are_saved_and_restored(monkeypatch):
    # Stand-ins for two CUDA devices' generators, so the wiring is checked on CPU machines too.
    held = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3], dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in held])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: held.__setitem__(slice(None), states))
    state = checkpoint.rng_state()
    assert [s.tolist() for s in state["cuda"]] == [[1, 2], [3]], "every device's CUDA RNG state should be saved"
    held[:] = [torch.zeros(2, dtype=torch.uint8), torch.zeros(1, dtype=torch.uint8)]  # the generators move on
    checkpoint.set_rng_state(state)
    assert [s.tolist() for s in held] == [[1, 2], [3]], "every device's CUDA RNG state should be restored"


class Killed(BaseException):
    """Stands in for SIGKILL inside a save: nothing after it runs except the `finally` clean-up of the
    temp folder (a kill skips that, and remove_partial deletes `.tmp-*` folders anyway)."""


def _complete(folder) -> bool:
    return (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("renames_before_kill, survivor", [(0, "old"), (1, "old"), (2, "new")])
def test_replacing_a_folder_never_leaves_neither_copy(tmp_path, monkeypatch, renames_before_kill, survivor):
    final = tmp_path / "adapter"
    old_weights = checkpoint.save_adapter(tiny_policy(seed=0), final).joinpath("adapter_model.safetensors").read_bytes()
    new_policy = tiny_policy(seed=1)
    real_replace, renames = os.replace, []

    def one_copy_on_disk(moment: str):
        assert _complete(final) or any(_complete(p) for p in tmp_path.glob(".old-*")), \
            f"{moment}: a complete copy should be at {final} or set aside beside it"

    def replace(src, dst):  # each rename of the save, the invariant checked around it
        one_copy_on_disk(f"before rename {len(renames) + 1}")
        real_replace(src, dst)
        renames.append(dst)
        one_copy_on_disk(f"after rename {len(renames)}")
        if len(renames) == renames_before_kill:
            raise Killed

    if renames_before_kill == 0:  # killed with the new copy complete in its temp folder, nothing renamed
        monkeypatch.setattr(checkpoint, "_move_into_place", lambda tmp, final: (_ for _ in ()).throw(Killed()))
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Killed):
        checkpoint.save_adapter(new_policy, final)
    monkeypatch.undo()

    checkpoint.remove_partial(tmp_path)  # what the next start does
    assert _complete(final) and not list(tmp_path.glob(".old-*")) and not list(tmp_path.glob(".tmp-*"))
    kept_old = (final / "adapter_model.safetensors").read_bytes() == old_weights
    assert kept_old == (survivor == "old"), \
        f"the {survivor} copy should survive a kill after {renames_before_kill} renames"
