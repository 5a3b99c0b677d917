"""The orchestrator: :class:`Pipeline` runs each stage of DeepSeek-R1 as plain calls of r1lib's
pieces, from the previous stage's model, into its own folder (see :mod:`r1lib.pipeline`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..checkpoint import save_checkpoint
from ..cold_start import build_cold_start, reference_cold_start
from ..configs import GRPOConfig, SFTConfig
from ..grpo import GRPOTrainer
from ..models import ModelSpec, load_model_and_tokenizer
from ..rejection import interleave_sft, rejection_sample, sample_batches
from ..dpo import DPOTrainer, ImplicitRewardModel
from ..reward_model import RewardModel, RewardModelTrainer, reward_model_from
from ..records import PromptCompletion, load_jsonl, save_jsonl
from ..rewards import RewardFunc, format_reward, make_accuracy_reward, readable_format_reward, scoped_to_task
from ..sft import SFTTrainer
from ..tasks.base import Example, Task
from ..tasks.bilingual import BilingualTask, pose_in_languages
from ..tasks.general import GeneralTask
from ..tasks.mixture import MixtureTask, interleave, tag
from ..tasks.registry import load_task
from .config import STAGES, START_POINTS, PipelineConfig, RejectionSamplingConfig, variant
from .bookkeeping import StageBookkeeping


class Pipeline(StageBookkeeping):
    """The four stages of DeepSeek-R1 (plus R1-Zero and the reward model) under ``root``."""

    def __init__(self, base: ModelSpec, config: PipelineConfig, root: str | Path, progress: bool = True,
                 data_dir: str | None = None) -> None:
        super().__init__(root)
        self.base, self.config, self.progress = base, config, progress
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
        self.provided: dict[str, Path] = {}  # stages taken from elsewhere for this session (see provide)

    # ------------------------------------------------------------------ models

    def load(self, model_dir: Path | str):
        """A model and tokenizer from a stage's folder (or the base), placed as the base spec says."""
        return load_model_and_tokenizer(replace(self.base, name_or_path=str(model_dir)))

    def model_of(self, stage: str) -> Path | str:
        """The model folder a stage starts from: the base, or another stage's final model.

        A stage of :data:`STAGES` that has not run yet is run first (a notebook opened on its own
        trains what it reads); a variant must have been trained by its own call.
        """
        if stage == "base":
            return self.base.name_or_path
        if self._provided(stage) is not None:
            return self._provided(stage)
        if stage in STAGES and not self.done(stage):
            getattr(self, stage)()
        return self.final(stage)

    def _provided(self, stage: str) -> Path | None:
        """The model provided for ``stage`` (see :meth:`provide`), unless the stage has its own finished run."""
        return self.provided[stage] if stage in self.provided and not self.done(stage) else None

    @staticmethod
    def _check_model_stage(stage: str) -> None:
        models = tuple(s for s in STAGES if not s.endswith("_data") and s != "reward_model")
        if stage not in models:
            raise ValueError(f"only a policy's training stage can come from elsewhere, one of {models}; got {stage!r}")

    def provide(self, stage: str, model_dir: str | Path) -> Path:
        """Use the model in ``model_dir`` (a stage shipped with r1lib) as ``stage``'s for this session,
        without writing anything into the pipeline's folder: later stages start from it, and the
        stage's own method returns it instead of training. A finished run of the stage in the
        pipeline's folder still comes first, and a new pipeline object trains its own."""
        self._check_model_stage(stage)
        self.provided[stage] = Path(model_dir)
        return self.model_of(stage)

    # ------------------------------------------------------------------ training stages

    def train_stage(self, stage: str, start: str, make_trainer: Callable[[Any, Any, Path], Any]) -> Path:
        """Train a stage (or a variant) from ``start``'s model with the trainer ``make_trainer(model,
        tokenizer, folder)`` builds: skipped when done, resumed from its checkpoint when interrupted;
        returns the folder of its final model."""
        if self._provided(stage) is not None:
            return self._provided(stage)

        def train() -> tuple[Path, dict[str, Any]]:
            model, tokenizer = self.load(self.model_of(start))
            trainer = make_trainer(model, tokenizer, self.folder(stage))
            history = self._run_trainer(stage, trainer)
            model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
            save_checkpoint(self.final(stage), model, tokenizer)
            return self.final(stage), {"start": str(start), "steps": trainer.state.step,
                                       "last": history[-1] if history else {}}

        return self.run_once(stage, train, lambda: self.final(stage), start=str(start))

    def _grpo(self, stage: str, start: str, config: GRPOConfig, rewards: list[RewardFunc], task: Task,
              train: Sequence[Example], evaluation: Sequence[Example]) -> Path:
        return self.train_stage(stage, start, lambda model, tokenizer, out: GRPOTrainer(
            model, tokenizer, task, rewards, train, config, out, eval_examples=evaluation, progress=self.progress))

    def _sft(self, stage: str, start: str, config: SFTConfig, examples: list[PromptCompletion]) -> Path:
        return self.train_stage(stage, start, lambda model, tokenizer, out: SFTTrainer(
            model, tokenizer, examples, config, out, eval_task=self.task, eval_examples=self.eval_examples,
            progress=self.progress))

    def r1_zero(self) -> Path:
        """R1-Zero: GRPO from the base, rewarded for a right answer and the think/answer format only."""
        rewards = [make_accuracy_reward(self.zero_task), format_reward]
        return self._grpo("r1_zero", "base", self.config.r1_zero, rewards, self.zero_task, self.zero_train,
                          self.zero_eval)

    def reasoning_rewards(self) -> list[RewardFunc]:
        """Stage 2's rewards: accuracy, the readable format and language consistency (the ablation of
        :meth:`reasoning_rl` keeps all three and weighs the last by 0)."""
        return [make_accuracy_reward(self.task), readable_format_reward, self.config.language_reward()]

    def adopt(self, stage: str, model_dir: str | Path) -> Path:
        """Make a model trained elsewhere (notebook 03's R1-Zero) this pipeline's ``stage``: it is
        saved into the stage's folder and counts as done (``stage.json`` records where it came
        from); a stage already done is kept as it is. For a stage shipped with r1lib, see :meth:`provide`."""
        self._check_model_stage(stage)

        def adopt() -> tuple[Path, dict[str, Any]]:
            model, tokenizer = self.load(model_dir)
            save_checkpoint(self.final(stage), model, tokenizer)
            return self.final(stage), {"adopted_from": str(model_dir)}

        # Adopting trains nothing, so its log says only that it finished.
        return self.run_once(stage, adopt, lambda: self.final(stage), announce=False)

    def cold_start(self, size: int | None | str = "config") -> Path:
        """SFT of the base on the first ``size`` examples of the cold-start set (None: all of them).

        The configured size writes ``cold_start/``; another size its own ``cold_start_n<size>/``.
        """
        size = self.config.cold_start.size if size == "config" else size
        if size == self.config.cold_start.size and self._provided("cold_start") is not None:
            return self._provided("cold_start")  # before the set is built: it needs R1-Zero's samples
        examples = self.cold_start_data()
        chosen = examples if size is None else examples[:size]
        stage = "cold_start" if size == self.config.cold_start.size else f"cold_start_n{len(chosen)}"
        return self._sft(stage, "base", self.config.cold_start_sft, chosen)

    def reasoning_rl(self, start: str = "cold_start", language_reward: bool = True, seed: int | None = None) -> Path:
        """Stage 2: reasoning RL with the language-consistency reward added, from the cold start
        (or from another stage: a cold-start variant, or ``"base"`` for no cold start at all).

        ``language_reward=False`` is the ablation: the language reward is still computed and logged,
        with weight 0, so that both runs' logs show their consistency and only the pay differs.
        ``seed`` is another seed of the RL run (sampling and prompt order). Each variant writes its
        own folder.
        """
        stage = variant("reasoning_rl", start=None if start == "cold_start" else start,
                        without_lc=not language_reward, seed=None if seed in (None, self.config.reasoning_rl.seed) else seed)
        config = self.config.reasoning_rl if seed is None else replace(self.config.reasoning_rl, seed=seed)
        weights = list(config.reward_weights or [1.0, 1.0, 1.0])
        if not language_reward:
            weights[2] = 0.0
        return self._grpo(stage, start, replace(config, reward_weights=weights), self.reasoning_rewards(),
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
            configured = total if self.config.cold_start.size is None else min(self.config.cold_start.size, total)
            start = "base" if count == 0 else self.cold_start("config" if count == configured else count).parent.name
            rl = self.reasoning_rl(start)
            history = [json.loads(line) for line in (rl.parent / "metrics.jsonl").read_text().splitlines()]
            curve = [(r["step"], r["eval/pass@1"]) for r in history if "eval/pass@1" in r]
            results.append({"size": count, "start": start, "curve": curve, "stage": rl.parent.name})
        return results

    def reward_model(self) -> Path:
        """A Bradley-Terry reward model on general preference pairs, its backbone the base model."""
        stage = "reward_model"

        def train() -> tuple[Path, dict[str, Any]]:
            _, tokenizer = self.load(self.base.name_or_path)
            model = reward_model_from(tokenizer, self.base.name_or_path, seed=self.config.seed).to(self.base.device)
            pairs, evaluation = self._preference_pairs()
            trainer = RewardModelTrainer(model, tokenizer, pairs, self.config.reward_model, self.folder(stage),
                                         eval_pairs=evaluation, progress=self.progress)
            history = self._run_trainer(stage, trainer)
            RewardModel(model, tokenizer).save(self.final(stage))
            return self.final(stage), {"steps": trainer.state.step, "last": history[-1] if history else {}}

        return self.run_once(stage, train, lambda: self.final(stage))

    def dpo_reward_model(self) -> Path:
        """DPO of the base on the reward model's preference pairs: an implicit reward model
        (:mod:`r1lib.dpo`) whose reference is the base, the alternative judge of general replies.
        It is a variant of the reward-model stage (folder ``reward_model_dpo``), which no stage
        of :meth:`run` reads."""
        stage = "reward_model_dpo"

        def train() -> tuple[Path, dict[str, Any]]:
            # Full weights, not a LoRA adapter: the saved judge must load on its own.
            model, tokenizer = load_model_and_tokenizer(replace(self.base, lora=None))
            pairs, evaluation = self._preference_pairs()
            trainer = DPOTrainer(model, self._dpo_reference(), tokenizer, pairs, self.config.dpo_reward_model,
                                 self.folder(stage), eval_pairs=evaluation, progress=self.progress,
                                 reference_name=str(self.base.name_or_path))
            history = self._run_trainer(stage, trainer)
            trainer.reward_model.save(self.final(stage))
            return self.final(stage), {"steps": trainer.state.step, "last": history[-1] if history else {}}

        return self.run_once(stage, train, lambda: self.final(stage))

    def implicit_scorer(self) -> ImplicitRewardModel:
        """The trained implicit reward model (trained first when missing), its reference the base,
        on the base's device."""
        if getattr(self, "_implicit_scorer", None) is None:
            scorer = ImplicitRewardModel.load(self.dpo_reward_model(), reference=self._dpo_reference())
            self._implicit_scorer = scorer.to(self.base.device)
        return self._implicit_scorer

    def _dpo_reference(self):
        """The base, frozen and without an adapter, placed as the base spec says: DPO's reference."""
        return load_model_and_tokenizer(replace(self.base, lora=None), trainable=False)[0]

    def _preference_pairs(self):
        """The reward models' training pairs (from the general training requests) and held-out pairs."""
        return (self.general.pairs_for(self.general_train, seed=self.config.seed),
                self.general.pairs_for(self.general_eval * 6, seed=self.config.seed + 1))

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
                        seed=None if seed in (None, self.config.rejection_sft.seed) else seed)
        config = self.config.rejection_sft if seed is None else replace(self.config.rejection_sft, seed=seed)
        return self._sft(stage, start, config, self.rejection_data())

    def all_scenarios_rl(self) -> Path:
        """Stage 4: one RL run over reasoning and general prompts; every reward abstains off its kind."""
        if self._provided("all_scenarios_rl") is not None:
            return self._provided("all_scenarios_rl")  # before the reward model, which it would train
        scorer = self.scorer()
        rewards = [
            scoped_to_task(make_accuracy_reward(self.task), "reasoning"),
            scoped_to_task(readable_format_reward, "reasoning"),
            scoped_to_task(self.config.language_reward(), "reasoning"),
            scoped_to_task(scorer.as_reward_func("reward_model"), "general"),
        ]
        task = MixtureTask.of(reasoning=self.task, general=self.general)
        share = self.config.rejection.non_reasoning_fraction
        n_general = max(1, round(len(self.train_examples) * share / (1 - share)))
        train = interleave({"reasoning": self.train_examples, "general": self.general_train[:n_general]}, self.config.seed)
        evaluation = tag(self.eval_examples, "reasoning")
        return self._grpo("all_scenarios_rl", "rejection_sft", self.config.all_scenarios_rl, rewards, task, train,
                          evaluation)

    # ------------------------------------------------------------------ data stages

    def cold_start_data(self) -> list[PromptCompletion]:
        """The cold-start set (built once, then read back from ``cold_start_data/cold_start.jsonl``)."""
        cfg = self.config.cold_start
        path = self.folder("cold_start_data") / "cold_start.jsonl"

        def build() -> tuple[list[PromptCompletion], dict[str, Any]]:
            # A few prompts in the second language: annotators wrote R1's cold start, mostly in one language.
            prompts = self.zero_train[: cfg.num_prompts]
            if self.task is not self.zero_task:
                prompts = pose_in_languages(prompts, cfg.second_language_share, self.config.seed + 5)
            if cfg.source == "reference":
                examples = reference_cold_start(self.task, prompts)[: cfg.max_examples]
            else:
                model, tokenizer = self.load(self.r1_zero())
                examples = build_cold_start(model, tokenizer, self.task, prompts, cfg.samples_per_prompt,
                                            cfg.temperature, self.config.r1_zero.max_completion_length,
                                            seed=self.config.seed, max_examples=cfg.max_examples)
            if not examples:
                raise ValueError("the cold-start set is empty: no sample of R1-Zero verified; train R1-Zero longer")
            if cfg.size is not None and len(examples) < cfg.size:
                raise ValueError(f"only {len(examples)} cold-start examples verified, fewer than size={cfg.size}")
            save_jsonl(examples, path)
            return examples, {"examples": len(examples), "prompts": len(prompts), "source": cfg.source}

        return self.run_once("cold_start_data", build, lambda: load_jsonl(path))

    def rejection_data(self) -> list[PromptCompletion]:
        """Stage 3's mix: filtered reasoning samples of stage 2 and reward-model-chosen general replies."""
        cfg = self.config.rejection
        path = self.folder("rejection_data") / "rejection.jsonl"

        def build() -> tuple[list[PromptCompletion], dict[str, Any]]:
            model, tokenizer = self.load(self.reasoning_rl())
            reasoning, counts = self._filtered_reasoning(model, tokenizer, cfg)
            if not reasoning:
                raise ValueError(f"no sample of stage 2 passed the filters ({counts}): train the cold start or "
                                 "stage 2 longer")
            wanted = math.floor(len(reasoning) * cfg.non_reasoning_fraction / (1 - cfg.non_reasoning_fraction))
            general = self._best_general(model, tokenizer, cfg, wanted)
            mix = interleave_sft(reasoning, general[:wanted], self.config.seed)
            save_jsonl(mix, path)
            return mix, {**counts, "reasoning_kept": len(reasoning), "general_kept": min(len(general), wanted),
                         "examples": len(mix)}

        return self.run_once("rejection_data", build, lambda: load_jsonl(path))

    def _filtered_reasoning(self, model, tokenizer, cfg: RejectionSamplingConfig) -> tuple[list[PromptCompletion], dict]:
        kept, counts, _ = rejection_sample(model, tokenizer, self.task, self.train_examples[: cfg.num_prompts],
                                           cfg.samples_per_prompt, cfg.temperature, cfg.max_tokens, self.config.seed + 3,
                                           language_reward=self.config.language_reward())
        return kept, counts

    def _best_general(self, model, tokenizer, cfg: RejectionSamplingConfig, wanted: int) -> list[PromptCompletion]:
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
                    chosen.append(PromptCompletion(group.prompt, group.texts[best]))
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
