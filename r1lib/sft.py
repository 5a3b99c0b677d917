"""Supervised fine-tuning on (prompt, completion) pairs: cold start, rejection-sampling SFT and
distillation on teacher traces all use it.

Each example is rendered as ``chat template(prompt) + completion + EOS`` (:func:`r1lib.records.encode`):
exactly the text a rollout samples, so a fine-tuned model stops where GRPO's sampler expects it to.
The loss is the mean next-token cross-entropy over the completion tokens of the optimizer step (over
every token with ``completion_only_loss=False``). Data can come as TRL's dataset shapes in a jsonl
file (:func:`r1lib.records.load_jsonl`).

Bad input (malformed jsonl, an empty set, an empty completion, an example longer than the context)
is an error before any compute. Batches carry ``position_ids`` and no attention mask, so that eager,
SDPA and FlashAttention all keep packed examples apart (:func:`r1lib.records.collate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .configs import SFTConfig
from .records import (
    Encoded,
    PromptCompletion,
    collate,
    encode_example,
    example_from_record,
    length_buckets,
    load_jsonl,
    pack,
    save_jsonl,
)
from .evaluate import evaluate as evaluate_policy
from .hardware import StepShape
from .stream import ExampleStream, fingerprint
from .tasks.base import Example, Task
from .trainer import Trainer, TrainerCallback

# The names this module has always offered (notebooks, the pipeline and distillation import them
# from here); the one implementation is r1lib.records's, shared with pretraining and the reward model.
SFTExample = PromptCompletion
sft_example_from_record = example_from_record
load_sft_jsonl = load_jsonl
save_sft_jsonl = save_jsonl
encode_sft = encode_example
collate_rows = collate


def uses_flash_attention(model: Any) -> bool:
    """Whether ``model`` runs a FlashAttention kernel (``flash_attention_2``, ``flash_attention_3``, a
    hub kernel): those separate packed sequences only in a batch of one row (see :func:`r1lib.records.collate`)."""
    return "flash" in str(getattr(getattr(model, "config", None), "_attn_implementation", None) or "")


class SFTTrainer(Trainer):
    """Supervised fine-tuning on :class:`SFTExample` pairs, on the shared training loop.

    With ``eval_task`` and ``eval_examples`` it evaluates the policy (sampled pass@1, reasoning,
    language mixing, length) every ``eval_steps``.
    """

    name = "SFT"

    def __init__(
        self,
        model,
        tokenizer,
        train_examples: Sequence[SFTExample],
        config: SFTConfig,
        output_dir: str | Path | None = None,
        eval_task: Task | None = None,
        eval_examples: Sequence[Example] = (),
        callbacks: Iterable[TrainerCallback | Callable] = (),
        progress: bool = True,
    ) -> None:
        if not isinstance(config, SFTConfig):
            raise TypeError(f"SFTTrainer needs an SFTConfig, got {type(config).__name__}")
        examples = list(train_examples)
        if not examples:
            raise ValueError("SFT needs at least one training example")
        limit = config.max_length or getattr(model.config, "max_position_embeddings", None)
        self.encoded = self._encode_all(tokenizer, examples, limit)
        if config.num_train_epochs is not None:
            per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
            config = replace(config, max_steps=max(1, math.ceil(config.num_train_epochs * len(examples) / per_step)))
        super().__init__(model, config, output_dir, tokenizer=tokenizer, callbacks=callbacks, progress=progress)
        self.config: SFTConfig = config
        self.max_length = limit
        self.train_examples = examples
        self.eval_task, self.eval_examples = eval_task, list(eval_examples)[: config.eval_examples]
        self.stream = ExampleStream(list(range(len(examples))), seed=config.seed)

    def step_shape(self) -> StepShape:
        longest = max(len(ids) for ids, _ in self.encoded)
        if self.config.packing and self.max_length:
            longest = self.max_length
        return StepShape(self.config.per_device_train_batch_size, 0, longest)

    @staticmethod
    def _encode_all(tokenizer, examples: list[SFTExample], limit: int | None) -> list[Encoded]:
        encoded = []
        for i, example in enumerate(examples):
            if not isinstance(example, SFTExample):
                raise TypeError(f"example {i} is a {type(example).__name__}, not an SFTExample")
            if not example.completion.strip():
                # encoding appends end-of-sequence, so an empty reply would still train, on stopping at once
                raise ValueError(
                    f"example {i} has an empty completion ({example.completion!r}): SFT would teach the model to "
                    "answer with nothing; drop the example or give it the assistant's reply"
                )
            ids, prompt_len = encode_example(tokenizer, example)
            if limit is not None and len(ids) > limit:
                raise ValueError(
                    f"example {i} has {len(ids)} tokens ({prompt_len} prompt + {len(ids) - prompt_len} completion), "
                    f"more than max_length={limit}; shorten it, drop it, or raise max_length"
                )
            encoded.append((ids, prompt_len))
        return encoded

    @property
    def does_evaluate(self) -> bool:
        return self.eval_task is not None and bool(self.eval_examples)

    def on_fresh_start(self) -> None:
        self.stream = ExampleStream(list(range(len(self.train_examples))), seed=self.config.seed)

    def data_fingerprint(self) -> dict[str, str]:
        """The training examples, so that resuming on other data of the same size is refused."""
        return {"train_examples": fingerprint([e.to_record() for e in self.train_examples])}

    def trainer_state(self) -> dict[str, Any]:
        return {"stream": self.stream.state_dict()}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])

    def batches(self, items: list[Encoded]) -> list[list[list[Encoded]]]:
        """The step's examples as micro-batches of at most ``per_device_train_batch_size`` rows, as
        in TRL: packed rows, or single examples grouped by length (:func:`r1lib.records.length_buckets`)."""
        size = self.config.per_device_train_batch_size
        if self.config.packing:
            rows = pack(items, self.max_length or max(len(i[0]) for i in items))
            return [rows[i : i + size] for i in range(0, len(rows), size)]
        buckets = length_buckets([len(ids) for ids, _ in items], math.ceil(len(items) / size))
        return [[[items[i]] for i in bucket] for bucket in buckets]

    def attention_models(self) -> list[Any]:
        """The models that run on the collated batches (their attention decides the layout)."""
        return [self.model]

    def collate(self, rows: list[list[Encoded]], completion_only: bool = True) -> dict[str, torch.Tensor]:
        """:func:`r1lib.records.collate` on the device, padding-free when a model runs FlashAttention."""
        padding_free = any(uses_flash_attention(m) for m in self.attention_models())
        batch = collate(rows, self.tokenizer.pad_token_id, completion_only, padding_free=padding_free)
        return {k: v.to(self.device) for k, v in batch.items()}

    def loss_sum(self, rows: list[list[Encoded]]) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy over the rows' label tokens, and how many tokens that is."""
        batch = self.collate(rows, self.config.completion_only_loss)
        labels = batch.pop("labels")
        with self.autocast():
            logits = self.model(**batch, use_cache=False).logits
        targets = labels[:, 1:]
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-100, reduction="sum")
        return loss, int((targets != -100).sum())

    def training_step(self) -> dict[str, float]:
        cfg = self.config
        items = [self.encoded[i] for i in self.stream.take(cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps)]
        total = sum(len(ids) - (p if cfg.completion_only_loss else 1) for ids, p in items)  # label tokens of the step
        loss_sum = 0.0
        for rows in self.batches(items):
            loss, _ = self.loss_sum(rows)
            self.backward(loss / total)
            loss_sum += loss.item()
        processed = sum(len(ids) for ids, _ in items)
        return {"loss": loss_sum / total, "num_tokens": float(total), "flops/training": 6.0 * self.num_parameters * processed}

    def evaluate(self) -> dict[str, float]:
        # no `or 1.0` default: temperature 0 is rollout's greedy decoding, a setting of its own
        result = evaluate_policy(
            self.model, self.tokenizer, self.eval_task, self.eval_examples, temperature=self.config.temperature,
            max_new_tokens=self.config.max_new_tokens, seed=self.config.seed + 1,
        )
        return {f"eval/{k}": v for k, v in result.summary().items()}
