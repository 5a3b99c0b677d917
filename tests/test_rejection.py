"""The one sample loop (r1lib.rejection.sample_groups): groups cut from seeded rollouts, batch by batch."""

import pytest
import torch

import r1lib.rejection as rejection
from r1lib.rejection import SampleGroup, sample_batches, sample_groups
from r1lib.rollout import render_prompts, rollout

PROMPTS = [[{"role": "user", "content": q}] for q in ("1+2", "3+4+5", "6", "7+8+9+1", "2+2")]


def test_groups_are_the_rows_of_seeded_rollouts_cut_per_prompt(random_model, tiny_tokenizer):
    groups = list(sample_groups(random_model, tiny_tokenizer, PROMPTS, 3, 6, seed=5, batch_prompts=2))
    # By hand: rollouts over prompts 0-1, 2-3 and 4, in that order, from one generator seeded with 5.
    generator = torch.Generator().manual_seed(5)
    expected = []
    for start in (0, 2, 4):
        chunk = PROMPTS[start : start + 2]
        out = rollout(random_model, tiny_tokenizer, render_prompts(tiny_tokenizer, chunk), 3, 6, generator=generator)
        for i, prompt in enumerate(chunk):
            rows = slice(3 * i, 3 * i + 3)
            expected.append((start + i, prompt, out.texts[rows], out.completion_lengths[rows].tolist(),
                             out.is_truncated[rows].tolist(), int(out.prompt_mask[3 * i].sum())))
    assert [(g.index, g.prompt, g.texts, g.lengths, g.truncated, g.prompt_tokens) for g in groups] == expected
    rendered = render_prompts(tiny_tokenizer, PROMPTS)
    assert [g.prompt_tokens for g in groups] == [len(tiny_tokenizer(r, add_special_tokens=False)["input_ids"])
                                                 for r in rendered]
    assert all(g.tokens == g.prompt_tokens + sum(g.lengths) for g in groups)


def test_batches_hold_batch_prompts_groups_and_a_generator_continues(random_model, tiny_tokenizer):
    batches = list(sample_batches(random_model, tiny_tokenizer, PROMPTS, 2, 5, seed=1, batch_prompts=2))
    assert [[g.index for g in batch] for batch in batches] == [[0, 1], [2, 3], [4]]
    flat = [g for batch in batches for g in batch]
    assert flat == list(sample_groups(random_model, tiny_tokenizer, PROMPTS, 2, 5, seed=1, batch_prompts=2))
    # A generator is drawn from as it is: two calls on one generator continue where the first stopped.
    generator = torch.Generator().manual_seed(1)
    first = list(sample_groups(random_model, tiny_tokenizer, PROMPTS[:2], 2, 5, seed=generator))
    rest = list(sample_groups(random_model, tiny_tokenizer, PROMPTS[2:], 2, 5, seed=generator, batch_prompts=2))
    assert [g.texts for g in first + rest] == [g.texts for g in flat]


def test_sampling_is_lazy_and_none_means_one_batch(random_model, tiny_tokenizer, monkeypatch):
    calls = []

    def counting_rollout(*args, **kwargs):
        calls.append(len(args[2]))
        return rollout(*args, **kwargs)

    monkeypatch.setattr(rejection, "rollout", counting_rollout)
    groups = sample_groups(random_model, tiny_tokenizer, PROMPTS, 2, 4, batch_prompts=2)
    assert calls == []
    next(groups)
    next(groups)
    assert calls == [2]  # a caller that stops here never samples prompts 2-4
    list(sample_groups(random_model, tiny_tokenizer, PROMPTS, 2, 4, batch_prompts=None))
    assert calls == [2, 5]
    for sampler in (sample_batches, sample_groups):
        with pytest.raises(ValueError, match="batch_prompts"):
            sampler(random_model, tiny_tokenizer, PROMPTS, 2, 4, batch_prompts=0)  # refused before any sampling


def test_the_prefill_is_in_the_prompt_not_in_the_texts(random_model, tiny_tokenizer):
    plain = next(sample_groups(random_model, tiny_tokenizer, PROMPTS[:1], 1, 3, temperature=0.0))
    prefilled = next(sample_groups(random_model, tiny_tokenizer, PROMPTS[:1], 1, 3, temperature=0.0,
                                   prefill="<think>"))
    think = len(tiny_tokenizer("<think>", add_special_tokens=False)["input_ids"])
    assert prefilled.prompt_tokens == plain.prompt_tokens + think
    out = rollout(random_model, tiny_tokenizer, render_prompts(tiny_tokenizer, PROMPTS[:1], prefill="<think>"), 1, 3,
                  temperature=0.0)
    assert prefilled.texts == out.texts  # what the model wrote after the prefill, without it


def test_the_best_sample_of_a_group_by_hand():
    group = SampleGroup(0, [], ["a", "b", "c", "d"], [1, 2, 3, 4], [False, True, False, False], prompt_tokens=5)
    assert group.tokens == 5 + 10
    assert group.best([0.1, 9.0, 0.5, 0.2]) == 2  # "b" scores highest but was cut off
    assert group.best([0.5, 0.0, 0.7, 0.7]) == 2  # a tie goes to the first
    assert SampleGroup(0, [], ["a"], [4], [True], 5).best([1.0]) is None
    with pytest.raises(ValueError, match="3 scores for 4 samples"):
        group.best([1.0, 2.0, 3.0])
