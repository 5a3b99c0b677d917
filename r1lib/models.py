"""Load a causal LM and its tokenizer, by hub name or local path, with an optional LoRA adapter."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from .hardware import attention_implementation, device_info

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter on the attention and MLP projections (peft)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("LoRA needs r >= 1, alpha > 0 and 0 <= dropout < 1")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and how to place it."""

    name_or_path: str
    device: str = "cpu"
    dtype: str = "float32"
    lora: LoraSettings | None = None
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: memory for time
    attn_implementation: str | None = None  # None: "sdpa", or FlashAttention 2 where the GPU and package allow
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")


def load_tokenizer(name_or_path: str, local_files_only: bool = False):
    """The tokenizer saved under ``name_or_path``, keeping the generic fast class when it was saved as one.

    Next to a ``config.json`` of ``model_type: qwen2``, transformers 5's ``AutoTokenizer`` builds a
    ``Qwen2Tokenizer`` whatever ``tokenizer_config.json`` says, and that class replaces the saved
    pre-tokenizer: the tiny-world tokenizer would then silently drop every plain space.
    """
    config_file = Path(name_or_path) / "tokenizer_config.json"
    saved_class = json.loads(config_file.read_text()).get("tokenizer_class") if config_file.exists() else None
    if saved_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(name_or_path, local_files_only=True)
    return AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)


def looks_like_path(name_or_path: str) -> bool:
    """True for what can only be a local path: absolute, ``./``, ``../``, ``~``, a backslash, or more
    than one ``/`` (hub names are ``owner/name``)."""
    text = str(name_or_path)
    return (
        text.startswith(("/", "./", "../", "~", ".\\")) or "\\" in text or text.count("/") > 1
        or text in (".", "..")
    )


def resolve_model_location(name_or_path: str) -> tuple[str, bool]:
    """``(location, is_local)``; a path that does not exist is an error, not a hub name to try."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} exists but holds no model (no config.json)")
        return str(path), True
    if looks_like_path(name_or_path):
        raise FileNotFoundError(f"no model directory at {path} (resolved to {path.resolve()})")
    return str(name_or_path), False


def load_model_and_tokenizer(spec: ModelSpec):
    """The model (in eval mode, on ``spec.device``) and a left-padding tokenizer with a pad token.

    A hub name (``Qwen/Qwen2.5-0.5B``) downloads on first use (Colab); a local directory never
    touches the network, and a local path that does not exist is a ``FileNotFoundError``.
    """
    location, local = resolve_model_location(spec.name_or_path)
    spec = replace(spec, name_or_path=location)
    try:
        tokenizer = load_tokenizer(spec.name_or_path, local_files_only=local)
    except OSError as error:
        if local:
            raise
        raise OSError(
            f"{spec.name_or_path!r} is not a local directory, and loading it from the Hugging Face hub failed "
            f"(offline, or no such model): {error}"
        ) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    attention = spec.attn_implementation or attention_implementation(device_info(spec.device), spec.dtype)
    model = AutoModelForCausalLM.from_pretrained(
        spec.name_or_path, dtype=DTYPES[spec.dtype], local_files_only=local, attn_implementation=attention,
        **spec.extra,
    ).to(spec.device)
    if spec.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's name (the old one warns)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:  # transformers 4 (Colab may still have it)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # generation turns the cache back on per call
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if spec.lora is not None:
        model = add_lora(model, spec.lora)
    return model.eval(), tokenizer


def add_lora(model, settings: LoraSettings):
    """Wrap ``model`` with a trainable LoRA adapter; the base weights are frozen."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in settings.target_modules if t in present]
    if not targets:
        raise ValueError(f"none of the LoRA target modules {settings.target_modules} exist in this model")
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=targets, task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_trained(spec: ModelSpec, checkpoint: str | Path):
    """Load a training checkpoint for evaluation: a full model directory, or a LoRA adapter on ``spec``'s base."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "adapter_model.safetensors").exists():
        from peft import PeftModel

        base, tokenizer = load_model_and_tokenizer(replace(spec, lora=None))
        return PeftModel.from_pretrained(base, str(checkpoint)).eval(), tokenizer
    return load_model_and_tokenizer(replace(spec, name_or_path=str(checkpoint), lora=None))
