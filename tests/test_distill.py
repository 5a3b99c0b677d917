"""Distillation: KD losses by hand and against TRL's GKD, the trainer's costs in the compute ledger
and budget, the shared vocabulary check, the end-of-sequence guard, and a student that moves towards
its teacher."""

import math

import pytest
import torch

from r1lib.compute import Budget, ComputeLedger, compute_curve
from r1lib.configs import DistillConfig
from r1lib.distill import (
    DistillTrainer,
    check_same_vocabulary,
    generalized_jsd,
    generate_traces,
    kd_loss,
    on_policy_reverse_kl,
)
from r1lib.records import PromptCompletion
from r1lib.rollout import render_prompts, rollout
from r1lib.stream import ExampleStream
from r1lib.tasks import ChainTask
from r1lib.tiny.model import TinyModelConfig, build_tiny_model

TEACHER = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
STUDENT = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)

# A two-token vocabulary: teacher p = (0.8, 0.2), student q = (0.5, 0.5), as logits.
P, Q = (0.8, 0.2), (0.5, 0.5)
TEACHER_LOGITS = torch.tensor([[[math.log(0.8), math.log(0.2)]]])
STUDENT_LOGITS = torch.tensor([[[0.0, 0.0]]])
ONE = torch.ones(1, 1)


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def test_kd_losses_by_hand_on_two_tokens():
    forward, reverse = kl(P, Q), kl(Q, P)
    assert forward == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4))
    assert kd_loss(STUDENT_LOGITS, TEACHER_LOGITS, ONE, "forward_kl").item() == pytest.approx(forward, abs=1e-6)
    assert kd_loss(STUDENT_LOGITS, TEACHER_LOGITS, ONE, "reverse_kl").item() == pytest.approx(reverse, abs=1e-6)
    m = tuple(0.5 * p + 0.5 * q for p, q in zip(P, Q))
    jsd = 0.5 * kl(P, m) + 0.5 * kl(Q, m)
    assert kd_loss(STUDENT_LOGITS, TEACHER_LOGITS, ONE, "jsd", beta=0.5).item() == pytest.approx(jsd, abs=1e-6)
    # Temperature 2 softens both: p becomes proportional to sqrt(p); the loss is scaled by T^2 = 4.
    soft = tuple(math.sqrt(x) / sum(math.sqrt(y) for y in P) for x in P)
    assert kd_loss(STUDENT_LOGITS, TEACHER_LOGITS, ONE, "forward_kl", temperature=2.0).item() == pytest.approx(4 * kl(soft, Q), abs=1e-6)


def test_identical_distributions_have_zero_divergence():
    logits = torch.randn(2, 5, 11)
    for divergence in ("forward_kl", "reverse_kl", "jsd"):
        assert kd_loss(logits, logits.clone(), torch.ones(2, 5), divergence).item() == pytest.approx(0.0, abs=1e-6)


def test_jsd_tends_to_the_two_kls_up_to_scale():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(3, 7, generator=generator, dtype=torch.float64)  # float64: the divergences get tiny
    teacher = torch.randn(3, 7, generator=generator, dtype=torch.float64)
    forward = generalized_jsd(student, teacher, 0.0)
    reverse = generalized_jsd(student, teacher, 1.0)
    small = 1e-4
    assert torch.allclose(generalized_jsd(student, teacher, small) / small, forward, rtol=2e-3)
    assert torch.allclose(generalized_jsd(student, teacher, 1 - small) / small, reverse, rtol=2e-3)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generalized_jsd_equals_trl_gkd(beta, temperature):
    gkd = pytest.importorskip("trl.experimental.gkd")
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(2, 6, 13, generator=generator) * 2, torch.randn(2, 6, 13, generator=generator) * 2
    labels = torch.randint(0, 13, (2, 6), generator=generator)
    labels[0, :2] = -100  # masked positions (the prompt)
    theirs = gkd.GKDTrainer.generalized_jsd_loss(student, teacher, labels=labels, beta=beta, temperature=temperature)
    ours = kd_loss(student, teacher, labels != -100, "jsd", beta=beta, temperature=temperature) / temperature**2
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)


