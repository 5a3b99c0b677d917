"""A learned reward model: a sequence scorer trained on preference pairs with the Bradley-Terry loss.

DeepSeek-R1's last RL stage rewards reasoning prompts with rules (is the answer right, is the
format kept) and general prompts with reward models trained on human preferences. This module is
the second half: :class:`RewardModel` turns any ``AutoModelForSequenceClassification``-style model
with one output into ``score(prompts, completions)``, :func:`train_reward_model` fits one to
:class:`~r1lib.tasks.general.PreferencePair` records, and :meth:`RewardModel.as_reward_func`
makes it a TRL-signature reward that abstains (``None``) on prompts it does not apply to, so that
it sums cleanly with the rule-based rewards of :mod:`r1lib.rewards`.

The score of a sequence is the head's output at its last token. Every sequence is rendered as
``chat template(prompt) + completion + EOS`` and padded on the *left*, so the last position is
always the appended EOS, whichever padding side the tokenizer was saved with. Hugging Face's
sequence classifiers pool "the rightmost token that is not the pad token", which is that EOS.
Position ids are computed from the attention mask, so a padded row sees exactly the positions it
would see alone.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    Qwen2Config,
    Qwen2ForSequenceClassification,
)

from .rewards import RewardFunc, completion_text, never_raises
from .tasks.general import PreferencePair
from .tiny.model import TinyModelConfig, tiny_qwen2_config
from .checkpoint import atomic_directory
from .models import load_tokenizer


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sigmoid(r_chosen - r_rejected)``, the negative log-likelihood of the preferences.

    Written as ``softplus(-(r_chosen - r_rejected))``, which is the same value without the
    overflow of ``log(sigmoid(x))`` for very negative margins.
    """
    return F.softplus(rejected_scores - chosen_scores).mean()


# ----------------------------------------------------------------------------- scoring


