"""Multi-stage R1's measures: prompts in two languages, the language-consistency reward read from the
prompt, the gold judge of general replies, the cold start and stage-3 filters in the prompt's
language, the pipeline's table helpers and the reward-hacking study's arms and gold probe.

Every expected value below is worked out by hand from the rules (comments say how), never copied
from a run."""

from __future__ import annotations

import copy
import itertools
import json
import math
import pickle
import random
import statistics
import string
import time
from dataclasses import FrozenInstanceError, replace
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1lib.cold_start import TRANSLATIONS, rewrite_readable, single_language
from r1lib.configs import GRPOConfig, SFTConfig
from r1lib.course.reward_hacking import (ARMS, DPO_ARM, PAPER_PREFERENCE_SHARE, Arm, GoldProbe, arm_config, read_curve,
                                        training_requests)
from r1lib.evaluate import EvalResult
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.pipeline import (
    TABLE_COLUMNS,
    PipelineConfig,
    general_quality,
    gold_per_request,
    language_consistency,
    paired_difference,
    relative_gains,
    tiny_pipeline_config,
    variant,
)
from r1lib.rejection import rejection_checks, sample_groups
from r1lib.rewards import (
    TINY_FOREIGN_WORDS,
    TINY_TARGET_WORDS,
    make_prompt_language_consistency_reward,
    tiny_language_consistency_reward,
)
from r1lib.tasks import ChainTask, Example
from r1lib.tasks.bilingual import (
    FIRST_LANGUAGE,
    LANGUAGES,
    SECOND_LANGUAGE,
    BilingualTask,
    example_language,
    pose,
    pose_in_languages,
    prompt_language,
)
from r1lib.tasks.general import NAMES, OFF_TOPIC, REJECTION_KINDS, REQUESTS, VERDICTS, WORDS, GeneralTask
from r1lib.tiny.tokenizer import CONNECTORS_EN, CONNECTORS_ES

EN, ES = "en", "es"
CHAIN = ChainTask()
BILINGUAL = BilingualTask(CHAIN)
MARKER = {"role": "system", "content": "es"}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def posed(terms: list[int], language: str) -> Example:
    return pose(CHAIN.make_example(terms), language)


# ============================================================================ r1lib/tasks/bilingual.py


def test_the_two_languages_are_english_then_spanish():
    assert (FIRST_LANGUAGE, SECOND_LANGUAGE) == LANGUAGES == (EN, ES)


def test_pose_records_the_language_without_touching_the_original():
    original = CHAIN.make_example([3, 5, 9])
    spanish = pose(original, ES)
    assert (spanish.question, spanish.answer) == ("3+5+9", "7")  # 3+5+9 = 17, mod 10
    assert spanish.info == {"terms": [3, 5, 9], "language": ES}
    assert original.info == {"terms": [3, 5, 9]}  # not mutated
    assert pose(spanish, EN).info == {"terms": [3, 5, 9], "language": EN}  # re-posing replaces the language
    for bad in ("fr", "ES", "", None):
        with pytest.raises(ValueError, match="language must be one of"):
            pose(original, bad)


def test_example_language_defaults_to_the_first():
    plain = CHAIN.make_example([1, 2])
    assert example_language(plain) == EN
    assert example_language(pose(plain, ES)) == ES
    assert example_language(pose(plain, EN)) == EN


def test_pose_in_languages_shares_seeds_and_bad_shares():
    examples = CHAIN.generate(400, seed=3)
    none = pose_in_languages(examples, 0.0, seed=1)
    every = pose_in_languages(examples, 1.0, seed=1)
    assert [example_language(e) for e in none] == [EN] * 400
    assert [example_language(e) for e in every] == [ES] * 400
    # Order, questions, answers and the task's own info are kept; only the language is added.
    assert [(e.question, e.answer, e.info["terms"]) for e in every] == [(e.question, e.answer, e.info["terms"])
                                                                        for e in examples]
    assert all("language" not in e.info for e in examples)

    first = [example_language(e) for e in pose_in_languages(examples, 0.3, seed=7)]
    assert first == [example_language(e) for e in pose_in_languages(examples, 0.3, seed=7)]  # reproducible
    assert first != [example_language(e) for e in pose_in_languages(examples, 0.3, seed=8)]  # 2^-400-ish to collide
    # Binomial(400, 0.3): mean 120, sd ~9.2; 80..160 is more than 4 sd either way.
    assert 80 < first.count(ES) < 160
    assert pose_in_languages([], 0.5, seed=0) == []
    for bad in (-0.01, 1.01, math.nan, math.inf):
        with pytest.raises(ValueError, match="second_share"):
            pose_in_languages(examples, bad, seed=0)


@pytest.mark.parametrize("prompt", [
    [MARKER, {"role": "user", "content": "3+4"}],
    [{"role": "system", "content": "es"}],
    [{"role": "user", "content": "3+4"}, {"role": "system", "content": "es", "extra": 1}],
])
def test_prompt_language_finds_the_second_language_system_message(prompt):
    assert prompt_language(prompt) == ES


