"""The shared training loop: schedule, mixed precision on the CPU, logging, callbacks, checkpoints,
resume and its refusals, checked on a small language-modelling trainer."""

import json
import math
from dataclasses import replace

import pytest
import torch
from transformers import get_scheduler

from r1lib.checkpoint import complete_checkpoints, latest_checkpoint
from r1lib.configs import GRPOConfig, SFTConfig, TrainingConfig
from r1lib.stream import ExampleStream, RandomStream, fingerprint
from r1lib.tiny.model import TinyModelConfig, build_tiny_model
from r1lib.trainer import Trainer, TrainerCallback, log_to

SMALL = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


class ToyTrainer(Trainer):
    """Language modelling on fixed random sequences, drawn from a checkpointed stream."""

    name = "toy"

    def __init__(self, model, config, output_dir=None, **kwargs):
        super().__init__(model, config, output_dir, **kwargs)
        generator = torch.Generator().manual_seed(0)
        self.rows = [torch.randint(10, 100, (12,), generator=generator) for _ in range(20)]
        self.stream = ExampleStream(self.rows, seed=config.seed)
        self.evaluations = 0

    def on_fresh_start(self):
        self.stream = ExampleStream(self.rows, seed=self.config.seed)

    def trainer_state(self):
        return {"stream": self.stream.state_dict()}

    def load_trainer_state(self, state):
        self.stream.load_state_dict(state["stream"])

    def training_step(self):
        batch = torch.stack(self.stream.take(self.config.per_device_train_batch_size))
        with self.autocast():
            loss = self.model(input_ids=batch, labels=batch).loss
        self.backward(loss)
        return {"loss": loss.item()}


@pytest.fixture()
def model(tiny_tokenizer):
    return build_tiny_model(tiny_tokenizer, SMALL, seed=0)


def toy(model, tiny_tokenizer, tmp_path=None, **settings):
    config = TrainingConfig(**{"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-2, **settings})
    return ToyTrainer(model, config, tmp_path, tokenizer=tiny_tokenizer, progress=False)


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----------------------------------------------------------------------------- configs


def test_a_number_given_as_a_string_names_its_field():
    with pytest.raises(ValueError, match=r"learning_rate must be float, got str '1e-5'.*YAML"):
        TrainingConfig(learning_rate="1e-5")
    with pytest.raises(ValueError, match="max_steps must be int"):
        GRPOConfig(max_steps="10")
    with pytest.raises(ValueError, match="lr_scheduler_type must be one of"):
        TrainingConfig(lr_scheduler_type="cosine_annealing")
    with pytest.raises(ValueError, match="constant_with_warmup"):
        TrainingConfig(warmup_steps=5)
    with pytest.raises(ValueError, match="bf16 and fp16"):
        SFTConfig(bf16=True, fp16=True)
    assert TrainingConfig(learning_rate=1).learning_rate == 1  # an int is a fine float


def test_greedy_sampling_with_groups_is_refused():
    with pytest.raises(ValueError, match="temperature=0 is greedy"):
        GRPOConfig(temperature=0.0)


def test_warmup_ratio_and_steps():
    assert TrainingConfig(max_steps=200, warmup_ratio=0.1, lr_scheduler_type="linear").num_warmup_steps == 20
    assert TrainingConfig(max_steps=200, warmup_steps=7, warmup_ratio=0.1, lr_scheduler_type="linear").num_warmup_steps == 7


# ----------------------------------------------------------------------------- schedule and precision


def test_learning_rate_follows_transformers_schedule_with_warmup(model, tiny_tokenizer):
    trainer = toy(model, tiny_tokenizer, max_steps=10, warmup_steps=4, lr_scheduler_type="cosine")
    history = trainer.train()
    rates = [r["learning_rate"] for r in history]
    # The same schedule built by hand: linear warm-up from 0 over 4 steps, then a half cosine to 0.
    expected = [1e-2 * s / 4 if s < 4 else 1e-2 * 0.5 * (1 + math.cos(math.pi * (s - 4) / 6)) for s in range(10)]
    assert rates == pytest.approx(expected, abs=1e-9)
    reference = get_scheduler("cosine", torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))], lr=1e-2), 4, 10)
    assert reference.get_last_lr()[0] == rates[0] == 0.0


