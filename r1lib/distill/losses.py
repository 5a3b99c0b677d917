"""The knowledge-distillation losses: how far the student's next-token distribution is from the teacher's.

At every position of a sequence, the student matches the teacher's whole next-token distribution
(:func:`kd_loss`): forward KL, reverse KL, or the generalised Jensen-Shannon divergence JSD(beta) of
GKD, at a temperature, optionally against the teacher's top-k tokens only (the teacher renormalised
over them; the student keeps its whole distribution, see :func:`top_k_divergence`). Only torch and
the config are needed, so the losses can be read and tested without a trainer.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from ..configs import DistillConfig


def divergence_beta(divergence: str, beta: float) -> float:
    """The JSD interpolation of a named divergence: forward KL is beta 0, reverse KL beta 1."""
    return {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": beta}[divergence]


def check_top_k(top_k: int | None, beta: float) -> None:
    """Refuse a ``top_k`` that :func:`kd_loss` cannot make a divergence of, naming the fix."""
    if top_k is None:
        return
    if top_k < 2:
        raise ValueError(
            f"top_k={top_k}: a teacher restricted to its single most likely token is one-hot, which is SFT on "
            "the teacher's greedy tokens, not logit distillation; use top_k >= 2, or top_k=None for the whole "
            "vocabulary"
        )
    if beta == 1:
        raise ValueError(
            f"top_k={top_k} with the reverse KL: KL(student || teacher) is infinite wherever the student puts "
            "mass outside the teacher's top-k; use top_k=None, or forward_kl / jsd with beta < 1"
        )


def top_k_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, k: int, beta: float = 0.5, temperature: float = 1.0
) -> torch.Tensor:
    """Per-position JSD(beta) between the teacher renormalised over its ``k`` most likely tokens and
    the student's *whole* distribution, both at ``temperature``.

    The student's log-probabilities come from a softmax over the full vocabulary and are then read
    at the teacher's top-k tokens, so student mass outside that set lowers them and is penalised
    (renormalising the student over the set would hide it: with ``k = 1`` the loss would be 0). The
    teacher is 0 outside the set, so there the student term of JSD(beta) is ``-log(1 - beta)`` times
    the student's outside mass, which is computed exactly. ``beta = 0`` is the forward KL
    ``sum_topk p (log p - log q)``; ``beta = 1`` (reverse KL) would be infinite and is refused.
    Full teacher logits are still computed: this changes the target, it saves no memory.
    """
    check_top_k(k, beta)
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half precision is upcast, float64 kept
    top_logits, top_index = teacher_logits.topk(k, dim=-1)
    teacher = F.log_softmax(top_logits.to(dtype) / temperature, dim=-1)
    student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1).gather(-1, top_index)
    if beta == 0:
        return (teacher.exp() * (teacher - student)).sum(-1)
    b = torch.tensor(beta, dtype=student.dtype, device=student.device)
    mixture = torch.logsumexp(torch.stack([student + torch.log1p(-b), teacher + torch.log(b)]), dim=0)
    kl_teacher = (teacher.exp() * (teacher - mixture)).sum(-1)
    outside = (-torch.expm1(torch.logsumexp(student, dim=-1))).clamp(min=0.0)  # the student's mass off the top-k
    kl_student = (student.exp() * (student - mixture)).sum(-1) - outside * torch.log1p(-b)
    return b * kl_teacher + (1 - b) * kl_student


def generalized_jsd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float = 0.5, temperature: float = 1.0
) -> torch.Tensor:
    """Per-position generalised Jensen-Shannon divergence JSD(beta) between the two softmaxes at ``temperature``.

    With the mixture ``m = beta * p_teacher + (1 - beta) * p_student``, ``JSD(beta) = beta * KL(p_teacher || m) +
    (1 - beta) * KL(p_student || m)``. At ``beta = 0`` it is defined (as in TRL's GKD) as the forward KL
    ``KL(p_teacher || p_student)`` and at ``beta = 1`` as the reverse KL ``KL(p_student || p_teacher)``;
    for ``beta`` near 0 or 1 it is that KL scaled by ``beta`` or ``1 - beta`` (a test checks both limits).
    """
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # half precision is upcast, float64 kept
    student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.to(dtype) / temperature, dim=-1)
    if beta == 0:
        return (teacher.exp() * (teacher - student)).sum(-1)
    if beta == 1:
        return (student.exp() * (student - teacher)).sum(-1)
    b = torch.tensor(beta, dtype=student.dtype, device=student.device)
    mixture = torch.logsumexp(torch.stack([student + torch.log1p(-b), teacher + torch.log(b)]), dim=0)
    kl_teacher = (teacher.exp() * (teacher - mixture)).sum(-1)
    kl_student = (student.exp() * (student - mixture)).sum(-1)
    return b * kl_teacher + (1 - b) * kl_student


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, divergence: str = "jsd",
    beta: float = 0.5, temperature: float = 1.0, top_k: int | None = None,
) -> torch.Tensor:
    """The mean divergence over the positions of ``mask``, times ``temperature ** 2`` (Hinton et al.:
    gradients keep their scale when the softmaxes are softened).

    ``divergence`` is ``"forward_kl"`` (beta 0), ``"reverse_kl"`` (beta 1) or ``"jsd"`` (``beta``).
    With ``top_k`` (at least 2; not with the reverse KL), the target is the teacher renormalised over
    its top-k tokens at each position, against the student's whole distribution
    (:func:`top_k_divergence`). Logits are (B, T, V); ``mask`` is (B, T), 1 where a completion token
    is predicted.
    """
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(f"student vocabulary {student_logits.shape[-1]} != teacher vocabulary {teacher_logits.shape[-1]}")
    b = divergence_beta(divergence, beta)
    if top_k is not None and top_k < teacher_logits.shape[-1]:
        per_position = top_k_divergence(student_logits, teacher_logits, top_k, b, temperature)
    else:
        check_top_k(top_k, 0.0)  # a top_k as large as the vocabulary is the whole distribution
        per_position = generalized_jsd(student_logits, teacher_logits, b, temperature)
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1.0) * temperature**2


def on_policy_reverse_kl(config: DistillConfig) -> DistillConfig:
    """The per-token reverse-KL on-policy setting: the student always samples (``lmbda=1``) and
    minimises KL(student || teacher) on its own tokens, over the whole vocabulary (``top_k=None``:
    the reverse KL against a top-k teacher is infinite)."""
    return replace(config, lmbda=1.0, divergence="reverse_kl", beta=1.0, top_k=None)
