import itertools
import math

import pytest

from r1lib.evaluate import (
    EvalResult, has_reflection, majority_answer, normalise_answer, pass_at_k, reflection_word_counts,
)
from r1lib.tasks import ChainTask


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_equals_the_closed_form_and_brute_force(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            closed = 1 - math.comb(n - c, k) / math.comb(n, k)
            samples = [True] * c + [False] * (n - c)
            subsets = list(itertools.combinations(samples, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(closed) == pytest.approx(brute)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_majority_vote_normalises_answers():
    assert normalise_answer(" $1,234. ") == "1234"
    assert majority_answer(["7", " 7 ", "3", None, "3", "7."]) == "7"
    assert majority_answer(["3", "4"]) == "3"  # a tie goes to the first seen
    assert majority_answer([None, "  "]) is None


def test_eval_result_statistics_by_hand():
    task = ChainTask()
    examples = [task.make_example([1, 1]), task.make_example([2, 2])]
    result = EvalResult(
        correct=[[True, False, False], [False, False, False]],
        completions=[["<answer>2</answer>", "<answer>5</answer>", "<answer>5</answer>"],
                     ["<think>2+2 so 4 wait 4</think><answer>3</answer>", "<answer>4</answer>", "<answer>4</answer>"]],
        lengths=[[3, 3, 3], [10, 3, 3]],
    )
    # correct flags deliberately disagree with the texts of example 2: cons@k re-verifies the vote.
    assert result.pass_at_1 == pytest.approx(1 / 6)
    assert result.pass_at(3) == pytest.approx(0.5)
    assert result.cons_at_k(task, examples) == pytest.approx(0.5)  # vote 5 (wrong) and 4 (right)
    assert result.reasoning_rate == pytest.approx(1 / 6) and result.reflection_rate == pytest.approx(1 / 6)
    assert result.mean_length == pytest.approx(25 / 6)


def test_reflection_words():
    assert has_reflection("Wait, that is wrong") and not has_reflection("awaiting the waiter")
    counts = reflection_word_counts(["wait wait", "but check", "none"])
    assert counts["wait"] == pytest.approx(1 / 3) and counts["check"] == pytest.approx(1 / 3) and counts["retry"] == 0


def test_kl_to_reference_is_zero_to_itself_and_matches_the_exact_kl_of_a_perturbed_copy():
    import copy

    import torch

    from r1lib.evaluate import kl_to_reference
    from r1lib.logprobs import completion_logits
    from r1lib.models import ModelSpec, load_model_and_tokenizer
    from r1lib.profiles import TINY_BASE
    from r1lib.rollout import render_prompts, rollout

    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)))
    task = ChainTask()
    examples = [task.make_example([a, b, 3]) for a, b in ((1, 2), (4, 5), (6, 7), (8, 9))]
    assert kl_to_reference(model, model, tokenizer, task, examples, k=4, max_new_tokens=24) == 0.0

    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for p in perturbed.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator) * p.abs().mean())
    estimate = kl_to_reference(perturbed, model, tokenizer, task, examples, k=16, max_new_tokens=24, seed=1)

    # The exact KL at every position the same samples visit: sum over the vocabulary of p (log p - log q).
    out = rollout(perturbed, tokenizer, render_prompts(tokenizer, [task.prompt(e) for e in examples]), 16, 24,
                  generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        batch = (out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask)
        log_p = completion_logits(perturbed, *batch).float().log_softmax(-1)
        log_q = completion_logits(model, *batch).float().log_softmax(-1)
    exact = (log_p.exp() * (log_p - log_q)).sum(-1)
    mask = out.completion_mask.float()
    exact_mean = float((exact * mask).sum() / mask.sum())
    assert exact_mean > 1e-3
    assert estimate == pytest.approx(exact_mean, rel=0.35)


def test_kl_to_reference_rejects_an_empty_set():
    from r1lib.evaluate import kl_to_reference

    with pytest.raises(ValueError, match="at least one example"):
        kl_to_reference(None, None, None, ChainTask(), [], k=4)
