"""What GRPO does with unclear or broken inputs: reward functions that return the wrong kind of
thing, abstain everywhere or return infinities, a single reward function instead of a list, and
the fingerprint a checkpoint keeps of the training data and the rewards. Scoring tests use a
hand-made rollout (no model) and run in milliseconds."""

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from r1lib.grpo import GRPOTrainer, score_groups
from r1lib.rollout import Rollout
from r1lib.tasks import ChainTask, Example

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from grpo_run import length_reward, make_trainer  # noqa: E402

EXAMPLES = [Example("1+2", "3"), Example("4+5", "9")]
TEXTS = ["<answer>3</answer>", "3", "x", "<answer>9</answer>", "", "9"]  # 2 groups of G=3


def fake_rollout(texts: list[str] = TEXTS, g: int = 3) -> Rollout:
    rows = len(texts)
    return Rollout(
        torch.ones(rows, 2, dtype=torch.long), torch.ones(rows, 2, dtype=torch.long),
        torch.full((rows, 4), 7, dtype=torch.long), torch.ones(rows, 4, dtype=torch.long),
        torch.zeros(rows, dtype=torch.bool), list(texts), g,
    )


def score(*funcs, **kwargs):
    return score_groups(EXAMPLES, fake_rollout(), [[{"role": "user", "content": e.question}] for e in EXAMPLES],
                        list(funcs), **kwargs)


def constant(value):
    def reward(prompts, completions, **columns):
        return [value] * len(completions)

    return reward


# ----------------------------------------------------------------------------- what a reward returns


@pytest.mark.parametrize("returned", [None, 1.0, "1.0", {"a": 1.0}], ids=["None", "float", "str", "dict"])
def test_a_reward_returning_no_list_is_named_with_what_it_returned(returned):
    def forgot_return(prompts, completions, **columns):
        return returned

    expected = rf"reward function 'forgot_return' returned {returned!r}; it must return a list"
    with pytest.raises(TypeError, match=expected):
        score(forgot_return)


def test_one_infinite_score_is_an_error_naming_reward_value_and_completion():
    def blows_up(prompts, completions, **columns):
        return [1.0, 0.0, 0.0, float("inf"), 0.0, 0.0]

    with pytest.raises(ValueError, match=r"'blows_up' returned inf for completion 3; scores must be finite"):
        score(blows_up)
    with pytest.raises(ValueError, match=r"'negative' returned -inf for completion 0"):
        score(replace_name(constant(float("-inf")), "negative"))


def test_nan_is_an_abstention_as_in_trl():
    """TRL stores None as NaN and sums with nansum: a NaN score counts as "does not apply"."""
    def partial(prompts, completions, **columns):
        return [float("nan"), 1.0, None, 0.0, 1.0, 0.0]

    groups = score(partial, constant(0.5))
    assert groups.reward_columns["partial"] == [None, 1.0, None, 0.0, 1.0, 0.0]
    assert groups.rewards.tolist() == [0.5, 1.5, 0.5, 0.5, 1.5, 0.5]


def replace_name(func, name):
    func.__name__ = name
    return func


# ----------------------------------------------------------------------------- abstaining everywhere


