"""Supervised fine-tuning: data shapes, the completion-only loss by hand, packing that changes
nothing, bad input refused before any compute, and learning."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import r1lib.sft
from r1lib.configs import SFTConfig
from r1lib.evaluate import evaluate
from r1lib.records import (
    PromptCompletion,
    collate,
    encode_example,
    example_from_record,
    load_jsonl,
    pack,
    save_jsonl,
)
from r1lib.sft import SFTTrainer
from r1lib.tasks import ChainTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.trainer import TrainerCallback

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def chain_examples(n, seed=0):
    task = ChainTask(max_terms=3)
    return [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>") for e in task.generate(n, seed=seed)]


def test_trl_shapes_are_read_and_written(tmp_path):
    conversational = {"messages": [{"role": "user", "content": "3+4"}, {"role": "assistant", "content": "<answer>7</answer>"}]}
    pair = {"prompt": [{"role": "user", "content": "3+4"}], "completion": [{"role": "assistant", "content": "<answer>7</answer>"}]}
    plain = {"prompt": "3+4", "completion": "<answer>7</answer>"}
    examples = [example_from_record(r) for r in (conversational, pair, plain)]
    assert examples[0] == examples[1] == examples[2] == PromptCompletion([{"role": "user", "content": "3+4"}], "<answer>7</answer>")
    path = save_jsonl(examples, tmp_path / "cold.jsonl")
    assert load_jsonl(path) == examples
    assert json.loads(path.read_text().splitlines()[0]) == pair


def test_malformed_data_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "1+1", "completion": "2"}\n{"prompt": "1+1", "completion": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: invalid JSON"):
        load_jsonl(path)
    path.write_text('{"prompt": "1+1"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected 'messages', or 'prompt' and 'completion'"):
        load_jsonl(path)
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(ValueError, match="must end with an assistant message"):
        load_jsonl(path)
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no examples"):
        load_jsonl(path)


def test_bad_input_is_refused_before_any_compute(random_model, tiny_tokenizer):
    config = SFTConfig(max_steps=2, per_device_train_batch_size=2)
    with pytest.raises(ValueError, match="at least one training example"):
        SFTTrainer(random_model, tiny_tokenizer, [], config)
    too_long = PromptCompletion([{"role": "user", "content": "1+1"}], "x" * 300)
    with pytest.raises(ValueError, match=r"example 1 has 30[0-9] tokens .* more than max_length=256"):
        SFTTrainer(random_model, tiny_tokenizer, [chain_examples(1)[0], too_long], config)
    with pytest.raises(ValueError, match="max_length=20"):
        SFTTrainer(random_model, tiny_tokenizer, chain_examples(3) + [PromptCompletion([{"role": "user", "content": "9" * 30}], "x")],
                   SFTConfig(max_length=20))
    with pytest.raises(TypeError, match="not a PromptCompletion"):
        SFTTrainer(random_model, tiny_tokenizer, [{"prompt": "1", "completion": "2"}], config)


@pytest.mark.parametrize("completion", ["", "  \n"])
def test_an_empty_completion_is_refused_naming_the_example(random_model, tiny_tokenizer, completion):
    examples = chain_examples(3)
    examples[1] = PromptCompletion(examples[1].prompt, completion)
    with pytest.raises(ValueError, match=r"example 1 has an empty completion .*drop the example or give it the assistant"):
        SFTTrainer(random_model, tiny_tokenizer, examples, SFTConfig(max_steps=1))


def test_temperature_zero_evaluates_greedily(random_model, tiny_tokenizer, monkeypatch):
    task = ChainTask(max_terms=3)
    held_out = task.generate(4, seed=9)
    temperatures = []

    def spy(*args, **kwargs):
        temperatures.append(kwargs["temperature"])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(r1lib.sft, "evaluate_policy", spy)
    trainer = SFTTrainer(random_model, tiny_tokenizer, chain_examples(4), SFTConfig(max_steps=1, temperature=0.0,
                         max_new_tokens=6, eval_examples=4), eval_task=task, eval_examples=held_out, progress=False)
    metrics = trainer.evaluate()
    assert temperatures == [0.0]
    greedy = evaluate(random_model, tiny_tokenizer, task, held_out, temperature=0.0, max_new_tokens=6, seed=12345)
    assert metrics == {f"eval/{k}": v for k, v in greedy.summary().items()}


def test_loss_is_the_mean_over_completion_tokens_by_hand(random_model, tiny_tokenizer):
    examples = chain_examples(3)
    config = SFTConfig(max_steps=1, per_device_train_batch_size=3, learning_rate=1e-9)
    trainer = SFTTrainer(random_model, tiny_tokenizer, examples, config, progress=False)
    metrics = trainer.step()
    losses, count = [], 0
    for example in examples:
        ids, prompt_len = encode_example(tiny_tokenizer, example)
        with torch.no_grad():
            logits = random_model(input_ids=torch.tensor([ids])).logits[0]
        target = torch.tensor(ids[prompt_len:])
        losses.append(F.cross_entropy(logits[prompt_len - 1 : -1], target, reduction="sum").item())
        count += len(target)
    assert metrics["num_tokens"] == count == sum(len(encode_example(tiny_tokenizer, e)[0]) - encode_example(tiny_tokenizer, e)[1] for e in examples)
    assert metrics["loss"] == pytest.approx(sum(losses) / count, abs=1e-5)


def test_packing_computes_each_example_as_if_alone(random_model, tiny_tokenizer):
    encoded = [encode_example(tiny_tokenizer, e) for e in chain_examples(5)]
    rows = pack(encoded, 64)
    assert len(rows) < len(encoded) and sorted(len(i[0]) for r in rows for i in r) == sorted(len(i[0]) for i in encoded)
    packed = collate(rows, tiny_tokenizer.pad_token_id)
    single = collate([[e] for e in encoded], tiny_tokenizer.pad_token_id)

    def loss(batch):
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = random_model(**batch, use_cache=False).logits  # with a cache, packing goes undetected
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100, reduction="sum").item()

    assert loss(packed) == pytest.approx(loss(single), rel=1e-5)


class StopAt(TrainerCallback):
    """Stops a run after ``step`` (its checkpoint is saved), as a kill after a save would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_log(self, trainer, record) -> None:
        if record["step"] == self.step:
            trainer.request_stop()


