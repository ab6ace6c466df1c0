"""transformers `generate` on the trainer's own (PEFT) model: the reference and fallback engine.

It samples from exactly the weights being trained, so `set_adapter` has nothing to copy; it is the
yardstick the vLLM engine is checked and benchmarked against. Slow (no paged KV cache, padding).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rollout.engine import Engine
from rollout.unmerged_lora import delivery_report
from rollout.types import Rollout, Sampling


# Every logits processor `generate` would otherwise take from the model's generation_config (SmolLM2-style
# checkpoints ship repetition_penalty, top_k, top_p, ...): set explicitly to "off", so the engine samples
# softmax(logits / T) as the trainer scores it. transformers applies these kwargs after the model's values.
NEUTRAL = dict(repetition_penalty=1.0, encoder_repetition_penalty=1.0, no_repeat_ngram_size=0, typical_p=1.0,
               min_p=None, epsilon_cutoff=0.0, eta_cutoff=0.0, top_k=0, bad_words_ids=None, suppress_tokens=None,
               begin_suppress_tokens=None, forced_bos_token_id=None, forced_eos_token_id=None, sequence_bias=None)


class HFEngine(Engine):
    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 64):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.eos_ids = self._eos_ids()
        # It samples the trainer's own weights: whatever the trainer holds is delivered, by construction.
        self.delivery = delivery_report({})

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids]) - {None}
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Rollout]:
        rollouts: list[Rollout] = []
        per_batch = max(1, self.batch_size // sampling.n)
        for start in range(0, len(prompts), per_batch):
            rollouts += self._generate_batch(prompts[start:start + per_batch], start, sampling)
        return rollouts

    def _generate_batch(self, prompts: list[list[int]], offset: int, sampling: Sampling) -> list[Rollout]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        width = max(len(p) for p in prompts)
        # Left padding so every prompt ends at the same column and generation starts together.
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        greedy = sampling.temperature <= 0
        kwargs = dict(do_sample=not greedy, max_new_tokens=sampling.max_tokens, min_new_tokens=sampling.min_tokens,
                      num_return_sequences=sampling.n, pad_token_id=pad, eos_token_id=sorted(self.eos_ids),
                      output_scores=sampling.logprobs, return_dict_in_generate=True, **NEUTRAL)
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        finally:
            self.model.train(was_training)
        new = out.sequences[:, width:]                                        # (B*n, T_new)
        logps = None
        if sampling.logprobs:
            # `scores` are the processed logits (temperature, top-p) the sampler drew from.
            scores = torch.stack(out.scores, dim=1).float()                   # (B*n, T_new, V)
            logps = torch.log_softmax(scores, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        rollouts = []
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in self.eos_ids), None)
            finish = "stop" if end is not None else "length"
            ids = ids[:end] if end is not None else ids
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if finish == "length" and sampling.stop and any(s in text for s in sampling.stop):
                finish = "stop"
            i = row // sampling.n
            rollouts.append(Rollout(prompt_index=offset + i, prompt_ids=list(prompts[i]), completion_ids=ids,
                                    text=text, finish_reason=finish,
                                    logprobs=logps[row, :len(ids)].tolist() if logps is not None else []))
        return rollouts

    def load_adapter(self, adapter_dir: str | Path | None) -> None:
        """Load adapter weights from a folder into the live PEFT model (None: not supported here)."""
        if adapter_dir is None:
            raise ValueError("HFEngine samples from the live model; build it on a base model instead")
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights
        set_peft_model_state_dict(self.model, load_peft_weights(str(adapter_dir)))

    def set_adapter(self, peft_model: Any) -> None:
        if peft_model is not self.model:
            raise ValueError("HFEngine generates with the model it was built on; pass that same model")