def test_a_reward_abstaining_on_every_completion_warns_once_per_run_naming_it():
    silent = replace_name(constant(None), "silent")
    warned: set[str] = set()
    with pytest.warns(UserWarning, match=r"reward function 'silent' abstained \(returned None or NaN\) on all 6"):
        groups = score(silent, constant(1.0), warned=warned)
    assert groups.reward_columns["silent"] == [None] * 6 and warned == {"silent"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second batch of the same run: no repeat
        score(silent, constant(1.0), warned=warned)
    nan_only = replace_name(constant(float("nan")), "nan_only")
    with pytest.warns(UserWarning, match="'nan_only' abstained"):
        score(nan_only, constant(1.0))


def test_a_reward_abstaining_on_some_completions_does_not_warn():
    def scoped(prompts, completions, answer, **columns):
        """Applies to the first example's task only, as a reward scoped to one task of a mixture."""
        return [1.0 if a == "3" else None for a in answer]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = score(scoped, constant(0.0))
    assert groups.reward_columns["scoped"] == [1.0] * 3 + [None] * 3


def test_a_reward_scoped_to_another_task_abstains_on_a_batch_without_it_silently():
    """In R1's last stage a batch may hold only reasoning prompts: the general task's reward model
    then scores nothing, and that is not a broken reward. On a batch with its task, all-None is."""
    from r1lib.rewards import scoped_to_task

    general_only = scoped_to_task(replace_name(constant(None), "reward_model"), "general")
    chains = [Example(e.question, e.answer, {"task": "chain"}) for e in EXAMPLES]
    prompts = [[{"role": "user", "content": e.question}] for e in chains]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_groups(chains, fake_rollout(), prompts, [general_only])
    mixed = [chains[0], Example("greet Flo", "", {"task": "general"})]
    with pytest.warns(UserWarning, match="'reward_model' abstained"):
        score_groups(mixed, fake_rollout(), prompts, [general_only])


def test_the_trainer_warns_about_an_abstaining_reward_once_per_run(tmp_path):
    def never_applies(prompts, completions, **columns):
        return [None] * len(completions)

    base = make_trainer(str(tmp_path / "run"), 3)
    trainer = GRPOTrainer(base.model, base.tokenizer, base.task, [never_applies, length_reward], base.train_examples,
                          replace(base.config, max_steps=3), None, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.train()
    about = [w for w in caught if "never_applies" in str(w.message)]
    assert history[-1]["step"] == 3 and len(about) == 1, [str(w.message) for w in caught]
    assert "abstained (returned None or NaN) on all 8 completions" in str(about[0].message)


# ----------------------------------------------------------------------------- one function, not a list


def test_one_reward_function_is_accepted_without_a_list(tmp_path):
    base = make_trainer(str(tmp_path / "run"), 1)
    trainer = GRPOTrainer(base.model, base.tokenizer, base.task, length_reward, base.train_examples,
                          base.config, None, progress=False)
    assert trainer.reward_funcs == [length_reward]
    groups, metrics = trainer.generate_groups()
    assert list(groups.reward_columns) == ["length_reward"]
    assert metrics["rewards/length_reward/mean"] == pytest.approx(sum(len(c) / 10 for c in groups.completions) / 8)
    assert list(score(length_reward).reward_columns) == ["length_reward"]  # score_groups takes one too


# ----------------------------------------------------------------------------- fingerprints


def test_data_fingerprint_changes_with_the_examples_and_the_rewards(tmp_path):
    base = make_trainer(str(tmp_path / "run"), 1)

    def with_(examples=None, rewards=None, **config):
        return GRPOTrainer(base.model, base.tokenizer, base.task, rewards or base.reward_funcs,
                           examples or base.train_examples, replace(base.config, **config), None,
                           progress=False).data_fingerprint()

    same = with_()
    assert set(same) == {"train_examples", "reward_funcs"} and same == base.data_fingerprint()
    assert all(isinstance(v, str) and len(v) >= 8 for v in same.values())
    other_data = with_(examples=ChainTask().generate(40, seed=1))  # same size, other problems
    assert other_data["train_examples"] != same["train_examples"] and other_data["reward_funcs"] == same["reward_funcs"]
    fewer_rewards = with_(rewards=base.reward_funcs[:2])
    assert fewer_rewards["reward_funcs"] != same["reward_funcs"]
    assert fewer_rewards["train_examples"] == same["train_examples"]
    weighted = with_(reward_weights=[1.0, 0.5, 0.5])
    assert weighted["reward_funcs"] != same["reward_funcs"]
    assert all(set(v) <= set("0123456789abcdef") for v in same.values())  # hex digests


def test_resuming_with_other_examples_or_rewards_is_refused_naming_them(tmp_path):
    run = tmp_path / "run"
    first = make_trainer(str(run), 1, save_steps=1)
    first.train()

    def resumed(examples=None, rewards=None) -> GRPOTrainer:
        return GRPOTrainer(first.model, first.tokenizer, first.task, rewards or first.reward_funcs,
                           examples or first.train_examples, replace(first.config, max_steps=2), run, progress=False)

    other_examples = ChainTask().generate(40, seed=1)  # as many as before: the stream's size check cannot tell
    with pytest.raises(ValueError, match=r"was trained on other train_examples than this trainer was given"):
        resumed(examples=other_examples).train(resume_from=True)
    with pytest.raises(ValueError, match=r"was trained on other reward_funcs than this trainer"):
        resumed(rewards=[*first.reward_funcs[:2], replace_name(constant(0.0), "length_reward")]).train(resume_from=True)
    history = resumed(examples=other_examples).train(resume_from=True, allow_config_changes=["train_examples"])
    assert [r["step"] for r in history][-1] == 2