@pytest.mark.parametrize("prompt", [
    "es",  # a plain string is in the first language
    "es<|user|>3+4<|assistant|>",  # even a rendered one
    None,
    [],
    ["es"],
    [None, 3, "x", ["es"]],
    [[MARKER]],  # nested one level too deep
    [{"content": "es"}],  # a dict without a role
    [{"role": "user", "content": "es"}],  # the marker must be a system message
    [{"role": "system", "content": "en"}],
    [{"role": "system"}],
    [{"role": "system", "content": ["es"]}],
    [{"role": "system", "content": None}],
    {"role": "system", "content": "es"},  # a dict, not a list of messages
    42,
    user("3+4"),
])
def test_prompt_language_is_the_first_for_anything_else(prompt):
    assert prompt_language(prompt) == EN


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
    | st.sampled_from(["es", "en", "system", "user", "role", "content"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "name"]) | st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(json_like)
def test_prompt_language_never_raises_and_names_a_known_language(prompt):
    assert prompt_language(prompt) in LANGUAGES


class _Inner:
    """A stand-in task that records what it is asked, to show BilingualTask delegates."""

    name = "inner"

    def __init__(self):
        self.calls = []

    def prompt(self, example):
        return user(example.question)

    def check_answer(self, answer, example):
        self.calls.append((answer, example.question))
        return answer == "sentinel"

    def helper(self, x):
        return ("helper", x)


def test_bilingual_prompt_puts_the_marker_before_the_user_turn_only_in_the_second_language():
    assert BILINGUAL.prompt(posed([3, 4], ES)) == [MARKER, {"role": "user", "content": "3+4"}]
    assert BILINGUAL.prompt(posed([3, 4], EN)) == CHAIN.prompt(CHAIN.make_example([3, 4])) == user("3+4")
    assert BILINGUAL.prompt(CHAIN.make_example([3, 4])) == user("3+4")  # never posed: the first language
    general = BilingualTask(GeneralTask())
    request = pose(GeneralTask().make_example("greet", "Ana"), ES)
    assert general.prompt(request) == [MARKER, {"role": "user", "content": "greet Ana"}]
    # The prompt reads back as its own language.
    for language in LANGUAGES:
        assert prompt_language(BILINGUAL.prompt(posed([1, 2, 3], language))) == language


def test_bilingual_task_delegates_checking_and_attributes():
    inner = _Inner()
    task = BilingualTask(inner)
    example = pose(Example("q", "a"), ES)
    assert task.check_answer("sentinel", example) is True
    assert task.check_answer("other", example) is False
    assert inner.calls == [("sentinel", "q"), ("other", "q")]
    assert task.name == "inner" and BILINGUAL.name == "chain"
    assert task.helper(5) == ("helper", 5)
    assert BILINGUAL.solution_steps(CHAIN.make_example([3, 5, 9])) == ["3+5+9", "8+9", "7"]
    assert BILINGUAL.make_example([2, 2]).answer == "4"
    assert BILINGUAL.check_answer(" 7 ", posed([3, 5, 9], ES)) and not BILINGUAL.check_answer("6", posed([3, 5, 9], ES))
    with pytest.raises(AttributeError, match="no_such_helper"):
        BILINGUAL.no_such_helper  # noqa: B018
    with pytest.raises(AttributeError):
        BILINGUAL.__no_such_dunder__  # noqa: B018 (dunders are not forwarded)
    with pytest.raises(FrozenInstanceError):
        BILINGUAL.inner = GeneralTask()


def test_bilingual_task_copies_and_pickles_without_recursing():
    # What copy and pickle see: an instance whose ``inner`` is not set yet. Asking it for anything
    # must be a plain AttributeError, not a RecursionError through __getattr__.
    blank = BilingualTask.__new__(BilingualTask)
    with pytest.raises(AttributeError):
        blank.solution_steps  # noqa: B018
    with pytest.raises(AttributeError):
        blank.inner  # noqa: B018
    for task in (BILINGUAL, BilingualTask(GeneralTask()), BilingualTask(ChainTask(min_terms=3, max_terms=4))):
        for clone in (copy.deepcopy(task), copy.copy(task), pickle.loads(pickle.dumps(task))):
            assert clone == task and type(clone) is BilingualTask and clone.inner == task.inner
            assert clone.prompt(posed([3, 4], ES))[0] == MARKER


# ============================================================================ r1lib/rewards.py


def think(reasoning: str, answer: str = "7") -> str:
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


EN_PROMPT = user("3+5+9")
ES_PROMPT = [MARKER, *user("3+5+9")]


