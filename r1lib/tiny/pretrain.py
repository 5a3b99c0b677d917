"""Pretrain the tiny base model from scratch on the synthetic corpus.

Rebuild the shipped base::

    python -m r1lib.tiny.pretrain --out data/tiny-base --seed 0 --threads 2

The run is deterministic for a given seed, PyTorch version and thread count (floating-point sums
depend on how work is split across threads). It is a :class:`r1lib.trainer.Trainer`: it
checkpoints every ``save_steps`` under ``<out>.work/`` and resumes from there when restarted, so a
killed rebuild loses at most that many steps and then continues bit for bit.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..causal_lm import CausalLMTrainer, CrossEntropyLoss, Rows, length_grouped
from ..checkpoint import atomic_write_text, save_checkpoint
from ..configs import TrainingConfig
from .. import records
from ..records import Encoded, encode
from ..evaluate import evaluate
from ..format import ANSWER_OPEN, THINK_OPEN
from ..stream import RandomStream
from ..tasks.splits import eval_examples
from ..trainer import TrainerCallback
from .corpus import CorpusConfig, Document, sample_document
from .model import TinyModelConfig, build_tiny_model
from .tokenizer import build_tiny_tokenizer
from .world import reasoning_tasks


@dataclass
class PretrainConfig(TrainingConfig):
    """Pretraining of a tiny base: the measured recipe (AdamW 1e-3, betas (0.9, 0.98), 200 warm-up
    steps, cosine decay to a tenth), the corpus mixture and the model's shape."""

    max_steps: int = 6000
    per_device_train_batch_size: int = 64
    learning_rate: float = 1e-3
    lr_scheduler_type: str = "cosine_with_min_lr"
    lr_scheduler_kwargs: dict = field(default_factory=lambda: {"min_lr_rate": 0.1})
    warmup_steps: int = 200
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    save_steps: int = 500
    eval_steps: int = 1000
    eval_examples: int = 256
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.eval_examples < 1:
            problems.append(f"eval_examples must be >= 1, got {self.eval_examples}")
        return problems


