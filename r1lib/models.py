"""Load a causal LM and its tokenizer, by hub name or local path, with an optional LoRA adapter.

A model loaded for training never has a trainable float16 weight (see :func:`load_dtype`): fp16
training needs float32 weights under autocast, and torch's gradient scaler refuses fp16 gradients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from .estimates import attention_implementation, device_info

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter on the attention and MLP projections (peft)."""

    r: int = field(
        default=16,
        metadata={"help": "Rank of the adapter's low-rank update (peft's r); at least 1."},
    )
    alpha: int = field(
        default=32,
        metadata={"help": "Scale of the update, which is multiplied by alpha / r (peft's lora_alpha); above 0."},
    )
    dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout on the adapter's input (peft's lora_dropout), in [0, 1)."},
    )
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        metadata={"help": "Names of the linear layers that get an adapter: the attention and MLP projections of a "
                          "Llama-family model. Names the model lacks are skipped; none present is an error."},
    )

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("LoRA needs r >= 1, alpha > 0 and 0 <= dropout < 1")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from and how to place it."""

    name_or_path: str = field(
        metadata={"help": "A hub name (Qwen/Qwen2.5-0.5B, downloaded on first use) or a local model directory "
                          "(never the network; a local path that does not exist is an error)."},
    )
    device: str = field(
        default="cpu",
        metadata={"help": "Torch device the model is placed on: 'cpu', 'cuda', 'cuda:1', ..."},
    )
    dtype: str = field(
        default="float32",
        metadata={"help": f"Dtype of the weights, one of {', '.join(sorted(DTYPES))}. A model trained without "
                          "LoRA is loaded in float32 instead of float16 (fp16 training needs float32 weights "
                          "under autocast: see load_dtype)."},
    )
    lora: LoraSettings | None = field(
        default=None,
        metadata={"help": "Train a LoRA adapter with these settings instead of every weight. None: no adapter."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass instead of keeping them: memory for time."},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "The attention kernel, by its name in transformers ('eager', 'sdpa', "
                          "'flash_attention_2'). None: 'sdpa', or FlashAttention 2 where the GPU and package allow."},
    )
    extra: dict = field(
        default_factory=dict,
        metadata={"help": "Further keyword arguments for AutoModelForCausalLM.from_pretrained, e.g. "
                          "{'revision': 'main'}. Empty: none."},
    )

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


def load_dtype(spec: ModelSpec, trainable: bool = True) -> torch.dtype:
    """The dtype a model's weights are loaded in: ``spec.dtype``, except float32 when every weight
    is to be trained in float16 (``trainable`` and no LoRA).

    That is the usual mixed-precision recipe: float32 master weights, the forward pass in fp16 under
    the trainer's autocast, fp16 loss scaling. Weights loaded in float16 would give float16
    gradients, which torch's ``GradScaler`` refuses to unscale ("Attempting to unscale FP16
    gradients"), and Adam's small updates would round away in them. With LoRA the frozen base stays
    in half precision (half the memory) and only the float32 adapters train. bf16 needs no loss
    scaling, so it is loaded as asked.
    """
    if trainable and spec.lora is None and spec.dtype == "float16":
        return torch.float32
    return DTYPES[spec.dtype]


def load_model_and_tokenizer(spec: ModelSpec, trainable: bool = True):
    """The model (in eval mode, on ``spec.device``) and a left-padding tokenizer with a pad token.

    A hub name (``Qwen/Qwen2.5-0.5B``) downloads on first use (Colab); a local directory never
    touches the network, and a local path that does not exist is a ``FileNotFoundError``.

    With ``trainable`` (the default) no trainable weight is float16 (:func:`load_dtype`). For
    sampling or evaluation only, ``trainable=False`` loads ``spec.dtype`` as it is and freezes
    every weight.
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
    dtype = load_dtype(spec, trainable)
    attention = spec.attn_implementation or attention_implementation(device_info(spec.device), DTYPE_NAMES[dtype])
    model = AutoModelForCausalLM.from_pretrained(
        spec.name_or_path, dtype=dtype, local_files_only=local, attn_implementation=attention, **spec.extra,
    ).to(spec.device)
    if spec.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # generation turns the cache back on per call
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if spec.lora is not None:
        model = add_lora(model, spec.lora)
    if not trainable:
        model.requires_grad_(False)
    return model.eval(), tokenizer


def add_lora(model, settings: LoraSettings):
    """Wrap ``model`` with a trainable LoRA adapter; the base weights are frozen and keep their
    dtype, the adapter's weights are float32 whatever the base's."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in settings.target_modules if t in present]
    if not targets:
        raise ValueError(f"none of the LoRA target modules {settings.target_modules} exist in this model")
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=targets, task_type="CAUSAL_LM",
    )
    # float32 adapters on a half base (peft's default, said here because fp16 loss scaling depends on it)
    return get_peft_model(model, config, autocast_adapter_dtype=True)


def load_trained(spec: ModelSpec, checkpoint: str | Path):
    """Load a training checkpoint for evaluation, frozen and in ``spec.dtype``: a full model
    directory, or a LoRA adapter on ``spec``'s base."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "adapter_model.safetensors").exists():
        from peft import PeftModel

        base, tokenizer = load_model_and_tokenizer(replace(spec, lora=None), trainable=False)
        return PeftModel.from_pretrained(base, str(checkpoint)).eval(), tokenizer
    return load_model_and_tokenizer(replace(spec, name_or_path=str(checkpoint), lora=None), trainable=False)
