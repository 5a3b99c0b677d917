"""The mathematics of GRPO, apart from any trainer: what notebook 02 derives by hand.

For a prompt with ``G`` sampled completions and rewards ``r_1..r_G``, the objective minimised per
token ``t`` of completion ``i`` is

    -min(rho_it * A_i, clip(rho_it, 1 - eps_low, 1 + eps_high) * A_i) + beta * k3(pi_theta || pi_ref)

with the group advantage ``A_i = (r_i - mean(r)) [/ std(r)]`` (:func:`group_advantages`), the
probability ratio ``rho_it = pi_theta / pi_old`` of the token, and Schulman's k3 estimator of the
KL to a frozen reference (:func:`per_token_kl`). :func:`grpo_loss` then averages the per-token
terms as ``loss_type`` says.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..configs import SCALE_REWARDS, GRPOConfig
from ..logprobs import per_token_kl  # the k3 estimator, shared with evaluate.kl_to_reference


def nanstd(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased standard deviation ignoring NaNs (over all values when ``dim`` is None); 0 where
    fewer than two values are present."""
    if dim is None:
        values, dim = values.reshape(1, -1), 1
        return nanstd(values, dim).squeeze(0)
    count = (~values.isnan()).sum(dim=dim)
    mean = values.nanmean(dim=dim, keepdim=True)
    variance = ((values - mean) ** 2).nansum(dim=dim) / (count - 1).clamp(min=1)
    return variance.sqrt()


def group_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str = "group") -> torch.Tensor:
    """Advantage of each completion relative to the other completions of its prompt.

    ``A_i = r_i - mean(group)``, divided by the group's (``"group"``) or the batch's (``"batch"``)
    standard deviation plus 1e-4, or not at all (``"none"``, as Dr. GRPO recommends).
    A group whose rewards are all equal gets zero advantage, hence zero gradient. A ``NaN``
    reward marks an unscorable completion (every reward function returned None): it is left out
    of the statistics and gets advantage 0, as in TRL.
    """
    if rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards is not a multiple of num_generations={num_generations}")
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}")
    grouped = rewards.view(-1, num_generations)
    advantages = (grouped - grouped.nanmean(dim=1, keepdim=True)).view(-1)
    if scale_rewards == "group":
        advantages = advantages / (nanstd(grouped, dim=1).repeat_interleave(num_generations) + 1e-4)
    elif scale_rewards == "batch":
        advantages = advantages / (nanstd(rewards) + 1e-4)
    return advantages.nan_to_num(0.0)


@dataclass
class LossOutput:
    """The scalar loss and what is worth logging about it."""

    loss: torch.Tensor
    kl: float | None
    clip_ratio_low: float
    clip_ratio_high: float


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: GRPOConfig,
    ref_logps: torch.Tensor | None = None,
    num_items_in_batch: int | None = None,
) -> LossOutput:
    """The clipped surrogate objective plus ``beta`` times the k3 KL, normalised by ``loss_type``.

    Shapes: ``logps``, ``old_logps``, ``ref_logps`` and ``mask`` are (B, T); ``advantages`` is (B,).
    ``num_items_in_batch`` is the total completion-token count of the whole generation batch, used
    by ``dapo`` when a batch is split across gradient-accumulation steps (defaults to this batch).
    The clip ratios count the tokens whose ratio left the trust region in the direction the
    advantage pushes (where the clip cuts the gradient), over all completion tokens.
    """
    mask = mask.to(logps.dtype)
    log_ratio = logps - old_logps
    if config.importance_sampling_level == "sequence":  # GSPO: one length-normalised ratio per sequence
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    eps_low, eps_high = config.epsilon, config.epsilon_high if config.epsilon_high is not None else config.epsilon
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    adv = advantages.unsqueeze(-1)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl_value = None
    if config.beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs reference log-probs")
        kl = per_token_kl(logps, ref_logps)
        if config.use_bias_correction_kl:  # the KL is estimated on samples from the old policy
            kl = kl * ratio
        per_token = per_token + config.beta * kl
        kl_value = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1.0))
    loss = _normalise(per_token, mask, config, num_items_in_batch)
    low = ((ratio < 1 - eps_low) & (adv < 0)).to(logps.dtype)
    high = ((ratio > 1 + eps_high) & (adv > 0)).to(logps.dtype)
    denominator = float(mask.sum().clamp(min=1.0))
    low, high, mask = low.detach(), high.detach(), mask.detach()
    expand = (lambda x: x.expand_as(mask)) if log_ratio.shape[-1] == 1 else (lambda x: x)
    return LossOutput(
        loss, kl_value, float((expand(low) * mask).sum()) / denominator, float((expand(high) * mask).sum()) / denominator
    )


def _normalise(per_token: torch.Tensor, mask: torch.Tensor, config: GRPOConfig, num_items: int | None) -> torch.Tensor:
    masked = per_token * mask
    if config.loss_type == "grpo":  # mean over each sequence, then over sequences: favours long wrong answers
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if config.loss_type == "bnpo":  # mean over all tokens of this batch
        return masked.sum() / mask.sum().clamp(min=1.0)
    if config.loss_type == "dr_grpo":  # a constant: no length bias at all
        return masked.sum() / (per_token.shape[0] * config.max_completion_length)
    total = num_items if num_items is not None else mask.sum()
    return masked.sum() / max(float(total), 1.0)
