"""Prompt/completion data: the records, their jsonl files, their tokens and their batches.

Supervised fine-tuning, distillation, pretraining and the reward model all learn from the same
shape of data, a prompt (chat messages) and the assistant's reply, and this module is its one
implementation:

* :class:`PromptCompletion`, read from and written to jsonl in TRL's dataset shapes
  (:func:`load_jsonl`, :func:`save_jsonl`; a bad line is an error naming its number, as in every
  jsonl file read through :func:`jsonl_records`):

  - conversational: ``{"messages": [{"role": "user", ...}, ..., {"role": "assistant", ...}]}``, the
    last assistant message being the completion;
  - prompt-completion: ``{"prompt": [...messages...] or "text", "completion": [...] or "text"}``;

* :func:`encode`: the token ids of ``chat template(prompt) + completion + EOS``, exactly the text a
  rollout samples, so that a trained model stops where GRPO's sampler expects it to;
* :func:`pack` and :func:`collate`: rows of one or more examples as ``input_ids``, ``labels`` and
  ``position_ids`` (and an ``attention_mask`` for rows of one example);
* :func:`length_buckets`: examples grouped by length, so that each micro-batch is padded only to
  its own longest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write_text
from .format import Messages, completion_text

Encoded = tuple[list[int], int]  # token ids of prompt + completion + EOS, and how many are the prompt's


@dataclass(frozen=True)
class PromptCompletion:
    """A prompt (chat messages) and the assistant reply to learn."""

    prompt: Messages
    completion: str

    def to_record(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion record."""
        return {"prompt": list(self.prompt), "completion": [{"role": "assistant", "content": self.completion}]}


# ----------------------------------------------------------------------------- jsonl records


