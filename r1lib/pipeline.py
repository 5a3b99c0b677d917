"""Multi-stage DeepSeek-R1, as plain calls of r1lib pieces. Each stage reads the previous stage's
model and writes its own folder under one root::

    r1_zero/          GRPO from the base with accuracy + format rewards (R1-Zero)
    cold_start_data/  R1-Zero's correct samples, rewritten into their prompt's language with a summary
                      (jsonl); a few prompts are posed in the second language
    cold_start/       SFT from the base on that set
    reasoning_rl/     stage 2: GRPO with accuracy + readable format + language consistency, on
                      prompts posed in two languages (the paper's condition for language mixing)
    reward_model/     a Bradley-Terry reward model for general prompts
    rejection_data/   stage 3's data: correct, readable, single-language, not overlong samples of
                      stage 2, mixed with general replies chosen by the reward model (jsonl)
    rejection_sft/    stage 3: SFT on that mix, from the base (or from stage 2: one switch)
    all_scenarios_rl/ stage 4: GRPO on reasoning and general prompts; rule rewards score the
                      reasoning ones, the reward model the general ones, each abstaining elsewhere

A stage whose output exists is skipped; a training stage that was killed resumes from its last
checkpoint; a data stage is regenerated (it is seeded, so identically). Every stage writes
``stage.json`` (its final metrics) once its work is complete, and the pipeline appends what it did
to ``pipeline.jsonl``. A training stage stopped with Ctrl-C (or a notebook's stop button) keeps its
checkpoint, writes no ``stage.json`` and raises ``KeyboardInterrupt``, so that no later stage runs
on its unfinished model; the next run resumes it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write_text, save_checkpoint
from .cold_start import build_cold_start, reference_cold_start
from .configs import GRPOConfig, RewardModelConfig, SFTConfig
from .evaluate import EvalResult, evaluate
from .format import is_readable_format
from .grpo import GRPOTrainer
from .models import ModelSpec, load_model_and_tokenizer
from .rejection import (  # noqa: F401 (rejection_checks, REJECTION_FILTERS re-exported)
    REJECTION_FILTERS, interleave_sft, rejection_checks, rejection_sample, sample_batches, sample_groups,
)
from .reward_model import RewardModel, RewardModelTrainer, reward_model_from
from .rewards import (
    RewardFunc,
    for_task,
    format_reward,
    make_accuracy_reward,
    make_script_consistency_reward,
    readable_format_reward,
    tiny_language_consistency_reward,
)
from .sft import SFTExample, SFTTrainer, load_sft_jsonl, save_sft_jsonl
from .tasks.base import Example, Task
from .tasks.bilingual import BilingualTask, pose_in_languages
from .tasks.general import VERDICTS, GeneralTask
from .tasks.mixture import MixtureTask, interleave, tag
from .tasks.registry import load_task

STAGES = ("r1_zero", "cold_start_data", "cold_start", "reasoning_rl", "reward_model", "rejection_data",
          "rejection_sft", "all_scenarios_rl")
START_POINTS = ("base", "reasoning_rl")


@dataclass
class ColdStartConfig:
    """How the cold-start set is made. ``source="r1_zero"`` samples R1-Zero (the tiny world);
    ``"reference"`` rewrites the dataset's own solutions (GSM8K). ``max_examples`` is the set's size
    (R1: "thousands"; s1: 1,000; LIMO: 817)."""

    source: str = "r1_zero"
    num_prompts: int = 1024
    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_examples: int | None = None  # the whole set; the cold-start stage trains on its first ``size`` examples
    size: int | None = 500
    second_language_share: float = 0.15  # prompts posed (and answered) in the second language: a few

    def __post_init__(self) -> None:
        if not 0.0 <= self.second_language_share <= 1.0:
            raise ValueError(f"second_language_share must be in [0, 1], got {self.second_language_share}")
        if self.source not in ("r1_zero", "reference"):
            raise ValueError(f"source must be 'r1_zero' or 'reference', got {self.source!r}")
        if self.num_prompts < 1 or self.samples_per_prompt < 1 or self.temperature <= 0:
            raise ValueError("need num_prompts >= 1, samples_per_prompt >= 1 and temperature > 0")
        if self.max_examples is not None and self.max_examples < 0:
            raise ValueError(f"max_examples must be None or >= 0, got {self.max_examples}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be None (all) or >= 1, got {self.size}")


@dataclass
class RejectionSamplingConfig:
    """Stage 3's data: ``samples_per_prompt`` samples at ``temperature`` per reasoning prompt, kept
    when correct, readable, single-language and at most ``max_tokens`` long (one per prompt), mixed
    with the reward model's best reply per general prompt when it scores at least
    ``min_reward_score``. ``non_reasoning_fraction`` of the mix is general (R1: 200k of 800k)."""

    num_prompts: int = 1024
    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_tokens: int = 48
    general_samples_per_prompt: int = 8
    min_reward_score: float = 0.0
    non_reasoning_fraction: float = 0.25

    def __post_init__(self) -> None:
        if min(self.num_prompts, self.samples_per_prompt, self.max_tokens, self.general_samples_per_prompt) < 1:
            raise ValueError("counts and max_tokens must be >= 1")
        if not 0.0 <= self.non_reasoning_fraction < 1.0 or self.temperature <= 0:
            raise ValueError("need 0 <= non_reasoning_fraction < 1 and temperature > 0")


@dataclass
class PipelineConfig:
    """Every stage's settings. The GRPO and SFT configs are the profile's, adjusted per stage."""

    r1_zero: GRPOConfig
    cold_start: ColdStartConfig
    cold_start_sft: SFTConfig
    reasoning_rl: GRPOConfig
    reward_model: RewardModelConfig
    rejection: RejectionSamplingConfig
    rejection_sft: SFTConfig
    all_scenarios_rl: GRPOConfig
    rejection_sft_start: str = "base"  # the paper restarts from the base; "reasoning_rl" is the alternative
    reasoning_task: str = "chain"
    language: str = "tiny"  # the language-consistency reward: "tiny" (so/luego words) or "script" (Latin letters)
    num_train_prompts: int = 4000
    num_eval_prompts: int = 256
    num_general_eval: int = 15
    second_language_share: float = 0.5  # stages 2-4 and the evaluation: prompts posed in the second language
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.second_language_share <= 1.0:
            raise ValueError(f"second_language_share must be in [0, 1], got {self.second_language_share}")
        if self.second_language_share and self.language != "tiny":
            raise ValueError("prompts in a second language exist only in the tiny world (language='tiny')")
        if self.rejection_sft_start not in START_POINTS:
            raise ValueError(f"rejection_sft_start must be one of {START_POINTS}, got {self.rejection_sft_start!r}")
        if self.language not in ("tiny", "script"):
            raise ValueError(f"language must be 'tiny' or 'script', got {self.language!r}")

    def language_reward(self) -> RewardFunc:
        """The language-consistency reward this pipeline uses."""
        return tiny_language_consistency_reward if self.language == "tiny" else make_script_consistency_reward()


def variant(stage: str, start: str | None = None, without_lc: bool = False, seed: int | None = None) -> str:
    """The folder name of a stage's variant: ``reasoning_rl_from_base_without_lc_seed1`` and the like."""
    name = stage + (f"_from_{start}" if start else "") + ("_without_lc" if without_lc else "")
    return name + (f"_seed{seed}" if seed is not None else "")


