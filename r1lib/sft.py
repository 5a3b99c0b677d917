"""Supervised fine-tuning on (prompt, completion) pairs: cold start, rejection-sampling SFT and
distillation on teacher traces all use it.

Each example is rendered as ``chat template(prompt) + completion + EOS``: exactly the text a
rollout samples, so a fine-tuned model stops where GRPO's sampler expects it to. The loss is the
mean next-token cross-entropy over the completion tokens of the optimizer step (over every token
with ``completion_only_loss=False``). Data can come as TRL's dataset shapes in a jsonl file:

* conversational: ``{"messages": [{"role": "user", ...}, ..., {"role": "assistant", ...}]}``, the
  last assistant message being the completion;
* prompt-completion: ``{"prompt": [...messages...] or "text", "completion": [...] or "text"}``.

Bad input (malformed jsonl, an empty set, an empty completion, an example longer than the context)
is an error before any compute. Batches carry ``position_ids`` and no attention mask, so that eager,
SDPA and FlashAttention all keep packed examples apart (:func:`collate_rows`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import atomic_write_text
from .configs import SFTConfig
from .evaluate import evaluate as evaluate_policy
from .hardware import StepShape
from .rewards import completion_text
from .stream import ExampleStream, fingerprint
from .tasks.base import Example, Messages, Task
from .trainer import Trainer, TrainerCallback


@dataclass(frozen=True)
class SFTExample:
    """A prompt (chat messages) and the assistant reply to learn."""

    prompt: Messages
    completion: str

    def to_record(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion record."""
        return {"prompt": list(self.prompt), "completion": [{"role": "assistant", "content": self.completion}]}


def _messages(value: Any, where: str, field: str) -> Messages:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: {field!r} must be a string or a non-empty list of messages")
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: every message of {field!r} needs string 'role' and 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def sft_example_from_record(record: Any, where: str = "record") -> SFTExample:
    """An :class:`SFTExample` from one record in either of TRL's shapes (see the module docstring)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: an SFT record is a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = _messages(record["messages"], where, "messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise ValueError(f"{where}: 'messages' must end with an assistant message after at least one other")
        return SFTExample(messages[:-1], messages[-1]["content"])
    if "prompt" in record and "completion" in record:
        completion = record["completion"]
        if isinstance(completion, list):
            completion = completion_text(_messages(completion, where, "completion"))
        if not isinstance(completion, str):
            raise ValueError(f"{where}: 'completion' must be a string or a list of messages")
        return SFTExample(_messages(record["prompt"], where, "prompt"), completion)
    raise ValueError(f"{where}: expected 'messages', or 'prompt' and 'completion'; got fields {sorted(record)}")


def load_sft_jsonl(path: str | Path) -> list[SFTExample]:
    """SFT examples from a jsonl file in TRL's shapes; a bad line is an error naming its number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SFT data at {path}")
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
        examples.append(sft_example_from_record(record, where))
    if not examples:
        raise ValueError(f"{path} holds no examples")
    return examples


def save_sft_jsonl(examples: Iterable[SFTExample], path: str | Path) -> Path:
    """Write examples as TRL conversational prompt-completion records, atomically."""
    atomic_write_text(path, "".join(json.dumps(e.to_record()) + "\n" for e in examples))
    return Path(path)


