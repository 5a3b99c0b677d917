"""DPO's implicit reward model: log-probabilities and the loss by hand, the judge's exact zero, training
that learns the preferences, saving, and a stopped run resumed as if it had never stopped."""

from __future__ import annotations

import copy
import json
import math
import os
import signal

import pytest
import torch

from r1lib.configs import DPOConfig
from r1lib.dpo import DPOTrainer, ImplicitRewardModel, dpo_loss, sequence_logps, train_implicit_reward_model
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.records import prompt_ids
from r1lib.reward_model import preference_accuracy
from r1lib.tasks.general import GeneralTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
PROMPTS = [[{"role": "user", "content": "greet Ana"}], [{"role": "user", "content": "thank Bo for the tea"}],
           "a plain string prompt"]
REPLIES = ["Hello Ana!", "Thanks Bo, the tea was lovely and warm.", ""]


@pytest.fixture
def small_pair(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, SMALL, seed=0)
    reference = build_tiny_model(tiny_tokenizer, SMALL, seed=1)
    return model, reference


def test_sequence_logps_equal_a_sum_computed_by_hand(small_pair, tiny_tokenizer):
    model, _ = small_pair
    batched = sequence_logps(model, tiny_tokenizer, PROMPTS, REPLIES)
    for i, (prompt, reply) in enumerate(zip(PROMPTS, REPLIES)):
        head = prompt_ids(tiny_tokenizer, prompt)
        body = tiny_tokenizer(reply, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
        ids = torch.tensor([head + body])
        with torch.no_grad():
            logps = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        by_hand = sum(logps[len(head) - 1 + j, token].item() for j, token in enumerate(body))
        assert batched[i].item() == pytest.approx(by_hand, abs=1e-4), i  # left padding changes nothing
    assert batched[2].item() < 0  # the empty reply still pays for its EOS


def test_dpo_loss_by_hand():
    loss = dpo_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0]), 0.1)
    # implicit rewards 0.1 * (+1) and 0.1 * (-1): the margin is 0.2
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.2)), abs=1e-6)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.0)


def test_the_judge_is_exactly_zero_before_training_and_refuses_bad_settings(small_pair, tiny_tokenizer):
    model, _ = small_pair
    judge = ImplicitRewardModel(model, copy.deepcopy(model), tiny_tokenizer, beta=0.5)
    assert judge.score(PROMPTS, REPLIES) == [0.0, 0.0, 0.0]
    assert not any(p.requires_grad for p in judge.reference.parameters())
    with pytest.raises(ValueError, match="separate"):
        ImplicitRewardModel(model, model, tiny_tokenizer)
    with pytest.raises(ValueError, match="beta"):
        ImplicitRewardModel(model, copy.deepcopy(model), tiny_tokenizer, beta=0)
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=-1.0)


def test_scores_are_beta_times_the_log_ratio(small_pair, tiny_tokenizer):
    model, reference = small_pair
    judge = ImplicitRewardModel(model, reference, tiny_tokenizer, beta=0.25, batch_size=2)  # two batches
    with torch.no_grad():
        expected = 0.25 * (sequence_logps(model, tiny_tokenizer, PROMPTS, REPLIES)
                           - sequence_logps(reference, tiny_tokenizer, PROMPTS, REPLIES))
    assert judge.score(PROMPTS, REPLIES) == pytest.approx(expected.tolist(), abs=1e-5)
    reward = judge.as_reward_func("judge", applies=lambda prompt: not isinstance(prompt, str))
    values = reward(PROMPTS, REPLIES)
    assert values[2] is None and values[:2] == pytest.approx(expected[:2].tolist(), abs=1e-5)


def test_a_padded_vocabulary_is_accepted_and_two_vocabularies_are_not(small_pair, tiny_tokenizer):
    model, reference = small_pair
    for network in (model, reference):  # Qwen's embeddings have more rows than its tokenizer has tokens
        network.resize_token_embeddings(len(tiny_tokenizer) + 8)
    judge = ImplicitRewardModel(model, reference, tiny_tokenizer)
    assert len(judge.score(PROMPTS, REPLIES)) == 3
    other = build_tiny_model(tiny_tokenizer, SMALL, seed=2)
    with pytest.raises(ValueError, match="share one vocabulary"):
        ImplicitRewardModel(model, other, tiny_tokenizer)
    with pytest.raises(ValueError, match="at least one preference pair"):
        DPOTrainer(model, reference, tiny_tokenizer, [], DPOConfig(), progress=False)


