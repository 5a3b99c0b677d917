"""GRPO's arithmetic on hand-computed cases: advantages, each loss normalisation, clipping, KL."""

import math

import pytest
import torch

from r1lib.grpo import GRPOConfig, group_advantages, grpo_loss, per_token_kl


def config(**overrides) -> GRPOConfig:
    return GRPOConfig(**{"num_generations": 2, "per_device_train_batch_size": 2, "max_completion_length": 4, **overrides})


def test_advantages_of_the_one_one_zero_zero_group():
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert group_advantages(rewards, 4, "none").tolist() == [0.5, 0.5, -0.5, -0.5]
    std = math.sqrt(1 / 3)  # unbiased std of [1, 1, 0, 0], as TRL computes it
    expected = [0.5 / (std + 1e-4)] * 2 + [-0.5 / (std + 1e-4)] * 2
    assert group_advantages(rewards, 4, "group").tolist() == pytest.approx(expected, rel=1e-6)


def test_advantages_are_per_group_and_zero_without_spread():
    rewards = torch.tensor([1.0, 1.0, 3.0, 1.0])
    assert group_advantages(rewards, 2, "none").tolist() == [0.0, 0.0, 1.0, -1.0]
    batch = group_advantages(rewards, 2, "batch")
    assert batch.tolist() == pytest.approx([0.0, 0.0, 1 / (1.0 + 1e-4), -1 / (1.0 + 1e-4)], rel=1e-6)
    assert group_advantages(torch.ones(8), 4, "group").tolist() == [0.0] * 8
    with pytest.raises(ValueError, match="multiple"):
        group_advantages(torch.ones(5), 2)


# Two sequences: the first has 2 real tokens, the second 3. With logps == old logps the ratio is 1
# and every token's loss is -A: seq 1 contributes 2 x (-2), seq 2 contributes 3 x (+1).
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
ADVANTAGES = torch.tensor([2.0, -1.0])


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", ((-4 / 2) + (3 / 3)) / 2),  # per-sequence means, then the mean: -0.5
        ("bnpo", (-4 + 3) / 5),  # all tokens of the batch: -0.2
        ("dr_grpo", (-4 + 3) / (2 * 4)),  # a constant, batch x max_completion_length: -0.125
        ("dapo", (-4 + 3) / 5),  # the generation batch's token count (here, this batch)
    ],
)
def test_each_loss_normalisation_by_hand(loss_type, expected):
    logps = torch.log(torch.full((2, 3), 0.5))
    out = grpo_loss(logps, logps.clone(), ADVANTAGES, MASK, config(loss_type=loss_type))
    assert out.loss.item() == pytest.approx(expected)


def test_dapo_uses_the_global_token_count():
    logps = torch.zeros(2, 3)
    out = grpo_loss(logps, logps, ADVANTAGES, MASK, config(loss_type="dapo"), num_items_in_batch=10)
    assert out.loss.item() == pytest.approx(-0.1)


def test_length_bias_of_per_sequence_normalisation():
    """With 'grpo', a wrong answer's per-token penalty shrinks as it gets longer; not with 'dr_grpo'."""
    def penalty(length: int, loss_type: str) -> float:
        mask = torch.zeros(1, 10)
        mask[0, :length] = 1
        logps = torch.zeros(1, 10, requires_grad=True)
        grpo_loss(logps, logps.detach(), torch.tensor([-1.0]), mask, config(loss_type=loss_type, max_completion_length=10)).loss.backward()
        return logps.grad[0, 0].item()  # push-down on the first token
    assert penalty(2, "grpo") == pytest.approx(5 * penalty(10, "grpo"))
    assert penalty(2, "dr_grpo") == pytest.approx(penalty(10, "dr_grpo"))


def test_clipping_by_hand():
    old = torch.zeros(2, 1)
    logps = torch.log(torch.tensor([[1.5], [1.5]]))  # ratio 1.5 on both
    mask = torch.ones(2, 1)
    out = grpo_loss(logps, old, torch.tensor([1.0, -1.0]), mask, config(loss_type="bnpo", epsilon=0.2))
    # A>0: min(1.5, 1.2) = 1.2 -> loss -1.2 ; A<0: min(-1.5, -1.2) = -1.5 -> loss +1.5
    assert out.loss.item() == pytest.approx((-1.2 + 1.5) / 2)
    assert out.clip_ratio_high == pytest.approx(0.5) and out.clip_ratio_low == 0.0
    higher = grpo_loss(logps, old, torch.tensor([1.0, -1.0]), mask, config(loss_type="bnpo", epsilon_high=0.28))
    assert higher.loss.item() == pytest.approx((-1.28 + 1.5) / 2)


def test_sequence_level_importance_ratio():
    old = torch.zeros(1, 2)
    logps = torch.tensor([[math.log(2.0), 0.0]])  # token ratios 2 and 1; GSPO ratio = exp(mean log) = sqrt(2)
    out = grpo_loss(logps, old, torch.tensor([1.0]), torch.ones(1, 2), config(loss_type="bnpo", epsilon=1.0, importance_sampling_level="sequence"))
    assert out.loss.item() == pytest.approx(-math.sqrt(2))


def test_kl_is_non_negative_zero_at_equality_and_enters_the_loss():
    torch.manual_seed(0)
    logps, ref = torch.randn(4, 5), torch.randn(4, 5)
    assert (per_token_kl(logps, ref) >= 0).all()
    assert per_token_kl(logps, logps).abs().max().item() == 0.0
    d = 0.3
    assert per_token_kl(torch.zeros(1), torch.tensor([d])).item() == pytest.approx(math.exp(d) - d - 1)
    mask = torch.ones(2, 3)
    zero_adv = torch.zeros(2)
    lp = torch.zeros(2, 3)
    out = grpo_loss(lp, lp, zero_adv, mask, config(beta=0.5, loss_type="bnpo"), ref_logps=torch.full((2, 3), d))
    assert out.loss.item() == pytest.approx(0.5 * (math.exp(d) - d - 1))
    assert out.kl == pytest.approx(math.exp(d) - d - 1)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(lp, lp, zero_adv, mask, config(beta=0.5))


def test_zero_spread_group_gives_zero_gradient():
    logps = torch.randn(4, 3, requires_grad=True)
    advantages = group_advantages(torch.tensor([1.0, 1.0, 1.0, 1.0]), 4, "group")
    grpo_loss(logps, logps.detach(), advantages, torch.ones(4, 3), config(num_generations=4, per_device_train_batch_size=4)).loss.backward()
    assert logps.grad.abs().max().item() == 0.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_generations": 1}, "num_generations must be >= 2"),
        ({"per_device_train_batch_size": 10, "num_generations": 4}, "divisible by num_generations"),
        ({"loss_type": "ppo"}, "loss_type must be one of"),
        ({"scale_rewards": "yes"}, "scale_rewards"),
        ({"epsilon_high": 0.1}, "epsilon_high >= epsilon"),
    ],
)
def test_bad_configs_fail_with_a_helpful_message(overrides, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**overrides)
