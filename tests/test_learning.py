"""The course's central effects, at a size CI runs in seconds, so that a library change that stops
them turns CI red without waiting for a cpu-profile publish of the notebooks.

Each run starts from the shipped tiny base with the cpu profile's GRPO settings (only fewer
steps), and is measured on held-out problems the run never trained on, before and after:

* R1-Zero on chains: pass@1, reasoning and length rise together (notebook 03);
* the aha moment on search: "wait" becomes frequent, in samples and within reasoning traces
  (notebook 04);
* distillation against RL on the quarter-width student at equal compute: SFT on a teacher's
  verified traces beats GRPO on the student itself (notebook 07).
"""

from dataclasses import replace

from r1lib.checkpoint import latest_checkpoint
from r1lib.course.equal_compute import EqualComputeComparison
from r1lib.evaluate import evaluate
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.profiles import DATA_DIR, get_profile


def r1_zero(task: str, steps: int, seed: int = 0):
    profile = get_profile("cpu")
    exp = build_experiment(profile, seed=seed, task=task)
    config = replace(profile.grpo, max_steps=steps, eval_steps=10_000, seed=seed)

    def measure():
        return evaluate(exp.model, exp.tokenizer, exp.task, exp.eval_examples[:128], k=2,
                        temperature=config.temperature, max_new_tokens=config.max_completion_length, seed=1)

    before = measure()
    GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, config, None,
                progress=False).train()
    return before, measure()


def test_r1_zero_raises_accuracy_reasoning_and_length_on_chains():
    before, after = r1_zero("chain", steps=40)  # measured: pass@1 0.45 -> 0.77, reasoning 0.22 -> 0.63, 11 s
    assert after.pass_at_1 >= before.pass_at_1 + 0.2, (before.pass_at_1, after.pass_at_1)
    assert after.reasoning_rate >= before.reasoning_rate + 0.25, (before.reasoning_rate, after.reasoning_rate)
    assert after.mean_length >= 1.5 * before.mean_length, (before.mean_length, after.mean_length)


def test_the_aha_moment_reflection_rises_on_search_and_within_traces():
    before, after = r1_zero("search", steps=30)  # measured: wait in 3% -> 37% of samples, 17% -> 70% of traces
    assert after.reflection_rate >= max(4 * before.reflection_rate, 0.25), (before.reflection_rate, after.reflection_rate)
    assert after.reflection_per_trace >= before.reflection_per_trace + 0.15, (
        before.reflection_per_trace, after.reflection_per_trace)
    assert after.pass_at_1 >= before.pass_at_1 + 0.2, (before.pass_at_1, after.pass_at_1)


def test_distillation_beats_rl_on_the_small_student_at_equal_compute(tmp_path):
    world = get_profile("cpu")
    config = replace(world.grpo, max_steps=30, eval_steps=10_000, save_steps=30)
    teacher = build_experiment(world, seed=0, task="search")  # the base after 30 steps of R1-Zero on search
    GRPOTrainer(teacher.model, teacher.tokenizer, teacher.task, teacher.reward_funcs, teacher.train_examples, config,
                tmp_path / "teacher", progress=False).train()
    student = ModelSpec(str(DATA_DIR / "tiny-student-quarter"))
    search = build_experiment(replace(world, model=student), seed=0, task="search")
    distill = replace(world.distill, max_new_tokens=config.max_completion_length, temperature=1.0, eval_steps=10_000,
                      save_steps=10_000)
    experiment = EqualComputeComparison(
        latest_checkpoint(tmp_path / "teacher" / "checkpoints"), student, search.task, search.train_examples,
        search.eval_examples[:128], tmp_path / "arms", config, distill, search.reward_funcs, num_trace_prompts=128,
        progress=False,
    )
    arms = {name: getattr(experiment, name)() for name in ("rl", "sft")}  # measured: RL 0.55, SFT 0.90 pass@1, 11 s
    scores = {}
    for name, arm in arms.items():
        model, tokenizer = load_model_and_tokenizer(ModelSpec(str(arm.model_dir)))
        scores[name] = evaluate(model, tokenizer, search.task, search.eval_examples[:128], k=2,
                                max_new_tokens=config.max_completion_length, seed=0).pass_at_1
    assert arms["sft"].ledger.total <= 1.05 * experiment.budget, (arms["sft"].ledger.total, experiment.budget)
    assert arms["sft"].ledger.teacher_forward > 0  # the teacher's traces are charged to the arm that uses them
    assert scores["sft"] >= scores["rl"] + 0.15, scores