def test_top_k_penalises_student_mass_outside_the_teachers_top_k():
    # The teacher's mass is all on tokens {0, 1}; the student's is mostly on token 5.
    teacher = torch.tensor([[[2.0, 1.0, -30.0, -30.0, -30.0, -30.0]]])
    student = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 0.0, 8.0]]])
    p = [math.exp(2) / (math.exp(2) + math.e), math.e / (math.exp(2) + math.e)]  # the teacher renormalised on {0, 1}
    log_q = -math.log(5 + math.exp(8))  # the student's log-probability of token 0 and of token 1, over all 6 tokens
    by_hand = sum(x * (math.log(x) - log_q) for x in p)
    loss = kd_loss(student, teacher, ONE, "forward_kl", top_k=2).item()
    assert loss == pytest.approx(by_hand, rel=1e-6) and loss > 7
    # A student that matches the teacher on {0, 1} and puts nothing elsewhere has (almost) no loss.
    assert kd_loss(teacher.clone(), teacher, ONE, "forward_kl", top_k=2).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_top_k_equals_the_whole_vocabulary_when_the_teacher_has_no_other_mass(beta):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 9, generator=generator, dtype=torch.float64) * 2
    teacher = torch.randn(2, 3, 9, generator=generator, dtype=torch.float64)
    teacher[..., 4:] = -1e4  # the teacher's top 4 tokens hold all of its mass
    mask = torch.ones(2, 3)
    full = kd_loss(student, teacher, mask, "jsd", beta=beta, temperature=0.7)
    top_k = kd_loss(student, teacher, mask, "jsd", beta=beta, temperature=0.7, top_k=4)
    assert top_k.item() == pytest.approx(full.item(), rel=1e-9)


def test_top_k_below_two_and_with_the_reverse_kl_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="top_k=1: a teacher restricted to its single most likely token is one-hot"):
        kd_loss(STUDENT_LOGITS, TEACHER_LOGITS, ONE, "forward_kl", top_k=1)
    logits = torch.randn(1, 1, 6)
    with pytest.raises(ValueError, match="top_k=2 with the reverse KL: .* infinite"):
        kd_loss(logits, logits, ONE, "reverse_kl", top_k=2)
    teacher = build_tiny_model(tiny_tokenizer, TEACHER, seed=1)
    student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
    traces = [PromptCompletion([{"role": "user", "content": "1+1"}], "<answer>2</answer>")]
    with pytest.raises(ValueError, match=r"top_k must be None or >= 2"):
        DistillConfig(top_k=1)
    for settings in (dict(divergence="reverse_kl"), dict(divergence="jsd", beta=1.0)):
        with pytest.raises(ValueError, match=r"top_k needs forward_kl or jsd with beta < 1"):
            DistillConfig(top_k=8, **settings)
    config = DistillConfig(top_k=8, divergence="forward_kl")
    object.__setattr__(config, "divergence", "reverse_kl")  # changed after validation: the trainer checks again
    with pytest.raises(ValueError, match="top_k=8 with the reverse KL"):
        DistillTrainer(student, tiny_tokenizer, teacher, traces, config, progress=False)
    assert on_policy_reverse_kl(DistillConfig(top_k=64)).top_k is None  # on-policy reverse KL: the whole vocabulary


def test_a_vocabulary_mismatch_names_both_sizes(tiny_tokenizer):
    student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
    other = build_tiny_model(tiny_tokenizer, TEACHER, seed=0)
    other.resize_token_embeddings(151)
    with pytest.raises(ValueError, match="teacher's vocabulary has 151 tokens and the student's 109"):
        check_same_vocabulary(student, other, tiny_tokenizer)


