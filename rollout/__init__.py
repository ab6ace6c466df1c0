"""Generation engines behind one small interface (see `rollout.engine.Engine`).

- `VLLMEngine` (rollout/vllm_engine.py): vLLM in this process, LoRA hot-swapped every step. Default.
- `HFEngine`   (rollout/hf_engine.py):   transformers `generate` on the trainer's own PEFT model; the
  reference and fallback.
- `rollout.models`: where weights come from (hub id, local folder, or the embedded SmolLM2-135M).
- `rollout.checks`: up-front checks of a model spec, an adapter folder, an output folder (no model load).
- `rollout.chat`:   rendering (system, user) messages with the model's chat template (+ think prefill).
- CPU patches of vLLM, each measured against vLLM's own code: `rollout.unmerged_lora` (the adapter's
  low-rank product beside each base GEMM of the compiled engine: exact, the CPU default),
  `rollout.merged_lora` (adapter merged into the bf16 weights: an option, it rounds small updates away),
  `rollout.lora_fast_path` (single-adapter LoRA kernels), `rollout.cpu_sampler` (inverse-CDF sampling).
- `rollout.canary`: proves the engine samples the current adapter (not the base, the previous one, or part).

Knows nothing of rewards, tasks or losses.
"""
from rollout.types import Rollout, Sampling
from rollout.engine import Engine

__all__ = ["Engine", "Rollout", "Sampling"]