def encode_sft(tokenizer: Any, example: SFTExample) -> tuple[list[int], int]:
    """Token ids of ``chat template(prompt) + completion + EOS`` and the number of prompt tokens."""
    prompt = tokenizer.apply_chat_template(list(example.prompt), tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(example.completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    return prompt_ids + completion_ids, len(prompt_ids)


def pack(encoded: Sequence[tuple[list[int], int]], max_length: int) -> list[list[tuple[list[int], int]]]:
    """Greedy first-fit packing of encoded examples into rows of at most ``max_length`` tokens."""
    rows: list[list[tuple[list[int], int]]] = []
    room: list[int] = []
    for item in sorted(encoded, key=lambda e: -len(e[0])):
        for i, free in enumerate(room):
            if len(item[0]) <= free:
                rows[i].append(item)
                room[i] -= len(item[0])
                break
        else:
            rows.append([item])
            room.append(max_length - len(item[0]))
    return rows


def uses_flash_attention(model: Any) -> bool:
    """Whether ``model`` runs a FlashAttention kernel (``flash_attention_2``, ``flash_attention_3``, a
    hub kernel): those separate packed sequences only in a batch of one row (see :func:`collate_rows`)."""
    return "flash" in str(getattr(getattr(model, "config", None), "_attn_implementation", None) or "")


def collate_rows(
    rows: Sequence[Sequence[tuple[list[int], int]]], pad_id: int, completion_only: bool = True,
    padding_free: bool = False,
) -> dict[str, torch.Tensor]:
    """``input_ids``, ``labels`` and ``position_ids`` for rows of one or more (packed) examples, with
    no attention mask: the positions alone keep the examples apart, as in TRL's padding-free SFT.

    Each example's positions restart at 0. From those restarts transformers builds a block-diagonal
    causal mask for ``sdpa`` and ``eager`` attention (``find_packed_sequence_indices`` in
    ``masking_utils``), and FlashAttention reads them as sequence boundaries when the batch is a
    single row: ``padding_free`` concatenates every example of ``rows`` into one unpadded row for it.
    Right padding continues the last example's positions, so it belongs to that example's block and
    comes after all of its tokens: causality alone keeps real tokens from seeing it (its labels are
    -100). A batch of one example per row is then plain causal, and SDPA runs its fused kernel.
    Call the model with ``use_cache=False``: transformers looks for packed sequences only without a cache.
    """
    if padding_free:
        rows = [[item for row in rows for item in row]]
    width = max(sum(len(ids) for ids, _ in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for ids, prompt_len in row:
            end = start + len(ids)
            input_ids[r, start:end] = torch.tensor(ids)
            first = prompt_len if completion_only else 1  # an example's first token has nothing of its own before it
            labels[r, start + first : end] = torch.tensor(ids[first:])
            positions[r, start:end] = torch.arange(len(ids))
            start = end
        last_length = len(row[-1][0])
        positions[r, start:] = torch.arange(last_length, last_length + width - start)
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


class SFTTrainer(Trainer):
    """Supervised fine-tuning on :class:`SFTExample` pairs, on the shared training loop.

    With ``eval_task`` and ``eval_examples`` it evaluates the policy (sampled pass@1, reasoning,
    language mixing, length) every ``eval_steps``.
    """

    name = "SFT"
    LENGTH_BUCKETS = 4

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
    def _encode_all(tokenizer, examples: list[SFTExample], limit: int | None) -> list[tuple[list[int], int]]:
        encoded = []
        for i, example in enumerate(examples):
            if not isinstance(example, SFTExample):
                raise TypeError(f"example {i} is a {type(example).__name__}, not an SFTExample")
            if not example.completion.strip():
                # encode_sft appends end-of-sequence, so an empty reply would still train, on stopping at once
                raise ValueError(
                    f"example {i} has an empty completion ({example.completion!r}): SFT would teach the model to "
                    "answer with nothing; drop the example or give it the assistant's reply"
                )
            ids, prompt_len = encode_sft(tokenizer, example)
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

    def batches(self, items: list[tuple[list[int], int]]) -> list[list[list[tuple[list[int], int]]]]:
        """The step's examples as micro-batches of rows: packed rows, or single examples in length buckets."""
        cfg = self.config
        if cfg.packing:
            rows = pack(items, self.max_length or max(len(i[0]) for i in items))
            size = max(1, math.ceil(len(rows) / cfg.gradient_accumulation_steps))
            return [rows[i : i + size] for i in range(0, len(rows), size)]
        ordered = sorted(items, key=lambda e: len(e[0]))
        buckets = min(len(ordered), cfg.gradient_accumulation_steps * self.LENGTH_BUCKETS)
        return [[[e] for e in ordered[b * len(ordered) // buckets : (b + 1) * len(ordered) // buckets]] for b in range(buckets)]

    def attention_models(self) -> list[Any]:
        """The models that run on the collated batches (their attention decides the layout)."""
        return [self.model]

    def collate(self, rows: list[list[tuple[list[int], int]]], completion_only: bool = True) -> dict[str, torch.Tensor]:
        """:func:`collate_rows` on the device, padding-free when a model runs FlashAttention."""
        padding_free = any(uses_flash_attention(m) for m in self.attention_models())
        batch = collate_rows(rows, self.tokenizer.pad_token_id, completion_only, padding_free=padding_free)
        return {k: v.to(self.device) for k, v in batch.items()}

    def loss_sum(self, rows: list[list[tuple[list[int], int]]]) -> tuple[torch.Tensor, int]:
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