def test_tiny_reward_reads_the_target_from_the_prompt():
    reward = tiny_language_consistency_reward
    # English prompt: "so" in, "luego" out: 1 of 2 language words.
    assert reward([EN_PROMPT], [think("3+5+9 so 8+9 luego 7")]) == [0.5]
    # Spanish prompt: "luego", "luego" in, "so" out: 2 of 3.
    assert reward([ES_PROMPT], [think("3+5+9 luego 8+9 luego 7 so 7")]) == [2 / 3]
    # The same reasoning under the other prompt gets the complement.
    assert reward([EN_PROMPT], [think("3+5+9 luego 8+9 luego 7 so 7")]) == [1 / 3]
    # No language word (digits, "+", other words are neutral): does not apply.
    assert reward([EN_PROMPT, ES_PROMPT], [think("3+5+9 is 8+9 then 7"), think("")]) == [None, None]
    # Only the <think> block counts when there is one; the whole text when there is none.
    assert reward([ES_PROMPT], ["<think>luego</think> so so so<answer>7</answer>"]) == [1.0]
    assert reward([ES_PROMPT], ["so so luego espera"]) == [0.5]
    # Case-insensitive, whole words only ("soon", "also" are not "so"), wait/espera count as well.
    assert reward([EN_PROMPT], [think("SO soon also Wait ESPERA")]) == [2 / 3]
    # Conversational completions, and a batch mixing languages.
    conversational = [{"role": "assistant", "content": think("luego wait")}]
    assert reward([ES_PROMPT, EN_PROMPT], [conversational, conversational]) == [0.5, 0.5]
    assert reward([ES_PROMPT, EN_PROMPT, "a plain string prompt"], [think("espera luego")] * 3) == [1.0, 0.0, 0.0]
    assert reward.__name__ == "language_consistency"


def test_tiny_reward_matches_the_tiny_tokenizer_connectors():
    assert TINY_TARGET_WORDS == {w.strip() for w in CONNECTORS_EN.values()}
    assert TINY_FOREIGN_WORDS == {w.strip() for w in CONNECTORS_ES.values()}


def test_prompt_reward_with_its_own_languages_and_an_unknown_one():
    reward = make_prompt_language_consistency_reward(
        {"en": {"so", "Then"}, "fr": {"donc", "alors"}, "de": {"also"}}, language_of=lambda prompt: prompt,
        name="three_languages")
    assert reward.__name__ == "three_languages"
    text = think("so then donc also 3+4")  # en: so, then; fr: donc; de: also (4 language words)
    assert reward(["en", "fr", "de"], [text] * 3) == [2 / 4, 1 / 4, 1 / 4]
    assert reward(["it", None, "EN"], [text] * 3) == [None, None, None]  # languages it has no words for
    assert reward(["fr"], [think("nothing here")]) == [None]


def test_prompt_reward_validates_its_vocabularies():
    make = make_prompt_language_consistency_reward
    with pytest.raises(ValueError, match="at least two languages"):
        make({"en": {"so"}})
    with pytest.raises(ValueError, match="at least two languages"):
        make({})
    with pytest.raises(ValueError, match="at least one word"):
        make({"en": {"so"}, "es": set()})
    with pytest.raises(ValueError, match="two languages"):
        make({"en": {"so", "wait"}, "es": {"luego", "wait"}})
    with pytest.raises(ValueError, match="two languages"):
        make({"en": {"So"}, "es": {"so"}})  # the same word once lower-cased


reward_prompts = st.one_of(st.sampled_from([EN_PROMPT, ES_PROMPT, "p", None]), json_like)
reward_texts = st.lists(
    st.one_of(st.sampled_from([" so ", " luego ", " wait ", " espera ", "<think>", "</think>", "So", "9", "\x00",
                               "\ud800", "<answer>", "é"]), st.text(max_size=10)),
    max_size=30).map("".join)
reward_completions = st.one_of(reward_texts, reward_texts.map(lambda t: [{"role": "assistant", "content": t}]),
                               json_like)


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(reward_prompts, reward_completions), min_size=1, max_size=6))
def test_tiny_reward_is_bounded_and_never_raises(rows):
    prompts, completions = [p for p, _ in rows], [c for _, c in rows]
    scores = tiny_language_consistency_reward(prompts, completions)
    assert len(scores) == len(rows)
    for score in scores:
        assert score is None or (isinstance(score, float) and 0.0 <= score <= 1.0)


@PROPERTY_SETTINGS
@given(reward_completions)
def test_tiny_reward_scores_of_the_two_languages_add_up_to_one(completion):
    # Every language word is in exactly one of the two vocabularies, so the two targets split the words.
    en, es = tiny_language_consistency_reward([EN_PROMPT, ES_PROMPT], [completion, completion])
    assert (en is None) == (es is None)
    if en is not None:
        assert en + es == pytest.approx(1.0)


# ============================================================================ r1lib/tasks/general.py

GENERAL = GeneralTask()


def request(kind: str, subject: str) -> Example:
    return GENERAL.make_example(kind, subject)


def test_every_preferred_form_is_acceptable_for_every_request():
    examples = GENERAL.all_examples()
    assert len(examples) == 3 * len(NAMES) + len(WORDS)
    for example in examples:
        forms = GENERAL.preferred_forms(example)
        assert len(forms) == 3 and forms[0] == example.answer
        for form in forms:
            assert GENERAL.judge(form, example) == "acceptable"
            assert GENERAL.judge(f"  {form}\n", example) == "acceptable"  # surrounding blanks do not matter


