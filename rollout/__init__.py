"""Generation engines behind one small interface (see `rollout.engine.Engine`).

- `VLLMEngine` (rollout/vllm_engine.py): vLLM in this process, LoRA hot-swapped every step. Default.
- `HFEngine`   (rollout/hf_engine.py):   transformers `generate` on the trainer's own PEFT model; the
  reference and fallback.
- `rollout.models`: where weights come from (hub id, local folder, or the embedded SmolLM2-135M).
- `rollout.chat`:   rendering (system, user) messages with the model's chat template (+ think prefill).
- CPU speed-ups patched into vLLM, each measured against vLLM's own code: `rollout.merged_lora` (adapter
  merged into the compiled engine's weights), `rollout.lora_fast_path` (single-adapter LoRA kernels),
  `rollout.cpu_sampler` (inverse-CDF sampling).

Knows nothing of rewards, tasks or losses.
"""
from rollout.types import Rollout, Sampling
from rollout.engine import Engine

__all__ = ["Engine", "Rollout", "Sampling"]
