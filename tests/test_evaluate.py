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