def test_mixed_precision_settings_run_in_float32_on_the_cpu(model, tiny_tokenizer):
    trainer = toy(model, tiny_tokenizer, fp16=True, max_steps=2)
    assert trainer.autocast_dtype is None and not trainer.scaler.is_enabled()
    with trainer.autocast():
        assert model(input_ids=torch.tensor([[10, 11]])).logits.dtype == torch.float32
    history = trainer.train()
    assert len(history) == 2 and all(math.isfinite(r["loss"]) for r in history)


def test_grad_scaler_skips_an_update_with_infinite_gradients(model, tiny_tokenizer):
    trainer = toy(model, tiny_tokenizer, max_steps=3)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)  # what fp16 on CUDA enables
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real = trainer.training_step

    def poisoned():
        metrics = real()
        next(model.parameters()).grad.view(-1)[0] = float("inf")
        return metrics

    trainer.training_step = poisoned
    metrics = trainer.step()
    assert metrics["skipped_update"] == 1.0 and trainer.scaler.get_scale() == 2.0**7  # halved
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert trainer.scheduler.last_epoch == 0  # a skipped update does not advance the schedule
    trainer.training_step = real
    assert "skipped_update" not in trainer.step()
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_finite_gradient_without_scaler_skips_with_a_warning(model, tiny_tokenizer):
    trainer = toy(model, tiny_tokenizer)
    real = trainer.training_step

    def nan_loss():
        metrics = real()
        for p in model.parameters():
            p.grad.fill_(float("nan"))
        return metrics

    trainer.training_step = nan_loss
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="update was skipped"):
        metrics = trainer.step()
    assert metrics["skipped_update"] == 1.0 and math.isnan(metrics["grad_norm"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_gradient_clipping_uses_max_grad_norm(model, tiny_tokenizer):
    trainer = toy(model, tiny_tokenizer, max_grad_norm=1e-3)
    trainer.step()
    total = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))
    assert float(total) == pytest.approx(1e-3, rel=1e-3)


# ----------------------------------------------------------------------------- logging and callbacks


def test_logging_steps_average_a_window_and_always_log_the_last_step(model, tiny_tokenizer, tmp_path):
    trainer = toy(model, tiny_tokenizer, tmp_path, max_steps=5, logging_steps=2)
    history = trainer.train()
    assert [r["step"] for r in history] == [2, 4, 5]
    assert read_log(tmp_path / "metrics.jsonl") == history
    other = ToyTrainer(build_tiny_model(tiny_tokenizer, SMALL, seed=0), TrainingConfig(
        max_steps=5, per_device_train_batch_size=4, learning_rate=1e-2), progress=False)
    losses = [r["loss"] for r in other.train()]
    assert history[0]["loss"] == pytest.approx((losses[0] + losses[1]) / 2, abs=1e-6)


def test_log_to_and_callbacks_see_every_record(model, tiny_tokenizer, tmp_path):
    class Tracker:
        def __init__(self):
            self.calls = []

        def log(self, values, step):
            self.calls.append((step, values))

    class Events(TrainerCallback):
        def __init__(self):
            self.seen = []

        def on_train_begin(self, trainer):
            self.seen.append("begin")

        def on_save(self, trainer, path):
            self.seen.append(path.name)

        def on_train_end(self, trainer):
            self.seen.append("end")

    tracker, events, plain = Tracker(), Events(), []
    trainer = toy(model, tiny_tokenizer, tmp_path, max_steps=4, save_steps=2)
    trainer = ToyTrainer(model, trainer.config, tmp_path, tokenizer=tiny_tokenizer, progress=False,
                         callbacks=[log_to(tracker), events, plain.append])
    trainer.train()
    assert [s for s, _ in tracker.calls] == [1, 2, 3, 4] and "step" not in tracker.calls[0][1]
    assert tracker.calls[0][1]["loss"] == plain[0]["loss"]
    assert events.seen == ["begin", "step-000002", "step-000004", "end"]


def test_nan_metrics_are_logged_as_null_not_zero(model, tiny_tokenizer, tmp_path):
    trainer = toy(model, tiny_tokenizer, tmp_path, max_steps=1)
    real = trainer.training_step
    trainer.training_step = lambda: {**real(), "rewards/broken/mean": float("nan")}
    trainer.train()
    assert read_log(tmp_path / "metrics.jsonl")[0]["rewards/broken/mean"] is None


# ----------------------------------------------------------------------------- checkpoints and resume


def test_save_total_limit_keeps_the_newest(model, tiny_tokenizer, tmp_path):
    trainer = toy(model, tiny_tokenizer, tmp_path, max_steps=7, save_steps=1, save_total_limit=2)
    trainer.train()
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step-000006", "step-000007"]


