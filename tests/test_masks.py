"""SFT and KD batches carry ``position_ids`` and no attention mask. Packed, padded and padding-free
batches must give every example the logits it gets alone, under eager and SDPA attention alike: a
leak between packed examples, or a mask that eager attention adds to the scores instead of
applying, changes them."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from r1lib.configs import SFTConfig
from r1lib.records import PromptCompletion, collate, encode_example, pack
from r1lib.causal_lm import uses_flash_attention
from r1lib.sft import SFTTrainer
from r1lib.tasks import ChainTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
IMPLEMENTATIONS = ("eager", "sdpa")


def examples_of_mixed_lengths() -> list[PromptCompletion]:
    task = ChainTask(max_terms=4)
    examples = [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>") for e in task.generate(5, seed=0)]
    return examples + [PromptCompletion(examples[0].prompt, "<think>" + "1+2=3 " * 3 + "</think><answer>3</answer>")]


def collated(encoded, layout, pad_id):
    """The rows of ``layout`` and their batch: two or three examples packed to a row (with padding),
    one example per row (padded), or every packed example in one unpadded row (padding-free)."""
    packed = pack(encoded, 32)
    assert max(len(r) for r in packed) >= 2 and len({sum(len(i[0]) for i in r) for r in packed}) > 1
    if layout == "packed":
        return packed, collate(packed, pad_id)
    if layout == "one_per_row":
        return [[e] for e in encoded], collate([[e] for e in encoded], pad_id)
    return [[e for row in packed for e in row]], collate(packed, pad_id, padding_free=True)


def logits_of(model, batch, implementation):
    model.set_attn_implementation(implementation)
    assert model.config._attn_implementation == implementation
    with torch.no_grad():
        # use_cache=False, as the trainers do: with a cache, transformers does not look for packed sequences
        return model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits


def spans(rows):
    """(row, start, example) of every example in collated ``rows``."""
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            yield r, start, example
            start += len(example[0])


@pytest.mark.parametrize("layout", ["packed", "one_per_row", "padding_free"])
def test_each_example_gets_its_own_logits_under_eager_and_sdpa(tiny_tokenizer, layout):
    model = build_tiny_model(tiny_tokenizer, SMALL, seed=0).float()
    encoded = [encode_example(tiny_tokenizer, e) for e in examples_of_mixed_lengths()]
    rows, batch = collated(encoded, layout, tiny_tokenizer.pad_token_id)
    logits = {impl: logits_of(model, batch, impl) for impl in IMPLEMENTATIONS}
    torch.testing.assert_close(logits["eager"], logits["sdpa"], rtol=0, atol=1e-5)
    for impl in IMPLEMENTATIONS:
        for r, start, (ids, _) in spans(rows):
            single = {"input_ids": torch.tensor([ids]), "position_ids": torch.arange(len(ids))[None]}
            alone = logits_of(model, single, impl)
            torch.testing.assert_close(logits[impl][r, start : start + len(ids)], alone[0], rtol=0, atol=1e-5)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no dense mask to build, add or reject


@pytest.mark.parametrize("packing", [True, False])
def test_the_sft_loss_is_each_example_alone_under_eager_and_sdpa(tiny_tokenizer, packing):
    examples = examples_of_mixed_lengths()
    model = build_tiny_model(tiny_tokenizer, SMALL, seed=0)
    config = SFTConfig(max_steps=1, per_device_train_batch_size=len(examples), packing=packing, max_length=32)
    trainer = SFTTrainer(model, tiny_tokenizer, examples, config, progress=False)
    items = trainer.encoded
    by_hand, count = 0.0, 0
    for ids, prompt_len in items:  # the summed cross-entropy of each completion, computed alone
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
        by_hand += F.cross_entropy(logits[prompt_len - 1 : -1], torch.tensor(ids[prompt_len:]), reduction="sum").item()
        count += len(ids) - prompt_len
    for implementation in IMPLEMENTATIONS:
        model.set_attn_implementation(implementation)
        total, tokens = 0.0, 0
        for rows in trainer.batches(items):
            with torch.no_grad():
                loss, n = trainer.loss_sum(rows)
            total, tokens = total + loss.item(), tokens + n
        assert tokens == count
        assert total == pytest.approx(by_hand, rel=1e-6), implementation


def test_flash_attention_gets_one_unpadded_row(tiny_tokenizer, random_model):
    """FlashAttention separates packed sequences only in a batch of one row, so the trainer flattens
    micro-batches for it (of the student, or of a distillation teacher)."""
    assert uses_flash_attention(SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2")))
    assert not uses_flash_attention(random_model) and not uses_flash_attention(object())
    encoded = [encode_example(tiny_tokenizer, e) for e in examples_of_mixed_lengths()]
    trainer = SFTTrainer(random_model, tiny_tokenizer, examples_of_mixed_lengths(),
                         SFTConfig(max_steps=1, packing=True, max_length=32), progress=False)
    rows = pack(encoded, 32)
    assert trainer.collate(rows)["input_ids"].shape[0] == len(rows)
    random_model.config._attn_implementation = "flash_attention_2"  # no kernel runs: only the layout is read
    batch = trainer.collate(rows)
    lengths = [len(ids) for row in rows for ids, _ in row]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["input_ids"][0].tolist() == [t for row in rows for ids, _ in row for t in ids]
    assert batch["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
