"""What a notebook reads from earlier notebooks, and where it comes from.

Notebook 04 reads 03's R1-Zero, 06 reads 05's cold start, 07 reads 04's teacher, 09 reads them all.
Each is taken, in this order, from

1. **the earlier notebook's own run** (``runs/...``), when it finished;
2. **the stage shipped with r1lib** (:mod:`r1lib.shipped`), on the tiny world, when it was trained
   with the settings in force; skipped when ``train_yourself`` is true;
3. **a training run now**, with the earlier notebook's own code and settings.

Every function returns a :class:`Predecessor`, which says which of the three it was.
:func:`plan` says it all before anything runs, with the time a T4 would need on the gpu profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import checkpoint_step, latest_checkpoint
from ..configs import GRPOConfig, SFTConfig
from ..estimates import GIB, KNOWN_SHAPES, DeviceInfo, estimate_step_seconds
from ..experiment import build_experiment
from ..grpo import GRPOTrainer
from ..pipeline import Pipeline, pipeline_config
from ..profiles import Profile, get_profile, runs_dir
from ..shipped import SHIPPED, file_sha256, find, fingerprint

ORIGINS = ("own run", "shipped", "trained now")
# What each notebook reads from earlier ones (notebook 08 reads nothing).
READS: dict[str, tuple[str, ...]] = {
    "04": ("r1_zero",), "05": ("r1_zero",), "06": ("r1_zero", "cold_start"), "07": ("search_r1_zero",),
    "09": ("r1_zero", "search_r1_zero", "cold_start", "final_r1"),
}
PIPELINE_STAGE = {"cold_start": "cold_start", "final_r1": "all_scenarios_rl"}
COLAB_T4 = DeviceInfo("cuda", "Tesla T4", 15 * GIB, (7, 5))
PROMPT_TOKENS = 200  # a GSM8K prompt in Qwen's chat template, rounded up


@dataclass(frozen=True)
class Predecessor:
    """A model an earlier notebook makes, as this notebook found it."""

    stage: str  # a name of r1lib.shipped.SHIPPED
    path: Path  # the model's folder
    origin: str  # one of ORIGINS

    def __post_init__(self) -> None:
        if self.stage not in SHIPPED or self.origin not in ORIGINS:
            raise ValueError(f"unknown stage {self.stage!r} or origin {self.origin!r}; origins: {ORIGINS}")

    def __str__(self) -> str:
        shipped = SHIPPED[self.stage]
        where = {"own run": f"{shipped.made_by}'s own run", "shipped": "the stage shipped with r1lib (sha256 checked)",
                 "trained now": "trained just now, by the code of " + shipped.made_by}[self.origin]
        return f"{shipped.what} ({shipped.made_by}): {where}, {_short(self.path)}"


def _short(path: Path) -> str:
    parts = Path(path).parts
    for anchor in ("runs", "data"):
        if anchor in parts:
            return str(Path(*parts[parts.index(anchor):]))
    return str(path)


def _finished(folder: Path, max_steps: int) -> Path | None:
    final = latest_checkpoint(folder / "checkpoints")
    return final if final is not None and (checkpoint_step(final) or 0) >= max_steps else None


def _base_weights(profile_or_spec_path: str) -> str:
    return file_sha256(Path(profile_or_spec_path) / "model.safetensors")


def r1_zero_fingerprint(profile: Profile, task: str) -> str:
    """The settings notebook 03's (``chain``) or 04's (``search``) R1-Zero run is trained with."""
    return fingerprint(grpo=profile.grpo, task=task, num_train=profile.num_train_prompts,
                       num_eval=profile.num_eval_prompts, seed=0, base=_base_weights(profile.model.name_or_path))


def pipeline_fingerprint(pipeline: Pipeline) -> str:
    """The settings of a pipeline's stages (all of them: a shipped stage is used only by the same pipeline)."""
    return fingerprint(pipeline=pipeline.config, data_dir=None, base=_base_weights(pipeline.base.name_or_path))


def _r1_zero_folder(profile: Profile, task: str) -> Path:
    return runs_dir("03_r1_zero", profile.name, "seed-0") if task == "chain" else runs_dir("04_aha", profile.name)


def _shipped(name: str, settings: str, profile: Profile, train_yourself: bool) -> Path | None:
    return None if train_yourself or not profile.is_tiny else find(name, settings)


