"""Batched sampling of G completions per prompt with a KV cache.

Prompts of different lengths are left-padded and given explicit position ids, so that every row
sees exactly the positions it would see alone. Sampling stops as soon as every row has produced
a stop token (EOS, or any end-of-turn id of the model's generation config). ``model.generate``
is the reference this loop is tested against (same tokens when greedy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from . import decoder
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

    def select_rows(self, rows: list[int]) -> Rollout:
        """The given rows, in that order (whole groups keep ``num_generations``)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.prompt_ids.device)
        return Rollout(
            self.prompt_ids[index], self.prompt_mask[index], self.completion_ids[index], self.completion_mask[index],
            self.is_truncated[index], [self.texts[r] for r in rows], self.num_generations,
        )


def concat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Stack rollouts of possibly different widths: prompts stay left-padded, completions right-padded."""
    if len(parts) == 1:
        return parts[0]

    def pad(t: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
        extra = width - t.shape[1]
        return torch.nn.functional.pad(t, (extra, 0) if left else (0, extra), value=value)

    prompt_width = max(p.prompt_ids.shape[1] for p in parts)
    completion_width = max(p.completion_ids.shape[1] for p in parts)
    return Rollout(
        torch.cat([pad(p.prompt_ids, prompt_width, pad_id, True) for p in parts]),
        torch.cat([pad(p.prompt_mask, prompt_width, 0, True) for p in parts]),
        torch.cat([pad(p.completion_ids, completion_width, pad_id, False) for p in parts]),
        torch.cat([pad(p.completion_mask, completion_width, 0, False) for p in parts]),
        torch.cat([p.is_truncated for p in parts]),
        [t for p in parts for t in p.texts],
        parts[0].num_generations,
    )


@dataclass
class _Stepper:
    """``forward(new_ids, positions, new_mask) -> last logits`` extends one KV cache; ``keep(rows)``,
    when available, drops the other rows of the batch."""

    forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    keep: Callable[[torch.Tensor], None] | None = None
    repeat: Callable[[int], None] | None = None


def _make_stepper(model, batch: int, max_length: int, fast: bool) -> _Stepper:
    if fast and decoder.supports(model):
        incremental = decoder.IncrementalDecoder(model, batch, max_length)
        return _Stepper(incremental.forward, incremental.keep, incremental.repeat)
    cache = DynamicCache()
    attention: list[torch.Tensor] = []

    def forward(new_ids: torch.Tensor, positions: torch.Tensor, new_mask: torch.Tensor) -> torch.Tensor:
        attention.append(new_mask)
        out = model(input_ids=new_ids, attention_mask=torch.cat(attention, dim=1), position_ids=positions,
                    use_cache=True, logits_to_keep=1, cache=cache)
        return out.logits[:, -1, :]

    return _Stepper(forward)


def render_prompts(tokenizer, conversations: list[Messages], prefill: str = "") -> list[str]:
    """Apply the chat template with the generation prompt, optionally pre-filling the reply."""
    return [
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill
        for messages in conversations
    ]


def stop_token_ids_of(model, tokenizer) -> list[int]:
    """The tokens that end a completion: the tokenizer's EOS and every id of the model's
    ``generation_config.eos_token_id`` (an int or a list), as ``model.generate`` uses them.

    Chat models often end a turn with a token other than the tokenizer's EOS (``<|im_end|>`` in
    Qwen-Instruct, ``<|eot_id|>`` in Llama 3) and list it only in their generation config.
    """
    ids = [tokenizer.eos_token_id]
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    ids += extra if isinstance(extra, (list, tuple)) else [extra]
    found = list(dict.fromkeys(int(i) for i in ids if i is not None))  # ordered, without repeats
    if not found:
        raise ValueError("no stop token: the tokenizer has no eos_token_id and the model's generation config none")
    return found


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
    fast: bool = True,
) -> Rollout:
    """Sample ``num_generations`` completions for each rendered prompt string.

    ``temperature=0`` is greedy decoding. ``stop_token_ids`` defaults to :func:`stop_token_ids_of`: the
    tokenizer's EOS and the model's ``generation_config.eos_token_id`` (int or list).
    With ``fast`` (the default), Qwen2/Llama models are run by :class:`r1lib.decoder.IncrementalDecoder`;
    other models, and ``fast=False``, use the model's own forward with a ``DynamicCache``.
    """
    if not prompts:
        raise ValueError("rollout needs at least one prompt")
    if num_generations < 1 or max_new_tokens < 1:
        raise ValueError("num_generations and max_new_tokens must be at least 1")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = torch.tensor(stop_token_ids or stop_token_ids_of(model, tokenizer), device=device)

    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    unique_ids, unique_mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
    prompt_ids = unique_ids.repeat_interleave(num_generations, dim=0)
    prompt_mask = unique_mask.repeat_interleave(num_generations, dim=0)
    batch = prompt_ids.shape[0]

    was_training = model.training
    model.eval()
    width = prompt_ids.shape[1] + max_new_tokens
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    stepper = _make_stepper(model, len(prompts), width, fast)
    if stepper.repeat is not None:  # prefill each prompt once, then copy its cache for the G completions
        unique_positions = (unique_mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = stepper.forward(unique_ids, unique_positions, unique_mask).repeat_interleave(num_generations, dim=0)
        stepper.repeat(num_generations)
    else:
        logits = stepper.forward(prompt_ids, positions, prompt_mask)
    next_position = positions[:, -1:] + 1

    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lengths = torch.full((batch,), max_new_tokens, dtype=torch.long, device=device)
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)  # which rows of the batch the stepper still computes
    done = torch.zeros(batch, dtype=torch.bool, device=device)  # per computed row: has it produced a stop token?
    for t in range(max_new_tokens):
        token = _sample_next(logits, temperature, top_p, generator).masked_fill_(done, pad_id)
        tokens[rows, t] = token
        hit_stop = (token == stops[0] if len(stops) == 1 else torch.isin(token, stops)) & ~done
        if bool(hit_stop.any()):
            lengths[rows[hit_stop]] = t + 1
            stopped[rows[hit_stop]] = True
            done |= hit_stop
            if bool(done.all()):
                break
            live = ~done
            if stepper.keep is not None and int(live.sum()) <= 0.75 * len(rows):
                # Stop computing rows that have ended: their share of every later step would be wasted.
                stepper.keep(live.nonzero().squeeze(1))
                rows, token, next_position, done = rows[live], token[live], next_position[live], done[live]
        if t == max_new_tokens - 1:
            break
        logits = stepper.forward(token[:, None], next_position, torch.ones_like(token)[:, None])
        next_position = next_position + 1
    model.train(was_training)

    steps = int(lengths.max())
    tokens = tokens[:, :steps]
    completion_mask = (torch.arange(steps, device=device)[None, :] < lengths[:, None]).long()
    texts = tokenizer.batch_decode(tokens.masked_fill(completion_mask == 0, pad_id), skip_special_tokens=True)
    return Rollout(prompt_ids, prompt_mask, tokens, completion_mask, ~stopped, texts, num_generations)
