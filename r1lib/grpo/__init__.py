"""Group Relative Policy Optimisation (GRPO), with the knobs and metric names of TRL.

* :mod:`r1lib.grpo.loss`: the mathematics notebook 02 derives: :func:`group_advantages`,
  :func:`per_token_kl`, :func:`grpo_loss`.
* :mod:`r1lib.grpo.scoring`: :func:`score_groups` and :class:`ScoredGroups`, the scored batch.
* :mod:`r1lib.grpo.trainer`: :class:`GRPOTrainer`, the above on :class:`r1lib.trainer.Trainer`.
"""

from ..configs import GRPOConfig
from ..logprobs import completion_logps
from .loss import LossOutput, group_advantages, grpo_loss, nanstd, per_token_kl
from .scoring import ScoredGroups, completion_id_lists, reward_name, score_groups
from .trainer import GRPOTrainer, PolicyBatch

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "LossOutput",
    "PolicyBatch",
    "ScoredGroups",
    "completion_id_lists",
    "completion_logps",
    "group_advantages",
    "grpo_loss",
    "nanstd",
    "per_token_kl",
    "reward_name",
    "score_groups",
]
