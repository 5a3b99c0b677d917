"""The tiny world's tokenizer: printable characters plus single-token structure.

It is a real :class:`transformers.PreTrainedTokenizerFast` with a chat template, so every
``r1lib`` call that works with a Hugging Face tokenizer works with this one too.

Why single tokens for tags and connector words: a 1M-parameter model learns the think/answer
structure in a few hundred steps when each tag is one token, and stays at chance for much longer
when it has to spell ``<think>`` out character by character.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "<|unk|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

SPECIAL_TOKENS = [PAD, EOS, UNK, USER, ASSISTANT]
TAG_TOKENS = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE]
# Connector words of the reasoning text, in the target language and in the "second language"
# that the corpus mixes in (the tiny world's analogue of R1-Zero's language mixing).
CONNECTORS_EN = {"so": " so ", "wait": " wait "}
CONNECTORS_ES = {"so": " luego ", "wait": " espera "}
WORD_TOKENS = sorted(set(CONNECTORS_EN.values()) | set(CONNECTORS_ES.values()))

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + '<|endoftext|>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Build the tiny-world tokenizer from scratch (deterministic: no training involved)."""
    chars = list(string.printable[:95]) + ["\n"]  # digits, letters, punctuation, space, newline
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS + TAG_TOKENS + WORD_TOKENS + chars:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character is its own piece; tags and connector words are matched before splitting.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS + WORD_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Build the tokenizer and save it in the standard Hugging Face layout under ``path``."""
    tokenizer = build_tiny_tokenizer()
    tokenizer.save_pretrained(str(path))
    return tokenizer
