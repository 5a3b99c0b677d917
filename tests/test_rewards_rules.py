import json
import math
import signal
import threading
import time

import pytest

from r1lib.rewards import (
    TINY_FOREIGN_WORDS,
    TINY_TARGET_WORDS,
    make_accuracy_reward,
    make_cosine_scaled_reward,
    make_kimi_length_reward,
    make_language_consistency_reward,
    make_repetition_penalty,
    make_soft_overlong_punishment,
    soft_format_reward,
    tag_count_reward,
    tiny_language_consistency_reward,
    words,
)
from r1lib.tasks import ChainTask, Example, GSM8KTask, MathTask, load_math500
from r1lib.tasks import mathcheck
from r1lib.tasks.gsm8k import parse_final_number
from r1lib.tasks.mathcheck import math_answers_equal, may_explode, time_limit
from r1lib.tiny.tokenizer import CONNECTORS_EN, CONNECTORS_ES


def nones(n):
    return [None] * n


# ----------------------------------------------------------------------------- format


def test_soft_format_and_tag_count():
    completions = [
        "<think>1+2 so 3</think><answer>3</answer>",  # strict
        "well <answer>3</answer> and more",  # an answer block, not strict
        "<answer>1</answer><answer>2</answer>",  # answer twice: not strict, still has a block
        "<think><think>x</think><answer>3</answer>",  # <think> twice
        "<answer>3",  # unclosed
        "",
    ]
    assert soft_format_reward(nones(6), completions) == [1.0, 0.5, 0.5, 0.5, 0.0, 0.0]
    assert tag_count_reward(nones(6), completions) == [1.0, 0.5, 0.0, 0.75, 0.25, 0.0]
    assert soft_format_reward.__name__ == "soft_format_reward" and tag_count_reward.__name__ == "tag_count_reward"


# ----------------------------------------------------------------------------- language consistency


def test_tiny_language_words_match_the_tokenizer_connectors():
    assert TINY_TARGET_WORDS == {w.strip() for w in CONNECTORS_EN.values()}
    assert TINY_FOREIGN_WORDS == {w.strip() for w in CONNECTORS_ES.values()}


def test_words_split_on_every_non_letter():
    assert words("3+5 so8 Wait,espera_luego déjà-vu") == ["so", "wait", "espera", "luego", "déjà", "vu"]


def test_tiny_language_consistency_on_english_spanish_and_mixed_reasoning():
    completions = [
        "<think>1+2+3 so 3+3 so 6 wait 6</think><answer>6</answer>",  # English only
        "<think>1+2+3 luego 3+3 luego 6</think><answer>6</answer>",  # Spanish only
        "<think>1+2+3 so 3+3 luego 6 wait 6</think><answer>6</answer>",  # 2 of 3 English
        "1+2 so 3 luego 3",  # no think block: the whole completion is the reasoning
        "<think>SO 3 Espera 3</think>",  # case does not matter
        "<think>so</think><answer>luego luego</answer>",  # words after the reasoning do not count
        "<think>1+2</think><answer>3</answer>",  # no language words at all
    ]
    scores = tiny_language_consistency_reward(nones(7), completions)
    assert scores == [1.0, 0.0, pytest.approx(2 / 3), 0.5, 0.5, 1.0, None]
    assert tiny_language_consistency_reward.__name__ == "language_consistency"


def test_language_consistency_counts_every_word_without_a_foreign_vocabulary():
    reward = make_language_consistency_reward({"the", "answer", "is"}, name="english")
    scores = reward(nones(3), ["<think>The answer is el numero 42</think>", "<think>42 + 1</think>", "el"])
    assert scores == [pytest.approx(3 / 5), None, 0.0]
    assert reward.__name__ == "english"
    with pytest.raises(ValueError, match="both languages"):
        make_language_consistency_reward({"so"}, {"so", "luego"})
    with pytest.raises(ValueError, match="empty"):
        make_language_consistency_reward(set())


# ----------------------------------------------------------------------------- length-aware rewards

RIGHT, WRONG = "<answer>7</answer>", "<answer>6</answer>"  # 18 characters each; the chain answer is 7


