import math

import pytest

from r1lib.format import extract_answer, extract_reasoning, is_strict_format
from r1lib.rewards import combine_rewards, format_reward, make_accuracy_reward
from r1lib.tasks import ChainTask


@pytest.mark.parametrize(
    ("text", "strict"),
    [
        ("<think>1+2 so 3</think><answer>3</answer>", True),
        ("<answer>3</answer>", True),
        ("  <think>x</think>\n<answer>3</answer>\n", True),
        ("<think>x</think>", False),
        ("<answer>3</answer><answer>4</answer>", False),
        ("hello <answer>3</answer>", False),
        ("<think>a<think>b</think></think><answer>3</answer>", False),
        ("<answer>3</answer> trailing", False),
        ("</think><answer>3</answer>", False),
    ],
)
def test_strict_format(text, strict):
    assert is_strict_format(text) is strict


def test_extraction_takes_last_answer_and_first_think():
    assert extract_answer("<answer>1</answer> then <answer> 2 </answer>") == "2"
    assert extract_answer("<answer>unclosed") is None
    assert extract_reasoning("<think>a</think><think>b</think>") == "a"


def test_accuracy_and_format_rewards_on_crafted_completions():
    accuracy = make_accuracy_reward(ChainTask())
    completions = [
        "<think>3+4 so 7</think><answer>7</answer>",  # right, well formed
        "<answer>7</answer> extra",  # right, badly formed
        "<answer>6</answer>",  # wrong
        "7",  # no tag
        [{"role": "assistant", "content": "<answer>7</answer>"}],  # conversational form
    ]
    answers = ["7"] * len(completions)
    assert accuracy([None] * 5, completions, answer=answers) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert format_reward([None] * 5, completions) == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert accuracy.__name__ == "accuracy"


def test_a_broken_reward_yields_none_per_completion_not_an_exception():
    accuracy = make_accuracy_reward(ChainTask())
    # The answer column is one short: the reward cannot zip it, yet it must not raise.
    scores = accuracy([None, None], ["<answer>1</answer>", "<answer>2</answer>"], answer=["1"])
    assert scores == [None, None]  # which answer belongs to which completion is unknown: no score, not a guess


def test_combine_rewards_weights_and_none():
    combined = combine_rewards([[1.0, None, 0.0], [1.0, 1.0, None]], weights=[2.0, 0.5])
    assert combined == [2.5, 0.5, 0.0]
    assert combine_rewards([[None, math.nan]]) == [0.0, 0.0]
    with pytest.raises(ValueError, match="weights"):
        combine_rewards([[1.0]], weights=[1.0, 2.0])


def test_a_failing_reward_without_prompts_still_returns_one_score_per_completion():
    from r1lib.rewards import never_raises

    @never_raises
    def picky(prompts, completions, **columns):
        if any("bad" in c for c in completions):
            raise RuntimeError("cannot score")
        return [1.0] * len(completions)

    assert picky(None, ["good", "bad", "fine"]) == [1.0, None, 1.0]
