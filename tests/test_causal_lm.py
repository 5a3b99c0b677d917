"""The causal-LM step shared by pretraining, SFT and distillation (its pluggable loss and source), and
the data streams the base trainer resets, checkpoints and fingerprints for every trainer."""

import copy
import json

import pytest

from r1lib.causal_lm import CausalLMTrainer, CrossEntropyLoss, TokenLoss
from r1lib.configs import DistillConfig, SFTConfig, TrainingConfig
from r1lib.distill import DistillationLoss, DistillTrainer
from r1lib.records import PromptCompletion, encode_example
from r1lib.sft import SFTTrainer
from r1lib.tasks import ChainTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.trainer import TrainerCallback

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def examples(n=12, seed=0):
    """Chain problems with replies of mixed lengths, so that micro-batches hold unequal token counts."""
    task = ChainTask(max_terms=3)
    return [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>" + " ok" * (i % 4))
            for i, e in enumerate(task.generate(n, seed=seed))]


class MeanCrossEntropy(TokenLoss):
    """The cross-entropy as a mean over each micro-batch's label tokens."""

    reduction = "mean"

    def __call__(self, logits, labels, logits_of):
        return CrossEntropyLoss()(logits, labels, logits_of) / (labels[:, 1:] != -100).sum()


def test_a_summed_and_a_mean_loss_give_the_same_step(tiny_tokenizer):
    """Either reduction becomes the mean over every label token of the step, however the micro-batches split them."""
    config = SFTConfig(max_steps=1, per_device_train_batch_size=2, gradient_accumulation_steps=3)
    model = build_tiny_model(tiny_tokenizer, SMALL, seed=0)
    summed = SFTTrainer(model, tiny_tokenizer, examples(), config, progress=False)
    averaged = SFTTrainer(copy.deepcopy(model), tiny_tokenizer, examples(), config, progress=False)
    averaged.loss = MeanCrossEntropy()
    a, b = summed.step(), averaged.step()
    assert a["num_tokens"] == b["num_tokens"]
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)


class FixedRows(CausalLMTrainer):
    """The smallest causal-LM trainer: its own rows, and whatever loss it is given."""

    def __init__(self, model, tokenizer, rows, loss):
        super().__init__(model, TrainingConfig(max_steps=1, per_device_train_batch_size=2), tokenizer=tokenizer,
                         loss=loss, progress=False)
        self.rows = rows

    def draw(self, count):
        return self.rows[:count], {"drawn": float(count)}


def test_a_source_and_a_teacher_loss_plug_into_the_step(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, SMALL, seed=0)
    rows = [encode_example(tiny_tokenizer, e) for e in examples(2)]
    twin = copy.deepcopy(model).eval().requires_grad_(False)  # a teacher equal to the student: nothing to learn
    trainer = FixedRows(model, tiny_tokenizer, rows, DistillationLoss(twin, DistillConfig(divergence="forward_kl")))
    metrics = trainer.training_step()
    processed = sum(len(ids) for ids, _ in rows)
    assert metrics["drawn"] == 2.0 and metrics["num_tokens"] == sum(len(ids) - p for ids, p in rows)
    assert metrics["loss"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["flops/teacher"] * 3 == metrics["flops/training"] == 6.0 * trainer.num_parameters * processed
    ce = FixedRows(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, rows, CrossEntropyLoss())
    metrics = ce.training_step()
    assert metrics["loss"] > 1.0 and "flops/teacher" not in metrics


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_log(self, trainer, record):
        if record["step"] == self.step:
            trainer.request_stop()


def numbers(history):
    return [{k: v for k, v in record.items() if k != "step_time"} for record in history]


def sft(tiny_tokenizer, folder, data=None, callbacks=()):
    config = SFTConfig(max_steps=4, per_device_train_batch_size=2, save_steps=2, eval_steps=1000)
    return SFTTrainer(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, data or examples(), config,
                      folder, callbacks=callbacks, progress=False)


def test_declared_streams_are_reset_checkpointed_and_fingerprinted(tiny_tokenizer, tmp_path):
    whole = sft(tiny_tokenizer, tmp_path / "whole")
    whole.stream.take(5)  # drawn before training: a fresh run starts the stream over
    history = numbers(whole.train())
    assert history == numbers(sft(tiny_tokenizer, None).train())

    first = sft(tiny_tokenizer, tmp_path / "resumed", callbacks=[StopAt(2)])
    first.train()
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "step-000002" / "trainer_state.json").read_text())
    assert state["stream"] == {"epoch": 0, "position": 4, "size": 12, "seed": 0}
    assert set(state["fingerprints"]) == {"train_examples"}
    second = sft(tiny_tokenizer, tmp_path / "resumed")
    assert numbers(second.train(resume_from=True)) == history

    other = sft(tiny_tokenizer, tmp_path / "resumed", data=examples(seed=1))  # as many examples, other ones
    with pytest.raises(ValueError, match="trained on other train_examples"):
        other.train(resume_from=tmp_path / "resumed" / "checkpoints" / "step-000002")


def test_a_stream_the_checkpoint_lacks_starts_at_its_beginning(tiny_tokenizer, tmp_path):
    """A run that drew no prompts wrote no prompt stream: resumed with prompts, that stream starts anew."""
    task = ChainTask(max_terms=3)
    config = DistillConfig(max_steps=2, per_device_train_batch_size=2, save_steps=2, eval_steps=1000)

    def distill(prompts=()):
        student, teacher = (build_tiny_model(tiny_tokenizer, SMALL, seed=s) for s in (0, 1))
        return DistillTrainer(student, tiny_tokenizer, teacher, examples(), config, tmp_path, task=task,
                              prompts=prompts, progress=False)

    distill().train()
    resumed = distill(prompts=task.generate(6, seed=2))
    resumed.train(resume_from=True)
    assert resumed.state.step == 2 and resumed.stream.position == 4 and resumed.prompt_stream.position == 0


def test_an_interrupted_step_puts_its_draws_back(tiny_tokenizer):
    trainer = sft(tiny_tokenizer, None)
    real = trainer.draw

    def draw_then_stop(count):
        items = real(count)
        if trainer.state.step == 2:
            raise KeyboardInterrupt
        return items

    trainer.draw = draw_then_stop
    trainer.train()
    assert trainer.outcome == "interrupted" and trainer.state.step == 2 and trainer.stream.position == 4
    trainer.draw = real
    assert numbers(trainer.train()) == numbers(sft(tiny_tokenizer, None).train())