def test_sft_learns_and_resumes_exactly(tiny_tokenizer, tmp_path):
    examples = chain_examples(64)
    config = SFTConfig(max_steps=40, per_device_train_batch_size=16, learning_rate=3e-3, lr_scheduler_type="cosine",
                       warmup_steps=4, save_steps=20, eval_steps=20, eval_examples=16, max_new_tokens=8)
    task = ChainTask(max_terms=3)

    def trainer(folder, seed=0, callbacks=()):
        return SFTTrainer(build_tiny_model(tiny_tokenizer, SMALL, seed=seed), tiny_tokenizer, examples, config,
                          tmp_path / folder, eval_task=task, eval_examples=task.generate(16, seed=9),
                          callbacks=callbacks, progress=False)

    whole = trainer("whole")
    history = whole.train()
    steps = [r for r in history if r["step"] > 0]
    assert steps[-1]["loss"] < steps[0]["loss"] / 2  # from ~4.7 nats per token, the answers become predictable
    assert history[0]["step"] == 0 and "eval/pass@1" in history[-1]

    first = trainer("resumed", callbacks=[StopAt(20)])
    first.train()
    checkpoints = tmp_path / "resumed" / "checkpoints"
    assert first.state.step == 20 and (checkpoints / "step-000020" / "model.safetensors").exists()
    second = trainer("resumed", seed=1)  # other initial weights: all that continues must come from the checkpoint
    resumed = second.train(resume_from=True)
    assert second.state.step == 40 and (checkpoints / "step-000040" / "model.safetensors").exists()
    for (name, a), b in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    keys = ("step", "loss", "grad_norm", "learning_rate", "num_tokens", "eval/pass@1")
    assert [[r.get(k) for k in keys] for r in resumed] == [[r.get(k) for k in keys] for r in history]


def test_epochs_set_the_number_of_steps(random_model, tiny_tokenizer):
    trainer = SFTTrainer(random_model, tiny_tokenizer, chain_examples(10), SFTConfig(num_train_epochs=3,
                         per_device_train_batch_size=4), progress=False)
    assert trainer.config.max_steps == math.ceil(3 * 10 / 4)


def test_resuming_sft_on_other_examples_of_the_same_count_is_refused(random_model, tiny_tokenizer, tmp_path):
    def examples(offset):
        return [PromptCompletion([{"role": "user", "content": f"{i}+{offset}"}], f"<answer>{(i + offset) % 10}</answer>")
                for i in range(8)]

    config = SFTConfig(max_steps=2, per_device_train_batch_size=4, save_steps=2)
    SFTTrainer(random_model, tiny_tokenizer, examples(1), config, tmp_path, progress=False).train()
    longer = SFTConfig(max_steps=4, per_device_train_batch_size=4, save_steps=2)
    other = SFTTrainer(random_model, tiny_tokenizer, examples(2), longer, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"trained on other train_examples"):
        other.train(resume_from=True)