def test_resume_continues_step_for_step(tiny_tokenizer, tmp_path):
    reference = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "a", max_steps=6,
                    lr_scheduler_type="linear", warmup_steps=2).train()
    first = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "b", max_steps=6,
                lr_scheduler_type="linear", warmup_steps=2)
    real = first.step
    first.step = lambda: (_ for _ in ()).throw(KeyboardInterrupt) if first.state.step == 3 else real()
    first.train()  # interrupted after step 3: saves step-000003
    # A new process builds everything again (even from another seed): the checkpoint decides.
    second = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=1), tiny_tokenizer, tmp_path / "b", max_steps=6,
                 lr_scheduler_type="linear", warmup_steps=2)
    resumed = second.train(resume_from=True)
    assert [r["step"] for r in resumed] == list(range(1, 7))
    assert [r["loss"] for r in resumed[3:]] == pytest.approx([r["loss"] for r in reference[3:]], abs=1e-6)


def test_resume_refuses_a_changed_config_and_names_the_differences(model, tiny_tokenizer, tmp_path):
    toy(model, tiny_tokenizer, tmp_path, max_steps=2).train()
    changed = toy(model, tiny_tokenizer, tmp_path, max_steps=4, learning_rate=0.5, per_device_train_batch_size=2)
    with pytest.raises(ValueError, match=r"learning_rate: 0.01 in the checkpoint, 0.5 now") as error:
        changed.train(resume_from=True)
    assert "per_device_train_batch_size: 4 in the checkpoint, 2 now" in str(error.value)
    assert "max_steps" not in str(error.value)  # scheduling settings may change
    history = changed.train(resume_from=True, allow_config_changes=["learning_rate", "per_device_train_batch_size"])
    assert [r["step"] for r in history] == [1, 2, 3, 4]


def test_resume_trims_the_log_atomically_and_drops_torn_lines(model, tiny_tokenizer, tmp_path):
    toy(model, tiny_tokenizer, tmp_path, max_steps=4, save_steps=2).train()
    log = tmp_path / "metrics.jsonl"
    log.write_text(log.read_text() + '{"step": 5, "loss": 1.0}\n{"step": 6, "lo')  # written after step 4, then torn
    trainer = toy(model, tiny_tokenizer, tmp_path, max_steps=4, save_steps=2)
    trainer.resume(True)
    assert [r["step"] for r in read_log(log)] == [1, 2, 3, 4] == [r["step"] for r in trainer.state.history]
    assert not list(tmp_path.glob(".metrics.jsonl.*")), "temporary file left behind"


def test_a_fresh_start_replaces_an_earlier_run_with_a_warning(model, tiny_tokenizer, tmp_path):
    toy(model, tiny_tokenizer, tmp_path, max_steps=4, save_steps=2).train()
    with pytest.warns(UserWarning, match="earlier run"):
        toy(model, tiny_tokenizer, tmp_path, max_steps=2, save_steps=2).train()
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step-000002"
    assert [r["step"] for r in read_log(tmp_path / "metrics.jsonl")] == [1, 2]


def test_keyboard_interrupt_saves_its_open_logging_window_and_resume_logs_it_whole(tiny_tokenizer, tmp_path):
    settings = dict(max_steps=10, logging_steps=4, save_steps=100)
    reference = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "a", **settings).train()
    trainer = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "b", **settings)
    real = trainer.step

    def interrupt_at_three():
        if trainer.state.step == 3:
            raise KeyboardInterrupt
        return real()

    trainer.step = interrupt_at_three
    trainer.train()
    assert trainer.outcome == "interrupted"
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step-000003"
    assert not (tmp_path / "b" / "metrics.jsonl").exists()  # steps 1-3 wait in the checkpoint for their window
    resumed = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "b", **settings)
    history = resumed.train(resume_from=True)
    assert resumed.outcome == "completed"
    assert [r["step"] for r in history] == [4, 8, 10] == [r["step"] for r in reference]
    assert [r["loss"] for r in history] == [r["loss"] for r in reference]
    assert [r["logged_steps"] for r in history] == [4, 4, 2]


def test_in_memory_trainer_writes_nothing(model, tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    history = toy(model, tiny_tokenizer, None, max_steps=2).train()
    assert len(history) == 2 and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="output_dir"):
        toy(model, tiny_tokenizer, None).train(resume_from=True)


def test_a_model_without_trainable_parameters_is_refused(model, tiny_tokenizer):
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        toy(model, tiny_tokenizer)


