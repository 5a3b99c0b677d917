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
each conditioned on the request, which is how it can see whether a name in the reply matches the
request (notebook 06 measures this against the Bradley-Terry model).
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
from .records import collate, encode
from .reward_model import Scorer, bradley_terry_loss, preference_accuracy
from .rewards import completion_text
from .stream import ExampleStream
from .tasks.general import PreferencePair
from .trainer import Trainer, TrainerCallback

SETTINGS_FILE = "implicit_reward.json"  # beta and the reference, beside the trained model


def sequence_logps(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[Any], completions: Sequence[Any],
                   max_length: int | None = None) -> torch.Tensor:
    """``log p(completion + EOS | prompt)`` under ``model`` for each row, summed over the completion's tokens.

    Rows are ``chat template(prompt) + completion + EOS`` (:func:`r1lib.records.encode`), padded on
    the left with positions that count each row's own tokens, so a padded row gets the value it would
    get alone. Gradients flow when the caller allows them.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    rows = [[encode(tokenizer, p, completion_text(c), max_length)] for p, c in zip(prompts, completions)]
    batch = collate(rows, tokenizer.pad_token_id, pad_left=True, attention_mask=True)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch.pop("labels")
    logits = model(**batch, use_cache=False).logits[:, :-1]
    targets = labels[:, 1:]
    scored = targets != -100
    token_logps = selective_log_softmax(logits[scored], targets[scored])
    row_of_token = torch.arange(len(rows), device=device)[:, None].expand_as(targets)[scored]
    return torch.zeros(len(rows), device=device, dtype=token_logps.dtype).index_add(0, row_of_token, token_logps)


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
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs both an EOS and a pad token")
        for name, network in (("model", model), ("reference", reference)):
            if network.config.vocab_size != len(tokenizer):
                raise ValueError(f"the {name} has {network.config.vocab_size} tokens, the tokenizer {len(tokenizer)}")
        if reference is model:
            raise ValueError("the reference must be a separate, frozen copy of the model it started from")
        reference.requires_grad_(False).eval()
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.model, self.reference, self.tokenizer, self.beta = model, reference, tokenizer, float(beta)
        self.max_length = int(max_length or limit)
        self.batch_size = batch_size
        self.reference_name = reference_name
        self._check_sizes()

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
    def load(cls, path: str | Path, reference: str | Path | None = None, **kwargs: Any) -> ImplicitRewardModel:
        """Load what :meth:`save` wrote; ``reference`` overrides the recorded one (a moved folder).
        ``kwargs`` go to the constructor (``max_length``, ``batch_size``)."""
        settings_path = Path(path) / SETTINGS_FILE
        if not settings_path.exists():
            raise FileNotFoundError(f"{settings_path} is missing: {path} was not written by ImplicitRewardModel.save")
        settings = json.loads(settings_path.read_text())
        reference = reference if reference is not None else settings.get("reference")
        if reference is None:
            raise ValueError(f"{settings_path} names no reference model; pass reference=")
        model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
        frozen = AutoModelForCausalLM.from_pretrained(str(reference)).to(model.dtype)
        return cls(model, frozen, load_tokenizer(path), beta=settings["beta"], reference_name=str(reference), **kwargs)


class DPOTrainer(Trainer):
    """Train a causal LM with :func:`dpo_loss` on :class:`~r1lib.tasks.general.PreferencePair` records.

    Each micro-batch scores the chosen and rejected replies of ``per_device_train_batch_size`` pairs
    in one forward pass of the model and one of the reference. Metrics: ``loss``, ``accuracy``
    (share of the batch ranked right by the implicit reward) and ``margin`` (mean reward
    difference); with ``eval_pairs``, ``eval/accuracy`` on them. ``reward_model`` is the scorer
    being trained.
    """

    name = "DPO"
    progress_keys = ("loss", "accuracy")

    def __init__(self, model: torch.nn.Module, reference: torch.nn.Module, tokenizer: Any,
                 train_pairs: Sequence[PreferencePair], config: DPOConfig, output_dir: str | Path | None = None,
                 eval_pairs: Sequence[PreferencePair] = (), callbacks: Iterable[TrainerCallback | Callable] = (),
                 progress: bool = True, reference_name: str | None = None) -> None:
        if not train_pairs:
            raise ValueError("need at least one preference pair")
        super().__init__(model, config, output_dir, tokenizer=tokenizer, callbacks=callbacks, progress=progress)
        self.config: DPOConfig = config
        self.reward_model = ImplicitRewardModel(model, reference, tokenizer, beta=config.beta,
                                                reference_name=reference_name)
        self.train_pairs, self.eval_pairs = list(train_pairs), list(eval_pairs)
        self.stream = self.add_stream("stream", ExampleStream(self.train_pairs, seed=config.seed),
                                      data={"train_pairs": self.train_pairs})

    @property
    def does_evaluate(self) -> bool:
        return bool(self.eval_pairs)

    def training_step(self) -> dict[str, float]:
        cfg = self.config
        totals = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
        for _ in range(cfg.gradient_accumulation_steps):
            batch = self.stream.take(cfg.per_device_train_batch_size)
            prompts = [p.prompt_messages for p in batch]
            with self.autocast():
                rewards = self.reward_model.forward_scores(
                    prompts + prompts, [p.chosen for p in batch] + [p.rejected for p in batch]
                )
            chosen, rejected = rewards[: len(batch)], rewards[len(batch) :]
            loss = bradley_terry_loss(chosen, rejected)  # = dpo_loss: the rewards already carry beta and pi_ref
            self.backward(loss / cfg.gradient_accumulation_steps)
            margin = (chosen - rejected).detach()
            totals["loss"] += loss.item() / cfg.gradient_accumulation_steps
            totals["accuracy"] += (margin > 0).float().mean().item() / cfg.gradient_accumulation_steps
            totals["margin"] += margin.mean().item() / cfg.gradient_accumulation_steps
        return totals

    def evaluate(self) -> dict[str, float]:
        return {"eval/accuracy": preference_accuracy(self.reward_model, self.eval_pairs)}


def train_implicit_reward_model(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    config: DPOConfig = DPOConfig(),
    progress: bool = True,
    output_dir: str | Path | None = None,
) -> ImplicitRewardModel:
    """Fit ``model`` in place with :class:`DPOTrainer` and return it as an :class:`ImplicitRewardModel`.

    With ``output_dir`` the run writes ``metrics.jsonl`` and checkpoints there and resumes from the
    latest one; without, it trains in memory only. A run stopped by Ctrl-C raises
    ``KeyboardInterrupt`` rather than return a half-trained judge.
    """
    trainer = DPOTrainer(model, reference, tokenizer, pairs, config, output_dir, progress=progress)
    trainer.train(resume_from=output_dir is not None)
    if trainer.outcome == "interrupted":
        raise KeyboardInterrupt(f"DPO stopped at step {trainer.state.step} of {config.max_steps}"
                                + (f"; run again to resume from {output_dir}" if output_dir is not None else ""))
    model.eval()
    return trainer.reward_model
