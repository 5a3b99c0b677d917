"""The tiny world's reward model: a Qwen2 sequence scorer shaped like the tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2ForSequenceClassification

from ..reward_model import scorer_from_saved_lm
from .model import TinyModelConfig, tiny_qwen2_config


def build_tiny_reward_model(
    tokenizer: Any, seed: int = 0, config: TinyModelConfig = TinyModelConfig(), backbone: str | Path | None = None
) -> Qwen2ForSequenceClassification:
    """A Qwen2 sequence scorer (one output) for the tiny world, seeded.

    With ``backbone`` (a saved causal LM such as ``data/tiny-base``) the shape comes from that
    model's config and its transformer weights are copied in
    (:func:`r1lib.reward_model.scorer_from_saved_lm`); only the score head starts random. Without
    it, every weight starts random in the shape ``config``.
    """
    if backbone is not None:
        return scorer_from_saved_lm(tokenizer, backbone, seed=seed)
    hf_config = tiny_qwen2_config(tokenizer, config, num_labels=1, use_cache=False, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return Qwen2ForSequenceClassification(hf_config).eval()
