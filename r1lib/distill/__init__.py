"""Distillation: a strong teacher's reasoning into a smaller student.

* :mod:`r1lib.distill.losses`: the KD divergences, :func:`kd_loss` (forward KL, reverse KL,
  JSD(beta), temperature, top-k) and :func:`on_policy_reverse_kl`, the on-policy setting.
* :mod:`r1lib.distill.traces`: :func:`generate_traces`, the teacher's verified answers and their
  cost; SFT on them (:class:`r1lib.sft.SFTTrainer`) is how DeepSeek distilled R1.
* :mod:`r1lib.distill.trainer`: :class:`DistillTrainer`, logit KD on traces mixed with on-policy
  steps where the student samples and the teacher grades every token; its loss,
  :class:`DistillationLoss`, plugs into the causal-LM step (:mod:`r1lib.causal_lm`).

What each method costs is counted by :mod:`r1lib.compute`, which knows nothing of distillation;
notebook 07's comparison of these methods with RL at equal compute is the course's experiment,
:class:`r1lib.course.equal_compute.EqualComputeComparison`.
"""

from .losses import check_top_k, divergence_beta, generalized_jsd, kd_loss, on_policy_reverse_kl, top_k_divergence
from .traces import Traces, generate_traces
from .trainer import DistillationLoss, DistillTrainer, check_same_vocabulary

__all__ = [
    "DistillTrainer",
    "DistillationLoss",
    "Traces",
    "check_same_vocabulary",
    "check_top_k",
    "divergence_beta",
    "generalized_jsd",
    "generate_traces",
    "kd_loss",
    "on_policy_reverse_kl",
    "top_k_divergence",
]