def collate(tokenizer, documents: list[Document]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, attention mask and labels of ``documents`` as one right-padded batch of one document
    per row, as pretraining's micro-batches hold them; the labels cover the reply only."""
    batch = records.collate([[encode(tokenizer, *d)] for d in documents], tokenizer.pad_token_id, attention_mask=True)
    return batch["input_ids"], batch["attention_mask"], batch["labels"]


def base_statistics(model, tokenizer, n_examples: int = 256, k: int = 1, seed: int = 0) -> dict[str, float]:
    """The numbers that decide whether a base is good for R1-Zero, per reasoning task, from ``k``
    samples at temperature 1 on each of the tiny world's first ``n_examples`` held-out problems:
    free pass@1 (with its standard error from sampling), reasoning, reflection and language-mixing
    rates, length, and pass@1 with reasoning forced (``<think>`` pre-filled) or skipped (``<answer>``)."""
    stats: dict[str, float] = {}
    for name, task in reasoning_tasks().items():
        examples = eval_examples(task, n_examples)
        free = evaluate(model, tokenizer, task, examples, k=k, seed=seed)
        forced_think = evaluate(model, tokenizer, task, examples, k=k, prefill=THINK_OPEN, seed=seed)
        forced_direct = evaluate(model, tokenizer, task, examples, k=k, prefill=ANSWER_OPEN, seed=seed)
        stats.update({
            f"{name}/pass@1": free.pass_at_1,
            f"{name}/pass@1_stderr": free.pass_at_1_stderr,
            f"{name}/reasoning_rate": free.reasoning_rate,
            f"{name}/reflection_rate": free.reflection_rate,
            f"{name}/reflection_per_trace": free.reflection_per_trace,
            f"{name}/language_mixing_rate": free.language_mixing_rate,
            f"{name}/mean_length": free.mean_length,
            f"{name}/forced_reasoning_pass@1": forced_think.pass_at_1,
            f"{name}/forced_direct_pass@1": forced_direct.pass_at_1,
        })
    return stats


REPORT_SAMPLES = 4  # samples per held-out problem in the shipped base's statistics


class PretrainTrainer(CausalLMTrainer):
    """Next-token prediction on documents drawn from the tiny world's corpus (a seeded stream): the
    causal-LM step with the cross-entropy on each document's reply."""

    name = "pretrain"
    LENGTH_BUCKETS = 4
    evaluate_at_start = False  # a random model's statistics are all zero

    def __init__(
        self, model, tokenizer, config: PretrainConfig, output_dir: str | Path | None = None,
        callbacks: Iterable[TrainerCallback | Callable] = (), progress: bool = True,
    ) -> None:
        super().__init__(model, config, output_dir, tokenizer=tokenizer, loss=CrossEntropyLoss(), callbacks=callbacks,
                         progress=progress)
        self.config: PretrainConfig = config
        self.stream = self.add_stream("stream", RandomStream(
            lambda rng, progress: sample_document(rng, self.config.corpus, progress), config.seed))

    @property
    def does_evaluate(self) -> bool:
        return True

    def draw(self, count: int) -> tuple[list[Encoded], dict[str, float]]:
        """``count`` new documents, at the curriculum's position (the share of the run done)."""
        documents = self.stream.take(count, progress=self.state.step / self.config.max_steps)
        return [encode(self.tokenizer, *d) for d in documents], {}

    def batches(self, items: list[Encoded]) -> list[Rows]:
        """``LENGTH_BUCKETS`` micro-batches of similar lengths per accumulation step.

        Documents differ a lot in length (``<answer>7</answer>`` against a 60-token trace), so each
        group is padded only to its own longest: about 1.8x faster than one padded batch, with the same loss.
        """
        return length_grouped(items, self.config.gradient_accumulation_steps * self.LENGTH_BUCKETS)

    def evaluate(self) -> dict[str, float]:
        stats = base_statistics(self.model, self.tokenizer, self.config.eval_examples)
        return {f"eval/{k}": v for k, v in stats.items()}


def pretrain(out: str | Path, config: PretrainConfig = PretrainConfig(), progress: bool = True) -> dict[str, float]:
    """Pretrain (resuming from ``<out>.work`` when a run was interrupted), save the final base with
    its config, statistics and log to ``out``, and return the statistics.

    The statistics are the course's one measurement of the base: ``REPORT_SAMPLES`` samples on each
    of ``eval_examples`` held-out problems per task, seeded, so running the command again on a
    finished rebuild reproduces them exactly.
    """
    out = Path(out)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, config.model, seed=config.seed)
    trainer = PretrainTrainer(model, tokenizer, config, out.with_name(out.name + ".work"), progress=progress)
    trainer.train(resume_from=True)
    if trainer.outcome != "completed":  # a stopped run is not a base: keep it in .work to resume, publish nothing
        raise KeyboardInterrupt(f"pretraining stopped at step {trainer.state.step} of {config.max_steps}; "
                                f"run the same command again to resume it from {trainer.output_dir}")
    model.eval()
    stats = {"samples_per_problem": REPORT_SAMPLES, "problems_per_task": config.eval_examples,
             **base_statistics(model, tokenizer, config.eval_examples, k=REPORT_SAMPLES)}
    save_checkpoint(out, model, tokenizer)
    atomic_write_text(out / "pretrain_config.json", json.dumps(asdict(config), indent=2))
    atomic_write_text(out / "base_statistics.json", json.dumps(stats, indent=2))
    shutil.copyfile(trainer.metrics_path, out / "pretrain_log.jsonl")
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/tiny-base")
    parser.add_argument("--steps", type=int, default=PretrainConfig.max_steps)
    parser.add_argument("--seed", type=int, default=PretrainConfig.seed)
    parser.add_argument("--eval-steps", type=int, default=PretrainConfig.eval_steps)
    parser.add_argument("--hidden-size", type=int, default=TinyModelConfig.hidden_size)
    parser.add_argument("--layers", type=int, default=TinyModelConfig.num_layers)
    parser.add_argument("--heads", type=int, default=TinyModelConfig.num_heads)
    parser.add_argument("--intermediate-size", type=int, default=TinyModelConfig.intermediate_size)
    parser.add_argument("--threads", type=int, default=2, help="torch threads; the bits of the result depend on it")
    parser.add_argument("--diligent-rate", type=float, default=CorpusConfig.diligent_rate,
                        help="share of search traces that keep searching after a failed check ('wait'); 0 gives a "
                             "base that never saw reflection (notebook 09)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = TinyModelConfig(args.hidden_size, args.layers, args.heads, args.intermediate_size)
    config = PretrainConfig(max_steps=args.steps, seed=args.seed, eval_steps=args.eval_steps, model=shape,
                            corpus=CorpusConfig(diligent_rate=args.diligent_rate))
    stats = pretrain(args.out, config)
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