# ----------------------------------------------------------------------------- streams


def test_example_stream_is_seeded_epoch_shuffled_and_restorable():
    stream = ExampleStream(list(range(5)), seed=3)
    first = stream.take(5)
    assert sorted(first) == [0, 1, 2, 3, 4]  # every item once before any repeats
    state = stream.state_dict()
    later = stream.take(7)
    restored = ExampleStream(list(range(5)), seed=3)
    restored.load_state_dict(json.loads(json.dumps(state)))
    assert restored.take(7) == later
    assert ExampleStream(list(range(5)), seed=4).take(5) != first
    with pytest.raises(ValueError, match="same training data"):
        ExampleStream(list(range(6)), seed=3).load_state_dict(state)


def test_random_stream_restores_its_generator():
    stream = RandomStream(lambda rng, scale=1: rng.random() * scale, seed=0)
    stream.take(3)
    state = json.loads(json.dumps(stream.state_dict()))
    later = stream.take(4, scale=2)
    again = RandomStream(lambda rng, scale=1: rng.random() * scale, seed=0)
    again.load_state_dict(state)
    assert again.take(4, scale=2) == later



# ----------------------------------------------------------------------------- robustness


def test_a_damaged_newest_checkpoint_is_named_and_resume_falls_back(tiny_tokenizer, tmp_path):
    toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, max_steps=4, save_steps=2).train()
    weights = tmp_path / "checkpoints" / "step-000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])  # cut short, as by a full disk
    trainer = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, max_steps=4, save_steps=2)
    with pytest.warns(UserWarning, match=r"step-000004/model.safetensors has 64 bytes.*resuming from step-000002"):
        assert trainer.resume(True)
    assert trainer.state.step == 2
    assert [r["step"] for r in read_log(tmp_path / "metrics.jsonl")] == [1, 2]


def test_resuming_from_an_older_checkpoint_retires_the_abandoned_branch(tiny_tokenizer, tmp_path):
    """save_total_limit used to keep the highest step numbers: the abandoned branch's step-8 stayed,
    the new step-7 was the one deleted next, and resume_from=True went back to the stale branch."""
    settings = dict(max_steps=8, save_steps=2, save_total_limit=2)
    toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, **settings).train()
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step-000006", "step-000008"]
    branch = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, **{**settings, "save_steps": 1})
    real = branch.step
    branch.step = lambda: (_ for _ in ()).throw(KeyboardInterrupt) if branch.state.step == 7 else real()
    with pytest.warns(UserWarning, match=r"step-000008.*abandoned continuation"):
        branch.train(resume_from=tmp_path / "checkpoints" / "step-000006", allow_config_changes=["save_steps"])
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step-000006", "step-000007"]
    assert [p.name for p in (tmp_path / "abandoned_checkpoints").glob("*/step-*")] == ["step-000008"]
    again = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, **{**settings, "save_steps": 1})
    assert [r["step"] for r in again.train(resume_from=True)] == list(range(1, 9))


def test_temporary_files_of_a_killed_log_rewrite_are_removed_at_the_next_start(model, tiny_tokenizer, tmp_path):
    toy(model, tiny_tokenizer, tmp_path, max_steps=2, save_steps=2).train()
    leftover = tmp_path / ".metrics.jsonl.k1ll3d"
    leftover.write_text("x" * 1000)
    toy(model, tiny_tokenizer, tmp_path, max_steps=2, save_steps=2).resume(True)
    assert not leftover.exists()


def test_a_longer_cosine_run_on_resume_is_refused_with_the_learning_rate_jump(tiny_tokenizer, tmp_path):
    settings = dict(lr_scheduler_type="cosine", save_steps=2)
    toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, max_steps=4, **settings).train()
    longer = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, max_steps=8, **settings)
    with pytest.raises(ValueError, match=r"cosine schedule depends on max_steps.*from 0 to 0.005\. "):
        longer.train(resume_from=True)
    with pytest.warns(UserWarning, match="depends on max_steps"):
        longer.train(resume_from=True, allow_config_changes=["max_steps"])
    assert longer.state.step == 8
    constant = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "c", max_steps=2)
    constant.train()
    more = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "c", max_steps=4)
    assert [r["step"] for r in more.train(resume_from=True)] == [1, 2, 3, 4]  # a constant rate does not jump


