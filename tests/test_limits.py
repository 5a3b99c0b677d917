"""Notebook 09's measurements (r1lib.course.limits), checked by hand on small cases."""

import pytest

from r1lib.course.limits import (PARAPHRASES, chain_length, contract_compliance, few_shot_prompt, first_pair_right,
                                 keeps_direct_contract, paraphrased_prompt, prompt_conditions, solved_in_one_shot,
                                 stats_by_group, worked_solution)
from r1lib.evaluate import EvalResult
from r1lib.tasks import ChainTask
from r1lib.tasks.search import SearchTask


def test_worked_solutions_are_the_corpus_traces_and_verify():
    chain, search = ChainTask(), SearchTask()
    e = chain.make_example([3, 5, 9, 2])
    assert worked_solution(chain, e) == "<think>3+5+9+2 so 8+9+2 so 7+2 so 9</think><answer>9</answer>"
    s = search.make_example([3, 8, 5, 1], 9)
    assert worked_solution(search, s) == ("<think>3+8=1 wait 3+5=8 wait 3+1=4 wait 8+5=3 wait 8+1=9</think>"
                                          "<answer>8+1</answer>")
    assert search.check_answer("8+1", s)


def test_a_few_shot_prompt_puts_worked_turns_before_the_question():
    chain = ChainTask()
    shots = [chain.make_example([1, 2]), chain.make_example([4, 4, 4])]
    question = chain.make_example([7, 7])
    messages = few_shot_prompt(chain, shots)(question)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == "1+2" and messages[1]["content"].endswith("<answer>3</answer>")
    assert messages[-1] == {"role": "user", "content": "7+7"}


def test_paraphrases_rewrite_only_the_question_and_unknown_ones_are_refused():
    chain = ChainTask()
    e = chain.make_example([3, 5, 9])
    assert paraphrased_prompt(chain, "spaced")(e)[-1]["content"] == "3 + 5 + 9"
    assert paraphrased_prompt(chain, "trailing =")(e)[-1]["content"] == "3+5+9="
    assert paraphrased_prompt(chain, "leading word")(e)[-1]["content"] == "sum 3+5+9"
    assert chain.prompt(e)[-1]["content"] == "3+5+9"  # the task's own prompt is untouched
    with pytest.raises(ValueError, match="unknown paraphrase"):
        paraphrased_prompt(chain, "shouted")


def test_prompt_conditions_name_every_form_and_need_enough_shots():
    chain = ChainTask()
    pool = [chain.make_example([i, 1]) for i in range(5)]
    conditions = prompt_conditions(chain, pool, shot_counts=(1, 4))
    assert list(conditions) == ["zero-shot", "1-shot", "4-shot"] + [f"paraphrase: {n}" for n in PARAPHRASES]
    assert conditions["zero-shot"] is None
    assert len(conditions["4-shot"](pool[0])) == 9
    with pytest.raises(ValueError, match="pool of at least"):
        prompt_conditions(chain, pool[:2], shot_counts=(4,))


@pytest.mark.parametrize("text, keeps", [
    ("<answer>7</answer>", True), (" <answer>7</answer>\n", True), ("<answer>8+1</answer>", True),
    ("<answer>7</answer> so", False), ("<answer><think>3+4</think>7</answer>", False), ("<answer>7", False),
    ("<think>3+4</think><answer>7</answer>", False), ("", False),
])
def test_the_bare_answer_contract(text, keeps):
    assert keeps_direct_contract(text) is keeps


def test_grouped_statistics_and_one_shot_problems_by_hand():
    chain = ChainTask()
    examples = [chain.make_example([1, 2]), chain.make_example([1, 2, 3]), chain.make_example([4, 5])]
    result = EvalResult(completions=[["<answer>3</answer>", "x"], ["a", "b"], ["<answer>9</answer>"] * 2],
                        correct=[[True, False], [False, False], [True, True]], lengths=[[4, 10], [20, 30], [4, 4]],
                        truncated=[[False, False]] * 3)
    groups = stats_by_group(result, examples, chain_length)
    assert list(groups) == [2, 3]
    assert groups[2].problems == 2 and groups[2].mean_tokens == pytest.approx(22 / 4) and groups[2].pass_at_1 == 0.75
    assert groups[3].mean_tokens == 25 and groups[3].pass_at_1 == 0.0
    assert solved_in_one_shot(result) == [2]
    assert contract_compliance(result) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="examples for a result"):
        stats_by_group(result, examples[:2], chain_length)


def test_first_pair_right_reads_the_search_order():
    search = SearchTask()
    assert first_pair_right(search)(search.make_example([3, 6, 5, 1], 9)) is True  # 3+6 = 9
    assert first_pair_right(search)(search.make_example([3, 8, 5, 1], 9)) is False
