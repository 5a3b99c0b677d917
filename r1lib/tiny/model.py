"""The tiny base model: a real Qwen2-shaped ``transformers`` causal LM of about 1M parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny model. The defaults give about 0.8M parameters."""

    hidden_size: int = field(
        default=128,
        metadata={"help": "Width of the residual stream (Qwen2's hidden_size); a multiple of num_heads."},
    )
    num_layers: int = field(
        default=4,
        metadata={"help": "Number of transformer blocks (Qwen2's num_hidden_layers)."},
    )
    num_heads: int = field(
        default=4,
        metadata={"help": "Attention heads per block, as many key/value heads as query heads (no grouped-query "
                          "attention)."},
    )
    intermediate_size: int = field(
        default=384,
        metadata={"help": "Width of each block's MLP (Qwen2's intermediate_size)."},
    )
    max_positions: int = field(
        default=256,
        metadata={"help": "Longest sequence, prompt and completion together, the model has positions for "
                          "(Qwen2's max_position_embeddings)."},
    )

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")


def tiny_qwen2_config(tokenizer, config: TinyModelConfig = TinyModelConfig(), **overrides) -> Qwen2Config:
    """The ``Qwen2Config`` of a tiny model sized for ``tokenizer``; ``overrides`` set further fields."""
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    settings.update(overrides)
    return Qwen2Config(**settings)


def build_tiny_model(tokenizer, config: TinyModelConfig = TinyModelConfig(), seed: int = 0) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM sized for ``tokenizer``, seeded for reproducibility."""
    hf_config = tiny_qwen2_config(tokenizer, config)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(hf_config)