def r1_zero(profile: Profile, task: str = "chain", train_yourself: bool = False) -> Predecessor:
    """Notebook 03's R1-Zero (``task="chain"``, seed 0) or notebook 04's on the search task (the teacher
    of notebook 07): its finished run, else the shipped stage, else trained now as that notebook does."""
    if task not in ("chain", "search"):
        raise ValueError(f"task must be 'chain' (notebook 03) or 'search' (notebook 04), got {task!r}")
    name, folder = ("r1_zero" if task == "chain" else "search_r1_zero"), _r1_zero_folder(profile, task)
    own = _finished(folder, profile.grpo.max_steps)
    if own is not None:
        return Predecessor(name, own, "own run")
    shipped = _shipped(name, r1_zero_fingerprint(profile, task), profile, train_yourself)
    if shipped is not None:
        return Predecessor(name, shipped, "shipped")
    exp = build_experiment(profile, seed=0, task=task)
    trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, profile.grpo, folder,
                          eval_examples=exp.eval_examples)
    trainer.train(resume_from=True)
    if trainer.outcome != "completed":
        raise KeyboardInterrupt(f"{SHIPPED[name].what} stopped at step {trainer.state.step} of "
                                f"{profile.grpo.max_steps}; its checkpoint is kept and running the cell again resumes it")
    return Predecessor(name, _finished(folder, profile.grpo.max_steps), "trained now")


def _adopts_notebook_03(pipeline: Pipeline, profile: Profile) -> bool:
    """Whether the pipeline's R1-Zero is notebook 03's run: the same task, prompts and length of run."""
    c = pipeline.config
    return (c.r1_zero.max_steps == profile.grpo.max_steps and c.reasoning_task == profile.task and c.seed == 0
            and (c.num_train_prompts, c.num_eval_prompts) == (profile.num_train_prompts, profile.num_eval_prompts))


def _recorded_origin(pipeline: Pipeline, stage: str) -> str:
    record = json.loads((pipeline.folder(stage) / "stage.json").read_text())
    return record.get("origin", "own run")


def pipeline_r1_zero(pipeline: Pipeline, profile: Profile, train_yourself: bool = False) -> Predecessor:
    """The pipeline's first stage: notebook 03's R1-Zero (as :func:`r1_zero` finds it) when their
    settings agree, adopted into the pipeline's folder; else the pipeline's own R1-Zero run."""
    if pipeline.done("r1_zero"):
        return Predecessor("r1_zero", pipeline.final("r1_zero"), _recorded_origin(pipeline, "r1_zero"))
    if _adopts_notebook_03(pipeline, profile):
        found = r1_zero(profile, "chain", train_yourself)
        return Predecessor("r1_zero", pipeline.adopt("r1_zero", found.path, origin=found.origin), found.origin)
    return Predecessor("r1_zero", pipeline.r1_zero(), "trained now")


def pipeline_stage(pipeline: Pipeline, name: str, profile: Profile, train_yourself: bool = False) -> Predecessor:
    """The pipeline's ``cold_start`` or ``final_r1`` (stage 4): its finished stage, else the shipped
    stage adopted into the pipeline's folder, else trained now with every stage before it."""
    if name not in PIPELINE_STAGE:
        raise ValueError(f"name must be one of {tuple(PIPELINE_STAGE)}, got {name!r}")
    stage = PIPELINE_STAGE[name]
    if pipeline.done(stage):
        return Predecessor(name, pipeline.final(stage), _recorded_origin(pipeline, stage))
    shipped = _shipped(name, pipeline_fingerprint(pipeline), profile, train_yourself)
    if shipped is not None:
        return Predecessor(name, pipeline.adopt(stage, shipped, origin="shipped"), "shipped")
    pipeline_r1_zero(pipeline, profile, train_yourself)  # so that the cold start samples notebook 03's R1-Zero
    return Predecessor(name, pipeline.model_of(stage), "trained now")


# ---------------------------------------------------------------------------------------------- plan


def _grpo_minutes(config: GRPOConfig, model: str, device: DeviceInfo) -> float | None:
    shape = KNOWN_SHAPES.get(model)
    seconds = shape and estimate_step_seconds(shape, device, config.per_device_train_batch_size * config.gradient_accumulation_steps,
                                              PROMPT_TOKENS, config.max_completion_length)
    return seconds * config.max_steps / 60 if seconds else None


