"""Every reward function against arbitrary and hostile completions: no exception, no execution,
well-typed finite scores, and a small mean cost per call."""

import math
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1lib.rewards import (
    TINY_FOREIGN_WORDS,
    TINY_TARGET_WORDS,
    format_reward,
    make_accuracy_reward,
    make_cosine_scaled_reward,
    make_kimi_length_reward,
    make_language_consistency_reward,
    make_prompt_language_consistency_reward,
    make_repetition_penalty,
    make_soft_overlong_punishment,
    soft_format_reward,
    tag_count_reward,
    tiny_language_consistency_reward,
)
from r1lib.tasks import ChainTask, CountdownTask, GSM8KTask, MathTask
from r1lib.tasks.search import SearchTask

SENTINEL = Path("/tmp/r1lib_pwned")
PAYLOAD = f"__import__('pathlib').Path('{SENTINEL}').touch()"
BATCH = 5
EXAMPLES = 1000  # x BATCH = 5,000 completions

# Reference answers per task, one per completion of a batch (the trainer repeats them per group).
GOLDS = {"chain": "7", "gsm8k": "72", "countdown": "(3 + 5) * 2", "math": "\\frac{1}{2}", "search": "8+9"}


def reward_functions(tokenizer):
    tasks = {"chain": ChainTask(), "gsm8k": GSM8KTask(), "countdown": CountdownTask(), "math": MathTask(), "search": SearchTask()}
    accuracies = [(make_accuracy_reward(task, name=f"accuracy_{key}"), GOLDS[key]) for key, task in tasks.items()]
    others = [
        format_reward,
        soft_format_reward,
        tag_count_reward,
        tiny_language_consistency_reward,  # the prompts here are plain strings: the first language's target
        make_prompt_language_consistency_reward(  # the same reward with the second language's target
            {"en": TINY_TARGET_WORDS, "es": TINY_FOREIGN_WORDS}, language_of=lambda _: "es",
            name="language_consistency_es"),
        make_language_consistency_reward({"the", "so", "is"}, name="english"),
        make_cosine_scaled_reward(ChainTask(), max_len=200),
        make_cosine_scaled_reward(MathTask(), max_len=200, name="cosine_math"),
        make_kimi_length_reward(CountdownTask()),
        make_kimi_length_reward(GSM8KTask(), tokenizer=tokenizer, name="kimi_tokens"),
        make_soft_overlong_punishment(256, 64),
        make_soft_overlong_punishment(256, 64, unit="tokens", name="overlong_ids"),  # counts the completion_ids
        make_repetition_penalty(),
        make_repetition_penalty(ngram_size=2, tokenizer=tokenizer, name="repetition_tokens"),
    ]
    return accuracies + [(f, GOLDS["math"] if "math" in f.__name__ else GOLDS["chain"]) for f in others]


HOSTILE = [
    PAYLOAD,
    f"<answer>{PAYLOAD}</answer>",
    f"<think>x</think><answer>\\boxed{{{PAYLOAD}}}</answer>",
    f"<answer>${PAYLOAD}$</answer>",
    f"<answer>1 + {PAYLOAD}</answer>",
    f"<answer>exec(\"{PAYLOAD}\")</answer>",
    f"<answer>eval(compile(\"{PAYLOAD}\", 'x', 'exec'))</answer>",
    f"<answer>#### {PAYLOAD}</answer>",
    "<answer>__import__('os').system('touch /tmp/r1lib_pwned')</answer>",
    "<answer>9^{9^{9^{9}}}</answer>",
    "<answer>9**9**9**9</answer>",
    "<answer>\\boxed{10^{10^{10}}}</answer>",
    "<answer>(10^{99})^{9999}</answer>",
    "<answer>1000000!</answer>",
    "<answer>\\binom{10^{9}}{5}</answer>",
    "<answer>1**1000000</answer>",
    "<answer>1e999999999</answer>",
    "<answer>\\frac{1}{0}</answer>",
    "<answer>1/0</answer>",
    "<answer>0/0 = nan</answer>",
    "<answer>\\boxed{\\boxed{\\boxed{</answer>",
    "<answer>" + "\\frac{" * 300 + "</answer>",
    "<answer>" + "{" * 500 + "1" + "}" * 500 + "</answer>",
    "<think><think><answer></think></answer><answer>",
    "</answer><answer>",
    "<answer>٣</answer>",
    "<answer>\ud800\udfff</answer>",
    "\x00<answer>\x00</answer>",
    "<think>so luego wait espera</think><answer>7</answer>",
]

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", " so ", " wait ", " luego ", " espera ", "####", "\\boxed{", "{",
    "}", "$", "\\frac{1}{2}", "(", ")", "9", "99999999999999999999", "**", "^", "!", "/", "0", "=", "\\", "\n", "\x00",
    "\ud800", "\udcff", "💥", "١", PAYLOAD, "0.5", "1/2", "(3 + 5) * 2", "72", "7",
]

