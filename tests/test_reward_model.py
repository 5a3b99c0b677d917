"""The general task, the Bradley-Terry reward model, and its use as a TRL reward function."""

from __future__ import annotations

import math
import random

import pytest
import torch

from r1lib.reward_model import (
    RewardModel,
    RewardModelConfig,
    bradley_terry_loss,
    load_backbone_from,
    preference_accuracy,
    train_reward_model,
)
from r1lib.tasks import Task
from r1lib.tasks.general import REJECTION_KINDS, GeneralTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.tiny.reward_model import build_tiny_reward_model

SMALL = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)


@pytest.fixture()
def reward_model(tiny_tokenizer):
    return RewardModel(build_tiny_reward_model(tiny_tokenizer, seed=0, config=SMALL), tiny_tokenizer)


# ----------------------------------------------------------------------------- the general task


def test_general_task_replies_and_protocol():
    task = GeneralTask()
    assert isinstance(task, Task) and task.name == "general"
    example = task.make_example("greet", "Ana")
    assert example.question == "greet Ana" and task.prompt(example) == [{"role": "user", "content": "greet Ana"}]
    rng = random.Random(0)
    for _ in range(20):
        reply = task.preferred_reply(example, rng)
        assert "Ana" in reply and task.check_answer(reply, example)
    for kind in REJECTION_KINDS:
        for _ in range(10):
            rejected = task.rejected_reply(example, rng, kind)
            assert not task.check_answer(rejected, example), (kind, rejected)
            assert rejected.isascii()
    assert all("Ana" not in task.rejected_reply(example, rng, "wrong_subject") for _ in range(10))
    assert task.generate(30, seed=3) == task.generate(30, seed=3)
    with pytest.raises(ValueError, match="unknown request kind"):
        task.make_example("insult", "Ana")


def test_preference_pairs_respect_exclude_and_cover_every_flaw():
    task = GeneralTask()
    held = {e.question for e in task.all_examples()[::4]}
    pairs = task.preference_pairs(120, seed=0, exclude=held)
    assert len(pairs) == 120 and not {p.prompt_messages[0]["content"] for p in pairs} & held
    assert {p.kind for p in pairs} == set(REJECTION_KINDS)
    assert all(p.chosen != p.rejected for p in pairs)


# ----------------------------------------------------------------------------- loss and scoring


def test_bradley_terry_loss_matches_hand_computation():
    loss = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.5)), abs=1e-6)
    # The mean over a batch, and stable for huge margins either way.
    batch = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.5, 0.0]))
    assert batch.item() == pytest.approx((math.log(1 + math.exp(-1.5)) + math.log(2)) / 2, abs=1e-6)
    assert bradley_terry_loss(torch.tensor([0.0]), torch.tensor([1000.0])).item() == pytest.approx(1000.0)
    assert bradley_terry_loss(torch.tensor([1000.0]), torch.tensor([0.0])).item() == pytest.approx(0.0)


