"""Log-probabilities of the completion tokens under a causal LM, without a [B, L, V] float32 tensor.

A naive `log_softmax(model(ids).logits.float())` materialises B x L x V floats (32 x 180 x 49,152 x 4 B
= 1.1 GB for SmolLM2) and runs the output head on prompt positions nobody needs. Here we:

1. run the decoder only (no output head) to get hidden states [B, L, H];
2. keep the H-vectors that predict completion tokens, packed into [N, H] (N = real completion tokens);
3. apply the output head chunk by chunk (`chunk_tokens` rows at a time), reducing each row of
   logits to the chosen token's logprob, the log-partition and the entropy in one compiled, fused
   pass (float32 math, no float32 [chunk, V] copy); a custom autograd function keeps each row's
   log-partition and the head outputs in the model's dtype (or, above KEEP_LOGITS_BYTES, recomputes
   them chunk by chunk), and its backward turns them into the gradient in one fused pass.

Shared prompt (`share_prompt=True`, all rows of the micro-batch carry the same prompt, as the G
completions of one GRPO group do): the prompt goes through the decoder once, its KV cache is
repeated for the B rows, and only the completions are forwarded on top of it. Gradients flow
through the cache back into the one prompt forward, so the result (values and gradients) equals
the per-row forward while the prompt's FLOPs are paid once instead of B times. With ~170-token
prompts and ~150-token completions that removes about 40 % of the training FLOPs of a step.
With the CPU attention (grpo.attention) the completions are also packed into one row instead of
padded to the longest, and the cache is not repeated (`_packed_prompt_hidden`).

Logits are divided by the sampling temperature, so the trainer scores the same distribution the
engine sampled from (TRL does the same). Gemma-2's final logit soft-capping is applied when the model
config has it. Works on a PeftModel (adapter on or disabled) or a plain transformers model.
"""
from __future__ import annotations

import functools
import itertools
import warnings

import torch

from grpo import attention
from grpo.batch import shares_prompt


def _fused(fn):
    """`fn` compiled by inductor (dynamic shapes): its passes over a [chunk, V] tensor become one fused
    loop per row. In eager mode each elementwise op and reduction is its own pass over ~100 MB of
    float32, memory-bound: that was ~45 % of the output head's time on CPU. Falls back to eager, with
    one warning, where compilation fails (e.g. no C++ compiler); TORCH_COMPILE_DISABLE=1 forces eager."""
    compiled, failed = torch.compile(fn, dynamic=True), []

    @functools.wraps(fn)
    def run(*args):
        if not failed:
            try:
                return compiled(*args)
            except Exception as err:  # a dynamo / inductor failure; a real error re-raises from eager below
                failed.append(err)
                warnings.warn(f"grpo.logprobs: torch.compile failed ({type(err).__name__}), output head runs eager")
        return fn(*args)
    return run


def _scaled(z, temperature: float, softcap: float | None):
    """cap(z) / temperature in float32 (float64 for a float64 model), and tanh of the soft-cap (None without)."""
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    tanh = torch.tanh(z / softcap) if softcap else None
    return (tanh * softcap if softcap else z) / temperature, tanh


@_fused
def _row_stats(z, targets, temperature: float, softcap: float | None, with_entropy: bool):
    """Per row of head outputs z [n, V]: the target's logprob, the log-partition and the entropy (zeros
    without `with_entropy`) of softmax(cap(z) / T). -> 3 x [n]"""
    x, _ = _scaled(z, temperature, softcap)
    logz = torch.logsumexp(x, dim=-1)
    logp = x.gather(-1, targets[:, None]).squeeze(-1) - logz
    entropy = logz - (torch.exp(x - logz[:, None]) * x).sum(-1) if with_entropy else torch.zeros_like(logz)
    return logp, logz, entropy


@_fused
def _row_grad(z, targets, logz, grad_logp, temperature: float, softcap: float | None):
    """d (sum_rows grad_logp * logp) / dz for z [n, V], in z's dtype: (onehot(target) - softmax) * grad,
    times d cap / dz = 1 - tanh^2, over T."""
    x, tanh = _scaled(z, temperature, softcap)
    onehot = torch.arange(z.shape[-1], device=z.device)[None, :] == targets[:, None]
    grad = (onehot.to(x.dtype) - torch.exp(x - logz[:, None])) * grad_logp[:, None].to(x.dtype)
    if tanh is not None:
        grad = grad * (1 - tanh * tanh)
    return (grad / temperature).to(z.dtype)


# Head outputs kept from the forward for the backward when they fit in this many bytes (in the model's
# dtype: ~100 MB for 1,024 tokens of SmolLM2's 49k vocabulary); above it they are recomputed. Keeping
# them saves the backward one [N, H] x [H, V] matmul, a fifth of the head's work.
KEEP_LOGITS_BYTES = 256 * 2**20