text = st.text(max_size=200)
soup = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=40).map("".join)
surrogates = st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="surrogateescape"))
deep = st.integers(1, 5000).map(lambda k: "<answer>" + "(" * k + "1" + ")" * k + "</answer>")
big_number = st.integers(1, 20_000).map(lambda k: "<answer>" + "9" * k + "</answer>")
tower = st.tuples(st.integers(2, 40), st.sampled_from(["^", "**", "^{"])).map(
    lambda t: "<answer>" + t[1].join(["9"] * t[0]) + "}" * (t[0] - 1) * (t[1] == "^{") + "</answer>"
)
tagged = st.tuples(st.one_of(text, soup, surrogates), st.one_of(text, soup)).map(
    lambda t: f"<think>{t[0]}</think><answer>{t[1]}</answer>"
)
completion = st.one_of(text, soup, surrogates, deep, big_number, tower, tagged, st.sampled_from(HOSTILE))
conversational = completion.map(lambda c: [{"role": "assistant", "content": c}])
batches = st.tuples(
    st.lists(st.one_of(completion, conversational), min_size=BATCH, max_size=BATCH),
    st.lists(st.sampled_from(["p0", "p1", "3859=7", "1234=5"]), min_size=BATCH, max_size=BATCH),
    st.lists(st.lists(st.integers(-5, 200_000), max_size=80), min_size=BATCH, max_size=BATCH),
)


def check_scores(scores, n):
    assert isinstance(scores, list) and len(scores) == n
    for score in scores:
        assert score is None or (isinstance(score, float) and math.isfinite(score)), score


@pytest.fixture()
def no_sentinel():
    SENTINEL.unlink(missing_ok=True)
    yield
    assert not SENTINEL.exists(), "a reward executed model output"


def test_the_sentinel_payload_would_be_caught():
    """The payload is live code: if any reward ran it, the sentinel file would exist."""
    SENTINEL.unlink(missing_ok=True)
    exec(PAYLOAD)  # our own constant, never model output
    assert SENTINEL.exists()
    SENTINEL.unlink()


def test_every_reward_survives_arbitrary_and_hostile_completions(no_sentinel, tiny_tokenizer):
    functions = reward_functions(tiny_tokenizer)
    seconds, calls = defaultdict(float), defaultdict(int)
    completions_seen = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(batches)
    def run(batch):
        nonlocal completions_seen
        completions, prompts, ids = batch
        completions_seen += len(completions)
        for reward, gold in functions:
            start = time.perf_counter()
            scores = reward(prompts, completions, answer=[gold] * BATCH, question=prompts, completion_ids=ids)
            seconds[reward.__name__] += time.perf_counter() - start
            calls[reward.__name__] += 1
            check_scores(scores, BATCH)

    run()
    assert completions_seen >= 5_000
    assert len(calls) == len(functions)  # distinct names, every function called
    slow = {name: seconds[name] / calls[name] for name in calls if seconds[name] / calls[name] >= 0.05}
    assert not slow, f"mean seconds per call: {slow}"


def test_hostile_completions_one_by_one(no_sentinel, tiny_tokenizer):
    """Each hostile string alone, so that the per-completion fallback of ``never_raises`` is covered too."""
    for reward, gold in reward_functions(tiny_tokenizer):
        for hostile in HOSTILE:
            check_scores(reward(["p"], [hostile], answer=[gold]), 1)


def test_megabyte_completions(no_sentinel, tiny_tokenizer):
    mb = 1 << 20
    huge = [
        "a" * mb,
        "<think>" + " so luego" * (mb // 9) + "</think><answer>" + "9" * mb + "</answer>",
        "<answer>" * (mb // 8),
        "<answer>" + "(" * mb + "</answer>",
        "<think>" + "\ud800" * mb + "</think><answer>7</answer>",
        "<answer>" + "1+" * (mb // 2) + "1</answer>",
    ]
    for reward, gold in reward_functions(tiny_tokenizer):
        # The tiny tokenizer needs ~2 s per megabyte on its own: one such string is enough for the
        # functions that count tokens.
        batch = huge[:1] if reward.__name__.endswith("_tokens") else huge
        start = time.perf_counter()
        check_scores(reward(["p"] * len(batch), batch, answer=[gold] * len(batch)), len(batch))
        assert time.perf_counter() - start < 10, reward.__name__
