"""The policy: a transformers causal LM with a PEFT LoRA adapter (optionally on an NF4 4-bit base).

The reference model of the KL term is this same model with the adapter disabled
(`with policy.disable_adapter():`), so there is no second copy of the weights.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def load_policy(model_path: str, model_cfg, lora_cfg):
    """(peft_model, tokenizer) for training. `model_path` is what rollout.models.resolve_model gave."""
    from rollout.models import quiet_bitsandbytes
    with nullcontext() if model_cfg.load_in_4bit else quiet_bitsandbytes():
        from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.attention import resolve_attn_implementation

    dtype, device = DTYPES[model_cfg.resolved_dtype], resolve_device(model_cfg.device)
    kwargs = {"dtype": dtype, "attn_implementation": resolve_attn_implementation(model_cfg.attn_implementation, device)}
    if model_cfg.load_in_4bit:
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
        if device != "cpu":
            kwargs["device_map"] = {"": device}  # bitsandbytes quantizes while placing the weights
    base = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if model_cfg.load_in_4bit:
        base = prepare_model_for_kbit_training(
            base, use_gradient_checkpointing=model_cfg.gradient_checkpointing)
    else:
        base.to(device)
        if model_cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.enable_input_require_grads()
    base.config.use_cache = False

    if model_cfg.init_adapter:
        if not (Path(model_cfg.init_adapter) / "adapter_config.json").is_file():
            from grpo.config import ConfigError
            raise ConfigError(f"model.init_adapter: no PEFT adapter (adapter_config.json) in {model_cfg.init_adapter}; "
                              "train it first (e.g. the SFT config that writes it)")
        policy = PeftModel.from_pretrained(base, model_cfg.init_adapter, is_trainable=True)
    else:
        policy = get_peft_model(base, LoraConfig(
            r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
            target_modules=list(lora_cfg.target_modules), bias="none", task_type="CAUSAL_LM"))
    policy.train()

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return policy, tokenizer


def resolve_device(name: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from grpo.config import ConfigError
        raise ConfigError(f'model.device = "cuda" but torch {torch.__version__} sees no GPU')
    return name


def device_of(model) -> torch.device:
    """Where the model's weights (and so its inputs) live."""
    return next(model.parameters()).device


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


@contextmanager
def lora_in_base_dtype(model):
    """Run the adapter's matmuls in the base model's dtype (bf16), keeping its fp32 master weights.

    peft stores adapter weights in float32 and casts each adapted projection's input to float32, and
    autograd keeps that copy for the backward: on a bf16 base that is a float32 copy of x per adapted
    projection (q, k, v, gate and up each make their own): 28 % of the 1.05 GB a micro-batch of
    4 x (170 + 128) tokens saves on SmolLM2-135M. Under autocast, with peft's cast off, the adapter
    multiplies the bf16 input the base projection saved anyway, and the fp32 weights still get fp32
    gradients (torch mixed precision; against a float32 forward its logprobs and gradients are as close
    as the fp32-adapter path's). A float32 (or float64) model is left as it is.
    """
    from peft.helpers import disable_input_dtype_casting
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dtype, device = base.dtype, next(base.parameters()).device.type
    if dtype not in (torch.bfloat16, torch.float16):
        yield
        return
    with torch.autocast(device, dtype=dtype), disable_input_dtype_casting(model):
        yield


@torch.no_grad()
def dequantized_base_weights(policy) -> dict[str, torch.Tensor]:
    """{module name: [out, in] bf16 weight} of every NF4 linear, dequantised exactly as the trainer's
    4-bit forward computes with it, keyed as in the checkpoint (for `VLLMEngine.set_base_weights`)."""
    import bitsandbytes as bnb
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    out = {}
    for name, module in base.named_modules():
        layer = getattr(module, "base_layer", module)   # PEFT wraps adapted linears
        weight = getattr(layer, "weight", None)
        if isinstance(layer, bnb.nn.Linear4bit) and getattr(weight, "quant_state", None) is not None:
            key = name.removesuffix(".base_layer")
            out[key] = bnb.functional.dequantize_4bit(weight.data, weight.quant_state).to(torch.bfloat16).cpu()
    return out
