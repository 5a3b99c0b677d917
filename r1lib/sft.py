"""Supervised fine-tuning on (prompt, completion) pairs: cold start, rejection-sampling SFT and
distillation on teacher traces all use it.

Each example is rendered as ``chat template(prompt) + completion + EOS`` (:func:`r1lib.records.encode`):
exactly the text a rollout samples, so a fine-tuned model stops where GRPO's sampler expects it to.
The loss is the mean next-token cross-entropy over the completion tokens of the optimizer step (over
every token with ``completion_only_loss=False``); the step itself is the causal-LM step of
:class:`r1lib.causal_lm.CausalLMTrainer`, shared with pretraining and distillation. Data can come as
TRL's dataset shapes in a jsonl file (:func:`r1lib.records.load_jsonl`).

Bad input (malformed jsonl, an empty set, an empty completion, an example longer than the context)
is an error before any compute. Batches carry ``position_ids`` and no attention mask, so that eager,
SDPA and FlashAttention all keep packed examples apart (:func:`r1lib.records.collate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from .causal_lm import CausalLMTrainer, CrossEntropyLoss, Rows
from .configs import SFTConfig
from .records import Encoded, PromptCompletion, encode_example, pack
from .estimates import StepShape
from .evaluate import evaluate as evaluate_policy
from .stream import ExampleStream
from .tasks.base import Example, Task
from .trainer import TrainerCallback


class SFTTrainer(CausalLMTrainer):
    """Supervised fine-tuning on :class:`PromptCompletion` pairs: the causal-LM step on the examples, in a
    seeded shuffle every epoch, with the cross-entropy on their completions.

    With ``eval_task`` and ``eval_examples`` it evaluates the policy (sampled pass@1, reasoning,
    language mixing, length) every ``eval_steps``.
    """

    name = "SFT"

    def __init__(
        self,
        model,
        tokenizer,
        train_examples: Sequence[PromptCompletion],
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
        super().__init__(model, config, output_dir, tokenizer=tokenizer,
                         loss=CrossEntropyLoss(config.completion_only_loss), callbacks=callbacks, progress=progress)
        self.config: SFTConfig = config
        self.max_length = limit
        self.train_examples = examples
        self.eval_task, self.eval_examples = eval_task, list(eval_examples)[: config.eval_examples]
        # fingerprinted, so that resuming on other examples of the same count is refused
        self.stream = self.add_stream("stream", ExampleStream(self.encoded, seed=config.seed),
                                      data={"train_examples": [e.to_record() for e in examples]})

    def step_shape(self) -> StepShape:
        longest = max(len(ids) for ids, _ in self.encoded)
        if self.config.packing and self.max_length:
            longest = self.max_length
        return StepShape(self.config.per_device_train_batch_size, 0, longest)

    @staticmethod
    def _encode_all(tokenizer, examples: list[PromptCompletion], limit: int | None) -> list[Encoded]:
        encoded = []
        for i, example in enumerate(examples):
            if not isinstance(example, PromptCompletion):
                raise TypeError(f"example {i} is a {type(example).__name__}, not a PromptCompletion")
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

    def draw(self, count: int) -> tuple[list[Encoded], dict[str, float]]:
        """The next ``count`` training examples of the stream."""
        return self.stream.take(count), {}

    def batches(self, items: list[Encoded]) -> list[Rows]:
        """The step's examples as micro-batches of at most ``per_device_train_batch_size`` rows, as
        in TRL: packed rows, or single examples grouped by length (:func:`r1lib.records.length_buckets`)."""
        if not self.config.packing:
            return super().batches(items)
        size = self.config.per_device_train_batch_size
        rows = pack(items, self.max_length or max(len(i[0]) for i in items))
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def loss_sum(self, rows: Rows) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy over the rows' label tokens, and how many tokens that is (whatever loss
        the trainer trains with: a distillation trainer's is a divergence)."""
        return self.micro_batch_loss(rows, CrossEntropyLoss(self.config.completion_only_loss))

    def evaluate(self) -> dict[str, float]:
        # no `or 1.0` default: temperature 0 is rollout's greedy decoding, a setting of its own
        result = evaluate_policy(
            self.model, self.tokenizer, self.eval_task, self.eval_examples, temperature=self.config.temperature,
            max_new_tokens=self.config.max_new_tokens, seed=self.config.seed + 1,
        )
        return {f"eval/{k}": v for k, v in result.summary().items()}