def test_dpo_learns_the_preferences_of_held_out_requests(tiny_base_path):
    general = GeneralTask()
    held = general.all_examples()[::4]
    train = general.generate(400, seed=0, exclude=[e.question for e in held])
    pairs, evaluation = general.pairs_for(train, seed=0), general.pairs_for(held * 4, seed=1)
    model, tokenizer = load_model_and_tokenizer(ModelSpec(str(tiny_base_path)))
    reference, _ = load_model_and_tokenizer(ModelSpec(str(tiny_base_path)), trainable=False)
    trainer = DPOTrainer(model, reference, tokenizer, pairs, DPOConfig(max_steps=40, eval_steps=40),
                         eval_pairs=evaluation, progress=False)
    history = trainer.train_to_the_end()
    accuracy = [r["eval/accuracy"] for r in history if "eval/accuracy" in r]
    assert accuracy[0] == 0.5  # step 0: the model is its reference, every score is 0, all ties
    assert accuracy[-1] > 0.75 and accuracy[-1] == preference_accuracy(trainer.reward_model, evaluation)
    assert history[-1]["loss"] < math.log(2)  # below the loss of a judge that cannot tell the replies apart


def test_ctrl_c_raises_instead_of_returning_a_half_trained_judge(tiny_tokenizer, tmp_path):
    trainer = _trainer(tiny_tokenizer, tmp_path / "run", 6)
    trainer.add_callback(lambda record: os.kill(os.getpid(), signal.SIGINT) if record["step"] == 2 else None)
    with pytest.raises(KeyboardInterrupt, match="DPO training stopped at step 2 of 6; run again to resume"):
        trainer.train_to_the_end()
    assert (tmp_path / "run" / "checkpoints" / "step-000002").exists()


def test_save_and_load_round_trip(small_pair, tiny_tokenizer, tmp_path):
    model, reference = small_pair
    reference.save_pretrained(str(tmp_path / "reference"))
    judge = ImplicitRewardModel(model, reference, tiny_tokenizer, beta=0.3, reference_name=str(tmp_path / "reference"))
    before = judge.score(PROMPTS, REPLIES)
    loaded = ImplicitRewardModel.load(judge.save(tmp_path / "judge"))
    assert loaded.beta == 0.3 and loaded.score(PROMPTS, REPLIES) == pytest.approx(before, abs=1e-6)
    (tmp_path / "moved").mkdir()
    (tmp_path / "reference").rename(tmp_path / "moved" / "reference")
    with pytest.raises(OSError):
        ImplicitRewardModel.load(tmp_path / "judge")  # the recorded reference is gone
    moved = ImplicitRewardModel.load(tmp_path / "judge", reference=tmp_path / "moved" / "reference")
    assert moved.score(PROMPTS, REPLIES) == pytest.approx(before, abs=1e-6)
    with pytest.raises(FileNotFoundError, match="implicit_reward.json"):
        ImplicitRewardModel.load(tmp_path / "moved" / "reference")


def _trainer(tokenizer, output_dir, max_steps, stop_at=None):
    model = build_tiny_model(tokenizer, SMALL, seed=0)
    reference = build_tiny_model(tokenizer, SMALL, seed=0)
    config = DPOConfig(max_steps=max_steps, per_device_train_batch_size=4, save_steps=2, learning_rate=3e-3)
    trainer = DPOTrainer(model, reference, tokenizer, GeneralTask().preference_pairs(40, seed=0), config, output_dir,
                         progress=False)
    if stop_at is not None:
        trainer.add_callback(lambda record: trainer.request_stop() if record["step"] == stop_at else None)
    return trainer


def test_a_stopped_run_resumes_as_if_it_had_never_stopped(tiny_tokenizer, tmp_path):
    whole = [r for r in _trainer(tiny_tokenizer, tmp_path / "whole", 6).train() if r["step"] > 0]
    assert [r["step"] for r in whole] == list(range(1, 7))
    first = _trainer(tiny_tokenizer, tmp_path / "split", 6, stop_at=3)
    first.train()
    assert first.outcome == "stopped" and first.state.step == 3
    resumed = _trainer(tiny_tokenizer, tmp_path / "split", 6)
    resumed.train(resume_from=True)
    assert resumed.state.step == 6
    split = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    split = [r for r in split if r["step"] > 0]
    assert [r["step"] for r in split] == list(range(1, 7))
    for mine, theirs in zip(split, whole):
        for key in ("loss", "accuracy", "margin"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-6), (key, mine["step"])


def test_train_implicit_reward_model_returns_the_trained_judge_in_eval_mode(small_pair, tiny_tokenizer):
    model, reference = small_pair
    before = [p.detach().clone() for p in model.parameters()]
    judge = train_implicit_reward_model(model, reference, tiny_tokenizer, GeneralTask().preference_pairs(8, seed=0),
                                        DPOConfig(max_steps=2, per_device_train_batch_size=4, beta=0.2), progress=False)
    assert judge.model is model and judge.reference is reference and judge.beta == 0.2 and not model.training
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # trained in place