def test_cosine_scaled_reward_by_hand():
    reward = make_cosine_scaled_reward(ChainTask(), max_len=36)
    completions = [RIGHT, WRONG, RIGHT + " " * 18, WRONG + " " * 18, RIGHT + " " * 100, "<answer>7"]
    scores = reward(nones(6), completions, answer=["7"] * 6)
    # length 18 of 36: cos(pi/2) = 0, halfway between the bounds
    assert scores[0] == pytest.approx(0.75) and scores[1] == pytest.approx(-0.75)
    # length 36 and beyond: the long end of each range
    assert scores[2] == pytest.approx(0.5) and scores[3] == pytest.approx(-0.5) and scores[4] == pytest.approx(0.5)
    # no closed answer tag, 9 characters: wrong, t = 1/4
    assert scores[5] == pytest.approx(-0.5 - 0.25 * (1 + math.sqrt(2) / 2))
    third = make_cosine_scaled_reward(ChainTask(), max_len=54)(nones(2), [RIGHT, WRONG], answer=["7", "7"])
    assert third == [pytest.approx(0.875), pytest.approx(-0.875)]  # t = 1/3, cos = 1/2
    assert reward.__name__ == "cosine_scaled"


def test_cosine_scaled_reward_counts_tokens_with_a_tokenizer(tiny_tokenizer):
    # Tags are single tokens in the tiny tokenizer: "<answer>7</answer>" is 3 tokens.
    reward = make_cosine_scaled_reward(ChainTask(), max_len=6, tokenizer=tiny_tokenizer)
    assert reward(nones(1), [RIGHT], answer=["7"]) == [pytest.approx(0.75)]


def test_cosine_scaled_reward_validates():
    with pytest.raises(ValueError, match="max_len"):
        make_cosine_scaled_reward(ChainTask(), max_len=0)
    with pytest.raises(ValueError, match="min_value_wrong"):
        make_cosine_scaled_reward(ChainTask(), min_value_wrong=0.0, max_value_wrong=-1.0)


def test_kimi_length_reward_groups_by_prompt():
    reward = make_kimi_length_reward(ChainTask())
    conversation = [{"role": "user", "content": "2+3"}]
    prompts = ["3+4", conversation, "3+4", conversation, "3+4", "1+1", "1+1"]
    completions = [
        RIGHT,  # 18, correct: shortest of its group
        "<answer>4</answer>",  # 18, wrong: shortest, but wrong answers are never rewarded
        RIGHT + " " * 10,  # 28, correct: the middle of 18..38
        "<answer>5</answer>  ",  # 20, correct: the longest of its group
        WRONG + " " * 20,  # 38, wrong: the longest
        "<answer>2</answer>",  # equal lengths: 0 for both
        "<answer>3</answer>",
    ]
    answers = ["7", "5", "7", "5", "7", "2", "2"]
    assert reward(prompts, completions, answer=answers) == [0.5, 0.0, 0.0, -0.5, -0.5, 0.0, 0.0]
    assert reward.__name__ == "kimi_length"


def test_soft_overlong_punishment_by_hand(tiny_tokenizer):
    reward = make_soft_overlong_punishment(max_completion_length=100, soft_cache_length=20)
    lengths = [0, 80, 90, 95, 100, 101, 10_000]
    assert reward(nones(7), ["x" * n for n in lengths]) == [0.0, 0.0, -0.5, -0.75, -1.0, -1.0, -1.0]
    by_tokens = make_soft_overlong_punishment(4, 2, tokenizer=tiny_tokenizer)
    assert by_tokens(nones(2), ["<think></think>", "<think></think><answer>1</answer>"]) == [0.0, -1.0]
    assert reward.__name__ == "soft_overlong_punishment"
    with pytest.raises(ValueError, match="soft_cache_length"):
        make_soft_overlong_punishment(10, 20)


def test_repetition_penalty_by_hand():
    bigrams = make_repetition_penalty(ngram_size=2, max_penalty=-1.0)
    # "a b a b a b": 5 bigrams, 2 distinct -> 1 - 2/5 = 0.6
    assert bigrams(nones(4), ["a b a b a b", "a b c d", "a", ""]) == [pytest.approx(-0.6), 0.0, 0.0, 0.0]
    half = make_repetition_penalty(ngram_size=2, max_penalty=-0.5)
    assert half(nones(1), ["A a A a"]) == [pytest.approx(-0.5 * 2 / 3)]  # case-insensitive, 1 of 3 distinct
    trigrams = make_repetition_penalty()
    assert trigrams(nones(1), ["so so so so so"]) == [pytest.approx(-2 / 3)]
    assert trigrams.__name__ == "repetition_penalty"
    with pytest.raises(ValueError, match="max_penalty"):
        make_repetition_penalty(max_penalty=0.5)