def test_ledger_and_budget_stop_a_run(tiny_tokenizer):
    teacher = build_tiny_model(tiny_tokenizer, TEACHER, seed=1)
    student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
    task = ChainTask(max_terms=3)
    traces = [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>") for e in task.generate(32, seed=0)]
    config = DistillConfig(max_steps=100, per_device_train_batch_size=8, divergence="forward_kl", eval_steps=1000)
    trainer = DistillTrainer(student, tiny_tokenizer, teacher, traces, config, progress=False)
    one_step = ComputeLedger()
    one_step.add(trainer.step())
    assert one_step.teacher_forward > 0 and one_step.student_training == pytest.approx(
        3 * one_step.teacher_forward * sum(p.numel() for p in student.parameters()) / sum(p.numel() for p in teacher.parameters()),
        rel=1e-6)
    ledger = ComputeLedger()
    trainer = DistillTrainer(build_tiny_model(tiny_tokenizer, STUDENT, seed=0), tiny_tokenizer, teacher, traces, config,
                             callbacks=[Budget(ledger, 3.5 * one_step.total)], progress=False)
    history = trainer.train()
    assert len(history) == 4 and trainer.state.step == 4  # the fourth step passes the budget
    assert ledger.total >= 3.5 * one_step.total and ledger.steps == 4


def test_the_ledger_is_the_same_whatever_the_logging_window(tiny_tokenizer):
    teacher = build_tiny_model(tiny_tokenizer, TEACHER, seed=1)
    task = ChainTask(max_terms=4)
    traces = [PromptCompletion(task.prompt(e), f"<answer>{e.answer}</answer>") for e in task.generate(32, seed=0)]
    ledgers = {}
    for logging_steps in (1, 3):
        config = DistillConfig(max_steps=6, per_device_train_batch_size=4, logging_steps=logging_steps, eval_steps=1000)
        student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
        history = DistillTrainer(student, tiny_tokenizer, teacher, traces, config, progress=False).train()
        assert len(history) == 6 // logging_steps
        ledgers[logging_steps], _ = compute_curve(history)
    assert ledgers[1].steps == ledgers[3].steps == 6
    for kind in ComputeLedger.KINDS:
        assert getattr(ledgers[3], kind) == pytest.approx(getattr(ledgers[1], kind), rel=1e-12), kind
    assert ledgers[3].total > 0


def test_the_end_of_sequence_guard_fires(tiny_tokenizer):
    teacher = build_tiny_model(tiny_tokenizer, TEACHER, seed=1)
    student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
    eos = tiny_tokenizer.eos_token_id
    student.lm_head.register_forward_hook(lambda m, i, o: o.index_fill(-1, torch.tensor([eos]), -1e4))  # never stops
    task = ChainTask(max_terms=3)
    config = on_policy_reverse_kl(DistillConfig(max_steps=2, per_device_train_batch_size=4, max_new_tokens=6, eval_steps=1000))
    assert config.lmbda == 1.0 and config.divergence == "reverse_kl"
    trainer = DistillTrainer(student, tiny_tokenizer, teacher, [], config, task=task, prompts=task.generate(8, seed=0),
                             progress=False)
    with pytest.warns(UserWarning, match="stopped ending its answers"):
        history = trainer.train()
    assert history[0]["distill/truncated_fraction"] == 1.0 and history[0]["distill/on_policy"] == 1.0
    assert history[0]["flops/sampling"] > 0


@pytest.mark.filterwarnings("ignore:step 1.*stopped ending its answers")  # an untrained student never stops
def test_temperature_zero_samples_on_policy_greedily(tiny_tokenizer):
    teacher = build_tiny_model(tiny_tokenizer, TEACHER, seed=1)
    student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
    task = ChainTask(max_terms=3)
    prompts = task.generate(4, seed=0)
    config = DistillConfig(max_steps=1, per_device_train_batch_size=4, lmbda=1.0, temperature=0.0, max_new_tokens=8,
                           eval_steps=1000)
    trainer = DistillTrainer(student, tiny_tokenizer, teacher, [], config, task=task, prompts=prompts, progress=False)
    rows, _ = trainer._on_policy_rows(4)
    drawn = ExampleStream(prompts, seed=config.seed).take(4)  # the prompts the trainer drew
    rendered = render_prompts(tiny_tokenizer, [task.prompt(e) for e in drawn])
    greedy = rollout(student, tiny_tokenizer, rendered, 1, 8, 0.0)
    for i, (ids, prompt_len) in enumerate(rows):
        prompt = greedy.prompt_ids[i][greedy.prompt_mask[i].bool()].tolist()
        assert ids == prompt + greedy.completion_ids[i, : int(greedy.completion_lengths[i])].tolist()
        assert prompt_len == len(prompt)


def test_logit_distillation_moves_the_student_towards_the_teacher(tiny_tokenizer):
    torch.manual_seed(0)
    teacher = build_tiny_model(tiny_tokenizer, TEACHER, seed=3)
    student = build_tiny_model(tiny_tokenizer, STUDENT, seed=0)
    task = ChainTask(max_terms=4)
    traces = generate_traces(teacher, tiny_tokenizer, task, task.generate(16, seed=1), samples_per_prompt=2,
                             max_new_tokens=8)
    assert traces.teacher_flops > 0 and traces.counts["sampled"] == 32
    examples = [PromptCompletion(task.prompt(e), "<answer>" + e.answer + "</answer>") for e in task.generate(48, seed=2)]
    held_out = [PromptCompletion(task.prompt(e), "<answer>" + e.answer + "</answer>") for e in task.generate(16, seed=3)]
    config = DistillConfig(max_steps=40, per_device_train_batch_size=16, learning_rate=3e-3, divergence="forward_kl",
                           eval_steps=1000)
    trainer = DistillTrainer(student, tiny_tokenizer, teacher, examples, config, progress=False)

    def divergence():
        from r1lib.records import collate, encode_example

        batch = collate([[encode_example(tiny_tokenizer, e)] for e in held_out], tiny_tokenizer.pad_token_id)
        mask = batch.pop("labels")[:, 1:] != -100
        with torch.no_grad():
            student_logits = student(**batch, use_cache=False).logits[:, :-1]
            return kd_loss(student_logits, teacher(**batch, use_cache=False).logits[:, :-1], mask, "forward_kl").item()

    before = divergence()
    trainer.train()
    assert divergence() < 0.7 * before
