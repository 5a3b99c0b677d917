"""Prompt/completion data (r1lib.records): batches and buckets checked against tensors written by hand,
cut encodings, jsonl errors that name their line, and SFT's micro-batches of per_device_train_batch_size."""

import pytest
import torch

from r1lib.configs import SFTConfig
from r1lib.records import (
    PromptCompletion, collate, encode, jsonl_records, length_buckets, load_jsonl, prompt_ids, save_jsonl,
)
from r1lib.sft import SFTTrainer

PAD = 0
SHORT, LONGER = ([8, 9], 1), ([5, 6, 7], 2)  # (token ids, prompt tokens)


def test_two_sequences_right_padded_without_a_mask():
    batch = collate([[LONGER], [SHORT]], PAD)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7], [-100, 9, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 1, 2]]  # the padding continues its row's example


def test_every_token_but_the_first_is_a_label_without_completion_only():
    assert collate([[LONGER], [SHORT]], PAD, completion_only=False)["labels"].tolist() == [[-100, 6, 7], [-100, 9, -100]]


def test_left_padding_with_a_mask():
    batch = collate([[LONGER], [SHORT]], PAD, pad_left=True, attention_mask=True)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 8, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 0, 1]]
    assert batch["labels"].tolist() == [[-100, -100, 7], [-100, -100, 9]]


def test_packed_and_padding_free_rows_restart_positions():
    packed = collate([[LONGER, SHORT], [SHORT]], PAD, attention_mask=True)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 9], [8, 9, 0, 0, 0]]
    assert packed["labels"].tolist() == [[-100, -100, 7, -100, 9], [-100, 9, -100, -100, -100]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]
    assert packed["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    free = collate([[LONGER], [SHORT]], PAD, padding_free=True)
    assert free["input_ids"].tolist() == [[5, 6, 7, 8, 9]] and free["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert all(v.dtype == torch.long for v in packed.values())


def test_length_buckets_by_hand():
    # sorted by length: index 1 (1), 3 (1), 2 (2), 0 (3), 4 (5); the first of two buckets takes the odd one
    assert length_buckets([3, 1, 2, 1, 5], 2) == [[1, 3, 2], [0, 4]]
    assert length_buckets([3, 1, 2, 1, 5], 5) == [[1], [3], [2], [0], [4]]
    assert length_buckets([2, 1], 4) == [[1], [0]]  # never an empty bucket
    assert length_buckets([], 4) == []
    assert length_buckets(torch.tensor([4, 4, 1, 4]), 2) == [[2, 0], [1, 3]]


def test_encode_appends_eos_and_cuts_from_the_prompts_start(tiny_tokenizer):
    ids = tiny_tokenizer("ab", add_special_tokens=False)["input_ids"] + tiny_tokenizer("cd", add_special_tokens=False)["input_ids"]
    a, b, c, d = ids  # one token per character
    eos = tiny_tokenizer.eos_token_id
    assert encode(tiny_tokenizer, "ab", "cd") == ([a, b, c, d, eos], 2)
    # 4 tokens leave room for 3 before the EOS: the prompt keeps its end, the completion its start
    assert encode(tiny_tokenizer, "ab", "cd", max_length=4) == ([b, c, d, eos], 1)
    # a long completion cannot push the prompt below half the room (2 of 4)
    assert encode(tiny_tokenizer, "ab", "cdefgh", max_length=5) == ([a, b, c, d, eos], 2)
    messages = [{"role": "user", "content": "3+4"}]
    rendered = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt_ids(tiny_tokenizer, messages) == prompt_ids(tiny_tokenizer, rendered)
    assert encode(tiny_tokenizer, messages, "7")[1] == len(prompt_ids(tiny_tokenizer, rendered))


def test_jsonl_round_trip_and_errors_name_the_line(tmp_path):
    examples = [PromptCompletion([{"role": "user", "content": "3+4"}], "<answer>7</answer>")]
    path = save_jsonl(examples, tmp_path / "data.jsonl")
    assert load_jsonl(path) == examples
    path.write_text('{"prompt": "1+1", "completion": "2"}\n\n{"prompt": "1+1", "completion": \n')
    with pytest.raises(ValueError, match=r"data.jsonl:3: invalid JSON"):
        load_jsonl(path)
    path.write_text('{"prompt": "1+1", "completion": "2"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"data.jsonl:2: a prompt-completion record is a JSON object, got list"):
        load_jsonl(path)


def test_jsonl_records_say_where_each_record_stands(tmp_path):
    path = tmp_path / "any.jsonl"
    path.write_text('{"a": 1}\n\n[2]\n')
    assert list(jsonl_records(path)) == [(f"{path}:1", {"a": 1}), (f"{path}:3", [2])]  # blank lines are skipped
    path.write_text('{"a": 1}\n{"a": \n')
    records = jsonl_records(str(path))
    assert next(records) == (f"{path}:1", {"a": 1})
    with pytest.raises(ValueError, match=r"any.jsonl:2: invalid JSON"):
        next(records)


def test_sft_micro_batches_hold_per_device_train_batch_size_rows(random_model, tiny_tokenizer):
    examples = [PromptCompletion([{"role": "user", "content": "1+1"}], "x" * n) for n in (5, 1, 4, 2, 6, 3)]
    trainer = SFTTrainer(random_model, tiny_tokenizer, examples,
                         SFTConfig(per_device_train_batch_size=2, gradient_accumulation_steps=3), progress=False)
    micro_batches = trainer.batches(trainer.encoded)
    completions = [[len(ids) - prompt - 1 for (ids, prompt), in rows] for rows in micro_batches]
    assert completions == [[1, 2], [3, 4], [5, 6]]  # one example per row, grouped by length
    # 5 prompt tokens + n + EOS = 7..12 tokens, packed first-fit into rows of 16: 12 | 11 | 10 | 9 | 8+7
    packed = SFTTrainer(random_model, tiny_tokenizer, examples, SFTConfig(per_device_train_batch_size=2, packing=True,
                        max_length=16), progress=False)
    assert [len(rows) for rows in packed.batches(packed.encoded)] == [2, 2, 1]  # at most 2 packed rows each