def _messages(value: Any, where: str, field: str) -> Messages:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: {field!r} must be a string or a non-empty list of messages")
    for message in value:
        if not (isinstance(message, dict) and all(isinstance(message.get(k), str) for k in ("role", "content"))):
            raise ValueError(f"{where}: every message of {field!r} needs string 'role' and 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def example_from_record(record: Any, where: str = "record") -> PromptCompletion:
    """A :class:`PromptCompletion` from one record in either of TRL's shapes (see the module docstring)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a prompt-completion record is a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = _messages(record["messages"], where, "messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise ValueError(f"{where}: 'messages' must end with an assistant message after at least one other")
        return PromptCompletion(messages[:-1], messages[-1]["content"])
    if "prompt" in record and "completion" in record:
        completion = record["completion"]
        if isinstance(completion, list):
            completion = completion_text(_messages(completion, where, "completion"))
        if not isinstance(completion, str):
            raise ValueError(f"{where}: 'completion' must be a string or a list of messages")
        return PromptCompletion(_messages(record["prompt"], where, "prompt"), completion)
    raise ValueError(f"{where}: expected 'messages', or 'prompt' and 'completion'; got fields {sorted(record)}")


def jsonl_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Each record of a jsonl file with where it stands (``path:line``, for the caller's own errors),
    blank lines skipped; a line that is not JSON is an error naming its number."""
    path = Path(path)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
        yield where, record


def load_jsonl(path: str | Path) -> list[PromptCompletion]:
    """Examples from a jsonl file in TRL's shapes; a bad line is an error naming its number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt-completion data at {path}")
    examples = [example_from_record(record, where) for where, record in jsonl_records(path)]
    if not examples:
        raise ValueError(f"{path} holds no examples")
    return examples


def save_jsonl(examples: Iterable[PromptCompletion], path: str | Path) -> Path:
    """Write examples as TRL conversational prompt-completion records, atomically."""
    atomic_write_text(path, "".join(json.dumps(e.to_record()) + "\n" for e in examples))
    return Path(path)


# ----------------------------------------------------------------------------- tokens


def prompt_ids(tokenizer: Any, prompt: Messages | str) -> list[int]:
    """Token ids of a prompt: chat messages through the chat template with the assistant's turn
    opened, a string as it is (TRL's two prompt formats)."""
    if not isinstance(prompt, str):
        prompt = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def encode(tokenizer: Any, prompt: Messages | str, completion: str, max_length: int | None = None) -> Encoded:
    """Token ids of ``chat template(prompt) + completion + EOS`` and the number of prompt tokens.

    With ``max_length``, a longer sequence keeps the end of the prompt (it holds the assistant
    marker) and the start of the completion, then the EOS; the prompt keeps at least half the room,
    so that a huge completion cannot push the request out. Without it nothing is cut.
    """
    head = prompt_ids(tokenizer, prompt)
    # Only the completion's head can survive a cut, so the tokenizer may stop there.
    cut = {"truncation": True, "max_length": max_length} if max_length is not None else {}
    body = tokenizer(completion, add_special_tokens=False, **cut)["input_ids"]
    if max_length is not None and len(head) + len(body) > max_length - 1:
        room = max_length - 1  # the EOS always stays
        head = head[-min(len(head), max(room // 2, room - len(body))) :]
        body = body[: room - len(head)]
    return head + body + [tokenizer.eos_token_id], len(head)


def encode_example(tokenizer: Any, example: PromptCompletion) -> Encoded:
    """:func:`encode` of one :class:`PromptCompletion`, uncut."""
    return encode(tokenizer, example.prompt, example.completion)


# ----------------------------------------------------------------------------- batches


def pack(encoded: Sequence[Encoded], max_length: int) -> list[list[Encoded]]:
    """Greedy first-fit packing of encoded examples into rows of at most ``max_length`` tokens."""
    rows: list[list[Encoded]] = []
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


def collate(
    rows: Sequence[Sequence[Encoded]], pad_id: int, completion_only: bool = True, padding_free: bool = False,
    *, pad_left: bool = False, attention_mask: bool = False,
) -> dict[str, torch.Tensor]:
    """``input_ids``, ``labels`` and ``position_ids`` for rows of one or more (packed) examples.

    The labels are the completion tokens (every token but an example's first with
    ``completion_only=False``), -100 elsewhere. Each example's positions restart at 0, and those
    restarts alone keep packed examples apart, as in TRL's padding-free SFT: without an attention
    mask, transformers builds a block-diagonal causal mask from them for ``sdpa`` and ``eager``
    attention (``find_packed_sequence_indices`` in ``masking_utils``), and FlashAttention reads them
    as sequence boundaries when the batch is a single row, which ``padding_free`` makes of all the
    examples. Call the model with ``use_cache=False``: transformers looks for packed sequences only
    without a cache.

    Right padding continues the last example's positions, so it belongs to that example's block and
    comes after all of its tokens: causality alone keeps real tokens from seeing it. A batch of one
    example per row is then plain causal, and SDPA runs its fused kernel. ``pad_left`` pads in front
    instead, at position 0, so that a row's last token is its own (a sequence classifier scores it);
    ``attention_mask`` adds the mask (1 on real tokens), which is for rows of one example: it does
    not separate packed ones.
    """
    if padding_free:
        rows = [[item for row in rows for item in row]]
    lengths = [sum(len(ids) for ids, _ in row) for row in rows]
    width = max(lengths)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (row, length) in enumerate(zip(rows, lengths)):
        start = width - length if pad_left else 0
        mask[r, start : start + length] = 1
        for ids, prompt_len in row:
            end = start + len(ids)
            input_ids[r, start:end] = torch.tensor(ids)
            first = prompt_len if completion_only else 1  # an example's first token has nothing of its own before it
            labels[r, start + first : end] = torch.tensor(ids[first:])
            positions[r, start:end] = torch.arange(len(ids))
            start = end
        if not pad_left:
            last_length = len(row[-1][0])
            positions[r, start:] = torch.arange(last_length, last_length + width - start)
    batch = {"input_ids": input_ids, "labels": labels, "position_ids": positions}
    if attention_mask:
        batch["attention_mask"] = mask
    return batch


def length_buckets(lengths: Sequence[int] | torch.Tensor, num_buckets: int, stable: bool = True) -> list[list[int]]:
    """The indices of ``lengths`` sorted by length and cut into at most ``num_buckets`` consecutive
    groups of equal size, the first ``len(lengths) % num_buckets`` one longer.

    Sequences of one batch differ a lot in length (``<answer>7</answer>`` against a 60-token trace):
    a micro-batch per group, padded only to its own longest, wastes far less compute than one
    batch padded to the longest of all. Ties keep their index order; ``stable=False`` takes torch's
    default sort instead, whose order of ties GRPO's runs have always had (which rows share a
    micro-batch changes the last bits of the results).
    """
    order = torch.as_tensor(lengths).argsort(stable=stable).tolist()
    count = min(num_buckets, len(order))
    if count == 0:
        return []
    size, longer = divmod(len(order), count)
    bounds = [b * size + min(b, longer) for b in range(count + 1)]
    return [order[bounds[b] : bounds[b + 1]] for b in range(count)]
