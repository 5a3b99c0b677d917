"""Multi-stage DeepSeek-R1, as plain calls of r1lib pieces. Each stage reads the previous stage's
model and writes its own folder under one root::

    r1_zero/          GRPO from the base with accuracy + format rewards (R1-Zero)
    cold_start_data/  R1-Zero's correct samples, rewritten into their prompt's language with a summary
                      (jsonl); a few prompts are posed in the second language
    cold_start/       SFT from the base on that set
    reasoning_rl/     stage 2: GRPO with accuracy + readable format + language consistency, on
                      prompts posed in two languages (the paper's condition for language mixing)
    reward_model/     a Bradley-Terry reward model for general prompts
    reward_model_dpo/ its alternative, DPO's implicit reward model on the same pairs (no stage reads it;
                      notebook 06 compares the two judges)
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

* :mod:`r1lib.pipeline.config`: every stage's settings (:class:`PipelineConfig`), the stages' names
  and variants, and the configs of the tiny world and of a hub model (:func:`pipeline_config`).
* :mod:`r1lib.pipeline.bookkeeping`: the stage folders, ``stage.json`` and ``pipeline.jsonl``: the
  rules above, in one place.
* :mod:`r1lib.pipeline.stages`: :class:`Pipeline`, which runs the stages.
* :mod:`r1lib.pipeline.report`: the stage-by-stage table (:func:`evaluate_stage`).
* ``python -m r1lib.pipeline``: the stages from a shell.
"""

from .config import (
    STAGES,
    ColdStartConfig,
    PipelineConfig,
    RejectionSamplingConfig,
    pipeline_config,
    tiny_pipeline_config,
    variant,
)
from .report import (
    TABLE_COLUMNS,
    evaluate_stage,
    general_quality,
    gold_per_request,
    language_consistency,
    language_scores,
    off_language_share,
    paired_difference,
    readable_rate,
    relative_gains,
)
from .stages import Pipeline

__all__ = [
    "STAGES",
    "TABLE_COLUMNS",
    "ColdStartConfig",
    "Pipeline",
    "PipelineConfig",
    "RejectionSamplingConfig",
    "evaluate_stage",
    "general_quality",
    "gold_per_request",
    "language_consistency",
    "language_scores",
    "off_language_share",
    "paired_difference",
    "pipeline_config",
    "readable_rate",
    "relative_gains",
    "tiny_pipeline_config",
    "variant",
]