@pytest.mark.parametrize("kind", REJECTION_KINDS)
def test_each_rejection_kind_gets_its_own_verdict(kind):
    # Every request, 25 seeds each: the gold judge names exactly the flaw the generator put in.
    for example in GENERAL.all_examples():
        for seed in range(25):
            reply = GENERAL.rejected_reply(example, random.Random(seed), kind)
            assert GENERAL.judge(reply, example) == kind, (example.question, reply)


def test_off_topic_sentences_stay_off_topic_even_with_a_pool_word():
    # "Fish can not fly." names a word of the repeat pool, and "The sky is green today." too: a known
    # off-topic sentence is off topic, not a wrong subject, nor a malformed reply about the subject.
    assert GENERAL.judge("Fish can not fly.", request("repeat", "cat")) == "off_topic"
    assert GENERAL.judge("Fish can not fly.", request("repeat", "fish")) == "off_topic"
    assert GENERAL.judge("The sky is green today.", request("repeat", "green")) == "off_topic"
    assert GENERAL.judge("The sky is green today.", request("repeat", "blue")) == "off_topic"
    for sentence in OFF_TOPIC:
        for example in (request("greet", "Ana"), request("repeat", "milk")):
            assert GENERAL.judge(sentence, example) == "off_topic"


def test_the_hacks_seen_in_real_runs():
    # "go away" is a rude marker; the rude check comes before the wrong-subject check (Gus is not Flo).
    assert GENERAL.judge("Go away, Gus. Welcome!", request("greet", "Flo")) == "rude"
    # A preferred goodbye, to Pia instead of Nia: another name of the pool.
    assert GENERAL.judge("Goodbye Pia, see you soon!", request("goodbye", "Nia")) == "wrong_subject"
    # Words: good, day, see, yo, see, you. "see" occurs twice (repetitive needs 3) and never twice in a
    # row, so not repetitive; not an OFF_TOPIC sentence, no rude marker, no pool name, no prefix of a
    # preferred form; and "max" is not among its words: off topic.
    assert GENERAL.judge("Good day,,,see yo!!!see you!!!", request("greet", "Max")) == "off_topic"
    # Polite, about Flo, but a blend of the greet and goodbye templates.
    assert GENERAL.judge("Hello Flo, see you soon!", request("greet", "Flo")) == "malformed"


def test_judge_rules_in_order():
    greet_ana = request("greet", "Ana")
    for blank in ("", "   ", "\n\t"):
        assert GENERAL.judge(blank, greet_ana) == "empty"
    assert GENERAL.judge("Hello hello Ana", greet_ana) == "repetitive"  # the same word twice in a row (case-blind)
    assert GENERAL.judge("Ana, hi Ana, bye Ana", greet_ana) == "repetitive"  # three times
    assert GENERAL.judge("Ugh. Hello Ana, nice to meet you!", greet_ana) == "rude"
    assert GENERAL.judge("Hello Bo, nice to meet you!", greet_ana) == "wrong_subject"
    assert GENERAL.judge("Hello Ana, nice", greet_ana) == "truncated"
    assert GENERAL.judge("Hello", greet_ana) == "truncated"  # a prefix, even without the name
    assert GENERAL.judge("Hello there, friend", greet_ana) == "off_topic"  # never names Ana
    assert GENERAL.judge("Hello Ana!!", greet_ana) == "malformed"
    assert GENERAL.judge("blue", request("repeat", "red")) == "wrong_subject"
    assert GENERAL.judge("Sure! red", request("repeat", "red")) == "acceptable"
    assert set(VERDICTS) == {"acceptable", "malformed"} | set(REJECTION_KINDS)
    assert set(REQUESTS) == {"greet", "thank", "goodbye", "repeat"}


@pytest.mark.parametrize("reply", [
    "a " * 50_000,
    "Hello Flo, " * 9_091,
    "x" * 100_000,
    "Hello Flo! " + "nice to meet you! " * 5_555,
    "".join(random.Random(0).choice(string.ascii_letters + " ,.!") for _ in range(100_000)),
], ids=["one-letter-words", "looping-greeting", "one-long-word", "looping-tail", "random-letters"])
def test_judge_is_fast_on_a_100k_character_reply(reply):
    assert len(reply) >= 99_990
    start = time.perf_counter()
    GENERAL.judge(reply, request("greet", "Flo"))
    assert time.perf_counter() - start < 0.5