def test_left_padded_batch_scores_equal_unpadded_scores(reward_model, tiny_tokenizer):
    # Make the head's output large enough that a position or pooling error would show.
    torch.nn.init.normal_(reward_model.model.score.weight, std=1.0)
    prompts = [
        [{"role": "user", "content": "greet Ana"}],
        [{"role": "user", "content": "say goodbye to Flo"}],
        "raw text prompt",  # TRL's standard (non-chat) format
    ]
    completions = [
        "Hi!",
        "Farewell, Flo. Have a nice day and a long evening!",
        [{"role": "assistant", "content": "ok"}],  # TRL's conversational completion
    ]
    batched = reward_model.score(prompts, completions)
    alone = [reward_model.score([p], [c])[0] for p, c in zip(prompts, completions)]
    assert len({len(reward_model.encode(p, c)) for p, c in zip(prompts, completions)}) == 3  # really padded
    assert batched == pytest.approx(alone, abs=1e-5)
    assert max(abs(s) for s in alone) > 0.1
    # An unpadded row is scored exactly as the plain Hugging Face call on the rendered text scores it.
    text = tiny_tokenizer.apply_chat_template(prompts[1], tokenize=False, add_generation_prompt=True) + completions[1]
    ids = tiny_tokenizer(text + tiny_tokenizer.eos_token, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        plain = reward_model.model(input_ids=ids).logits[0, 0].item()
    assert alone[1] == pytest.approx(plain, abs=1e-5)


@pytest.fixture()
def one_thread():
    # The tests share two cores with other work; one thread is faster than two contended ones.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_training_ranks_held_out_requests(tiny_tokenizer, one_thread):
    task = GeneralTask()
    held = random.Random(0).sample(task.all_examples(), 16)
    held_questions = {e.question for e in held}
    train_pairs = task.preference_pairs(2000, seed=0, exclude=held_questions)
    test_pairs = task.pairs_for(held * 6, seed=1)  # every held-out request with every flaw
    assert not {p.prompt_messages[0]["content"] for p in train_pairs} & held_questions

    model = build_tiny_reward_model(tiny_tokenizer, seed=0, config=SMALL)
    scorer = RewardModel(model, tiny_tokenizer)
    untrained = preference_accuracy(scorer, test_pairs)
    assert 0.3 <= untrained <= 0.7, untrained

    config = RewardModelConfig(max_steps=150, per_device_train_batch_size=16, learning_rate=1e-3)
    history = train_reward_model(model, tiny_tokenizer, train_pairs, config, progress=False)
    assert len(history) == 150 and history[-1]["loss"] < history[0]["loss"]
    trained = preference_accuracy(scorer, test_pairs)
    assert trained >= 0.85, (untrained, trained)


def test_save_and_load_round_trip(reward_model, tmp_path):
    prompts, completions = [[{"role": "user", "content": "thank Bo"}]], ["Thanks a lot, Bo!"]
    before = reward_model.score(prompts, completions)
    loaded = RewardModel.load(reward_model.save(tmp_path / "rm"))
    assert (tmp_path / "rm" / "model.safetensors").exists()
    # Plain spaces survive the reload (AutoTokenizer alone would drop them next to a qwen2 config.json).
    assert loaded.encode(prompts[0], completions[0]) == reward_model.encode(prompts[0], completions[0])
    assert loaded.score(prompts, completions) == pytest.approx(before, abs=1e-6)


def test_backbone_weights_come_from_a_causal_lm(tiny_tokenizer, tmp_path):
    lm = build_tiny_model(tiny_tokenizer, SMALL, seed=7)
    lm.save_pretrained(str(tmp_path / "lm"))
    model = build_tiny_reward_model(tiny_tokenizer, seed=0, backbone=tmp_path / "lm")
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, lm.model.layers[1].mlp.up_proj.weight)
    assert torch.equal(model.model.embed_tokens.weight, lm.model.embed_tokens.weight)
    narrow = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2)
    other = build_tiny_reward_model(tiny_tokenizer, seed=0, config=narrow)
    with pytest.raises(ValueError, match="shape"):
        load_backbone_from(other, tmp_path / "lm")


def test_config_validation():
    with pytest.raises(ValueError, match="learning_rate"):
        RewardModelConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="warm-up"):
        RewardModelConfig(max_steps=5, warmup_steps=10)
    with pytest.raises(ValueError, match="per_device_train_batch_size"):
        RewardModelConfig(per_device_train_batch_size=0)


# ----------------------------------------------------------------------------- as a TRL reward


def test_reward_func_abstains_where_it_does_not_apply_and_never_raises(reward_model):
    general = lambda prompt: prompt[-1]["content"].split()[0] in {"greet", "thank", "say", "repeat:"}  # noqa: E731
    reward = reward_model.as_reward_func("general_rm", applies=general)
    assert reward.__name__ == "general_rm"
    prompts = [[{"role": "user", "content": "greet Ana"}], [{"role": "user", "content": "3+5+9"}]] * 2
    scores = reward(prompts, ["Hello Ana, nice to meet you!", "<answer>7</answer>", "Go away.", "7"])
    assert [type(s) for s in scores] == [float, type(None), float, type(None)]

    hostile = [
        "x" * 50_000,  # far past the model's 256 positions
        "<think><think><answer></think>" * 40,
        "h\u00e9llo \u4f60\u597d \U0001f600 \x00",
        "<|pad|><|endoftext|><|user|>",
        [{"role": "assistant", "content": "ok"}],
        None,
    ]
    anything = reward_model.as_reward_func()
    out = anything([[{"role": "user", "content": "greet Bo"}]] * len(hostile), hostile)
    assert len(out) == len(hostile) and all(isinstance(s, float) and math.isfinite(s) for s in out)
    long_prompt = [[{"role": "user", "content": "greet " + "Ana " * 5000}]]
    assert isinstance(anything(long_prompt, ["Hello Ana!"])[0], float)
    # A bad prompt, a predicate that raises, and mismatched lengths: None, not an exception.
    assert reward_model.as_reward_func(applies=lambda p: 1 / 0)([[{"role": "user", "content": "hi"}]], ["x"]) == [None]
    assert len(anything([object()], ["x"])) == 1
    mismatched = anything([[{"role": "user", "content": "hi"}]], ["a", "b"])  # never_raises scores row by row
    assert len(mismatched) == 2 and mismatched[1] is None
