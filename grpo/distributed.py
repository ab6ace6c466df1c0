"""Data-parallel GRPO over torchrun ranks: what the ranks say to each other, and nothing else.

    torchrun --nproc_per_node 2 -m grpo.cli configs/smollm2-135m-cpu.toml    (or: grpo-train --nproc 2 ...)

Every rank holds the whole policy and its own colocated engine, and generates all G completions of its
share of the step's prompts, so group statistics stay local. The ranks exchange only what is
batch-level (`grpo.step` calls these at fixed points, the same number of times on every rank):

- the task draw: every rank walks the same task stream (same seed) and takes its slice of each draw,
  so the stream's position, and the checkpoint's, is the same on every rank;
- each group's rewards (a few hundred floats), so batch-std advantages see the whole batch;
- the loss normalisers (token count, sequence count), so every rank's loss is its exact share of
  the one-process loss;
- the LoRA gradients: one flat all-reduce (sum) per optimizer step, after the rank's last backward;
  the base model has no gradients. Then every rank clips the same norm and takes the same step;
- the logged metrics, merged on rank 0.

`World` is the one-process case: every collective is the identity, so a run without torchrun does
exactly what it did before this module existed. `TorchWorld` wraps torch.distributed (gloo on CPU,
NCCL on GPU); nothing here schedules, serves parameters or implements a collective itself.

The known failure of this design is a LoRA adapter that is attached after the model is placed and is
then neither broadcast nor averaged, so each rank silently trains its own. Two guards:
`broadcast_params` copies rank 0's adapter to every rank at start, and `check_same` compares a hash
of the flat LoRA vector across ranks after every optimizer step and raises when they differ.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Sequence

import torch


class RanksDiverged(RuntimeError):
    """The ranks' adapters differ: each rank would train its own."""


class World:
    """One process: rank 0 of 1. Every collective is the identity (and costs nothing)."""
    rank, size, local_rank, local_size = 0, 1, 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank (small python objects only)."""
        return [obj]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        return obj

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a (small) tensor."""
        return value

    def all_reduce_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum the gradients of `params` over ranks, in place (None counts as zeros)."""

    def broadcast_params(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Copy rank 0's values of `params` to every rank."""

    def check_same(self, params: Sequence[torch.nn.Parameter], what: str) -> None:
        """Raise RanksDiverged unless `params` hash the same on every rank."""

    def barrier(self) -> None: ...

    def close(self) -> None: ...

    def shard(self, draw_sizes: list[int]) -> slice:
        """This rank's slice of a draw made of every rank's `draw_sizes` (rank order)."""
        start = sum(draw_sizes[:self.rank])
        return slice(start, start + draw_sizes[self.rank])


class TorchWorld(World):
    """torch.distributed under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE in the environment)."""

    def __init__(self, backend: str | None = None):
        import torch.distributed as dist
        self.dist = dist
        self.rank, self.size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.size))
        on_gpu = torch.cuda.is_available()
        if on_gpu:  # one GPU per rank: "cuda" means this rank's device from here on
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend or ("nccl" if on_gpu else "gloo"))
        self.device = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")

    def gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        box = [obj if self.is_main else None]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(value).detach().to(self.device, copy=True)
        self.dist.all_reduce(out)
        return out.to(torch.as_tensor(value).device)

    def all_reduce_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        # One flat buffer, one all-reduce: the adapter is a few MB, latency dominates per-tensor calls.
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).to(self.device, torch.float32) for g in grads])
        self.dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(g).to(p.device, p.dtype)
            offset += n

    def broadcast_params(self, params: Sequence[torch.nn.Parameter]) -> None:
        flat = torch.cat([p.detach().reshape(-1).to(self.device, torch.float32) for p in params])
        self.dist.broadcast(flat, src=0)
        offset = 0
        with torch.no_grad():
            for p in params:
                p.copy_(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()

    def check_same(self, params: Sequence[torch.nn.Parameter], what: str) -> None:
        digests = self.gather(params_hash(params))
        if len(set(digests)) > 1:
            raise RanksDiverged(f"{what}: the LoRA adapter differs between ranks (hashes "
                                + ", ".join(f"rank {r} {d[:12]}" for r, d in enumerate(digests))
                                + "); each rank would train its own adapter")

    def barrier(self) -> None:
        self.dist.barrier()

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def params_hash(params: Sequence[torch.nn.Parameter]) -> str:
    """BLAKE2b of the exact bytes of every parameter, in order: equal only when the values are."""
    h = hashlib.blake2b(digest_size=16)
    for p in params:
        h.update(p.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_world() -> World:
    """A TorchWorld under torchrun with more than one rank, else the one-process World."""
    return TorchWorld() if launched_by_torchrun() else World()


def cpu_share(world: World) -> list[int]:
    """This rank's share of the cores this machine gives the job (os.sched_getaffinity), split into
    `local_size` contiguous blocks: ranks on one CPU machine must not run their threads on the same
    cores (two vLLM CPU engines bound to the same cores run many times slower than one)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    per_rank = max(1, len(cores) // world.local_size)
    start = (world.local_rank * per_rank) % len(cores)
    return cores[start:start + per_rank]