def test_a_failing_check_voids_only_its_own_score():
    class Flaky:
        name = "flaky"

        def check_answer(self, answer, example):
            if answer == "boom":
                raise RuntimeError("checker bug")
            return answer == example.answer

    reward = make_kimi_length_reward(Flaky())
    # lengths 18, 21, 21: the broken completion still takes part in the group's length range
    scores = reward(["p", "p", "p"], [RIGHT, "<answer>boom</answer>", WRONG + "   "], answer=["7"] * 3)
    assert scores == [0.5, None, -0.5]


# ----------------------------------------------------------------------------- maths


@pytest.mark.parametrize(
    "predicted", ["\\boxed{\\frac{1}{2}}", "0.5", "1/2", "$\\frac{1}{2}$", "\\frac12", "\\dfrac{1}{2}"]
)
def test_math_task_accepts_equivalent_forms(predicted):
    assert MathTask().check_answer(predicted, Example("q", "\\frac{1}{2}"))


@pytest.mark.parametrize("predicted", ["\\boxed{\\frac{1}{3}}", "0.4", "2", "", "   ", "no idea", "1/2" + " " * 5000])
def test_math_task_rejects_wrong_or_oversized_answers(predicted):
    assert not MathTask().check_answer(predicted, Example("q", "\\frac{1}{2}"))


def test_math_task_symbolic_answers():
    task = MathTask()
    assert task.check_answer("p-q", Example("q", "p - q"))
    assert not task.check_answer("q-p", Example("q", "p - q"))
    assert task.check_answer("(3, \\frac{\\pi}{2})", Example("q", "\\left( 3, \\frac{\\pi}{2} \\right)"))


@pytest.mark.parametrize(
    ("text", "explodes"),
    [
        ("9^{9^{9^{9}}}", True), ("9**9**9**9", True), ("9^9^9", True), ("(10^{99})^{9999}", True),
        ("2^{123456}", True), ("2^{9999 \\cdot 9999}", True), ("100000!", True), ("(2^{10})!", True),
        ("\\binom{1000}{500}", True), ("1" * 101, True), ("3!!", True), ("10^\\frac{10^{99}}{1}", True),
        ("\\Gamma(10^{99})", True), ("2**3**4", True),
        ("2^{10}", False), ("x^2 + y^2", False), ("(x^2+1)", False), ("10!", False), ("1.5 \\times 10^{12}", False),
        ("\\frac{14}{3}", False), ("e^{i\\pi}", False), ("a != b", False),
    ],
)
def test_may_explode(text, explodes):
    assert may_explode(text) is explodes


def test_power_towers_are_refused_without_evaluation():
    start = time.perf_counter()
    assert not math_answers_equal("9^{9^{9^{9}}}", "3")
    assert not math_answers_equal("9**9**9**9", "3")
    assert math_answers_equal("9^{9^{9^{9}}}", "9^{9^{9^{9}}}")  # compared as strings instead
    assert time.perf_counter() - start < 1.0


def test_math_check_is_time_bounded_and_restores_an_outer_timer(monkeypatch):
    monkeypatch.setattr(mathcheck, "_equal_unbounded", lambda predicted, gold: time.sleep(5))
    fired = []

    def outer_handler(*_):
        fired.append(True)

    saved_handler = signal.signal(signal.SIGALRM, outer_handler)
    saved_timer = signal.setitimer(signal.ITIMER_REAL, 30)  # e.g. pytest-timeout's own alarm
    try:
        start = time.perf_counter()
        assert not math_answers_equal("1", "1", timeout_s=0.2)
        assert time.perf_counter() - start < 2.0
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30 and not fired
        assert signal.getsignal(signal.SIGALRM) is outer_handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, *saved_timer)
        signal.signal(signal.SIGALRM, saved_handler)


def test_time_limit_leaves_a_sooner_outer_timer_alone():
    saved_handler = signal.signal(signal.SIGALRM, lambda *_: None)
    saved_timer = signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with time_limit(5.0) as armed:
            assert not armed
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.5
    finally:
        signal.setitimer(signal.ITIMER_REAL, *saved_timer)
        signal.signal(signal.SIGALRM, saved_handler)


def test_math_check_works_outside_the_main_thread():
    results = []
    worker = threading.Thread(target=lambda: results.extend([math_answers_equal("0.5", "\\frac{1}{2}"),
                                                             math_answers_equal("0.4", "\\frac{1}{2}")]))
    worker.start()
    worker.join(timeout=60)
    assert results == [True, False]


