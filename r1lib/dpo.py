"""DPO's implicit reward model: a language model trained on preference pairs is itself a reward model.

Rafailov et al. (2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward
Model") observed that the policy which maximises a reward ``r`` under a KL penalty ``beta`` to a
reference ``pi_ref`` defines that reward back, up to a term that depends on the prompt only::

    r(x, y) = beta * (log pi(y | x) - log pi_ref(y | x)) + beta * log Z(x)

Put this ``r`` into the Bradley-Terry loss of :mod:`r1lib.reward_model` and ``log Z(x)`` cancels in
``r(x, chosen) - r(x, rejected)``: training the language model ``pi`` on preference pairs with
:func:`dpo_loss` fits a reward model without a score head.

DPO uses the trained ``pi`` as the policy. The course uses it as a **judge** for RL:
:class:`ImplicitRewardModel` scores a reply by ``beta * (log pi(y | x) - log pi_ref(y | x))``. The
missing ``beta * log Z(x)`` is the same for every reply to one prompt, and GRPO compares replies
to the same prompt, so it cannot change an advantage. The score is a sum over the reply's tokens,
each conditioned on the request, so unlike a head on one pooled token it could, in principle, check
a name in the reply against the request; exercise 4 of notebook 06 measures how well it does, next
to the Bradley-Terry model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from .checkpoint import atomic_directory
from .configs import DPOConfig
from .logprobs import selective_log_softmax
from .models import load_tokenizer
from .reward_model import PreferenceTrainer, Scorer, bradley_terry_loss, encode_batch
from .tasks.general import PreferencePair
from .trainer import TrainerCallback

SETTINGS_FILE = "implicit_reward.json"  # beta and the reference, beside the trained model


def sequence_logps(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[Any], completions: Sequence[Any],
                   max_length: int | None = None) -> torch.Tensor:
    """``log p(completion + EOS | prompt)`` under ``model`` for each row, summed over the completion's tokens.

    Rows are ``chat template(prompt) + completion + EOS`` (:func:`r1lib.reward_model.encode_batch`),
    padded on the left with positions that count each row's own tokens, so a padded row gets the
    value it would get alone. Left padding puts every completion at the end of its row, so only the
    last positions go through the LM head (``logits_to_keep``): a prompt's logits are never built.
    Gradients flow when the caller allows them.
    """
    batch = encode_batch(tokenizer, prompts, completions, max_length)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch.pop("labels")
    width = int((labels != -100).sum(dim=1).max())  # the longest completion, EOS included
    logits = model(**batch, use_cache=False, logits_to_keep=width + 1).logits[:, :-1]
    targets = labels[:, -width:]
    scored = targets != -100
    token_logps = selective_log_softmax(logits, targets.clamp(min=0))
    return (token_logps * scored).sum(dim=1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's loss: the Bradley-Terry loss of the implicit rewards ``beta * (log pi - log pi_ref)``.

    The arguments are summed log-probabilities of each pair's chosen and rejected replies under the
    policy being trained and under the frozen reference (:func:`sequence_logps`).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return bradley_terry_loss(beta * (policy_chosen - reference_chosen), beta * (policy_rejected - reference_rejected))


class ImplicitRewardModel(Scorer):
    """Score ``(prompt, completion)`` pairs by ``beta * (log pi(y | x) - log pi_ref(y | x))``.

    ``model`` is the causal LM trained with :func:`dpo_loss`, ``reference`` the frozen LM it started
    from. ``reference_name`` (a folder or hub name) is recorded by :meth:`save` so that :meth:`load`
    can find the reference again. ``max_length`` caps the tokens per sequence as in
    :class:`~r1lib.reward_model.RewardModel`.
    """

    def __init__(self, model: torch.nn.Module, reference: torch.nn.Module, tokenizer: Any, beta: float = 0.1,
                 max_length: int | None = None, batch_size: int = 32, reference_name: str | None = None) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if reference is model:
            raise ValueError("the reference must be a separate, frozen copy of the model it started from")
        if model.config.vocab_size != reference.config.vocab_size:
            raise ValueError(f"the model has {model.config.vocab_size} tokens, the reference "
                             f"{reference.config.vocab_size}: they must share one vocabulary")
        if len(tokenizer) > model.config.vocab_size:  # a padded embedding (Qwen's) is larger than the tokenizer
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, the model only {model.config.vocab_size}")
        super().__init__(model, tokenizer, max_length, batch_size)
        reference.requires_grad_(False).eval()
        self.reference, self.beta, self.reference_name = reference, float(beta), reference_name

    def to(self, device: str | torch.device) -> ImplicitRewardModel:
        """Move the model and the reference together (each score runs both); returns ``self``."""
        self.model.to(device)
        self.reference.to(device)
        return self

    def forward_scores(self, prompts: Sequence[Any], completions: Sequence[Any]) -> torch.Tensor:
        """Implicit rewards of one batch, with gradients through ``model`` only (for training)."""
        with torch.no_grad():
            reference = sequence_logps(self.reference, self.tokenizer, prompts, completions, self.max_length)
        policy = sequence_logps(self.model, self.tokenizer, prompts, completions, self.max_length)
        return self.beta * (policy.float() - reference.float())

    def save(self, path: str | Path) -> Path:
        """Write the trained LM (safetensors), its tokenizer and the settings to ``path`` atomically.

        The reference is not copied: ``implicit_reward.json`` names it, and :meth:`load` takes it from
        there or from its ``reference`` argument.
        """
        with atomic_directory(path) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
            (tmp / SETTINGS_FILE).write_text(json.dumps({"beta": self.beta, "reference": self.reference_name}))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, reference: str | Path | torch.nn.Module | None = None,
             **kwargs: Any) -> ImplicitRewardModel:
        """Load what :meth:`save` wrote, on the reference's device: the CPU unless a loaded reference
        is passed (:meth:`to` moves both).

        ``reference`` overrides the recorded one: a folder or hub name (a moved folder, say), or a
        model already loaded (with the placement and options of its :class:`~r1lib.models.ModelSpec`).
        ``kwargs`` go to the constructor (``max_length``, ``batch_size``).
        """
        settings_path = Path(path) / SETTINGS_FILE
        if not settings_path.exists():
            raise FileNotFoundError(f"{settings_path} is missing: {path} was not written by ImplicitRewardModel.save")
        settings = json.loads(settings_path.read_text())
        reference = reference if reference is not None else settings.get("reference")
        if reference is None:
            raise ValueError(f"{settings_path} names no reference model; pass reference=")
        model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
        if isinstance(reference, torch.nn.Module):
            frozen, name = reference, settings.get("reference")
        else:
            frozen, name = AutoModelForCausalLM.from_pretrained(str(reference)).to(model.dtype), str(reference)
        judge = cls(model, frozen, load_tokenizer(path), beta=settings["beta"], reference_name=name, **kwargs)
        return judge.to(frozen.device)


class DPOTrainer(PreferenceTrainer):
    """Train a causal LM with :func:`dpo_loss` on :class:`~r1lib.tasks.general.PreferencePair` records.

    The loop is :class:`~r1lib.reward_model.PreferenceTrainer`'s: each micro-batch scores the chosen
    and rejected replies in one pass of the model and one of the frozen reference, and the
    Bradley-Terry loss of those implicit rewards is :func:`dpo_loss`. ``reward_model`` is the
    :class:`ImplicitRewardModel` being trained; ``reference_name`` is recorded when it is saved.
    """

    name = "DPO"

    def __init__(self, model: torch.nn.Module, reference: torch.nn.Module, tokenizer: Any,
                 train_pairs: Sequence[PreferencePair], config: DPOConfig, output_dir: str | Path | None = None,
                 eval_pairs: Sequence[PreferencePair] = (), callbacks: Iterable[TrainerCallback | Callable] = (),
                 progress: bool = True, reference_name: str | None = None) -> None:
        judge = ImplicitRewardModel(model, reference, tokenizer, beta=config.beta, reference_name=reference_name)
        super().__init__(judge, train_pairs, config, output_dir, eval_pairs, callbacks, progress)
        self.config: DPOConfig = config


def train_implicit_reward_model(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    config: DPOConfig = DPOConfig(),
    progress: bool = True,
    output_dir: str | Path | None = None,
) -> ImplicitRewardModel:
    """Fit ``model`` in place with :class:`DPOTrainer` and return the trained judge (unlike
    :func:`~r1lib.reward_model.train_reward_model`, whose model is the judge itself).

    With ``output_dir`` the run writes ``metrics.jsonl`` and checkpoints there and resumes from the
    latest one; without, it trains in memory only. Ctrl-C raises ``KeyboardInterrupt``.
    """
    trainer = DPOTrainer(model, reference, tokenizer, pairs, config, output_dir, progress=progress)
    trainer.train_to_the_end()
    return trainer.reward_model
