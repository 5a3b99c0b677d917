"""The tiny world's general (non-reasoning) task: short polite requests such as ``greet Ana``.

DeepSeek-R1's final RL stage mixes two kinds of reward: rules for reasoning (is the answer
right?) and a learned reward model for everything a rule cannot judge (is this reply helpful,
polite, on topic?). This task is the tiny world's second kind: there is no single right answer to
``thank Bo``, only replies that are better or worse. It therefore supplies *preference pairs*, a
preferred reply and a rejected one for the same request, which is what a reward model learns from.

Requests are drawn from a small fixed pool so that a 1M-parameter model can read them::

    greet Ana              -> Hello Ana, nice to meet you!
    thank Bo               -> Thanks a lot, Bo!
    say goodbye to Cy      -> Bye Cy! Take care.
    repeat: blue           -> Sure! blue

Rejected replies come in kinds (:data:`REJECTION_KINDS`) so that an evaluation can tell which
flaws a reward model has learned to see: rude, wrong name or word, truncated, empty, off topic,
and repetitive.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .base import Example, Messages

NAMES = ("Ana", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu", "Max", "Nia", "Oz", "Pia")
WORDS = ("blue", "red", "green", "cat", "dog", "sun", "moon", "tree", "fish", "star", "rain", "milk")

# Request kind -> (how the request is phrased, the preferred reply templates). ``{x}`` is the name
# or word the request is about. The first template is the example's canonical answer.
REQUESTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "greet": ("greet {x}", ("Hello {x}, nice to meet you!", "Hi {x}! How are you today?", "Good day, {x}. Welcome!")),
    "thank": (
        "thank {x}",
        ("Thank you, {x}! I really appreciate it.", "Thanks a lot, {x}!", "Many thanks, {x}, that was kind."),
    ),
    "goodbye": (
        "say goodbye to {x}",
        ("Goodbye {x}, see you soon!", "Bye {x}! Take care.", "Farewell, {x}. Have a nice day!"),
    ),
    "repeat": ("repeat: {x}", ("{x}", "Sure! {x}", "You said: {x}")),
}
# Which pool each request kind draws its subject from.
SUBJECTS: dict[str, tuple[str, ...]] = {"greet": NAMES, "thank": NAMES, "goodbye": NAMES, "repeat": WORDS}

RUDE = ("Go away, {x}.", "Whatever, {x}. I do not care.", "Ugh, not you again, {x}.", "No. Do it yourself.")
OFF_TOPIC = (
    "The sky is green today.", "3+5+9 so 7", "What time is it?", "I like trains and soup.", "Fish can not fly."
)
REJECTION_KINDS = ("rude", "wrong_subject", "truncated", "empty", "off_topic", "repetitive")
# The gold judge's verdicts. A reply gets the first that applies, checked in this order except that a
# known off-topic sentence is recognised before the rude and wrong-subject checks (see GeneralTask.judge).
VERDICTS = ("empty", "acceptable", "repetitive", "rude", "wrong_subject", "truncated", "off_topic", "malformed")
# Phrases only a rude reply contains (the RUDE templates' fixed parts), lower-cased, matched as whole words.
RUDE_MARKERS = ("go away", "whatever", "ugh", "do it yourself", "do not care", "not you again")
_RUDE = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in RUDE_MARKERS) + r")\b")
_LETTERS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class PreferencePair:
    """A request and two replies to it, ``chosen`` better than ``rejected``.

    ``kind`` names the flaw of the rejected reply (one of :data:`REJECTION_KINDS`), kept so that
    accuracy can be broken down by flaw; it is not shown to any model.
    """

    prompt_messages: Messages
    chosen: str
    rejected: str
    kind: str = field(default="", compare=False)


@dataclass(frozen=True)
class GeneralTask:
    """Seeded polite requests (greet, thank, say goodbye, repeat) with preferred and rejected replies."""

    name: str = "general"

    def make_example(self, kind: str, subject: str) -> Example:
        """The example for request ``kind`` (a key of :data:`REQUESTS`) about ``subject``."""
        if kind not in REQUESTS:
            raise ValueError(f"unknown request kind {kind!r}; expected one of {sorted(REQUESTS)}")
        if subject not in SUBJECTS[kind]:
            raise ValueError(f"{subject!r} is not in the {kind!r} pool {SUBJECTS[kind]}")
        phrase, templates = REQUESTS[kind]
        return Example(phrase.format(x=subject), templates[0].format(x=subject), {"kind": kind, "subject": subject})

    def all_examples(self) -> list[Example]:
        """Every distinct request, in a fixed order (useful to split requests into train and held out)."""
        return [self.make_example(kind, subject) for kind in REQUESTS for subject in SUBJECTS[kind]]

    def sample(self, rng: random.Random) -> Example:
        """One random request drawn with ``rng`` (kinds equally likely, then a subject)."""
        kind = rng.choice(sorted(REQUESTS))
        return self.make_example(kind, rng.choice(SUBJECTS[kind]))

    def generate(self, n: int, seed: int, exclude: Iterable[str] = ()) -> list[Example]:
        """``n`` requests from ``seed``, skipping any whose question is in ``exclude``.

        As with :class:`ChainTask`, duplicates are allowed: the pool has only
        ``len(self.all_examples())`` distinct requests.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        excluded = set(exclude)
        allowed = [e for e in self.all_examples() if e.question not in excluded]
        if n and not allowed:
            raise ValueError("every request is in `exclude`; nothing left to draw")
        rng = random.Random(seed)
        # Sampling from the allowed list (not rejection sampling) keeps kinds balanced among what is left.
        by_kind: dict[str, list[Example]] = {}
        for example in allowed:
            by_kind.setdefault(example.info["kind"], []).append(example)
        kinds = sorted(by_kind)
        return [rng.choice(by_kind[rng.choice(kinds)]) for _ in range(n)]

    def prompt(self, example: Example) -> Messages:
        """The bare request as the user message, like the chain task's prompts."""
        return [{"role": "user", "content": example.question}]

    def preferred_forms(self, example: Example) -> list[str]:
        """Every preferred reply to ``example``."""
        _, templates = REQUESTS[example.info["kind"]]
        return [t.format(x=example.info["subject"]) for t in templates]

    def check_answer(self, answer: str, example: Example) -> bool:
        """True when ``answer`` (stripped) is exactly one of the preferred replies.

        A general request has no single right answer, so this is only a conservative stand-in that
        lets the task fit the :class:`Task` protocol; judging replies is the reward model's job.
        """
        return answer.strip() in self.preferred_forms(example)

    def judge(self, reply: str, example: Example) -> str:
        """The gold judge's verdict on ``reply``: one of :data:`VERDICTS`, the first that applies.

        Unlike a reward model, the rule knows the task: ``acceptable`` is exactly one of the
        preferred forms; ``wrong_subject`` names another name or word of the pools; ``malformed``
        is polite and on subject but none of the known forms (a blend of two templates, say).
        Bounded in time: a few linear scans of the reply.
        """
        text = reply.strip()
        if not text:
            return "empty"
        if text in self.preferred_forms(example):
            return "acceptable"
        found = [w.lower() for w in _LETTERS.findall(text)]
        if max(Counter(found).values(), default=0) >= 3 or any(a == b for a, b in zip(found, found[1:])):
            return "repetitive"
        if text in OFF_TOPIC:
            return "off_topic"
        lowered = text.lower()
        if _RUDE.search(lowered):
            return "rude"
        subject = example.info["subject"].lower()
        pool = {s.lower() for s in SUBJECTS[example.info["kind"]]}
        if any(w in pool and w != subject for w in found):
            return "wrong_subject"
        if any(form.startswith(text) for form in self.preferred_forms(example)):
            return "truncated"
        return "off_topic" if subject not in found else "malformed"

    def preferred_reply(self, example: Example, rng: random.Random) -> str:
        """A polite, well-formed reply that addresses the request's name or word."""
        return rng.choice(self.preferred_forms(example))

    def rejected_reply(self, example: Example, rng: random.Random, kind: str | None = None) -> str:
        """A flawed reply of rejection ``kind`` (random when None); never one of the preferred forms."""
        if kind is None:
            kind = rng.choice(REJECTION_KINDS)
        if kind not in REJECTION_KINDS:
            raise ValueError(f"unknown rejection kind {kind!r}; expected one of {REJECTION_KINDS}")
        preferred = set(self.preferred_forms(example))
        reply = _REJECTORS[kind](self, example, rng)
        if reply.strip() in preferred:  # cannot happen with the pools above; guards against future edits
            raise RuntimeError(f"rejected reply {reply!r} of kind {kind!r} is a preferred form")
        return reply

    def preference_pairs(self, n: int, seed: int, exclude: Iterable[str] = ()) -> list[PreferencePair]:
        """``n`` preference pairs for requests from ``generate(n, seed, exclude)``."""
        return self.pairs_for(self.generate(n, seed, exclude), seed)

    def pairs_for(self, examples: Iterable[Example], seed: int) -> list[PreferencePair]:
        """One preference pair per example, replies drawn with ``seed``; rejection kinds cycle evenly."""
        rng = random.Random(seed)
        pairs = []
        for i, example in enumerate(examples):
            # Cycling (rather than sampling) the kinds gives every flaw the same share of a small set.
            kind = REJECTION_KINDS[i % len(REJECTION_KINDS)]
            chosen = self.preferred_reply(example, rng)
            pairs.append(PreferencePair(self.prompt(example), chosen, self.rejected_reply(example, rng, kind), kind))
        return pairs


