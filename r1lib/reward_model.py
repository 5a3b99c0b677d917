"""A learned reward model: a sequence scorer trained on preference pairs with the Bradley-Terry loss.

DeepSeek-R1's last RL stage rewards reasoning prompts with rules (is the answer right, is the
format kept) and general prompts with reward models trained on human preferences. This module is
the second half: :class:`RewardModel` turns any ``AutoModelForSequenceClassification``-style model
with one output into ``score(prompts, completions)``, :func:`train_reward_model` fits one to
:class:`~r1lib.tasks.general.PreferencePair` records, and :meth:`RewardModel.as_reward_func`
makes it a TRL-signature reward that abstains (``None``) on prompts it does not apply to, so that
it sums cleanly with the rule-based rewards of :mod:`r1lib.rewards`. :class:`Scorer` and
:class:`PreferenceTrainer` are what it shares with the other judge, DPO's implicit reward model
(:mod:`r1lib.dpo`).

The score of a sequence is the head's output at its last token. Every sequence is rendered as
``chat template(prompt) + completion + EOS`` (:func:`r1lib.records.encode`) and padded on the *left*
(:func:`r1lib.records.collate`), so the last position is always the appended EOS, whichever padding
side the tokenizer was saved with. Hugging Face's sequence classifiers pool "the rightmost token
that is not the pad token", which is that EOS. Each row's positions count its own tokens only, so a
padded row sees exactly the positions it would see alone.

A reward model starts from a causal LM (:func:`reward_model_from`); the tiny world's, built from
scratch, is :func:`r1lib.tiny.reward_model.build_tiny_reward_model`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification

from .checkpoint import atomic_directory
from .configs import RewardModelConfig, TrainingConfig
from .records import collate, encode
from .models import load_tokenizer
from .rewards import RewardFunc, completion_text, never_raises
from .stream import ExampleStream
from .tasks.general import PreferencePair
from .trainer import Trainer, TrainerCallback


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sigmoid(r_chosen - r_rejected)``, the negative log-likelihood of the preferences.

    Written as ``softplus(-(r_chosen - r_rejected))``, which is the same value without the
    overflow of ``log(sigmoid(x))`` for very negative margins.
    """
    return F.softplus(rejected_scores - chosen_scores).mean()


# ----------------------------------------------------------------------------- scoring


