"""From scored rollouts to padded tensors: episodes, then length-sorted micro-batches.

An `Episode` is one completion with everything the loss needs (advantage, sampler logprobs, whether
it was truncated). `make_micro_batches` sorts episodes by length so each micro-batch pads to its own
longest sequence (little padding waste), and cuts the full-batch aggregation weights into the same
micro-batches, so that summing the micro-batch losses gives exactly the full-batch loss.

Knows nothing of models, engines or rewards.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Episode:
    prompt_ids: list[int]
    completion_ids: list[int]
    sampler_logp: list[float]   # engine's logprob per completion token ([] if the engine gave none)
    reward: float
    advantage: float
    truncated: bool


@dataclass
class MicroBatch:
    input_ids: torch.Tensor       # [B, L] prompt + completion, right-padded
    attention_mask: torch.Tensor  # [B, L]
    prompt_lens: torch.Tensor     # [B]
    mask: torch.Tensor            # [B, T] real completion tokens (T = longest completion here)
    token_weights: torch.Tensor   # [B, T] aggregation weights, 0 on tokens outside the loss
    adv: torch.Tensor             # [B]
    sampler_logp: torch.Tensor    # [B, T]
    has_sampler_logp: torch.Tensor  # [B] bool: False where the engine returned no logprobs
    old_logp: torch.Tensor | None = None   # [B, T] filled by the first update pass
    ref_logp: torch.Tensor | None = None   # [B, T] filled by the first update pass when beta > 0
    is_weights: torch.Tensor | None = None  # [B, T] filled by the first update pass

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device) -> MicroBatch:
        """The same micro-batch with every tensor on `device` (the trainer's)."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


def completion_mask(episodes: list[Episode], mask_truncated: bool) -> torch.Tensor:
    """[N, T_max] 1 on every completion token that enters the loss (0 for masked truncated ones)."""
    T = max((len(e.completion_ids) for e in episodes), default=0)
    mask = torch.zeros(len(episodes), max(T, 1))
    for i, e in enumerate(episodes):
        if not (mask_truncated and e.truncated):
            mask[i, :len(e.completion_ids)] = 1
    return mask


def make_micro_batches(episodes: list[Episode], token_weights: torch.Tensor, micro_batch_size: int,
                       pad_id: int, by_prompt: bool = False, max_tokens: int | None = None) -> list[MicroBatch]:
    """Sort by total length, cut into micro-batches of `micro_batch_size`, pad each to its own max.

    `by_prompt`: a micro-batch only holds completions of one prompt (a group, cut into chunks of
    `micro_batch_size`), so the trainer can forward the shared prompt once (grpo.logprobs).
    `max_tokens` (with `by_prompt`, for a trainer that packs a group's completions without padding):
    chunks hold as many completions as fit in `max_tokens` completion tokens instead (at least one),
    so a group of short completions is one micro-batch and its prompt is forwarded once.
    `token_weights` [N, T_max] rows follow `episodes`. Episodes whose weights are all zero are dropped:
    their loss is identically zero (callers zero the weights of what must not be trained on).
    """
    active = [i for i in range(len(episodes)) if token_weights[i].sum() > 0]
    order = sorted(active, key=lambda i: len(episodes[i].prompt_ids) + len(episodes[i].completion_ids))
    chunks = [order[start:start + micro_batch_size] for start in range(0, len(order), micro_batch_size)]
    if by_prompt:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in order:
            groups.setdefault(tuple(episodes[i].prompt_ids), []).append(i)
        if max_tokens is None:
            chunks = [g[start:start + micro_batch_size] for g in groups.values()
                      for start in range(0, len(g), micro_batch_size)]
        else:
            chunks = []
            for g in groups.values():
                chunks.append([])
                used = 0                                        # completion tokens in chunks[-1]
                for i in g:
                    n = len(episodes[i].completion_ids)
                    if chunks[-1] and used + n > max_tokens:
                        chunks.append([])
                        used = 0
                    chunks[-1].append(i)
                    used += n
    batches = []
    for rows in chunks:
        eps = [episodes[i] for i in rows]
        L = max(len(e.prompt_ids) + len(e.completion_ids) for e in eps)
        T = max(max(len(e.completion_ids) for e in eps), 1)
        input_ids = torch.full((len(eps), L), pad_id, dtype=torch.long)
        attention_mask = torch.zeros(len(eps), L, dtype=torch.long)
        mask = torch.zeros(len(eps), T)
        sampler_logp = torch.zeros(len(eps), T)
        for b, e in enumerate(eps):
            ids = e.prompt_ids + e.completion_ids
            input_ids[b, :len(ids)] = torch.tensor(ids)
            attention_mask[b, :len(ids)] = 1
            mask[b, :len(e.completion_ids)] = 1
            if e.sampler_logp:
                sampler_logp[b, :len(e.sampler_logp)] = torch.tensor(e.sampler_logp)
        weights = token_weights[rows, :T] * mask                # [B, T]
        batches.append(MicroBatch(
            input_ids=input_ids, attention_mask=attention_mask,
            prompt_lens=torch.tensor([len(e.prompt_ids) for e in eps]),
            mask=mask, token_weights=weights,
            adv=torch.tensor([e.advantage for e in eps], dtype=torch.float32),
            sampler_logp=sampler_logp,
            has_sampler_logp=torch.tensor([bool(e.sampler_logp) for e in eps])))
    return batches


def shares_prompt(input_ids: torch.Tensor, prompt_lens: torch.Tensor) -> bool:
    """True if every row starts with the same prompt (same length, same ids)."""
    n = int(prompt_lens[0])
    return bool((prompt_lens == n).all()) and bool((input_ids[:, :n] == input_ids[:1, :n]).all())


def group_by_prompt(micro: list[MicroBatch]) -> list[list[MicroBatch]]:
    """Runs of consecutive micro-batches whose rows all carry one same prompt (a group that
    `make_micro_batches(by_prompt=True)` cut into several), one list per run."""
    runs: list[list[MicroBatch]] = []
    last = None
    for mb in micro:
        prompt = (tuple(mb.input_ids[0, :int(mb.prompt_lens[0])].tolist())
                  if shares_prompt(mb.input_ids, mb.prompt_lens) else None)
        if prompt is not None and prompt == last:
            runs[-1].append(mb)
        else:
            runs.append([mb])
        last = prompt
    return runs