# ----------------------------------------------------------------------------- rejected replies


def _rude(task: GeneralTask, example: Example, rng: random.Random) -> str:
    return rng.choice(RUDE).format(x=example.info["subject"])


def _wrong_subject(task: GeneralTask, example: Example, rng: random.Random) -> str:
    # A well-formed, polite reply, but to someone (or something) else: only reading the request tells.
    subject = example.info["subject"]
    other = rng.choice([s for s in SUBJECTS[example.info["kind"]] if s != subject])
    wrong = task.make_example(example.info["kind"], other)
    return task.preferred_reply(wrong, rng)


def _truncated(task: GeneralTask, example: Example, rng: random.Random) -> str:
    # A preferred reply cut off mid-way (as by a length limit): at least one character, at most all but two.
    reply = task.preferred_reply(example, rng)
    if len(reply) < 4:  # "{x}" alone for a short word: cut a longer preferred form instead
        reply = max(task.preferred_forms(example), key=len)
    return reply[: rng.randint(1, len(reply) - 2)]


def _empty(task: GeneralTask, example: Example, rng: random.Random) -> str:
    return rng.choice(("", " ", "\n"))


def _off_topic(task: GeneralTask, example: Example, rng: random.Random) -> str:
    return rng.choice(OFF_TOPIC)


def _repetitive(task: GeneralTask, example: Example, rng: random.Random) -> str:
    # Degenerate looping, the failure mode of a policy that has found a reward-model blind spot.
    first = task.preferred_reply(example, rng).split()[0]
    unit = rng.choice((first, example.info["subject"], "hello"))
    return " ".join([unit] * rng.randint(4, 8))


_REJECTORS = {
    "rude": _rude,
    "wrong_subject": _wrong_subject,
    "truncated": _truncated,
    "empty": _empty,
    "off_topic": _off_topic,
    "repetitive": _repetitive,
}
