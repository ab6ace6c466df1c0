"""Log-probabilities of the completion tokens under a causal LM, without a [B, L, V] float32 tensor.

A naive `log_softmax(model(ids).logits.float())` materialises B x L x V floats (32 x 180 x 49,152 x 4 B
= 1.1 GB for SmolLM2) and runs the output head on prompt positions nobody needs. Here we:

1. run the decoder only (no output head) to get hidden states [B, L, H];
2. keep the H-vectors that predict completion tokens, packed into [N, H] (N = real completion tokens);
3. apply the output head chunk by chunk (`chunk_tokens` rows at a time), reducing each row of
   logits to the chosen token's logprob, the log-partition and the entropy in one compiled, fused
   pass (float32 math, no float32 [chunk, V] copy); a custom autograd function keeps only each row's
   log-partition, and its backward recomputes a chunk's logits and turns them into the gradient in
   one fused pass (peak memory: one chunk x V in the model's dtype).

Shared prompt (`share_prompt=True`, all rows of the micro-batch carry the same prompt, as the G
completions of one GRPO group do): the prompt goes through the decoder once, its KV cache is
repeated for the B rows, and only the completions are forwarded on top of it. Gradients flow
through the cache back into the one prompt forward, so the result (values and gradients) equals
the per-row forward while the prompt's FLOPs are paid once instead of B times. With ~170-token
prompts and ~150-token completions that removes about 40 % of the training FLOPs of a step.

Logits are divided by the sampling temperature, so the trainer scores the same distribution the
engine sampled from (TRL does the same). Gemma-2's final logit soft-capping is applied when the model
config has it. Works on a PeftModel (adapter on or disabled) or a plain transformers model.
"""
from __future__ import annotations

import functools
import warnings

import torch


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


class _SelectiveLogSoftmax(torch.autograd.Function):
    """Chosen-token logprob and entropy of softmax(cap(h @ W.T) / T), one chunk of rows at a time.

    Forward keeps only h, W, the targets and each row's log-partition logz, never a [N, V] tensor.
    Backward recomputes each chunk's logits once and turns them into the gradient
    d logp / d z = onehot(target) - softmax(z) in one fused pass: no path through autograd's
    logsumexp, gather and a checkpointed recompute (which also redid the entropy). The entropy is a
    diagnostic: no gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, softcap, chunk_tokens, with_entropy):
        logps, logzs, entropies = [], [], []
        for start in range(0, hidden.shape[0], chunk_tokens):
            rows = slice(start, start + chunk_tokens)
            logp, logz, entropy = _row_stats(hidden[rows] @ weight.T, targets[rows], temperature, softcap, with_entropy)
            logps.append(logp), logzs.append(logz), entropies.append(entropy)
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
        for start in range(0, hidden.shape[0], chunk_tokens):
            rows = slice(start, start + chunk_tokens)
            h = hidden[rows]                                    # [n, H]
            grad_x = _row_grad(h @ weight.T, targets[rows], logz[rows], grad_logp[rows], temperature, softcap)  # [n, V]
            if grad_h is not None:
                grad_h[rows] = grad_x @ weight
            if grad_w is not None:
                grad_w += (grad_x.T @ h).to(grad_w.dtype)
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None, None, None


def selective_logprobs(hidden, weight, targets, *, temperature=1.0, softcap=None, chunk_tokens=512,
                       with_entropy=True):
    """Chunked log-softmax of hidden @ weight.T at `targets`. [N, H], [V, H], [N] -> logp [N], entropy [N].

    Without `with_entropy` the entropy is zeros (the reference pass and SFT do not need it)."""
    if hidden.shape[0] == 0:
        empty = hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
        return empty, empty
    return _SelectiveLogSoftmax.apply(hidden, weight, targets, temperature, softcap, chunk_tokens, with_entropy)


def shares_prompt(input_ids: torch.Tensor, prompt_lens: torch.Tensor) -> bool:
    """True if every row starts with the same prompt (same length, same ids)."""
    n = int(prompt_lens[0])
    return bool((prompt_lens == n).all()) and bool((input_ids[:, :n] == input_ids[:1, :n]).all())


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


def completion_logprobs(model, input_ids, attention_mask, prompt_lens, completion_mask, *,
                        temperature: float = 1.0, chunk_tokens: int = 512, share_prompt: bool = False,
                        with_entropy: bool = True):
    """Logprob and entropy of every completion token.

    input_ids, attention_mask: [B, L]  prompt + completion, right-padded
    prompt_lens:               [B]     where each completion starts
    completion_mask:           [B, T]  1 on real completion tokens (T = longest completion)
    returns logp, entropy:     [B, T]  float32 (float64 for a float64 model), 0 where the mask is 0
                                       (entropy all 0 without `with_entropy`)
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    B, T = completion_mask.shape
    keep = completion_mask.bool()                               # [B, T]
    if share_prompt and B > 1 and shares_prompt(input_ids, prompt_lens):
        h, targets = _shared_prompt_hidden(base.get_decoder(), input_ids, attention_mask, int(prompt_lens[0]), T)
        h = h[keep]                                             # [N, H]
    else:
        hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                    use_cache=False).last_hidden_state  # [B, L, H]
        # Position p predicts token p + 1, so completion token j of row b is predicted at prompt_len - 1 + j.
        pos = (prompt_lens[:, None] - 1 + torch.arange(T, device=input_ids.device)[None, :])  # [B, T]
        pos = pos.clamp(max=input_ids.shape[1] - 2)
        targets = input_ids.gather(1, pos + 1)                  # [B, T]
        h = hidden.gather(1, pos[..., None].expand(-1, -1, hidden.shape[-1]))[keep]  # [N, H]
    head = base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    logp_flat, ent_flat = selective_logprobs(h, head.weight, targets[keep], temperature=temperature,
                                             softcap=softcap, chunk_tokens=chunk_tokens,
                                             with_entropy=with_entropy)  # [N], [N]
    logp = logp_flat.new_zeros(B, T).masked_scatter(keep, logp_flat)  # [B, T]
    entropy = torch.zeros_like(logp).masked_scatter(keep, ent_flat.detach())  # [B, T]
    return logp, entropy
