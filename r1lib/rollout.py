"""Batched sampling of G completions per prompt with a KV cache.

Prompts of different lengths are left-padded and given explicit position ids, so that every row
sees exactly the positions it would see alone. Sampling stops as soon as every row has produced
EOS. ``model.generate`` is the reference this loop is tested against (same tokens when greedy).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from .tasks.base import Messages


@dataclass
class Rollout:
    """Sampled completions. Row ``i`` belongs to prompt ``i // num_generations``."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P)
    completion_ids: torch.Tensor  # (B, T) right-padded with pad_token_id
    completion_mask: torch.Tensor  # (B, T) 1 for generated tokens up to and including EOS
    is_truncated: torch.Tensor  # (B,) True when no EOS was produced within max_new_tokens
    texts: list[str] = field(default_factory=list)
    num_generations: int = 1

    @property
    def completion_lengths(self) -> torch.Tensor:
        """Number of generated tokens per row (EOS included)."""
        return self.completion_mask.sum(dim=1)


def _cache_keyword(model) -> str:
    """``cache`` in transformers >= 5.2x, ``past_key_values`` before (what Colab may still have)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def render_prompts(tokenizer, conversations: list[Messages], prefill: str = "") -> list[str]:
    """Apply the chat template with the generation prompt, optionally pre-filling the reply."""
    return [
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill
        for messages in conversations
    ]


def _sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def rollout(
    model,
    tokenizer,
    prompts: list[str],
    num_generations: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    stop_token_ids: list[int] | None = None,
) -> Rollout:
    """Sample ``num_generations`` completions for each rendered prompt string.

    ``temperature=0`` is greedy decoding. ``stop_token_ids`` defaults to the tokenizer's EOS.
    """
    if not prompts:
        raise ValueError("rollout needs at least one prompt")
    if num_generations < 1 or max_new_tokens < 1:
        raise ValueError("num_generations and max_new_tokens must be at least 1")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = torch.tensor(stop_token_ids or [tokenizer.eos_token_id], device=device)

    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    prompt_ids = encoded["input_ids"].to(device).repeat_interleave(num_generations, dim=0)
    prompt_mask = encoded["attention_mask"].to(device).repeat_interleave(num_generations, dim=0)
    batch = prompt_ids.shape[0]

    was_training = model.training
    model.eval()
    cache = DynamicCache()
    cache_kw = _cache_keyword(model)
    attention = prompt_mask.clone()
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(
        input_ids=prompt_ids, attention_mask=attention, position_ids=positions, use_cache=True, **{cache_kw: cache}
    ).logits[:, -1, :]
    next_position = positions[:, -1:] + 1

    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    lengths = torch.full((batch,), max_new_tokens, dtype=torch.long, device=device)
    for t in range(max_new_tokens):
        token = _sample_next(logits, temperature, top_p, generator)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        tokens[:, t] = token
        hit_stop = torch.isin(token, stops) & ~finished
        lengths = torch.where(hit_stop, torch.full_like(lengths, t + 1), lengths)
        finished |= hit_stop
        if bool(finished.all()) or t == max_new_tokens - 1:
            break
        attention = torch.cat([attention, torch.ones_like(token)[:, None]], dim=1)
        logits = model(
            input_ids=token[:, None], attention_mask=attention, position_ids=next_position,
            use_cache=True, **{cache_kw: cache},
        ).logits[:, -1, :]
        next_position = next_position + 1
    model.train(was_training)

    steps = int(lengths.max())
    tokens = tokens[:, :steps]
    completion_mask = (torch.arange(steps, device=device)[None, :] < lengths[:, None]).long()
    texts = tokenizer.batch_decode(tokens.masked_fill(completion_mask == 0, pad_id), skip_special_tokens=True)
    return Rollout(prompt_ids, prompt_mask, tokens, completion_mask, ~finished, texts, num_generations)