def test_load_math500_from_local_jsonl_and_reward(tmp_path):
    rows = [
        {"problem": "What is $1 \\div 2$?", "solution": "It is $\\boxed{\\frac{1}{2}}$.", "answer": "\\frac{1}{2}",
         "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
        {"problem": "Factor $x^2-1$.", "solution": "...", "answer": "(x-1)(x+1)",
         "subject": "Algebra", "level": 2, "unique_id": "test/algebra/2.json"},
    ]
    path = tmp_path / "math500.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = load_math500(path=path)
    assert [e.answer for e in examples] == ["\\frac{1}{2}", "(x-1)(x+1)"]
    assert examples[0].info == {"solution": rows[0]["solution"], "subject": "Prealgebra", "level": 1,
                                "unique_id": "test/prealgebra/1.json"}
    assert len(load_math500(path=path, limit=1)) == 1
    accuracy = make_accuracy_reward(MathTask(), name="math_accuracy")
    completions = ["<think>half</think><answer>0.5</answer>", "<answer>\\boxed{x^2-1}</answer>",
                   "<answer>(x+1)(x-1)</answer>", "0.5"]
    golds = [examples[0].answer, examples[1].answer, examples[1].answer, examples[0].answer]
    assert accuracy(nones(4), completions, answer=golds) == [1.0, 1.0, 1.0, 0.0]
    assert MathTask().prompt(examples[0])[1]["content"] == rows[0]["problem"]


def test_load_math500_reports_a_bad_record(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem": "no answer here"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_math500(path=path)
    with pytest.raises(ValueError, match="timeout_s"):
        MathTask(timeout_s=0)


# ----------------------------------------------------------------------------- GSM8K


def test_gsm8k_hash_marker():
    task, example = GSM8KTask(), Example("q", "72")
    assert task.check_answer("#### 72", example)
    assert task.check_answer("#### 72 apples, from 8 boxes of 9", example)  # the number after the marker
    worked = "She sold 48 clips in April and half as many in May. " * 10 + "48 + 24 = 72\n#### 72"
    assert len(worked) > 200 and task.check_answer(worked, example)  # long, but the marker line is short
    assert not task.check_answer("#### 71", example)
    assert not task.check_answer("#### none", example)
    assert task.check_answer("72", Example("q", "48/2 = 24\n#### 72"))  # a full reference solution works too
    assert parse_final_number("#### 1,234.5") == 1234.5 and parse_final_number("so 3\n#### -4\nthanks") == -4.0
    accuracy = make_accuracy_reward(task)
    scores = accuracy(nones(2), ["<answer>#### 72</answer>", "<answer>#### 7</answer>"], answer=["72", "72"])
    assert scores == [1.0, 0.0]


def test_length_rewards_count_the_completion_ids_a_trainer_passes():
    class NoTokenizing:
        def encode(self, *args, **kwargs):
            raise AssertionError("the completion was tokenised again")

    ids = [[5] * 4, [5] * 10]  # token counts differ from the character counts of the texts
    texts = ["<answer>7</answer>", "<answer>7</answer>"]
    overlong = make_soft_overlong_punishment(8, 4, tokenizer=NoTokenizing())
    assert overlong(nones(2), texts, completion_ids=ids) == [0.0, -1.0]
    cosine = make_cosine_scaled_reward(ChainTask(), max_len=8, unit="tokens")
    assert cosine(nones(2), texts, answer=["7", "7"], completion_ids=ids) == [pytest.approx(1.0 - 0.5 * 0.5), 0.5]
    kimi = make_kimi_length_reward(ChainTask(), unit="tokens")
    assert kimi(["p", "p"], texts, answer=["7", "7"], completion_ids=ids) == [0.5, -0.5]
    repetition = make_repetition_penalty(ngram_size=2, tokenizer=NoTokenizing())
    assert repetition(nones(1), ["a b"], completion_ids=[[1, 2, 1, 2, 1]]) == [pytest.approx(-0.5)]
    # Counting tokens with neither ids nor a tokenizer cannot be done: that row is unscored.
    assert make_soft_overlong_punishment(8, 4, unit="tokens")(nones(1), texts[:1]) == [None]
    with pytest.raises(ValueError, match="unit"):
        make_soft_overlong_punishment(8, 4, unit="words")
