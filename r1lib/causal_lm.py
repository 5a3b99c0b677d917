"""One causal-LM training step, behind pretraining, supervised fine-tuning and distillation.

All three train a causal LM on token sequences the same way: draw the step's sequences, group them
into micro-batches, run the model, compute a loss on the label tokens, and backpropagate each
micro-batch's share of the step's mean loss per label token. They differ in two parts only, which
:class:`CausalLMTrainer` takes from its subclasses:

* where the sequences come from (:meth:`CausalLMTrainer.draw`): a list of examples (SFT, teacher
  traces), a stream of generated documents (pretraining) or the model's own samples (on-policy
  distillation);
* the loss (a :class:`TokenLoss`): the next-token cross-entropy (:class:`CrossEntropyLoss`), or the
  divergence from a teacher (:class:`r1lib.distill.trainer.DistillationLoss`).

Every step reports ``loss`` (the mean per label token), ``num_tokens`` (the label tokens) and its
compute as ``flops/*`` metrics for :mod:`r1lib.compute`: 6 x parameters per processed token for the
model's forward and backward passes, plus what the loss and the source add (a teacher's forward
passes, sampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .configs import TrainingConfig
from . import records
from .records import Encoded, length_buckets
from .trainer import Trainer, TrainerCallback

Rows = list[list[Encoded]]  # a micro-batch: rows of one or more (packed) sequences
LogitsOf = Callable[[torch.nn.Module], torch.Tensor]  # a model's logits on the micro-batch being computed


def uses_flash_attention(model: Any) -> bool:
    """Whether ``model`` runs a FlashAttention kernel (``flash_attention_2``, ``flash_attention_3``, a
    hub kernel): those separate packed sequences only in a batch of one row (see :func:`r1lib.records.collate`)."""
    return "flash" in str(getattr(getattr(model, "config", None), "_attn_implementation", None) or "")


def length_grouped(items: Sequence[Encoded], num_batches: int) -> list[Rows]:
    """``items`` as rows of one sequence each, in ``num_batches`` micro-batches of similar lengths
    (:func:`r1lib.records.length_buckets`), so that each is padded only to its own longest."""
    buckets = length_buckets([len(ids) for ids, _ in items], num_batches)
    return [[[items[i]] for i in bucket] for bucket in buckets]


class TokenLoss:
    """The loss of one micro-batch, computed from the trained model's logits on it.

    ``reduction`` says what :meth:`__call__` returns: the ``"sum"`` over the micro-batch's label
    tokens, or their ``"mean"``; the step turns either into the micro-batch's share of the step's
    mean per label token. ``completion_only``: the labels are the completion tokens (False: every
    token but a sequence's first). ``models``: other models that run on the micro-batches; their
    attention decides the layout too (see :func:`uses_flash_attention`).
    """

    reduction = "sum"
    completion_only = True
    models: tuple[torch.nn.Module, ...] = ()

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, logits_of: LogitsOf) -> torch.Tensor:
        """The loss from ``logits`` (B, T, V) and ``labels`` (B, T; -100 where nothing is learned; the
        logits at position t predict the label at t + 1). ``logits_of(model)`` runs another model on
        the same micro-batch."""
        raise NotImplementedError

    def costs(self, tokens: int) -> dict[str, float]:
        """``flops/*`` metrics of what the loss runs besides the trained model, on ``tokens`` tokens."""
        return {}


class CrossEntropyLoss(TokenLoss):
    """The next-token cross-entropy, summed over the label tokens (computed in float32)."""

    def __init__(self, completion_only: bool = True) -> None:
        self.completion_only = completion_only

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, logits_of: LogitsOf) -> torch.Tensor:
        targets = labels[:, 1:]
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-100, reduction="sum")


class CausalLMTrainer(Trainer):
    """A causal LM trained on token sequences with a :class:`TokenLoss`, on the shared loop.

    A subclass implements :meth:`draw` (where the step's sequences come from) and declares the
    streams it draws from (:meth:`r1lib.trainer.Trainer.add_stream`); it may change how sequences are
    grouped into micro-batches (:meth:`batches`) and laid out (:meth:`collate`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainingConfig,
        output_dir: str | Path | None = None,
        *,
        tokenizer: Any,
        loss: TokenLoss,
        callbacks: Iterable[TrainerCallback | Callable] = (),
        progress: bool = True,
    ) -> None:
        super().__init__(model, config, output_dir, tokenizer=tokenizer, callbacks=callbacks, progress=progress)
        self.loss = loss

    def draw(self, count: int) -> tuple[list[Encoded], dict[str, float]]:
        """The step's ``count`` sequences (token ids, prompt length), and metrics of drawing them
        (e.g. what sampling them cost)."""
        raise NotImplementedError

    def batches(self, items: list[Encoded]) -> list[Rows]:
        """The step's sequences as micro-batches of at most ``per_device_train_batch_size`` rows of one
        sequence each, grouped by length, as in TRL."""
        return length_grouped(items, math.ceil(len(items) / self.config.per_device_train_batch_size))

    def collate(self, rows: Rows, completion_only: bool = True) -> dict[str, torch.Tensor]:
        """:func:`r1lib.records.collate` on the device, padding-free when a model runs FlashAttention."""
        padding_free = any(uses_flash_attention(m) for m in (self.model, *self.loss.models))
        batch = records.collate(rows, self.tokenizer.pad_token_id, completion_only, padding_free=padding_free)
        return {k: v.to(self.device) for k, v in batch.items()}

    def micro_batch_loss(self, rows: Rows, loss: TokenLoss | None = None) -> tuple[torch.Tensor, int]:
        """``loss`` (default: the trainer's) of one micro-batch, and how many label tokens it has."""
        loss = loss or self.loss
        batch = self.collate(rows, loss.completion_only)
        labels = batch.pop("labels")

        def logits_of(model: torch.nn.Module) -> torch.Tensor:
            with self.autocast():
                return model(**batch, use_cache=False).logits  # without a cache, packed rows are detected

        return loss(logits_of(self.model), labels, logits_of), int((labels[:, 1:] != -100).sum())

    def training_step(self) -> dict[str, float]:
        """The mean loss over every label token of the step's sequences, in micro-batches."""
        cfg = self.config
        items, metrics = self.draw(cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps)
        only = self.loss.completion_only
        total = sum(len(ids) - (prompt if only else 1) for ids, prompt in items)  # label tokens of the step
        summed = self.loss.reduction == "sum"
        value = 0.0
        for rows in self.batches(items):
            loss, tokens = self.micro_batch_loss(rows)
            # The step's loss is the mean over all of its label tokens: a micro-batch's sum is divided
            # by their count, its mean weighted by its share of them.
            if summed:
                self.backward(loss / total)
                value += loss.item()
            else:
                weight = tokens / total
                self.backward(loss * weight)
                value += loss.item() * weight
        processed = sum(len(ids) for ids, _ in items)
        return {**metrics, "loss": value / total if summed else value, "num_tokens": float(total),
                **self.loss.costs(processed), "flops/training": 6.0 * self.num_parameters * processed}