def _sft_minutes(config: SFTConfig, model: str, device: DeviceInfo) -> float | None:
    shape = KNOWN_SHAPES.get(model)
    seconds = shape and estimate_step_seconds(shape, device, config.per_device_train_batch_size * config.gradient_accumulation_steps,
                                              config.max_length, 0, generate=False)
    return seconds * config.max_steps / 60 if seconds else None


def gpu_training_first(notebook: str, gpu: Profile | None = None) -> list[tuple[str, float | None]]:
    """What notebook ``notebook`` trains first on the gpu profile when no earlier run exists, as
    (what, estimated minutes on a Colab T4 or None), the estimate from FLOPs and memory bandwidth
    (:func:`r1lib.estimates.estimate_step_seconds`). Notebooks 07 and 09 measure the tiny world on
    every profile, so nothing is trained on the GPU for them."""
    gpu = gpu or get_profile("gpu")
    model, reads = gpu.model.name_or_path, READS.get(notebook, ())
    if notebook in ("07", "09") or not reads:
        return []
    if notebook == "04":
        return [(f"notebook 03's R1-Zero ({gpu.grpo.max_steps} GRPO steps on {model})", _grpo_minutes(gpu.grpo, model, COLAB_T4))]
    config = pipeline_config(gpu)
    first = [(f"the pipeline's R1-Zero ({config.r1_zero.max_steps} GRPO steps on {model})",
              _grpo_minutes(config.r1_zero, model, COLAB_T4))]
    if "cold_start" in reads:
        first.append((f"the cold start ({config.cold_start_sft.max_steps} SFT steps on {config.cold_start.size} "
                      f"examples)", _sft_minutes(config.cold_start_sft, model, COLAB_T4)))
    return first


def _where(name: str, profile: Profile, pipeline: Pipeline | None, train_yourself: bool) -> str:
    if name in PIPELINE_STAGE and pipeline is not None and pipeline.done(PIPELINE_STAGE[name]):
        return {"own run": "its own run", "shipped": "the shipped stage, adopted earlier",
                "trained now": "its own run"}[_recorded_origin(pipeline, PIPELINE_STAGE[name])]
    if name in ("r1_zero", "search_r1_zero"):
        task = "chain" if name == "r1_zero" else "search"
        if _finished(_r1_zero_folder(profile, task), profile.grpo.max_steps) is not None:
            return "its own run"
        settings = r1_zero_fingerprint(profile, task) if profile.is_tiny else ""
    else:
        settings = pipeline_fingerprint(pipeline) if profile.is_tiny and pipeline is not None else ""
    if settings and _shipped(name, settings, profile, train_yourself) is not None:
        return "the shipped stage (data/stages/" + name + ")"
    return "trained first (TRAIN_STAGES is on)" if train_yourself and profile.is_tiny else "trained first"


def plan(notebook: str, profile: Profile, train_yourself: bool = False, pipeline: Pipeline | None = None) -> str:
    """What notebook ``notebook`` reads from earlier notebooks and where each will come from, before
    anything runs; on every profile, what the gpu profile would train first and its estimated time
    on a T4; and the switch that trains everything here instead."""
    reads = READS.get(notebook, ())
    if not reads:
        return f"notebook {notebook} reads no model of an earlier notebook"
    lines = [f"notebook {notebook} reads:"]
    for name in reads:
        shipped = SHIPPED[name]
        lines.append(f"  {shipped.what} ({shipped.made_by}): {_where(name, profile, pipeline, train_yourself)}")
    first = gpu_training_first(notebook)
    if first:
        parts = [f"{what}, about {minutes:.0f} min" if minutes else f"{what} (no estimate for this model)"
                 for what, minutes in first]
        lines.append("On the gpu profile, without earlier runs, it first trains " + "; then ".join(parts) +
                     " on a free T4: an estimate from FLOPs and memory bandwidth, not a measurement. On the cpu "
                     "profile (PROFILE = \"cpu\") the tiny world's stages ship with r1lib and it starts at once.")
    elif profile.is_tiny or notebook in ("07", "09"):
        lines.append("On every profile these are the tiny world's models, shipped with r1lib.")
    lines.append("To train them here instead of taking the shipped stages: TRAIN_STAGES = True (or R1LIB_TRAIN_STAGES=1).")
    return "\n".join(lines)