def test_a_diverged_run_stops_with_an_error_naming_the_learning_rate(tiny_tokenizer, tmp_path):
    trainer = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, max_steps=40)
    real = trainer.training_step
    trainer.training_step = lambda: {**real(), "loss": float("nan")}
    trainer.backward = lambda loss: (loss * float("nan")).backward()  # every gradient NaN from the first step on
    with pytest.warns(UserWarning, match="update was skipped"), \
            pytest.raises(FloatingPointError, match=r"last 10 updates .* were all skipped.*learning_rate=0.01"):
        trainer.train()
    assert trainer.state.step == 9
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), build_tiny_model(tiny_tokenizer, SMALL, seed=0).parameters()))


def test_an_unwritable_output_dir_fails_before_any_compute(model, tiny_tokenizer, tmp_path):
    (tmp_path / "a_file").write_text("")
    trainer = toy(model, tiny_tokenizer, tmp_path / "a_file" / "run")
    trainer.training_step = lambda: pytest.fail("computed a step before checking output_dir")
    with pytest.raises(PermissionError, match=r"a_file/run cannot be written.*choose a folder"):
        trainer.train()


def test_resuming_on_other_data_of_the_same_size_is_refused(tiny_tokenizer, tmp_path):
    class FingerprintedToy(ToyTrainer):
        def data_fingerprint(self):
            return {"train_examples": fingerprint([row.tolist() for row in self.rows])}

    config = TrainingConfig(max_steps=4, per_device_train_batch_size=4, save_steps=2)
    FingerprintedToy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), config, tmp_path, progress=False).train()
    other = FingerprintedToy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), replace(config, max_steps=6), tmp_path, progress=False)
    other.rows = [row + 1 for row in other.rows]  # same count, other content
    with pytest.raises(ValueError, match=r"trained on other train_examples.*allow_config_changes=\['train_examples'\]"):
        other.train(resume_from=True)
    assert other.train(resume_from=True, allow_config_changes=["train_examples"])[-1]["step"] == 6


def test_full_training_of_fp16_weights_with_loss_scaling_is_refused_with_the_fix(model, tiny_tokenizer):
    model.half()
    with pytest.raises(ValueError, match=r"trainable parameters are float16.*dtype=torch.float32.*LoRA"):
        toy(model, tiny_tokenizer, fp16=True)


def test_costs_are_summed_over_a_logging_window(model, tiny_tokenizer):
    trainer = toy(model, tiny_tokenizer, max_steps=5, logging_steps=3)
    real = trainer.training_step
    trainer.training_step = lambda: {**real(), "flops/training": 100.0}
    history = trainer.train()
    assert [(r["step"], r["logged_steps"], r["flops/training"]) for r in history] == [(3, 3, 300.0), (5, 2, 200.0)]


def test_a_budget_spent_before_the_first_step_stops_without_a_step(model, tiny_tokenizer):
    class SpentAlready(TrainerCallback):
        def on_train_begin(self, trainer):
            trainer.request_stop()

    trainer = toy(model, tiny_tokenizer, max_steps=4)
    trainer.add_callback(SpentAlready())
    trainer.training_step = lambda: pytest.fail("took a step after the budget was spent")
    trainer.train()
    assert trainer.outcome == "stopped" and trainer.state.step == 0


def test_a_checkpoint_that_fails_halfway_leaves_a_trainer_that_refuses_to_train(tiny_tokenizer, tmp_path):
    toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path, max_steps=2, save_steps=2).train()
    optimizer_file = tmp_path / "checkpoints" / "step-000002" / "optimizer.safetensors"
    optimizer_file.write_bytes(b"\xff" * optimizer_file.stat().st_size)  # same size: found only when read
    trainer = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=1), tiny_tokenizer, tmp_path, max_steps=4, save_steps=2)
    with pytest.raises(Exception, match="optimizer.safetensors cannot be read"):
        trainer.train(resume_from=True)
    with pytest.raises(RuntimeError, match="partly loaded from .*step-000002.*build the model and the trainer again"):
        trainer.train()


def test_resuming_from_a_checkpoint_outside_the_run_moves_nothing(tiny_tokenizer, tmp_path):
    toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "backup", max_steps=2, save_steps=2).train()
    toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "run", max_steps=4, save_steps=2).train()
    trainer = toy(build_tiny_model(tiny_tokenizer, SMALL, seed=0), tiny_tokenizer, tmp_path / "run", max_steps=4, save_steps=2)
    assert trainer.resume(tmp_path / "backup" / "checkpoints" / "step-000002")
    assert [p.name for p in complete_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-000002", "step-000004"]
