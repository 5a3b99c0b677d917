"""The pipeline's settings: one config per data stage, every stage's in :class:`PipelineConfig`, the
stages' names and variants, and the configs of the tiny world and of a hub model on GSM8K."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..configs import DPOConfig, GRPOConfig, RewardModelConfig, SFTConfig
from ..rewards import RewardFunc, make_script_consistency_reward, tiny_language_consistency_reward

STAGES = ("r1_zero", "cold_start_data", "cold_start", "reasoning_rl", "reward_model", "rejection_data",
          "rejection_sft", "all_scenarios_rl")
START_POINTS = ("base", "reasoning_rl")


@dataclass
class ColdStartConfig:
    """How the cold-start set is made. ``source="r1_zero"`` samples R1-Zero (the tiny world);
    ``"reference"`` rewrites the dataset's own solutions (GSM8K). ``size`` is how many examples the
    cold start trains on (R1: "thousands"; s1: 1,000; LIMO: 817)."""

    source: str = field(
        default="r1_zero",
        metadata={"help": "Where the samples come from: 'r1_zero' samples R1-Zero (the tiny world); 'reference' "
                          "rewrites the dataset's own worked solutions (GSM8K)."},
    )
    num_prompts: int = field(
        default=1024,
        metadata={"help": "The first this many training prompts are the set's candidates."},
    )
    samples_per_prompt: int = field(
        default=4,
        metadata={"help": "Samples of R1-Zero per prompt (source 'r1_zero'); the first verified one is kept."},
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of R1-Zero's samples (> 0)."},
    )
    max_examples: int | None = field(
        default=None,
        metadata={"help": "The most examples the whole set holds (None: every verified one); the cold-start "
                          "stage trains on its first `size` examples."},
    )
    size: int | None = field(
        default=500,
        metadata={"help": "Examples the cold-start SFT trains on, the set's first (None: all); fewer verified "
                          "is an error. R1: 'thousands'; s1: 1,000; LIMO: 817."},
    )
    second_language_share: float = field(
        default=0.15,
        metadata={"help": "Share of the prompts posed (and answered) in the second language, in [0, 1]: a few, "
                          "as R1's annotators wrote its cold start mostly in one language."},
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.second_language_share <= 1.0:
            raise ValueError(f"second_language_share must be in [0, 1], got {self.second_language_share}")
        if self.source not in ("r1_zero", "reference"):
            raise ValueError(f"source must be 'r1_zero' or 'reference', got {self.source!r}")
        if self.num_prompts < 1 or self.samples_per_prompt < 1 or self.temperature <= 0:
            raise ValueError("need num_prompts >= 1, samples_per_prompt >= 1 and temperature > 0")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be None (all) or >= 1, got {self.max_examples}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be None (all) or >= 1, got {self.size}")


@dataclass
class RejectionSamplingConfig:
    """Stage 3's data: ``samples_per_prompt`` samples at ``temperature`` per reasoning prompt, kept
    when correct, readable, single-language and at most ``max_tokens`` long (one per prompt), mixed
    with the reward model's best reply per general prompt when it scores at least
    ``min_reward_score``. ``non_reasoning_fraction`` of the mix is general (R1: 200k of 800k)."""

    num_prompts: int = field(
        default=1024,
        metadata={"help": "Reasoning prompts sampled: the first this many training prompts."},
    )
    samples_per_prompt: int = field(
        default=4,
        metadata={"help": "Samples of the stage-2 model per reasoning prompt; the first that passes every "
                          "filter is kept."},
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of the reasoning samples and the general replies (> 0)."},
    )
    max_tokens: int = field(
        default=48,
        metadata={"help": "The longest reasoning sample kept, in tokens: longer ones fail the 'short_enough' "
                          "filter."},
    )
    general_samples_per_prompt: int = field(
        default=8,
        metadata={"help": "Replies sampled per general request; the reward model's best one is kept."},
    )
    min_reward_score: float = field(
        default=0.0,
        metadata={"help": "The reward model's lowest score at which a general reply is kept."},
    )
    non_reasoning_fraction: float = field(
        default=0.25,
        metadata={"help": "Share of the mix that is general replies, in [0, 1) (R1: 200k of 800k)."},
    )

    def __post_init__(self) -> None:
        if min(self.num_prompts, self.samples_per_prompt, self.max_tokens, self.general_samples_per_prompt) < 1:
            raise ValueError("counts and max_tokens must be >= 1")
        if not 0.0 <= self.non_reasoning_fraction < 1.0 or self.temperature <= 0:
            raise ValueError("need 0 <= non_reasoning_fraction < 1 and temperature > 0")


@dataclass
class PipelineConfig:
    """Every stage's settings. The GRPO and SFT configs are the profile's, adjusted per stage."""

    r1_zero: GRPOConfig = field(metadata={"help": "R1-Zero's GRPO, from the base with accuracy and format rewards."})
    cold_start: ColdStartConfig = field(metadata={"help": "How the cold-start set is made."})
    cold_start_sft: SFTConfig = field(metadata={"help": "The cold start's SFT, from the base on the cold-start set."})
    reasoning_rl: GRPOConfig = field(
        metadata={"help": "Stage 2's GRPO; reward_weights in the order accuracy, readable format, language "
                          "consistency."},
    )
    reward_model: RewardModelConfig = field(
        metadata={"help": "The Bradley-Terry reward model's training on general preference pairs."},
    )
    rejection: RejectionSamplingConfig = field(metadata={"help": "How stage 3's data is sampled and filtered."})
    rejection_sft: SFTConfig = field(metadata={"help": "Stage 3's SFT on the rejection-sampled mix."})
    all_scenarios_rl: GRPOConfig = field(
        metadata={"help": "Stage 4's GRPO; reward_weights in the order accuracy, readable format, language "
                          "consistency (reasoning prompts), reward model (general prompts)."},
    )
    dpo_reward_model: DPOConfig = field(
        default_factory=DPOConfig,
        metadata={"help": "DPO of the base on the general preference pairs: an implicit reward model, the "
                          "alternative judge of general replies (Pipeline.dpo_reward_model)."},
    )
    rejection_sft_start: str = field(
        default="base",
        metadata={"help": f"Where stage 3 starts, one of {', '.join(START_POINTS)}: the paper restarts from the "
                          "base; 'reasoning_rl' is the alternative."},
    )
    reasoning_task: str = field(
        default="chain",
        metadata={"help": "The reasoning task by its registered name: 'chain' in the tiny world, 'gsm8k' on the hub."},
    )
    language: str = field(
        default="tiny",
        metadata={"help": "The language-consistency reward: 'tiny' (the tiny world's so/luego words) or 'script' "
                          "(Latin letters)."},
    )
    num_train_prompts: int = field(default=4000, metadata={"help": "Reasoning prompts to train on."})
    num_eval_prompts: int = field(default=256, metadata={"help": "Held-out reasoning prompts to evaluate on."})
    num_general_eval: int = field(
        default=15,
        metadata={"help": "Held-out general requests: the stage table's and the reward model's evaluation."},
    )
    second_language_share: float = field(
        default=0.5,
        metadata={"help": "Share of the prompts of stages 2-4 and of the evaluation posed in the second language, "
                          "in [0, 1] (only with language 'tiny'); R1-Zero's are all in the first."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the prompts, their languages and every stage's sampling."})

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


def tiny_pipeline_config(grpo: GRPOConfig, sft: SFTConfig, size_factor: float = 1.0) -> PipelineConfig:
    """The tiny world's pipeline from a profile's GRPO and SFT configs; ``size_factor`` multiplies every
    stage's steps and data counts, so that < 1 shortens them all (the smoke profile).

    Stages after the cold start write the readable format, whose summary makes completions longer:
    they sample up to ``READABLE_LENGTH`` tokens. Stage 4 mixes two reward scales (rules in [0, 2],
    the reward model's scores of a few units) and halves the reward model's weight and the
    learning rate, so that general prompts do not swamp the reasoning signal.
    """

    def steps(n: int) -> int:
        return max(2, int(n * size_factor))

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
        dpo_reward_model=DPOConfig(max_steps=steps(200), per_device_train_batch_size=16, learning_rate=1e-4,
                                   save_steps=steps(200), eval_steps=steps(200)),
        num_eval_prompts=256 if size_factor >= 1 else 64,
    )


def pipeline_config(profile) -> PipelineConfig:
    """The pipeline of a profile: the tiny world's at full size (``cpu``), very small (``smoke``,
    enough to run every stage in CI), or a hub model's on GSM8K (``gpu``)."""
    if not profile.is_tiny:
        return gpu_pipeline_config(profile.grpo, profile.sft, profile.task)
    if profile.name != "smoke":
        return tiny_pipeline_config(profile.grpo, profile.sft)
    config = tiny_pipeline_config(profile.grpo, profile.sft, size_factor=0.1)
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
        dpo_reward_model=DPOConfig(max_steps=200, per_device_train_batch_size=8, learning_rate=1e-6,
                                   save_steps=100, eval_steps=100, fp16=grpo.fp16, bf16=grpo.bf16),
        reasoning_task=reasoning_task,
        num_train_prompts=2000,
        num_eval_prompts=100,
        language="script",
        second_language_share=0.0,
    )