READABLE_LENGTH = 96  # tokens: a 7-term chain's readable trace, summary and answer need about 80


def tiny_pipeline_config(grpo: GRPOConfig, sft: SFTConfig, scale: float = 1.0) -> PipelineConfig:
    """The tiny world's pipeline from a profile's GRPO and SFT configs; ``scale`` < 1 shortens every
    stage (the smoke profile).

    Stages after the cold start write the readable format, whose summary makes completions longer:
    they sample up to ``READABLE_LENGTH`` tokens. Stage 4 mixes two reward scales (rules in [0, 2],
    the reward model's scores of a few units) and halves the reward model's weight and the
    learning rate, so that general prompts do not swamp the reasoning signal.
    """

    def steps(n: int) -> int:
        return max(2, int(n * scale))

    def grpo_for(n: int, **changes) -> GRPOConfig:
        return replace(grpo, max_steps=steps(n), eval_steps=steps(n), save_steps=max(1, steps(n) // 2), **changes)

    def sft_for(n: int) -> SFTConfig:
        return replace(sft, max_steps=steps(n), eval_steps=steps(n), save_steps=steps(n), max_new_tokens=READABLE_LENGTH)

    return PipelineConfig(
        r1_zero=grpo_for(grpo.max_steps),
        cold_start=ColdStartConfig(num_prompts=steps(1024), size=steps(500)),
        cold_start_sft=sft_for(100),
        reasoning_rl=replace(grpo_for(40, reward_weights=[1.0, 0.5, 0.5], max_completion_length=READABLE_LENGTH),
                             eval_steps=max(1, steps(40) // 5)),  # a curve, for the cold-start sweep
        reward_model=RewardModelConfig(max_steps=steps(200), per_device_train_batch_size=16, learning_rate=1e-3,
                                       save_steps=steps(200), eval_steps=steps(200)),
        rejection=RejectionSamplingConfig(num_prompts=steps(1024), max_tokens=READABLE_LENGTH),
        rejection_sft=sft_for(100),
        all_scenarios_rl=grpo_for(50, reward_weights=[1.0, 0.5, 0.5, 0.5], max_completion_length=READABLE_LENGTH,
                                  learning_rate=grpo.learning_rate / 2),
        num_eval_prompts=256 if scale >= 1 else 64,
    )


def pipeline_config(profile) -> PipelineConfig:
    """The pipeline of a profile: the tiny world's at full size (``cpu``), very small (``smoke``,
    enough to run every stage in CI), or a hub model's on GSM8K (``gpu``)."""
    if not profile.is_tiny:
        return gpu_pipeline_config(profile.grpo, profile.sft, profile.task)
    if profile.name != "smoke":
        return tiny_pipeline_config(profile.grpo, profile.sft)
    config = tiny_pipeline_config(profile.grpo, profile.sft, scale=0.1)
    # The readable format needs a few dozen SFT steps to be learned at all; everything else stays tiny.
    return replace(config, num_train_prompts=200, num_eval_prompts=16, num_general_eval=4,
                   cold_start_sft=replace(config.cold_start_sft, max_steps=60, save_steps=60, eval_steps=60))


def gpu_pipeline_config(grpo: GRPOConfig, sft: SFTConfig, reasoning_task: str = "gsm8k") -> PipelineConfig:
    """The pipeline for a hub model on GSM8K at sizes a free T4 runs in an afternoon.

    The cold start comes from GSM8K's own worked solutions (``source="reference"``), and language
    consistency is the share of Latin-script words (the real R1-Zero mixed Chinese into English).
    """
    def shorter(config, steps):
        return replace(config, max_steps=steps, eval_steps=steps, save_steps=max(1, steps // 2))

    return PipelineConfig(
        r1_zero=shorter(grpo, 100),
        cold_start=ColdStartConfig(source="reference", num_prompts=2000, size=1000, second_language_share=0.0),
        cold_start_sft=shorter(sft, 125),
        reasoning_rl=shorter(replace(grpo, reward_weights=[1.0, 0.5, 0.5]), 100),
        reward_model=RewardModelConfig(max_steps=200, per_device_train_batch_size=8, learning_rate=1e-5,
                                       save_steps=100, eval_steps=100, fp16=grpo.fp16),
        rejection=RejectionSamplingConfig(num_prompts=500, samples_per_prompt=4, max_tokens=grpo.max_completion_length),
        rejection_sft=shorter(sft, 150),
        all_scenarios_rl=shorter(replace(grpo, reward_weights=[1.0, 0.5, 0.5, 0.5]), 60),
        reasoning_task=reasoning_task,
        num_train_prompts=2000,
        num_eval_prompts=100,
        language="script",
        second_language_share=0.0,
    )


class Pipeline:
    """The four stages of DeepSeek-R1 (plus R1-Zero and the reward model) under ``root``."""

    def __init__(self, base: ModelSpec, config: PipelineConfig, root: str | Path, progress: bool = True,
                 data_dir: str | None = None) -> None:
        self.base, self.config, self.root, self.progress = base, config, Path(root), progress
        data = load_task(config.reasoning_task, config.num_train_prompts, config.num_eval_prompts, config.seed, data_dir)
        # R1-Zero is notebook 03's run: first-language prompts only. The later stages see both languages.
        self.zero_task: Task = data.task
        self.zero_train, self.zero_eval = data.train, data.eval
        share = config.second_language_share
        self.task: Task = BilingualTask(data.task) if share else data.task
        self.train_examples = pose_in_languages(data.train, share, config.seed) if share else data.train
        self.eval_examples = pose_in_languages(data.eval, share, config.seed + 1) if share else data.eval
        self.general = GeneralTask()
        held = self.general.all_examples()[::4]
        self.general_eval = held[: config.num_general_eval]
        self.general_train = self.general.generate(2000, seed=config.seed, exclude=[e.question for e in held])

    # ------------------------------------------------------------------ bookkeeping

    def folder(self, stage: str) -> Path:
        """A stage's folder: one of :data:`STAGES`, or a variant named ``<stage>_<variant>``."""
        if not any(stage == s or stage.startswith(s + "_") for s in STAGES):
            raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
        return self.root / stage

    def final(self, stage: str) -> Path:
        """Where a training stage's final model is (its ``final/`` folder)."""
        return self.folder(stage) / "final"

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished: its ``stage.json`` exists (written only after complete work)."""
        return (self.folder(stage) / "stage.json").exists()

    def log(self, stage: str, event: str, **details: Any) -> None:
        """Append one event (started, resumed, skipped, interrupted, finished, ...) to ``pipeline.jsonl``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "pipeline.jsonl").open("a") as handle:
            handle.write(json.dumps({"time": time.time(), "stage": stage, "event": event, **details}) + "\n")

    def events(self) -> list[dict[str, Any]]:
        """Every event of ``pipeline.jsonl``, oldest first."""
        path = self.root / "pipeline.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def _finish(self, stage: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.folder(stage) / "stage.json", json.dumps(record, indent=1))
        self.log(stage, "finished")

    def load(self, model_dir: Path | str):
        """A model and tokenizer from a stage's folder (or the base), placed as the base spec says."""
        return load_model_and_tokenizer(replace(self.base, name_or_path=str(model_dir)))

    def model_of(self, stage: str) -> Path | str:
        """The model folder a stage starts from: the base, or another stage's final model."""
        return self.base.name_or_path if stage == "base" else self.final(stage)

    # ------------------------------------------------------------------ training stages

    def _begin(self, stage: str, **details: Any) -> None:
        # "resumed" when an earlier run left checkpoints: the trainer continues from the latest one.
        resuming = (self.folder(stage) / "checkpoints").exists()
        self.log(stage, "resumed" if resuming else "started", **details)

    def _run_trainer(self, stage: str, trainer: Any) -> list[dict[str, Any]]:
        """Train ``trainer`` from the stage's latest checkpoint (if any) and return its history, only
        when it reached ``max_steps``.

        An interrupted trainer (Ctrl-C) has saved its last completed step: the stage is logged as
        ``interrupted`` and ``KeyboardInterrupt`` is raised, so that the caller writes no
        ``stage.json`` and no later stage starts from an unfinished model. A trainer stopped early
        (``request_stop``) is not finished either: no pipeline stage has a budget that may end it.
        """
        history = trainer.train(resume_from=True)
        if trainer.outcome == "completed":
            return history
        step, max_steps = trainer.state.step, trainer.config.max_steps
        self.log(stage, trainer.outcome, step=step, max_steps=max_steps)
        if trainer.outcome == "interrupted":
            raise KeyboardInterrupt(f"stage {stage} was interrupted at step {step} of {max_steps}; its checkpoint "
                                    "is kept, and running the pipeline again resumes it")
        raise RuntimeError(f"stage {stage}'s trainer ended at step {step} of {max_steps} with outcome "
                           f"{trainer.outcome!r}; running the pipeline again resumes it")

    def train_stage(self, stage: str, start: str, make_trainer: Callable[[Any, Any, Path], Any]) -> Path:
        """Train a stage (or a variant) from ``start``'s model with the trainer ``make_trainer(model,
        tokenizer, folder)`` builds: skipped when done, resumed from its checkpoint when interrupted;
        returns the folder of its final model."""
        if self.done(stage):
            self.log(stage, "skipped")
            return self.final(stage)
        self._begin(stage, start=str(start))
        model, tokenizer = self.load(self.model_of(start))
        trainer = make_trainer(model, tokenizer, self.folder(stage))
        history = self._run_trainer(stage, trainer)
        model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        save_checkpoint(self.final(stage), model, tokenizer)
        self._finish(stage, {"start": str(start), "steps": trainer.state.step, "last": history[-1] if history else {}})
        return self.final(stage)

    def _grpo(self, stage: str, start: str, config: GRPOConfig, rewards: list[RewardFunc], task: Task,
              train: Sequence[Example], evaluation: Sequence[Example]) -> Path:
        return self.train_stage(stage, start, lambda model, tokenizer, out: GRPOTrainer(
            model, tokenizer, task, rewards, train, config, out, eval_examples=evaluation, progress=self.progress))

    def _sft(self, stage: str, start: str, config: SFTConfig, examples: list[SFTExample]) -> Path:
        return self.train_stage(stage, start, lambda model, tokenizer, out: SFTTrainer(
            model, tokenizer, examples, config, out, eval_task=self.task, eval_examples=self.eval_examples,
            progress=self.progress))

    def r1_zero(self) -> Path:
        """R1-Zero: GRPO from the base, rewarded for a right answer and the think/answer format only."""
        rewards = [make_accuracy_reward(self.zero_task), format_reward]
        return self._grpo("r1_zero", "base", self.config.r1_zero, rewards, self.zero_task, self.zero_train,
                          self.zero_eval)

    def reasoning_rewards(self, language: bool = True) -> list[RewardFunc]:
        """Stage 2's rewards: accuracy, the readable format, and (unless ``language=False``) language consistency."""
        rewards = [make_accuracy_reward(self.task), readable_format_reward]
        return rewards + [self.config.language_reward()] if language else rewards

    def adopt_r1_zero(self, model_dir: str | Path) -> Path:
        """Use an R1-Zero model trained elsewhere (notebook 03's run) as this pipeline's ``r1_zero`` stage."""
        stage = "r1_zero"
        if self.done(stage):
            self.log(stage, "skipped")
            return self.final(stage)
        model, tokenizer = self.load(model_dir)
        save_checkpoint(self.final(stage), model, tokenizer)
        self._finish(stage, {"adopted_from": str(model_dir)})
        return self.final(stage)

    def cold_start(self, size: int | None | str = "config") -> Path:
        """SFT of the base on the first ``size`` examples of the cold-start set (None: all of them).

        The configured size writes ``cold_start/``; another size its own ``cold_start_n<size>/``.
        """
        size = self.config.cold_start.size if size == "config" else size
        examples = self.cold_start_data()
        chosen = examples if size is None else examples[:size]
        stage = "cold_start" if size == self.config.cold_start.size else f"cold_start_n{len(chosen)}"
        return self._sft(stage, "base", self.config.cold_start_sft, chosen)

    def reasoning_rl(self, start: str = "cold_start", language_reward: bool = True, seed: int | None = None) -> Path:
        """Stage 2: reasoning RL with the language-consistency reward added, from the cold start
        (or from another stage: a cold-start variant, or ``"base"`` for no cold start at all).

        ``language_reward=False`` is the ablation (accuracy and format only), and ``seed`` another
        seed of the RL run (sampling and prompt order); each variant writes its own folder.
        """
        stage = variant("reasoning_rl", start=None if start == "cold_start" else start,
                        without_lc=not language_reward, seed=None if seed == self.config.seed else seed)
        config = self.config.reasoning_rl if seed is None else replace(self.config.reasoning_rl, seed=seed)
        weights = config.reward_weights if language_reward or config.reward_weights is None else config.reward_weights[:2]
        return self._grpo(stage, start, replace(config, reward_weights=weights), self.reasoning_rewards(language_reward),
                          self.task, self.train_examples, self.eval_examples)

    def cold_start_sweep(self, sizes: Sequence[int | None] = (0, 50, 500, None)) -> list[dict[str, Any]]:
        """For each cold-start size: SFT from the base on that many examples (none for 0), then stage 2.

        Returns, per size, the stage-2 pass@1 curve and the readable rate right after the cold start
        and after stage 2. The configured size reuses the main pipeline's stages.
        """
        results = []
        total = len(self.cold_start_data())
        for size in sizes:
            count = total if size is None else min(size, total)
            start = "base" if count == 0 else self.cold_start(count if count != self.config.cold_start.size else "config").parent.name
            rl = self.reasoning_rl(start)
            history = [json.loads(line) for line in (rl.parent / "metrics.jsonl").read_text().splitlines()]
            curve = [(r["step"], r["eval/pass@1"]) for r in history if "eval/pass@1" in r]
            results.append({"size": count, "start": start, "curve": curve, "stage": rl.parent.name})
        return results

    def reward_model(self) -> Path:
        """A Bradley-Terry reward model on general preference pairs, its backbone the base model."""
        stage = "reward_model"
        if self.done(stage):
            self.log(stage, "skipped")
            return self.final(stage)
        self._begin(stage)
        _, tokenizer = self.load(self.base.name_or_path)
        model = reward_model_from(tokenizer, self.base.name_or_path, seed=self.config.seed).to(self.base.device)
        pairs = self.general.pairs_for(self.general_train, seed=self.config.seed)
        evaluation = self.general.pairs_for(self.general_eval * 6, seed=self.config.seed + 1)
        trainer = RewardModelTrainer(model, tokenizer, pairs, self.config.reward_model, self.folder(stage),
                                     eval_pairs=evaluation, progress=self.progress)
        history = self._run_trainer(stage, trainer)
        RewardModel(model, tokenizer).save(self.final(stage))
        self._finish(stage, {"steps": trainer.state.step, "last": history[-1] if history else {}})
        return self.final(stage)

    def scorer(self) -> RewardModel:
        """The trained reward model (trained first when missing), on the base's device."""
        if getattr(self, "_scorer", None) is None:
            scorer = RewardModel.load(self.reward_model())
            scorer.model.to(self.base.device)
            self._scorer = scorer
        return self._scorer

    def rejection_sft(self, start: str | None = None, seed: int | None = None) -> Path:
        """Stage 3: SFT on the rejection-sampled mix, from the base (the paper) or from stage 2;
        ``seed`` another seed of the SFT run (data order), in its own folder."""
        start = start or self.config.rejection_sft_start
        if start not in START_POINTS:
            raise ValueError(f"start must be one of {START_POINTS}, got {start!r}")
        # The configured start writes rejection_sft/; the alternative its own variant folder.
        stage = variant("rejection_sft", start=None if start == self.config.rejection_sft_start else start,
                        seed=None if seed == self.config.seed else seed)
        config = self.config.rejection_sft if seed is None else replace(self.config.rejection_sft, seed=seed)
        return self._sft(stage, start, config, self.rejection_data())

    def all_scenarios_rl(self) -> Path:
        """Stage 4: one RL run over reasoning and general prompts; every reward abstains off its kind."""
        scorer = self.scorer()
        rewards = [
            for_task(make_accuracy_reward(self.task), "reasoning"),
            for_task(readable_format_reward, "reasoning"),
            for_task(self.config.language_reward(), "reasoning"),
            for_task(scorer.as_reward_func("reward_model"), "general"),
        ]
        task = MixtureTask.of(reasoning=self.task, general=self.general)
        share = self.config.rejection.non_reasoning_fraction
        n_general = max(1, round(len(self.train_examples) * share / (1 - share)))
        train = interleave({"reasoning": self.train_examples, "general": self.general_train[:n_general]}, self.config.seed)
        evaluation = tag(self.eval_examples, "reasoning")
        return self._grpo("all_scenarios_rl", "rejection_sft", self.config.all_scenarios_rl, rewards, task, train,
                          evaluation)

    # ------------------------------------------------------------------ data stages

    def cold_start_data(self) -> list[SFTExample]:
        """The cold-start set (built once, then read back from ``cold_start_data/cold_start.jsonl``)."""
        stage, cfg = "cold_start_data", self.config.cold_start
        path = self.folder(stage) / "cold_start.jsonl"
        if self.done(stage):
            self.log(stage, "skipped")
            return load_sft_jsonl(path)
        self.log(stage, "started")
        # A few prompts in the second language: annotators wrote R1's cold start, mostly in one language.
        prompts = self.zero_train[: cfg.num_prompts]
        if self.task is not self.zero_task:
            prompts = pose_in_languages(prompts, cfg.second_language_share, self.config.seed + 5)
        if cfg.source == "reference":
            examples = reference_cold_start(self.task, prompts)[: cfg.max_examples]
        else:
            model, tokenizer = self.load(self.r1_zero())
            examples = build_cold_start(model, tokenizer, self.task, prompts, cfg.samples_per_prompt, cfg.temperature,
                                        self.config.r1_zero.max_completion_length, seed=self.config.seed,
                                        max_examples=cfg.max_examples)
        if not examples:
            raise ValueError("the cold-start set is empty: no sample of R1-Zero verified; train R1-Zero longer")
        if cfg.size is not None and len(examples) < cfg.size:
            raise ValueError(f"only {len(examples)} cold-start examples verified, fewer than size={cfg.size}")
        save_sft_jsonl(examples, path)
        self._finish(stage, {"examples": len(examples), "prompts": len(prompts), "source": cfg.source})
        return examples

    def rejection_data(self) -> list[SFTExample]:
        """Stage 3's mix: filtered reasoning samples of stage 2 and reward-model-chosen general replies."""
        stage, cfg = "rejection_data", self.config.rejection
        path = self.folder(stage) / "rejection.jsonl"
        if self.done(stage):
            self.log(stage, "skipped")
            return load_sft_jsonl(path)
        self.log(stage, "started")
        model, tokenizer = self.load(self.reasoning_rl())
        reasoning, counts = self._filtered_reasoning(model, tokenizer, cfg)
        if not reasoning:
            raise ValueError(f"no sample of stage 2 passed the filters ({counts}): train the cold start or stage 2 longer")
        wanted = math.floor(len(reasoning) * cfg.non_reasoning_fraction / (1 - cfg.non_reasoning_fraction))
        general = self._best_general(model, tokenizer, cfg, wanted)
        mix = interleave_sft(reasoning, general[:wanted], self.config.seed)
        save_sft_jsonl(mix, path)
        self._finish(stage, {**counts, "reasoning_kept": len(reasoning), "general_kept": min(len(general), wanted),
                             "examples": len(mix)})
        return mix

    def _filtered_reasoning(self, model, tokenizer, cfg: RejectionSamplingConfig) -> tuple[list[SFTExample], dict]:
        kept, counts, _ = rejection_sample(model, tokenizer, self.task, self.train_examples[: cfg.num_prompts],
                                           cfg.samples_per_prompt, cfg.temperature, cfg.max_tokens, self.config.seed + 3,
                                           language_reward=self.config.language_reward())
        return kept, counts

    def _best_general(self, model, tokenizer, cfg: RejectionSamplingConfig, wanted: int) -> list[SFTExample]:
        scorer, n = self.scorer(), cfg.general_samples_per_prompt
        requests = self.general_train[: min(len(self.general_train), 2 * wanted + 8)]  # some fail the score threshold
        chosen = []
        for groups in sample_batches(model, tokenizer, [self.general.prompt(e) for e in requests], n, 48,
                                     cfg.temperature, self.config.seed + 4, batch_prompts=64):
            # One scoring call per rollout batch: the reward model pads per call.
            scores = scorer.score([g.prompt for g in groups for _ in g.texts], [t for g in groups for t in g.texts])
            for i, group in enumerate(groups):
                own = scores[i * n : (i + 1) * n]
                best = group.best(own)
                if best is not None and own[best] >= cfg.min_reward_score and group.texts[best].strip():
                    chosen.append(SFTExample(group.prompt, group.texts[best]))
        return chosen

    # ------------------------------------------------------------------ everything

    def run(self, until: str = "all_scenarios_rl") -> dict[str, Path]:
        """Run (or skip, or resume) every stage up to ``until``; return each stage's folder."""
        if until not in STAGES:
            raise ValueError(f"until must be one of {STAGES}")
        paths = {}
        for stage in STAGES[: STAGES.index(until) + 1]:
            getattr(self, stage)()
            paths[stage] = self.folder(stage)
        return paths


# ---------------------------------------------------------------------- the stage-by-stage table

TABLE_COLUMNS = ("pass@1", "cons@k", "language_consistency", "readable_rate", "gold_general", "rm_score", "mean_length")


def language_consistency(result: EvalResult, reward: RewardFunc = tiny_language_consistency_reward,
                         task: Task | None = None, examples: Sequence[Example] | None = None) -> float:
    """Mean language-consistency score over the samples that have language words (1.0 = one language).

    With ``task`` and ``examples`` (those ``result`` evaluated) each sample is judged against its own
    prompt's language; without, against the first language.
    """
    if (task is None) != (examples is None):
        raise ValueError("give both task and examples, or neither")
    rows = result.completions
    prompts = [task.prompt(e) for e, row in zip(examples, rows) for _ in row] if task else [None] * sum(map(len, rows))
    scores = [s for s in reward(prompts, [c for row in rows for c in row]) if s is not None]
    return sum(scores) / len(scores) if scores else 1.0


def readable_rate(result: EvalResult) -> float:
    """Share of samples in the readable format (reasoning, summary, answer)."""
    flat = [c for row in result.completions for c in row]
    return sum(map(is_readable_format, flat)) / max(1, len(flat))


@torch.no_grad()
def general_quality(model, tokenizer, requests: Sequence[Example], k: int = 16, seed: int = 0,
                    scorer: RewardModel | None = None, max_new_tokens: int = 48) -> dict[str, float]:
    """How good ``k`` sampled replies to each general request are, by the gold judge and by a reward model.

    ``gold_general`` is the share the rule of :meth:`GeneralTask.judge` accepts (exactly a preferred
    form), with its standard error over requests; ``general/<verdict>`` the share of each verdict;
    ``rm_score`` (with ``scorer``) the reward model's mean score, a second opinion that stage 4
    optimises and therefore cannot judge it.
    """
    if not requests or k < 1:
        raise ValueError(f"need at least one request and k >= 1, got {len(requests)} requests and k={k}")
    general = GeneralTask()
    groups = list(sample_groups(model, tokenizer, [general.prompt(e) for e in requests], k, max_new_tokens, 1.0, seed,
                                batch_prompts=None))
    verdicts = [general.judge(text, request) for group, request in zip(groups, requests) for text in group.texts]
    per_request = [sum(v == "acceptable" for v in verdicts[i * k : (i + 1) * k]) / k for i in range(len(requests))]
    quality = {"gold_general": sum(per_request) / len(per_request), "gold_general_stderr": _stderr(per_request)}
    quality.update({f"general/{v}": verdicts.count(v) / len(verdicts) for v in VERDICTS})
    if scorer is not None:
        scores = scorer.score([g.prompt for g in groups for _ in g.texts], [t for g in groups for t in g.texts])
        quality["rm_score"] = sum(scores) / len(scores)
    return quality


def _stderr(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def evaluate_stage(model, tokenizer, pipeline: Pipeline, k: int = 4, seed: int = 7,
                   max_new_tokens: int = READABLE_LENGTH, general_k: int = 16) -> dict[str, float]:
    """One row of the stage-by-stage table for ``model``: reasoning on the held-out problems (both
    languages), general replies on the held-out requests (gold judge and reward model)."""
    result = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples, k=k, max_new_tokens=max_new_tokens, seed=seed)
    return {
        "pass@1": result.pass_at_1,
        "pass@1_stderr": result.pass_at_1_stderr,
        "cons@k": result.cons_at_k(pipeline.task, pipeline.eval_examples),
        "language_consistency": language_consistency(result, pipeline.config.language_reward(), pipeline.task,
                                                     pipeline.eval_examples),
        "readable_rate": readable_rate(result),
        **general_quality(model, tokenizer, pipeline.general_eval, k=general_k, seed=seed, scorer=pipeline.scorer()),
        "mean_length": result.mean_length,
    }


def relative_gains(table: dict[str, dict[str, float]], final: str, reference: str,
                   columns: Sequence[str] = TABLE_COLUMNS) -> dict[str, float]:
    """Each column's change from row ``reference`` to row ``final``, relative to the reference (0.25 = +25%)."""
    return {c: (table[final][c] - table[reference][c]) / abs(table[reference][c]) if table[reference][c] else math.nan
            for c in columns}


def main(argv: list[str] | None = None) -> None:
    """``python -m r1lib.pipeline [--profile cpu] [--root DIR] [--until STAGE]``: run the stages.

    ``--until cold_start_data`` stops after writing the cold-start set to
    ``<root>/cold_start_data/cold_start.jsonl`` (TRL's prompt-completion jsonl).
    """
    import argparse

    from .profiles import get_profile, runs_dir

    parser = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="cpu, smoke or gpu (default: $R1LIB_PROFILE, else by hardware)")
    parser.add_argument("--root", default=None, help="where the stages go (default: runs/pipeline/<profile>)")
    parser.add_argument("--until", default="all_scenarios_rl", choices=STAGES)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    root = Path(args.root) if args.root else runs_dir("pipeline", profile.name)
    pipeline = Pipeline(profile.model, pipeline_config(profile), root, data_dir=profile.data_dir)
    for stage, folder in pipeline.run(args.until).items():
        print(f"{stage:>18}: {folder}")


if __name__ == "__main__":
    main()