def _distinct_words(characters: int) -> str:
    words = ("".join(letters) for letters in itertools.product(string.ascii_lowercase, repeat=4))
    return " ".join(itertools.islice(words, characters // 5 + 1))[:characters]


def test_judge_is_fast_on_a_100k_character_reply_of_distinct_words():
    reply = _distinct_words(100_000)
    assert len(reply) == 100_000 and len(set(reply.split())) == len(reply.split())  # no word repeats
    start = time.perf_counter()
    GENERAL.judge(reply, request("greet", "Flo"))
    assert time.perf_counter() - start < 0.5


# ============================================================================ r1lib/cold_start.py


def test_translations_are_the_tiny_connectors_and_each_others_inverse():
    assert set(TRANSLATIONS) == set(LANGUAGES)
    assert TRANSLATIONS[ES] == {CONNECTORS_EN[k].strip(): CONNECTORS_ES[k].strip() for k in CONNECTORS_EN}
    assert TRANSLATIONS[EN] == {v: k for k, v in TRANSLATIONS[ES].items()}
    assert set(TRANSLATIONS[ES]) == TINY_TARGET_WORDS and set(TRANSLATIONS[EN]) == TINY_FOREIGN_WORDS
    assert single_language("So, wait: also 3+4 so7", TRANSLATIONS[ES]) == "luego, espera: also 3+4 luego7"
    assert single_language("Luego espera so") == "so wait so"  # the default: into the first language


@pytest.mark.parametrize("task", [CHAIN, BILINGUAL], ids=["plain", "bilingual"])
def test_rewrite_readable_writes_the_examples_language(task):
    mixed = think("3+5+9 so 8+9 espera 8+9 luego 7")
    assert rewrite_readable(mixed, posed([3, 5, 9], ES), task) == (
        "<think>3+5+9 luego 8+9 espera 8+9 luego 7</think>3+5+9 = 7.<answer>7</answer>")
    assert rewrite_readable(mixed, posed([3, 5, 9], EN), task) == (
        "<think>3+5+9 so 8+9 wait 8+9 so 7</think>3+5+9 = 7.<answer>7</answer>")
    assert rewrite_readable(mixed, CHAIN.make_example([3, 5, 9]), task) == (  # never posed: the first language
        "<think>3+5+9 so 8+9 wait 8+9 so 7</think>3+5+9 = 7.<answer>7</answer>")
    assert rewrite_readable(think("3+5+9 so 6", "6"), posed([3, 5, 9], ES), task) is None  # wrong answer
    assert rewrite_readable("<answer>7</answer>", posed([3, 5, 9], ES), task) is None  # no reasoning


def test_a_rewritten_sample_passes_the_stage3_language_filter_of_its_prompt():
    for language in LANGUAGES:
        example = posed([3, 5, 9], language)
        rewritten = rewrite_readable(think("3+5+9 luego 8+9 wait 7"), example, BILINGUAL)
        assert rejection_checks(rewritten, 20, example, BILINGUAL, max_tokens=48) == {
            "correct": True, "readable": True, "single_language": True, "short_enough": True}


# ============================================================================ r1lib/rejection.py


def test_rejection_single_language_judges_against_the_prompts_language():
    spanish, english = posed([3, 4], ES), posed([3, 4], EN)
    luego = "<think>3+4 luego 7</think>3+4 = 7.<answer>7</answer>"
    so = "<think>3+4 so 7</think>3+4 = 7.<answer>7</answer>"
    both = "<think>3+4 so 7 luego 7</think>3+4 = 7.<answer>7</answer>"
    neither = "<think>3+4 is 7</think>3+4 = 7.<answer>7</answer>"

    def one_language(text, example, task=BILINGUAL):
        return rejection_checks(text, 20, example, task, max_tokens=48)["single_language"]

    assert one_language(luego, spanish) and not one_language(so, spanish)
    assert one_language(so, english) and not one_language(luego, english)
    assert not one_language(both, spanish) and not one_language(both, english)
    assert one_language(neither, spanish) and one_language(neither, english)  # no language word: nothing to fail
    # The other checks do not care about the language.
    checks = rejection_checks(so, 60, spanish, BILINGUAL, max_tokens=48)
    assert checks == {"correct": True, "readable": True, "single_language": False, "short_enough": False}


# ============================================================================ r1lib/pipeline


def test_variant_names():
    assert variant("reasoning_rl", start="base", without_lc=True, seed=2) == "reasoning_rl_from_base_without_lc_seed2"
    assert variant("reasoning_rl") == "reasoning_rl"
    assert variant("reasoning_rl", start="base") == "reasoning_rl_from_base"
    assert variant("reasoning_rl", without_lc=True) == "reasoning_rl_without_lc"
    assert variant("reasoning_rl", seed=0) == "reasoning_rl_seed0"  # seed 0 is a seed, not "no seed"
    assert variant("rejection_sft", start="reasoning_rl", seed=1) == "rejection_sft_from_reasoning_rl_seed1"
    assert variant("reasoning_rl", without_lc=True, seed=3) == "reasoning_rl_without_lc_seed3"


def test_relative_gains_by_hand():
    table = {
        "base": {"pass@1": 0.2, "language_consistency": 0.8, "mean_length": -2.0, "gold_general": 0.0},
        "final": {"pass@1": 0.5, "language_consistency": 0.6, "mean_length": -1.0, "gold_general": 0.3},
    }
    gains = relative_gains(table, "final", "base", columns=("pass@1", "language_consistency", "mean_length"))
    assert gains == {"pass@1": pytest.approx(1.5),  # (0.5 - 0.2) / 0.2
                     "language_consistency": pytest.approx(-0.25),  # (0.6 - 0.8) / 0.8
                     "mean_length": pytest.approx(0.5)}  # (-1 - -2) / |-2|
    assert math.isnan(relative_gains(table, "final", "base", columns=("gold_general",))["gold_general"])  # from 0
    assert relative_gains(table, "base", "base", columns=("pass@1",)) == {"pass@1": 0.0}
    full = {row: {c: 1.0 + i for c in TABLE_COLUMNS} for i, row in enumerate(("a", "b"))}
    assert relative_gains(full, "b", "a") == {c: 1.0 for c in TABLE_COLUMNS}  # default: every column, 1 -> 2
    with pytest.raises(KeyError):
        relative_gains(table, "final", "base")  # the default columns are not all in this table


def _eval_result() -> tuple[EvalResult, list[Example]]:
    examples = [posed([3, 4], EN), posed([3, 4], ES)]
    completions = [
        [think("3+4 so 7"), think("3+4 luego 7")],  # English prompt: 1, 0
        [think("3+4 luego 7"), think("3+4 so 7 luego 7 wait")],  # Spanish prompt: 1, 1/3
        # Against English only: row 1 is 1, 0; row 2 is 0, 2/3.
    ]
    return EvalResult(correct=[[True, True], [True, True]], completions=completions, lengths=[[9, 9], [9, 12]],
                      truncated=[[False, False], [False, False]]), examples


def test_language_consistency_judges_each_sample_against_its_prompt():
    result, examples = _eval_result()
    assert language_consistency(result, tiny_language_consistency_reward, BILINGUAL, examples) == pytest.approx(
        (1 + 0 + 1 + 1 / 3) / 4)
    assert language_consistency(result) == pytest.approx((1 + 0 + 0 + 2 / 3) / 4)  # all against English
    # A sample without language words does not count; none at all reads as one language.
    sparse = EvalResult([[True, True]], [[think("3+4 luego 7"), think("3+4 is 7")]], [[5, 5]])
    assert language_consistency(sparse, task=BILINGUAL, examples=[posed([3, 4], ES)]) == 1.0
    assert language_consistency(sparse) == 0.0
    silent = EvalResult([[True]], [[think("3+4 is 7")]], [[5]])
    assert language_consistency(silent) == 1.0


def test_language_consistency_needs_task_and_examples_together():
    result, examples = _eval_result()
    with pytest.raises(ValueError, match="both task and examples"):
        language_consistency(result, tiny_language_consistency_reward, BILINGUAL)
    with pytest.raises(ValueError, match="both task and examples"):
        language_consistency(result, tiny_language_consistency_reward, examples=examples)


def test_pipeline_config_checks_the_second_language():
    config = tiny_pipeline_config(GRPOConfig(), SFTConfig())
    assert config.second_language_share == 0.5 and config.language == "tiny"
    for share in (0.0, 1.0, 0.25):
        assert replace(config, second_language_share=share).second_language_share == share
    for share in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="second_language_share"):
            replace(config, second_language_share=share)
    with pytest.raises(ValueError, match="second language exist only in the tiny world"):
        replace(config, language="script")  # the share is still 0.5
    script = replace(config, language="script", second_language_share=0.0)
    assert script.language_reward()([ES_PROMPT], [think("luego")]) == [1.0]  # Latin script: language ignored
    assert config.language_reward() is tiny_language_consistency_reward
    assert isinstance(config, PipelineConfig)


# ============================================================================ r1lib/course/reward_hacking.py


def test_arm_validation():
    assert Arm("a", "label").beta == 0.0 and Arm("a", "label").step_share == 1.0
    Arm("a", "label", beta=0.0, step_share=1.0)
    Arm("a", "label", beta=2.0, step_share=0.01)
    for beta, share in ((-0.1, 1.0), (0.0, 0.0), (0.0, 1.01), (0.0, -0.5), (-1.0, 0.0)):
        with pytest.raises(ValueError, match="beta >= 0 and 0 < step_share <= 1"):
            Arm("a", "label", beta=beta, step_share=share)
    assert [a.name for a in ARMS] == ["rm_alone", "final_steps", "kl", "gentle"]
    assert PAPER_PREFERENCE_SHARE == 400 / 1700
    with pytest.raises(ValueError, match="learning_rate"):
        Arm("a", "label", learning_rate=0.0)
    with pytest.raises(ValueError, match="judge must be one of"):
        Arm("a", "label", judge="gold")
    assert DPO_ARM.judge == "dpo" and all(a.judge == "bradley_terry" for a in ARMS)


def test_arm_config_takes_the_arms_steps_kl_and_a_constant_schedule():
    stage4 = replace(GRPOConfig(lr_scheduler_type="cosine", warmup_ratio=0.1, beta=0.04, learning_rate=1e-4),
                     reward_weights=[1.0, 0.5])
    pipeline = SimpleNamespace(config=SimpleNamespace(all_scenarios_rl=stage4))
    arms = {a.name: a for a in ARMS}
    final = arm_config(pipeline, arms["final_steps"], steps=100, learning_rate=5e-4)
    assert final.max_steps == round(100 * 400 / 1700) == 24
    assert (final.lr_scheduler_type, final.warmup_ratio, final.warmup_steps) == ("constant", 0.0, 0)
    assert final.beta == 0.0 and final.learning_rate == 5e-4 and final.reward_weights is None
    assert (final.save_steps, final.eval_steps, final.max_completion_length) == (12, 24, 48)
    kl = arm_config(pipeline, arms["kl"], steps=100, learning_rate=5e-4)
    assert (kl.max_steps, kl.beta, kl.save_steps, kl.eval_steps) == (100, 1.0, 50, 100)
    alone = arm_config(pipeline, arms["rm_alone"], steps=30, learning_rate=1e-3)
    assert (alone.max_steps, alone.beta, alone.learning_rate) == (30, 0.0, 1e-3)
    gentle = arm_config(pipeline, arms["gentle"], steps=100, learning_rate=5e-4)  # its own rate wins
    assert (gentle.max_steps, gentle.beta, gentle.learning_rate, gentle.lr_scheduler_type) == (50, 0.1, 1e-4, "constant")
    tiny = arm_config(pipeline, arms["final_steps"], steps=2, learning_rate=5e-4)  # round(0.47) = 0 -> at least 1
    assert (tiny.max_steps, tiny.save_steps, tiny.eval_steps) == (1, 1, 1)
    assert stage4.lr_scheduler_type == "cosine" and stage4.beta == 0.04  # stage 4's own config is untouched
    # Everything else is stage 4's.
    assert (final.num_generations, final.temperature, final.seed) == (stage4.num_generations, stage4.temperature,
                                                                      stage4.seed)


def _probe(path, monkeypatch, every=10):
    probe = GoldProbe(path, requests=[], scorer=None, every=every, k=2)
    calls = []

    def measure(trainer, step):  # what _measure does, without a model: record the call, append a point
        calls.append(step)
        with path.open("a") as handle:
            handle.write(json.dumps({"step": step, "gold_general": 0.5}) + "\n")

    monkeypatch.setattr(probe, "_measure", measure)
    return probe, calls


def _trainer(step: int, max_steps: int = 100):
    return SimpleNamespace(state=SimpleNamespace(step=step), config=SimpleNamespace(max_steps=max_steps))


def _write_curve(path, steps):
    path.write_text("".join(json.dumps({"step": s, "gold_general": s / 100}) + "\n" for s in steps))


def test_read_curve_of_a_missing_file_is_empty(tmp_path):
    assert read_curve(tmp_path / "nowhere" / "gold_curve.jsonl") == []
    _write_curve(tmp_path / "curve.jsonl", [0, 10])
    assert read_curve(tmp_path / "curve.jsonl") == [{"step": 0, "gold_general": 0.0}, {"step": 10, "gold_general": 0.1}]


def test_gold_probe_drops_points_past_the_resumed_step(tmp_path, monkeypatch):
    path = tmp_path / "arm" / "gold_curve.jsonl"
    path.parent.mkdir()
    _write_curve(path, [0, 10, 20, 30, 40])
    probe, calls = _probe(path, monkeypatch)
    probe.on_train_begin(_trainer(step=20))
    assert [r["step"] for r in read_curve(path)] == [0, 10, 20]
    assert read_curve(path)[2] == {"step": 20, "gold_general": 0.2}  # kept points are kept as they were
    assert calls == []  # a resumed run does not measure at its start


def test_gold_probe_measures_a_fresh_run_at_step_0_and_creates_its_folder(tmp_path, monkeypatch):
    path = tmp_path / "new" / "deeper" / "gold_curve.jsonl"
    probe, calls = _probe(path, monkeypatch)
    probe.on_train_begin(_trainer(step=0))
    assert calls == [0] and [r["step"] for r in read_curve(path)] == [0]


def test_gold_probe_measures_every_few_steps_and_at_the_end_once(tmp_path, monkeypatch):
    path = tmp_path / "gold_curve.jsonl"
    probe, calls = _probe(path, monkeypatch, every=10)
    trainer = _trainer(step=0, max_steps=25)
    probe.on_train_begin(trainer)
    for step in (0, 5, 10, 10, 20, 25):
        probe.on_log(trainer, {"step": step})
    assert calls == [0, 10, 20, 25]  # step 0 measured once, 5 skipped, 10 not twice, the last step always
    assert [r["step"] for r in read_curve(path)] == [0, 10, 20, 25]


def test_gold_probe_restarted_at_step_0_keeps_one_step_0_point(tmp_path, monkeypatch):
    path = tmp_path / "gold_curve.jsonl"
    _write_curve(path, [0, 10])  # a run killed at step 12, before its first checkpoint
    probe, calls = _probe(path, monkeypatch)
    probe.on_train_begin(_trainer(step=0))
    assert [r["step"] for r in read_curve(path)] == [0]


# ============================================================================ general_quality on the tiny base


@pytest.fixture(scope="module")
def tiny_base(tiny_base_path):
    return load_model_and_tokenizer(ModelSpec(name_or_path=str(tiny_base_path)), trainable=False)


class _LengthScorer:
    """A stand-in reward model: a reply's score is its length; it records the prompts it was shown."""

    def __init__(self):
        self.prompts = []

    def score(self, prompts, replies):
        self.prompts.extend(prompts)
        return [float(len(r)) for r in replies]


REQUESTS_EVAL = GENERAL.generate(5, seed=2)
K, SEED, MAX_NEW = 4, 3, 48


def test_general_quality_is_the_gold_judges_verdict_on_the_same_samples(tiny_base):
    model, tokenizer = tiny_base
    scorer = _LengthScorer()
    quality = general_quality(model, tokenizer, REQUESTS_EVAL, k=K, seed=SEED, scorer=scorer, max_new_tokens=MAX_NEW)

    # By hand: the same samples through the one sampling loop, judged here.
    groups = list(sample_groups(model, tokenizer, [GENERAL.prompt(e) for e in REQUESTS_EVAL], K, MAX_NEW, 1.0, SEED))
    assert [g.prompt for g in groups] == [user(e.question) for e in REQUESTS_EVAL]
    texts = [t for g in groups for t in g.texts]
    verdicts = [GENERAL.judge(t, e) for g, e in zip(groups, REQUESTS_EVAL) for t in g.texts]
    assert len(verdicts) == len(REQUESTS_EVAL) * K
    per_request = [sum(v == "acceptable" for v in verdicts[i * K:(i + 1) * K]) / K for i in range(len(REQUESTS_EVAL))]

    assert quality["gold_general"] == pytest.approx(verdicts.count("acceptable") / len(verdicts))
    assert quality["gold_general_stderr"] == pytest.approx(statistics.stdev(per_request) / math.sqrt(len(per_request)))
    for v in VERDICTS:
        assert quality[f"general/{v}"] == pytest.approx(verdicts.count(v) / len(verdicts)), v
    assert sum(quality[f"general/{v}"] for v in VERDICTS) == pytest.approx(1.0)
    assert quality["rm_score"] == pytest.approx(sum(map(len, texts)) / len(texts))
    assert scorer.prompts == [user(e.question) for e in REQUESTS_EVAL for _ in range(K)]  # one prompt per reply
    assert set(quality) == {"gold_general", "gold_general_stderr", "rm_score"} | {f"general/{v}" for v in VERDICTS}
    # The per-request values that paired comparisons use are the same samples' shares.
    assert gold_per_request(model, tokenizer, REQUESTS_EVAL, k=K, seed=SEED, max_new_tokens=MAX_NEW) == pytest.approx(per_request)


def test_general_quality_is_seeded_and_needs_requests(tiny_base):
    model, tokenizer = tiny_base
    first = general_quality(model, tokenizer, REQUESTS_EVAL[:3], k=3, seed=9, max_new_tokens=MAX_NEW)
    assert first == general_quality(model, tokenizer, REQUESTS_EVAL[:3], k=3, seed=9, max_new_tokens=MAX_NEW)
    assert "rm_score" not in first  # no scorer, no reward-model opinion
    assert sum(first[f"general/{v}"] for v in VERDICTS) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one request"):
        general_quality(model, tokenizer, [], k=4)
    with pytest.raises(ValueError, match="k >= 1"):
        general_quality(model, tokenizer, REQUESTS_EVAL[:1], k=0)


def test_paired_difference_by_hand_and_its_errors():
    # differences 0.1, 0.3, 0.2: mean 0.2, sample sd 0.1, standard error 0.1 / sqrt(3)
    change, error = paired_difference([0.6, 0.8, 0.9], [0.5, 0.5, 0.7])
    assert change == pytest.approx(0.2) and error == pytest.approx(0.1 / 3 ** 0.5)
    # A shift shared by every request leaves no error at all: what pairing removes.
    assert paired_difference([0.3, 0.9, 0.5], [0.2, 0.8, 0.4]) == (pytest.approx(0.1), pytest.approx(0.0, abs=1e-12))
    for after, before in (([0.5], [0.4]), ([0.5, 0.6], [0.4])):
        with pytest.raises(ValueError, match="equally long"):
            paired_difference(after, before)


def test_training_requests_are_the_distinct_requests_rl_draws_from():
    general = GeneralTask()
    held = general.all_examples()[::4]
    pipeline = SimpleNamespace(general=general,
                               general_train=general.generate(300, seed=0, exclude=[e.question for e in held]))
    requests = training_requests(pipeline)
    questions = [e.question for e in requests]
    assert len(questions) == len(set(questions)) == len(general.all_examples()) - len(held)
    assert set(questions) == {e.question for e in pipeline.general_train}
    assert not set(questions) & {e.question for e in held}