class _SelectiveLogSoftmax(torch.autograd.Function):
    """Chosen-token logprob and entropy of softmax(cap(h @ W.T) / T), one chunk of rows at a time.

    Forward keeps h, W, the targets, each row's log-partition logz and, when they fit in
    KEEP_LOGITS_BYTES, the head outputs z in the model's dtype; never a float32 [N, V] tensor. Backward
    turns each chunk's z (kept, or recomputed) into the gradient d logp / d z = onehot(target) - softmax(z)
    in one fused pass: no path through autograd's logsumexp and gather. The entropy is a diagnostic: no
    gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, softcap, chunk_tokens, with_entropy, keep_logits):
        logps, logzs, entropies, ctx.logits = [], [], [], []
        for start in range(0, hidden.shape[0], chunk_tokens):
            rows = slice(start, start + chunk_tokens)
            z = hidden[rows] @ weight.T                         # [n, V] in the model's dtype
            logp, logz, entropy = _row_stats(z, targets[rows], temperature, softcap, with_entropy)
            logps.append(logp), logzs.append(logz), entropies.append(entropy)
            if keep_logits:
                ctx.logits.append(z)
        logp, logz, entropy = torch.cat(logps), torch.cat(logzs), torch.cat(entropies)
        ctx.save_for_backward(hidden, weight, targets, logz)
        ctx.args = (temperature, softcap, chunk_tokens)
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, targets, logz = ctx.saved_tensors
        temperature, softcap, chunk_tokens = ctx.args
        grad_h = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=logz.dtype, device=weight.device) if ctx.needs_input_grad[1] else None
        for i, start in enumerate(range(0, hidden.shape[0], chunk_tokens)):
            rows = slice(start, start + chunk_tokens)
            h = hidden[rows]                                    # [n, H]
            z = ctx.logits[i] if ctx.logits else h @ weight.T
            grad_x = _row_grad(z, targets[rows], logz[rows], grad_logp[rows], temperature, softcap)  # [n, V]
            if grad_h is not None:
                grad_h[rows] = grad_x @ weight
            if grad_w is not None:
                grad_w += (grad_x.T @ h).to(grad_w.dtype)
        ctx.logits = None
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None, None, None, None


def selective_logprobs(hidden, weight, targets, *, temperature=1.0, softcap=None, chunk_tokens=512,
                       with_entropy=True):
    """Chunked log-softmax of hidden @ weight.T at `targets`. [N, H], [V, H], [N] -> logp [N], entropy [N].

    Without `with_entropy` the entropy is zeros (the reference pass and SFT do not need it)."""
    if hidden.shape[0] == 0:
        empty = hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
        return empty, empty
    keep_logits = (torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
                   and hidden.shape[0] * weight.shape[0] * hidden.element_size() <= KEEP_LOGITS_BYTES)
    return _SelectiveLogSoftmax.apply(hidden, weight, targets, temperature, softcap, chunk_tokens, with_entropy,
                                      keep_logits)


def _shared_prompt_hidden(decoder, input_ids, attention_mask, prompt_len: int, T: int):
    """Hidden states predicting each completion token, prompt forwarded once. -> [B, T, H], targets [B, T]."""
    B = input_ids.shape[0]
    prompt, completions = input_ids[:1, :prompt_len], input_ids[:, prompt_len:prompt_len + T]  # [1, Lp], [B, T]
    out = decoder(input_ids=prompt, use_cache=T > 1)
    # The prompt's last position predicts completion token 0; completion position j predicts j + 1.
    first = out.last_hidden_state[:, -1:].expand(B, 1, -1)      # [B, 1, H]
    if T == 1:
        return first, completions
    cache = out.past_key_values
    cache.batch_repeat_interleave(B)                            # [1, ...] -> [B, ...], differentiable
    rest = decoder(input_ids=completions[:, :-1], past_key_values=cache, use_cache=True,
                   attention_mask=attention_mask[:, :prompt_len + T - 1]).last_hidden_state  # [B, T-1, H]
    return torch.cat([first, rest], dim=1), completions        # [B, T, H], [B, T]


class SharedPrompt:
    """A group's prompt forwarded once for all of its micro-batches (the packed path).

    Each micro-batch runs on detached copies of the prompt forward's outputs: its last hidden state
    and every layer's keys and values. With gradient, their gradients add up over the micro-batches
    and `backward()` sends the sum through the one prompt forward: the same gradient as forwarding the
    prompt with every micro-batch, for one prompt forward and backward per group. Build it under the
    same adapter state (and autocast) as the micro-batches that use it.
    """

    def __init__(self, model, prompt_ids: torch.Tensor):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        out = base.get_decoder()(input_ids=prompt_ids[None], use_cache=True)
        self.config = base.config
        self.outputs = [out.last_hidden_state[0, -1:]] + [t for layer in out.past_key_values.layers
                                                          for t in (layer.keys, layer.values)]
        self.inputs = [t.detach().requires_grad_(t.requires_grad) for t in self.outputs]

    def first_and_cache(self):
        """([1, H] hidden state predicting token 0, a fresh cache of the prompt) for one micro-batch."""
        from transformers import DynamicCache
        kv = self.inputs[1:]
        return self.inputs[0], DynamicCache(ddp_cache_data=list(zip(kv[0::2], kv[1::2])), config=self.config)

    def backward(self) -> None:
        """Send the micro-batches' summed gradients through the prompt forward (after the group's last one)."""
        pairs = [(out, leaf.grad) for out, leaf in zip(self.outputs, self.inputs) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([out for out, _ in pairs], [grad for _, grad in pairs])
        self.outputs = self.inputs = []


def _packed_prompt_hidden(decoder, input_ids, prompt_len: int, lengths: list[int], prompt: SharedPrompt | None):
    """Like `_shared_prompt_hidden`, with the completions packed into one row instead of padded to the
    longest (grpo.attention.PackedSegments): no padding tokens and no B copies of the prompt's cache.
    The prompt is forwarded here, or taken from `prompt`.
    -> hidden [N, H] and targets [N] of the N = sum(lengths) completion tokens, row by row."""
    completions = [input_ids[b, prompt_len:prompt_len + n] for b, n in enumerate(lengths)]
    if prompt is None:
        out = decoder(input_ids=input_ids[:1, :prompt_len], use_cache=max(lengths) > 1)
        first, cache = out.last_hidden_state[0, -1:], out.past_key_values  # first [1, H] predicts every token 0
    else:
        first, cache = prompt.first_and_cache()
    # Token j of a completion (j < n - 1) is fed at position prompt_len + j and predicts token j + 1.
    fed = [max(n - 1, 0) for n in lengths]
    starts = [0] + list(itertools.accumulate(fed))
    # Rows of [first; packed]: token 0 of every completion -> 0, token j >= 1 -> 1 + start + j - 1.
    index = torch.cat([torch.arange(s, s + n) * (torch.arange(n) > 0) for s, n in zip(starts, lengths)])
    index = index.to(input_ids.device)
    if starts[-1] == 0:                                         # no completion is longer than one token
        return first[index], torch.cat(completions)
    segments = attention.PackedSegments(prompt_len, [(starts[b], starts[b + 1]) for b in range(len(lengths))])
    packed = torch.cat([c[:-1] for c in completions])[None]     # [1, sum(fed)]
    positions = torch.cat([torch.arange(prompt_len, prompt_len + n) for n in fed])[None].to(input_ids.device)
    rest = decoder(input_ids=packed, position_ids=positions, past_key_values=cache, use_cache=True,
                   segments=segments).last_hidden_state[0]     # [sum(fed), H]
    return torch.cat([first, rest])[index], torch.cat(completions)


def completion_logprobs(model, input_ids, attention_mask, prompt_lens, completion_mask, *,
                        temperature: float = 1.0, chunk_tokens: int = 512, share_prompt: bool = False,
                        with_entropy: bool = True, prompt: SharedPrompt | None = None):
    """Logprob and entropy of every completion token.

    input_ids, attention_mask: [B, L]  prompt + completion, right-padded
    prompt_lens:               [B]     where each completion starts
    completion_mask:           [B, T]  1 on real completion tokens (T = longest completion)
    returns logp, entropy:     [B, T]  float32 (float64 for a float64 model), 0 where the mask is 0
                                       (entropy all 0 without `with_entropy`)
    prompt: the rows' prompt already forwarded (`SharedPrompt`); used by the packed path
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    B, T = completion_mask.shape
    keep = completion_mask.bool()                               # [B, T]
    lengths = keep.sum(1)
    shared = share_prompt and (B > 1 or prompt is not None) and shares_prompt(input_ids, prompt_lens)
    packable = (base.config._attn_implementation == attention.NAME   # grouped attention, prefix masks
                and bool((keep == (torch.arange(T, device=keep.device)[None] < lengths[:, None])).all()))
    if shared and packable:
        h, targets = _packed_prompt_hidden(base.get_decoder(), input_ids, int(prompt_lens[0]), lengths.tolist(),
                                           prompt)
    elif shared and B > 1:
        h, targets = _shared_prompt_hidden(base.get_decoder(), input_ids, attention_mask, int(prompt_lens[0]), T)
        h, targets = h[keep], targets[keep]                     # [N, H], [N]
    else:
        hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                    use_cache=False).last_hidden_state  # [B, L, H]
        # Position p predicts token p + 1, so completion token j of row b is predicted at prompt_len - 1 + j.
        pos = (prompt_lens[:, None] - 1 + torch.arange(T, device=input_ids.device)[None, :])  # [B, T]
        pos = pos.clamp(max=input_ids.shape[1] - 2)
        targets = input_ids.gather(1, pos + 1)                  # [B, T]
        h = hidden.gather(1, pos[..., None].expand(-1, -1, hidden.shape[-1]))[keep]  # [N, H]
        targets = targets[keep]                                 # [N]
    head = base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    logp_flat, ent_flat = selective_logprobs(h, head.weight, targets, temperature=temperature,
                                             softcap=softcap, chunk_tokens=chunk_tokens,
                                             with_entropy=with_entropy)  # [N], [N]
    logp = logp_flat.new_zeros(B, T).masked_scatter(keep, logp_flat)  # [B, T]
    entropy = torch.zeros_like(logp).masked_scatter(keep, ent_flat.detach())  # [B, T]
    return logp, entropy