class RewardModel:
    """A scalar scorer of (prompt, completion) pairs, wrapping a one-label sequence classifier.

    ``max_length`` caps the tokens per sequence (default: the model's position limit); longer
    sequences keep the end of the prompt and the start of the completion, then the EOS.
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, max_length: int | None = None, batch_size: int = 32
    ) -> None:
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(f"a reward model has one output, this model has num_labels={model.config.num_labels}")
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs both an EOS and a pad token")
        if getattr(model.config, "pad_token_id", None) != tokenizer.pad_token_id:
            # The model finds the scored token by comparing ids with its own pad_token_id.
            raise ValueError(
                f"model.config.pad_token_id={getattr(model.config, 'pad_token_id', None)} but the tokenizer's pad "
                f"token id is {tokenizer.pad_token_id}; set model.config.pad_token_id"
            )
        # With pad == EOS (common for Qwen tokenizers) the model pools the last completion token
        # instead of the EOS: padded and unpadded rows still agree, the score just cannot see the stop.
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length or limit)
        self.batch_size = batch_size
        if self.max_length < 4:
            raise ValueError(f"max_length must be >= 4, got {self.max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_ids(self, prompt: Any) -> list[int]:
        """Token ids of a prompt: chat messages through the chat template, a string as it is (TRL's two formats)."""
        if isinstance(prompt, str):
            text = prompt
        else:
            text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def encode(self, prompt: Any, completion: Any) -> list[int]:
        """Token ids of one ``prompt + completion + EOS``, cut to ``max_length`` as the class describes."""
        prompt_ids = self.prompt_ids(prompt)
        # Only the completion's head can survive the cut below, so the tokenizer may stop there.
        completion_ids = self.tokenizer(
            completion_text(completion), add_special_tokens=False, truncation=True, max_length=self.max_length
        )["input_ids"]
        budget = self.max_length - 1  # the EOS always stays: it is the token that gets scored
        if len(prompt_ids) + len(completion_ids) > budget:
            # Keep the prompt's end (it holds the assistant marker): what the completion leaves room
            # for, and at least half the budget, so a huge completion cannot push the request out.
            prompt_ids = prompt_ids[-min(len(prompt_ids), max(budget // 2, budget - len(completion_ids))) :]
            completion_ids = completion_ids[: budget - len(prompt_ids)]
        return prompt_ids + completion_ids + [self.tokenizer.eos_token_id]

    def collate(self, sequences: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """Left-pad token id lists into ``input_ids``, ``attention_mask`` and ``position_ids``."""
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], dtype=torch.long)
        # Positions count real tokens only, as if each row had been run alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self.device
        return {
            "input_ids": input_ids.to(device),
            "attention_mask": mask.to(device),
            "position_ids": positions.to(device),
        }

    def forward_scores(self, prompts: Sequence[Any], completions: Sequence[Any]) -> torch.Tensor:
        """Scores of one batch as a 1-D tensor, with gradients (for training)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        batch = self.collate([self.encode(p, c) for p, c in zip(prompts, completions)])
        return self.model(**batch, use_cache=False).logits[:, 0].float()

    @torch.no_grad()
    def score(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[float]:
        """Score each ``(prompt, completion)``.

        Prompts are chat messages or strings, completions strings or TRL conversational messages.
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        was_training = self.model.training
        self.model.eval()
        try:
            scores: list[float] = []
            for start in range(0, len(prompts), self.batch_size):
                end = start + self.batch_size
                scores.extend(self.forward_scores(prompts[start:end], completions[start:end]).tolist())
            return scores
        finally:
            self.model.train(was_training)

    def as_reward_func(self, name: str = "reward_model", applies: Callable[[Any], bool] | None = None) -> RewardFunc:
        """A TRL-signature reward ``f(prompts, completions, **columns)`` returning this model's scores.

        Rows whose prompt ``applies`` rejects get ``None`` (does not apply), so a rule-based reward
        can cover the reasoning prompts and this model the general ones, as in R1's final stage.
        Non-finite scores also become ``None``; no input makes the function raise.
        """

        @never_raises
        def reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
            if len(prompts) != len(completions):
                raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
            rows = [i for i, prompt in enumerate(prompts) if applies is None or _safe_applies(applies, prompt)]
            scores: list[float | None] = [None] * len(completions)
            for i, value in zip(rows, self.score([prompts[i] for i in rows], [completions[i] for i in rows])):
                scores[i] = value if math.isfinite(value) else None
            return scores

        reward.__name__ = name
        reward.__qualname__ = name
        return reward

    def save(self, path: str | Path) -> Path:
        """Write model (safetensors) and tokenizer to ``path`` atomically; ``RewardModel.load`` reads it back."""
        with atomic_directory(path) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> RewardModel:
        """Load what :meth:`save` wrote; ``kwargs`` go to the constructor (``max_length``, ``batch_size``)."""
        model = AutoModelForSequenceClassification.from_pretrained(str(path))
        tokenizer = load_tokenizer(path)
        model.eval()
        return cls(model, tokenizer, **kwargs)


def _safe_applies(applies: Callable[[Any], bool], prompt: Any) -> bool:
    # A predicate that fails on a strange prompt means "not mine", not "drop the whole batch".
    try:
        return bool(applies(prompt))
    except Exception:  # noqa: BLE001
        return False


def preference_accuracy(reward_model: RewardModel, pairs: Sequence[PreferencePair]) -> float:
    """Share of pairs whose chosen reply outscores the rejected one.

    A tie counts half, so that a constant scorer gets exactly 0.5 (chance).
    """
    if not pairs:
        raise ValueError("need at least one pair")
    prompts = [p.prompt_messages for p in pairs]
    chosen = reward_model.score(prompts, [p.chosen for p in pairs])
    rejected = reward_model.score(prompts, [p.rejected for p in pairs])
    return sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)) / len(pairs)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class RewardModelConfig:
    """Settings of :func:`train_reward_model`.

    ``center_coefficient`` adds ``c * mean((r_chosen + r_rejected)^2)`` to the loss (TRL's
    ``center_rewards_coefficient``): the Bradley-Terry loss only sees differences, so without it
    scores can drift to any offset, which a policy optimiser then has to absorb.
    """

    learning_rate: float = 1e-3
    steps: int = 200
    batch_size: int = 16
    seed: int = 0
    weight_decay: float = 0.0
    warmup_steps: int = 10
    max_grad_norm: float = 1.0
    center_coefficient: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.weight_decay < 1:
            raise ValueError(f"weight_decay must be in [0, 1), got {self.weight_decay}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in 0..steps ({self.steps}), got {self.warmup_steps}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not self.center_coefficient >= 0:
            raise ValueError(f"center_coefficient must be >= 0, got {self.center_coefficient}")


def _batches(n_pairs: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Indices of each step's pairs: shuffled epochs, so every pair is seen before any repeats."""
    rng = random.Random(seed)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        while len(order) < batch_size:
            epoch = list(range(n_pairs))
            rng.shuffle(epoch)
            order.extend(epoch)
        batches.append(order[:batch_size])
        order = order[batch_size:]
    return batches


def train_reward_model(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    config: RewardModelConfig = RewardModelConfig(),
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fit ``model`` in place to prefer each pair's ``chosen`` reply; return per-step loss and accuracy.

    Each step scores the chosen and rejected replies of ``batch_size`` pairs in one forward pass
    and minimises :func:`bradley_terry_loss` with AdamW (linear warm-up, then constant rate). The
    returned records hold ``step``, ``loss``, ``accuracy`` (share of the batch ranked right) and
    ``margin`` (mean ``r_chosen - r_rejected``).
    """
    if not pairs:
        raise ValueError("need at least one preference pair")
    reward_model = RewardModel(model, tokenizer)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(config.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    history: list[dict[str, float]] = []
    model.train()
    batches = _batches(len(pairs), config.batch_size, config.steps, config.seed)
    bar = tqdm(batches, desc="reward model", disable=not progress)
    for step, indices in enumerate(bar, start=1):
        batch = [pairs[i] for i in indices]
        prompts = [p.prompt_messages for p in batch]
        # Chosen and rejected in one forward pass: half the calls, and both see the same weights.
        scores = reward_model.forward_scores(prompts + prompts, [p.chosen for p in batch] + [p.rejected for p in batch])
        chosen, rejected = scores[: len(batch)], scores[len(batch) :]
        loss = bradley_terry_loss(chosen, rejected)
        if config.center_coefficient:
            loss = loss + config.center_coefficient * ((chosen + rejected) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        margin = (chosen - rejected).detach()
        record = {
            "step": step,
            "loss": loss.item(),
            "accuracy": (margin > 0).float().mean().item(),
            "margin": margin.mean().item(),
        }
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
    model.eval()
    return history


# ----------------------------------------------------------------------------- the tiny reward model


def build_tiny_reward_model(
    tokenizer: Any, seed: int = 0, config: TinyModelConfig = TinyModelConfig(), backbone: str | Path | None = None
) -> Qwen2ForSequenceClassification:
    """A Qwen2 sequence scorer (one output) for the tiny world, seeded.

    With ``backbone`` (a saved causal LM such as ``data/tiny-base``) the shape comes from that
    model's config and its transformer weights are copied in (:func:`load_backbone_from`); only the
    score head starts random. Starting from a pretrained LM is how R1's reward models are made.
    """
    if backbone is not None:
        hf_config = Qwen2Config.from_pretrained(str(backbone))
        hf_config.num_labels = 1
        hf_config.pad_token_id = tokenizer.pad_token_id
        hf_config.use_cache = False  # a scorer runs each sequence once; a KV cache is wasted memory
        if hf_config.vocab_size != len(tokenizer):
            raise ValueError(f"backbone vocabulary has {hf_config.vocab_size} tokens, the tokenizer {len(tokenizer)}")
    else:
        hf_config = tiny_qwen2_config(tokenizer, config, num_labels=1, use_cache=False, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(hf_config)
    if backbone is not None:
        load_backbone_from(model, backbone)
    model.eval()
    return model


def load_backbone_from(model: torch.nn.Module, path: str | Path) -> None:
    """Copy a saved causal LM's transformer weights (``model.*``) into a sequence classifier.

    The LM head is dropped and the classifier's score head is left as it is. Raises when a
    backbone weight is missing or has another shape, rather than training on a half-loaded model.
    """
    weights = load_file(str(Path(path) / "model.safetensors"))
    prefix = f"{getattr(model, 'base_model_prefix', 'model')}."
    backbone = {name: tensor for name, tensor in weights.items() if name.startswith(prefix)}
    own = model.state_dict()
    wrong_shape = [n for n, t in backbone.items() if n in own and own[n].shape != t.shape]
    if wrong_shape:
        raise ValueError(f"backbone weights of another shape: {wrong_shape[:5]}")
    result = model.load_state_dict(backbone, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"backbone has weights the classifier lacks: {result.unexpected_keys[:5]}")
    missing = [n for n in result.missing_keys if n.startswith(prefix)]
    if missing:
        raise ValueError(f"backbone checkpoint is missing weights: {missing[:5]}")