def encode_batch(tokenizer: Any, prompts: Sequence[Any], completions: Sequence[Any],
                 max_length: int | None) -> dict[str, torch.Tensor]:
    """``prompt + completion + EOS`` rows (:func:`r1lib.records.encode`), padded on the left with an
    attention mask and positions that count each row's own tokens; ``labels`` mark the completions."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    rows = [[encode(tokenizer, p, completion_text(c), max_length)] for p, c in zip(prompts, completions)]
    return collate(rows, tokenizer.pad_token_id, pad_left=True, attention_mask=True)


class Scorer:
    """What every reward model shares: the checks of its tokenizer and sizes, batched scoring, and
    the TRL-signature reward built on it.

    A subclass implements :meth:`forward_scores`. :class:`RewardModel` is the Bradley-Terry one;
    :class:`r1lib.dpo.ImplicitRewardModel` is DPO's. ``max_length`` caps the tokens per sequence
    (default: the model's position limit); longer sequences keep the end of the prompt and the start
    of the completion, then the EOS.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, max_length: int | None = None,
                 batch_size: int = 32) -> None:
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs both an EOS and a pad token")
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.batch_size = int(max_length or limit), batch_size
        if self.max_length < 4:
            raise ValueError(f"max_length must be >= 4, got {self.max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward_scores(self, prompts: Sequence[Any], completions: Sequence[Any]) -> torch.Tensor:
        """Scores of one batch as a 1-D tensor, with gradients (for training)."""
        raise NotImplementedError

    @torch.no_grad()
    def score(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[float]:
        """Score each ``(prompt, completion)``.

        Prompts are chat messages or strings, completions strings or TRL conversational messages.
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        was_training = self.model.training
        self.model.eval()
        try:
            scores: list[float] = []
            for start in range(0, len(prompts), self.batch_size):
                end = start + self.batch_size
                scores.extend(self.forward_scores(prompts[start:end], completions[start:end]).tolist())
            return scores
        finally:
            self.model.train(was_training)

    def as_reward_func(self, name: str = "reward_model", applies: Callable[[Any], bool] | None = None) -> RewardFunc:
        """A TRL-signature reward ``f(prompts, completions, **columns)`` returning this model's scores.

        Rows whose prompt ``applies`` rejects get ``None`` (does not apply), so a rule-based reward
        can cover the reasoning prompts and this model the general ones, as in R1's final stage.
        Non-finite scores also become ``None``; no input makes the function raise.
        """

        @never_raises
        def reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
            if len(prompts) != len(completions):
                raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
            rows = [i for i, prompt in enumerate(prompts) if applies is None or _safe_applies(applies, prompt)]
            scores: list[float | None] = [None] * len(completions)
            for i, value in zip(rows, self.score([prompts[i] for i in rows], [completions[i] for i in rows])):
                scores[i] = value if math.isfinite(value) else None
            return scores

        reward.__name__ = name
        reward.__qualname__ = name
        return reward


class RewardModel(Scorer):
    """A scalar scorer of (prompt, completion) pairs, wrapping a one-label sequence classifier."""

    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, max_length: int | None = None, batch_size: int = 32
    ) -> None:
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(f"a reward model has one output, this model has num_labels={model.config.num_labels}")
        super().__init__(model, tokenizer, max_length, batch_size)
        if getattr(model.config, "pad_token_id", None) != tokenizer.pad_token_id:
            # The model finds the scored token by comparing ids with its own pad_token_id.
            raise ValueError(
                f"model.config.pad_token_id={getattr(model.config, 'pad_token_id', None)} but the tokenizer's pad "
                f"token id is {tokenizer.pad_token_id}; set model.config.pad_token_id"
            )
        # With pad == EOS (common for Qwen tokenizers) the model pools the last completion token
        # instead of the EOS: padded and unpadded rows still agree, the score just cannot see the stop.

    def encode(self, prompt: Any, completion: Any) -> list[int]:
        """Token ids of one ``prompt + completion + EOS``, cut to ``max_length`` as the class describes."""
        return encode(self.tokenizer, prompt, completion_text(completion), self.max_length)[0]

    def forward_scores(self, prompts: Sequence[Any], completions: Sequence[Any]) -> torch.Tensor:
        """Scores of one batch as a 1-D tensor, with gradients (for training)."""
        batch = encode_batch(self.tokenizer, prompts, completions, self.max_length)
        del batch["labels"]  # a sequence classifier given labels would compute a loss of its own
        return self.model(**{k: v.to(self.device) for k, v in batch.items()}, use_cache=False).logits[:, 0].float()

    def save(self, path: str | Path) -> Path:
        """Write model (safetensors) and tokenizer to ``path`` atomically; ``RewardModel.load`` reads it back."""
        with atomic_directory(path) as tmp:
            self.model.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> RewardModel:
        """Load what :meth:`save` wrote; ``kwargs`` go to the constructor (``max_length``, ``batch_size``)."""
        model = AutoModelForSequenceClassification.from_pretrained(str(path))
        tokenizer = load_tokenizer(path)
        model.eval()
        return cls(model, tokenizer, **kwargs)


def _safe_applies(applies: Callable[[Any], bool], prompt: Any) -> bool:
    # A predicate that fails on a strange prompt means "not mine", not "drop the whole batch".
    try:
        return bool(applies(prompt))
    except Exception:  # noqa: BLE001
        return False


def preference_accuracy(reward_model: Scorer, pairs: Sequence[PreferencePair]) -> float:
    """Share of pairs whose chosen reply outscores the rejected one.

    A tie counts half, so that a constant scorer gets exactly 0.5 (chance).
    """
    if not pairs:
        raise ValueError("need at least one pair")
    prompts = [p.prompt_messages for p in pairs]
    chosen = reward_model.score(prompts, [p.chosen for p in pairs])
    rejected = reward_model.score(prompts, [p.rejected for p in pairs])
    return sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)) / len(pairs)


# ----------------------------------------------------------------------------- training


class PreferenceTrainer(Trainer):
    """Fit a :class:`Scorer` to prefer each pair's ``chosen`` reply: the loop both reward models share.

    Each micro-batch scores the chosen and rejected replies of ``per_device_train_batch_size`` pairs
    in one pass of :meth:`Scorer.forward_scores` and minimises :meth:`pair_loss` (by default
    :func:`bradley_terry_loss`). Metrics: ``loss``, ``accuracy`` (share of the batch ranked right)
    and ``margin`` (mean ``r_chosen - r_rejected``); with ``eval_pairs``, ``eval/accuracy`` on them.
    """

    progress_keys = ("loss", "accuracy")

    def __init__(self, reward_model: Scorer, train_pairs: Sequence[PreferencePair], config: TrainingConfig,
                 output_dir: str | Path | None = None, eval_pairs: Sequence[PreferencePair] = (),
                 callbacks: Iterable[TrainerCallback | Callable] = (), progress: bool = True) -> None:
        if not train_pairs:
            raise ValueError("need at least one preference pair")
        super().__init__(reward_model.model, config, output_dir, tokenizer=reward_model.tokenizer,
                         callbacks=callbacks, progress=progress)
        self.reward_model = reward_model
        self.train_pairs, self.eval_pairs = list(train_pairs), list(eval_pairs)
        # fingerprinted, so that resuming on other pairs of the same count is refused
        self.stream = self.add_stream("stream", ExampleStream(self.train_pairs, seed=config.seed),
                                      data={"train_pairs": self.train_pairs})

    @property
    def does_evaluate(self) -> bool:
        return bool(self.eval_pairs)

    def pair_loss(self, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
        """The loss of one micro-batch's scores."""
        return bradley_terry_loss(chosen, rejected)

    def training_step(self) -> dict[str, float]:
        cfg = self.config
        totals = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
        for _ in range(cfg.gradient_accumulation_steps):
            batch = self.stream.take(cfg.per_device_train_batch_size)
            prompts = [p.prompt_messages for p in batch]
            with self.autocast():
                # Chosen and rejected in one forward pass: half the calls, and both see the same weights.
                scores = self.reward_model.forward_scores(
                    prompts + prompts, [p.chosen for p in batch] + [p.rejected for p in batch]
                )
            chosen, rejected = scores[: len(batch)], scores[len(batch) :]
            loss = self.pair_loss(chosen, rejected)
            self.backward(loss / cfg.gradient_accumulation_steps)
            margin = (chosen - rejected).detach()
            totals["loss"] += loss.item() / cfg.gradient_accumulation_steps
            totals["accuracy"] += (margin > 0).float().mean().item() / cfg.gradient_accumulation_steps
            totals["margin"] += margin.mean().item() / cfg.gradient_accumulation_steps
        return totals

    def evaluate(self) -> dict[str, float]:
        return {"eval/accuracy": preference_accuracy(self.reward_model, self.eval_pairs)}

    def train_to_the_end(self) -> list[dict[str, float]]:
        """Train (resuming from ``output_dir`` when there is one) and return the per-step records; a
        run stopped by Ctrl-C raises ``KeyboardInterrupt`` rather than leave a half-trained judge."""
        history = self.train(resume_from=self.output_dir is not None)
        if self.outcome == "interrupted":
            raise KeyboardInterrupt(f"{self.name} training stopped at step {self.state.step} of {self.config.max_steps}"
                                    + (f"; run again to resume from {self.output_dir}" if self.output_dir else ""))
        self.model.eval()
        return history


class RewardModelTrainer(PreferenceTrainer):
    """Fit a one-output sequence scorer with the Bradley-Terry loss (plus the centering term of
    :class:`~r1lib.configs.RewardModelConfig`); see :class:`PreferenceTrainer` for the loop."""

    name = "reward model"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        train_pairs: Sequence[PreferencePair],
        config: RewardModelConfig,
        output_dir: str | Path | None = None,
        eval_pairs: Sequence[PreferencePair] = (),
        callbacks: Iterable[TrainerCallback | Callable] = (),
        progress: bool = True,
    ) -> None:
        super().__init__(RewardModel(model, tokenizer), train_pairs, config, output_dir, eval_pairs, callbacks, progress)
        self.config: RewardModelConfig = config

    def pair_loss(self, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
        loss = bradley_terry_loss(chosen, rejected)
        if self.config.center_rewards_coefficient:
            loss = loss + self.config.center_rewards_coefficient * ((chosen + rejected) ** 2).mean()
        return loss


def train_reward_model(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    config: RewardModelConfig = RewardModelConfig(),
    progress: bool = True,
    output_dir: str | Path | None = None,
) -> list[dict[str, float]]:
    """Fit ``model`` in place with :class:`RewardModelTrainer`; return the per-step records.

    With ``output_dir`` the run writes ``metrics.jsonl`` and checkpoints there and resumes from the
    latest one; without, it trains in memory only.
    """
    return RewardModelTrainer(model, tokenizer, pairs, config, output_dir, progress=progress).train_to_the_end()


# ----------------------------------------------------------------------------- starting from a causal LM


def scorer_from_saved_lm(tokenizer: Any, path: str | Path, seed: int = 0) -> torch.nn.Module:
    """A one-output sequence scorer shaped by the causal LM saved at ``path`` (its own config, any
    architecture transformers knows), with that LM's transformer weights copied in
    (:func:`load_backbone_from`); only the score head starts random, seeded. Starting from a
    pretrained LM is how R1's reward models are made."""
    config = AutoConfig.from_pretrained(str(path))
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    config.use_cache = False  # a scorer runs each sequence once; a KV cache is wasted memory
    if config.vocab_size != len(tokenizer):
        raise ValueError(f"backbone vocabulary has {config.vocab_size} tokens, the tokenizer {len(tokenizer)}")
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    load_backbone_from(model, path)
    return model.eval()


def reward_model_from(tokenizer: Any, backbone: str | Path, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A one-output scorer whose transformer starts from the causal LM ``backbone``: a local model
    directory with the tokenizer's vocabulary (:func:`scorer_from_saved_lm`, in float32) or a hub
    model (``Qwen/Qwen2.5-0.5B``), whose score head starts random either way."""
    path = Path(backbone)
    local = path.is_dir() and (path / "model.safetensors").exists()
    if local and AutoConfig.from_pretrained(str(path)).vocab_size == len(tokenizer):
        return scorer_from_saved_lm(tokenizer, path, seed=seed)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(backbone), num_labels=1, dtype=dtype)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def build_tiny_reward_model(*args: Any, **kwargs: Any) -> torch.nn.Module:
    """:func:`r1lib.tiny.reward_model.build_tiny_reward_model`, imported on call so that this module
    does not need the tiny world (a benchmark imports it from here)."""
    from .tiny.reward_model import build_tiny_reward_model as build

    return build(*args, **kwargs)


def load_backbone_from(model: torch.nn.Module, path: str | Path) -> None:
    """Copy a saved causal LM's transformer weights (``model.*``) into a sequence classifier.

    The LM head is dropped and the classifier's score head is left as it is. Raises when a
    backbone weight is missing or has another shape, rather than training on a half-loaded model.
    """
    weights = load_file(str(Path(path) / "model.safetensors"))
    prefix = f"{getattr(model, 'base_model_prefix', 'model')}."
    backbone = {name: tensor for name, tensor in weights.items() if name.startswith(prefix)}
    own = model.state_dict()
    wrong_shape = [n for n, t in backbone.items() if n in own and own[n].shape != t.shape]
    if wrong_shape:
        raise ValueError(f"backbone weights of another shape: {wrong_shape[:5]}")
    result = model.load_state_dict(backbone, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"backbone has weights the classifier lacks: {result.unexpected_keys[:5]}")
    missing = [n for n in result.missing_keys if n.startswith(prefix)]
    if missing:
        raise ValueError(f"backbone checkpoint is missing weights: {missing[:5]}")
