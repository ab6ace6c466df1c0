"""One GRPO step: prompts -> G completions each -> rewards -> advantages -> mu clipped updates -> hot swap.

The algorithm is GRPO (Shao et al. 2024, "DeepSeekMath", §4.1): sample a group of G completions per
prompt from the current policy, score them, normalise each reward against its own group, and
maximise a PPO-style clipped surrogate of those advantages minus beta * KL(pi || pi_ref).

Departures from plain GRPO, each a config switch (details and papers in grpo/loss.py and
grpo/advantages.py):
- `grpo.adv_scale`       group std (GRPO) | batch std | none (Dr. GRPO, Liu et al. 2025)
- `grpo.zero_variance`   "filter": drop groups whose rewards all tie and refill from extra prompts, up to
                         `grpo.max_refill_rounds` generation rounds (DAPO dynamic sampling, Yu et al. 2025);
                         "keep": keep them with advantage 0 (plain GRPO). Their share is always logged.
- `grpo.eps_low/eps_high` clip-higher (DAPO)
- `grpo.loss_agg`        seq_mean (GRPO) | token_mean (DAPO) | constant (Dr. GRPO)
- `grpo.mask_truncated`  completions cut by max_new_tokens leave the loss (DAPO overlong filtering)
- `grpo.is_correction`   truncated importance sampling between the engine's sampling logprobs and the
                         trainer's (Yao et al. 2025); the mismatch is logged either way
- `grpo.beta = 0`        no KL term and no reference forward (DAPO, Dr. GRPO)
- `grpo.share_prompt`    micro-batches hold one group each and its prompt is forwarded once (exact); with
                         the CPU attention the group's completions are packed unpadded, up to
                         `grpo.micro_batch_tokens` completion tokens per micro-batch

Old logprobs: on the first of the mu passes the parameters have not moved yet, so pi_old is the
current forward pass, detached: no separate "old policy" forward (with mu = 1 the ratio is exactly 1).
The reference is the same model with the adapter disabled, forwarded without gradient.
Non-finite gradients skip the optimizer step (counted in `skipped/nonfinite`).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from curriculum.task import Task
from grpo import attention
from grpo.advantages import ADVANTAGE_SCALES, zero_variance_groups
from grpo.batch import Episode, MicroBatch, completion_mask, group_by_prompt, make_micro_batches
from grpo.config import Config
from grpo.distributed import World
from grpo.logprobs import SharedPrompt, completion_logprobs
from grpo.loss import IS_CORRECTIONS, LOSS_AGGREGATIONS, policy_loss
from grpo.model import device_of, lora_in_base_dtype
from grpo.monitor import MeanAccumulator, PhaseTimer, group_markdown
from rewards.config import COMPONENTS
from rollout.types import Rollout, Sampling

RewardFn = Callable[[list[str], list[Task], np.ndarray], Any]  # -> rewards.RewardBatch


@dataclass
class Group:
    """One prompt and its G scored completions."""
    task: Task
    rollouts: list[Rollout]
    rewards: np.ndarray                  # [G]
    components: dict[str, np.ndarray]    # reward component -> [G]
    advantages: np.ndarray | None = None  # [G], set once the group is kept for training


@dataclass
class StepContext:
    """Everything a step touches, built once by grpo.train; the variants are chosen here, once."""
    cfg: Config
    policy: Any                      # peft.PeftModel
    optimizer: torch.optim.Optimizer
    scheduler: Any
    engine: Any                      # rollout.Engine
    tasks: Any                       # grpo.tasks.TaskSource
    render: Callable[[Task], list[int]]
    reward_fn: RewardFn
    pad_id: int
    world: World = field(default_factory=World)  # torchrun ranks (grpo.distributed); one process by default

    def __post_init__(self):
        g, r = self.cfg.grpo, self.cfg.rollout
        self.advantage_fn = ADVANTAGE_SCALES[g.adv_scale]
        self.weight_fn = LOSS_AGGREGATIONS[g.loss_agg]
        self.is_fn = IS_CORRECTIONS[g.is_correction]
        self.sampling = Sampling(n=r.group_size, temperature=r.temperature, top_p=r.top_p,
                                 max_tokens=r.max_new_tokens, logprobs=True)
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        self.device = device_of(self.policy)
        self.pack_tokens = packed_token_budget(self.cfg, self.policy)


def packed_token_budget(cfg: Config, policy) -> int | None:
    """Completion tokens per micro-batch when the trainer packs each group's completions without padding
    (share_prompt with grpo.attention's "grouped" implementation, the CPU default); None: padded, by count."""
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    if not (cfg.grpo.share_prompt and base.config._attn_implementation == attention.NAME):
        return None
    return cfg.grpo.micro_batch_tokens or cfg.grpo.micro_batch_size * cfg.rollout.max_new_tokens


def grpo_step(ctx: StepContext) -> tuple[dict[str, float], list[str]]:
    """Run one step; return (flat metrics, `run.num_samples_logged` whole groups as Markdown sample text).

    Under torchrun each rank runs this on its share of the prompts; `ctx.world` carries what is
    batch-level between them (grpo.distributed), at the same points on every rank."""
    cfg, g, world = ctx.cfg, ctx.cfg.grpo, ctx.world
    timer, stats, reward_stats = PhaseTimer(), MeanAccumulator(), MeanAccumulator()
    P, G = cfg.rollout.prompts_per_step // world.size, cfg.rollout.group_size  # this rank's share of the prompts
    t_start = time.perf_counter()

    # 1-3. Prompts -> G completions each -> rewards. "filter" drops all-tie groups and refills.
    groups, sampled, num_zero_var, num_gen_tokens = [], [], 0, 0
    num_rounds = 1 + (g.max_refill_rounds if g.zero_variance == "filter" else 0)
    for _ in range(num_rounds):
        shortfalls = world.gather(P - len(groups))  # every rank's, so that all ranks draw the same tasks
        if sum(shortfalls) == 0:
            break
        new_groups = sample_groups(ctx, shortfalls, timer, reward_stats)
        zero_var = zero_variance_groups(group_rewards(new_groups, G))
        sampled, num_zero_var = sampled + new_groups, num_zero_var + int(zero_var.sum())
        num_gen_tokens += sum(len(r.completion_ids) for gr in new_groups for r in gr.rollouts)
        groups += [gr for gr, z in zip(new_groups, zero_var) if not (z and g.zero_variance == "filter")]

    # 4. Group-relative advantages over the kept groups (of every rank: batch-std scaling needs them all).
    every_rank = world.gather(group_rewards(groups, G))                                  # [P'_r, G] each
    adv = ctx.advantage_fn(torch.cat(every_rank), g.adv_eps)[world.shard([len(r) for r in every_rank])]  # [P', G]
    episodes = [Episode(r.prompt_ids, r.completion_ids, r.logprobs, float(rw), float(a), r.truncated)
                for gr, a_row in zip(groups, adv) for r, rw, a in zip(gr.rollouts, gr.rewards, a_row)]
    for gr, a_row in zip(groups, adv):
        gr.advantages = a_row.numpy()

    # 5. Loss aggregation as per-token weights over the whole batch (its normalisers summed over
    #    ranks), then length-sorted micro-batches.
    weights = ctx.weight_fn(completion_mask(episodes, g.mask_truncated), cfg.rollout.max_new_tokens, world.sum)  # [N, T]
    micro: list[MicroBatch] = []
    if episodes:
        if g.beta == 0:  # advantage 0 and no KL: the loss of these rows is identically 0, skip their forward
            weights[torch.tensor([e.advantage == 0 for e in episodes])] = 0
        micro = [mb.to(ctx.device) for mb in
                 make_micro_batches(episodes, weights, g.micro_batch_size, ctx.pad_id, by_prompt=g.share_prompt,
                                    max_tokens=ctx.pack_tokens)]
    trains = int(world.sum(torch.tensor(len(micro)))) > 0  # some rank has something to learn from

    # 6. mu passes of clipped updates (accumulate_gradients: pass 0 also records old logprobs, reference
    #    logprobs and IS weights), each one optimizer step on the gradient summed over all ranks.
    skipped_nonfinite, loss_sum = 0, 0.0
    with timer("train"):
        for it in range(g.num_iterations if trains else 0):
            loss_sum += accumulate_gradients(ctx, micro, first_pass=it == 0, stats=stats)
            world.all_reduce_grads(ctx.params)  # each rank's loss is its share of the batch loss: sum them
            grad_norm = float(torch.nn.utils.clip_grad_norm_(ctx.params, cfg.optim.max_grad_norm))
            if math.isfinite(grad_norm):  # the same norm on every rank: they all step, or all skip
                ctx.optimizer.step()
                world.check_same(ctx.params, f"after optimizer step {it + 1} of the step")
                stats.add({"grad_norm": grad_norm})
            else:
                skipped_nonfinite += 1
                warnings.warn(f"non-finite gradient (norm {grad_norm}); optimizer step skipped")
            ctx.optimizer.zero_grad(set_to_none=True)
    lr = ctx.scheduler.get_last_lr()[0]  # the rate this step's updates used
    for _ in range(g.num_iterations):  # the schedule follows the step count, trained or not
        ctx.scheduler.step()

    # 7. Hot-swap the new adapter into the engine before the next rollout.
    delivery = {}
    if trains and skipped_nonfinite < g.num_iterations:
        with timer("sync"):
            ctx.engine.set_adapter(ctx.policy)
        delivery = getattr(ctx.engine, "delivery", {})  # sync/delivered_fraction: read back from the engine

    # 8. Metrics of the whole batch: every rank's counts summed, means merged, the slowest rank's times.
    counts = {"sampled": len(sampled), "trained": len(groups), "zero_var": num_zero_var, "loss": loss_sum,
              "micro_batches": len(micro), "gen_tokens": num_gen_tokens,
              "train_tokens": sum(mb.num_tokens for mb in micro) * g.num_iterations}
    reward_parts, stats_parts, count_parts, timer_parts = zip(*world.gather((reward_stats, stats, counts, timer)))
    reward_stats, stats = MeanAccumulator.merged(list(reward_parts)), MeanAccumulator.merged(list(stats_parts))
    timer, total = PhaseTimer.merged(list(timer_parts)), {k: sum(c[k] for c in count_parts) for k in counts}
    metrics = reward_stats.means() | delivery | stats.means() | timer.metrics() | {
        "frac_reward_zero_std": total["zero_var"] / max(total["sampled"], 1),
        "groups/sampled": total["sampled"], "groups/trained": total["trained"],
        "loss": total["loss"] / g.num_iterations, "lr": lr,
        "skipped/nonfinite": skipped_nonfinite, "skipped/no_signal": int(not trains),
        "micro_batches": total["micro_batches"], "tokens/generated": total["gen_tokens"],
        "tokens/generated_per_s": total["gen_tokens"] / max(timer.seconds["generate"], 1e-9),
        "tokens/train_per_s": total["train_tokens"] / max(timer.seconds["train"], 1e-9),
        "step_time_s": time.perf_counter() - t_start}
    return metrics, [sample_text(ctx, gr) for gr in shown_groups(sampled, cfg.run.num_samples_logged)]


def accumulate_gradients(ctx: StepContext, micro: list[MicroBatch], first_pass: bool, stats: MeanAccumulator) -> float:
    """Forward and backward every micro-batch once, summing the policy loss's gradient into the LoRA
    parameters; return the summed loss. The first pass records, on each micro-batch, the old logprobs
    (the parameters have not moved yet), the reference logprobs (beta > 0) and the IS weights. A group
    cut into several packed micro-batches has its prompt forwarded once for all of them."""
    g, loss_sum = ctx.cfg.grpo, 0.0
    for group in group_by_prompt(micro) if ctx.pack_tokens else [[mb] for mb in micro]:
        ref_prompt, policy_prompt = shared_prompts(ctx, group, with_ref=first_pass and g.beta > 0)
        for mb in group:
            if first_pass and g.beta > 0:
                with torch.no_grad(), ctx.policy.disable_adapter():
                    mb.ref_logp, _ = forward_logprobs(ctx, mb, with_entropy=False, prompt=ref_prompt)  # [B, T]
            logp, entropy = forward_logprobs(ctx, mb, prompt=policy_prompt)                             # [B, T]
            real = mb.token_weights > 0                                                                 # [B, T]
            if first_pass:
                mb.old_logp = logp.detach()
                sampler = torch.where(mb.has_sampler_logp[:, None], mb.sampler_logp, mb.old_logp)
                mb.is_weights, is_metrics = ctx.is_fn(mb.old_logp, sampler, real, g.is_cap)
                stats.add(is_metrics, weight=float(real.sum()))
            loss, loss_metrics = policy_loss(logp, mb.old_logp, mb.ref_logp, mb.is_weights, mb.adv,
                                             mb.token_weights, beta=g.beta, eps_low=g.eps_low, eps_high=g.eps_high)
            loss.backward()
            loss_sum += loss.item()  # sync point, once per micro-batch
            n_tok = float(real.sum())
            stats.add(loss_metrics | {"entropy": float((entropy * real).sum() / max(n_tok, 1))}, weight=n_tok)
        if policy_prompt is not None:
            policy_prompt.backward()  # the group's summed prompt gradient, through its one forward
    return loss_sum


def group_rewards(groups: list[Group], G: int) -> torch.Tensor:
    """[len(groups), G] float32 rewards (an empty [0, G] when there are none)."""
    return torch.tensor(np.stack([gr.rewards for gr in groups]) if groups else np.zeros((0, G)), dtype=torch.float32)


def shown_groups(sampled: list[Group], n: int) -> list[Group]:
    """The groups logged as sample text: trained ones first (they carry advantages), in sampling order."""
    return sorted(sampled, key=lambda gr: gr.advantages is None)[:n]


def sample_text(ctx: StepContext, gr: Group) -> str:
    """One whole group as Markdown for TensorBoard (grpo.monitor.group_markdown), with the components
    that carry weight for its task kind (a custom reward function's own components all show)."""
    weights = ctx.cfg.reward.effective_weights(gr.task.kind)
    shown = {name: v for name, v in gr.components.items() if weights.get(name, 0.0) != 0 or name not in COMPONENTS}
    return group_markdown(gr.task.id, gr.task.prompt, [ctx.render.said(r.text) for r in gr.rollouts],
                          gr.rewards, shown, gr.advantages)


def sample_groups(ctx: StepContext, draw_sizes: list[int], timer: PhaseTimer, stats: MeanAccumulator) -> list[Group]:
    """Draw every rank's `draw_sizes` tasks (one process: [n]) and keep this rank's; generate G
    completions for each, score them; log reward metrics."""
    G = ctx.cfg.rollout.group_size
    tasks = ctx.tasks.next_batch(sum(draw_sizes))[ctx.world.shard(draw_sizes)]
    num_prompts = len(tasks)
    if not tasks:
        return []
    with timer("generate"):
        rollouts = ctx.engine.generate([ctx.render(t) for t in tasks], ctx.sampling)
    assert len(rollouts) == num_prompts * G, f"engine returned {len(rollouts)} rollouts, expected {num_prompts * G}"
    truncated = np.array([r.truncated for r in rollouts])
    texts = [ctx.render.said(r.text) for r in rollouts]  # with a think prefill, "<think>\n" + completion
    with timer("score"):
        scored = ctx.reward_fn(texts, [t for t in tasks for _ in range(G)], truncated)
    total = np.asarray(scored.total, dtype=np.float64)                                   # [P * G]
    lengths = np.array([len(r.completion_ids) for r in rollouts])
    stats.add({"reward": total.mean(), "reward_std": total.std(),
               **{f"reward/{name}": float(np.mean(v)) for name, v in scored.components.items()},
               "pass/strict": float(np.mean(scored.strict_pass)), "pass/syntax": float(np.mean(scored.syntax_pass)),
               "pass/format": float(np.mean(scored.format_pass)),
               "completions/mean_length": lengths.mean(), "completions/clipped_ratio": truncated.mean()},
              weight=len(rollouts))
    components = {name: np.asarray(v, dtype=np.float64) for name, v in scored.components.items()}  # name -> [P * G]
    return [Group(t, rollouts[i * G:(i + 1) * G], total[i * G:(i + 1) * G],
                  {name: v[i * G:(i + 1) * G] for name, v in components.items()}) for i, t in enumerate(tasks)]


def shared_prompts(ctx: StepContext, group: list[MicroBatch], with_ref: bool) -> tuple[Any, Any]:
    """(reference, policy) SharedPrompt of a group cut into several micro-batches, else (None, None)."""
    if len(group) == 1:
        return None, None
    prompt_ids = group[0].input_ids[0, :int(group[0].prompt_lens[0])]
    ref = None
    if with_ref:
        with torch.no_grad(), ctx.policy.disable_adapter(), lora_in_base_dtype(ctx.policy):
            ref = SharedPrompt(ctx.policy, prompt_ids)
    with lora_in_base_dtype(ctx.policy):
        return ref, SharedPrompt(ctx.policy, prompt_ids)


def forward_logprobs(ctx: StepContext, mb: MicroBatch, with_entropy: bool = True,
                     prompt: SharedPrompt | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Policy (or, under disable_adapter, reference) logprobs and entropy of mb's completion tokens. [B, T] each."""
    with lora_in_base_dtype(ctx.policy):
        return completion_logprobs(ctx.policy, mb.input_ids, mb.attention_mask, mb.prompt_lens, mb.mask,
                                   temperature=ctx.cfg.rollout.temperature, chunk_tokens=ctx.cfg.grpo.logprob_chunk_tokens,
                                   share_prompt=ctx.cfg.grpo.share_prompt, with_entropy=with_entropy, prompt=prompt)
