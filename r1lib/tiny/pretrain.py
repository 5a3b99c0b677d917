"""Pretrain the tiny base model from scratch on the synthetic corpus.

Rebuild the shipped base (about 30 minutes on one CPU core)::

    python -m r1lib.tiny.pretrain --out data/tiny-base --steps 4000 --seed 0 --threads 1

The run is deterministic for a given seed, PyTorch version and thread count (floating-point sums
depend on how work is split across threads). It checkpoints every ``--eval-every`` steps under
``<out>.work/`` and resumes from there when restarted, so a killed rebuild loses at most that many
steps.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import atomic_write_text, checkpoint_name, latest_checkpoint, load_checkpoint, save_checkpoint
from ..evaluate import evaluate
from ..format import ANSWER_OPEN, THINK_OPEN
from ..tasks.chain import ChainTask
from .corpus import CorpusConfig, completion_text
from .model import TinyModelConfig, build_tiny_model
from .tokenizer import build_tiny_tokenizer

from ..experiment import EVAL_SEED  # noqa: E402  (shared with the GRPO runs)


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings; the defaults are the measured recipe of DESIGN.md section 3."""

    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    eval_every: int = 500
    eval_examples: int = 256
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("steps, batch_size and eval_every must be positive")
        if self.learning_rate <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("learning_rate must be positive and min_lr_ratio in [0, 1]")


def lr_factor(step: int, config: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_batch(tokenizer, task: ChainTask, rng: random.Random, config: PretrainConfig, progress: float):
    """Token ids, attention mask and labels for one batch; the loss covers the assistant turn only."""
    rows, label_rows = [], []
    for _ in range(config.batch_size):
        example = task.sample(rng)
        prompt = tokenizer.apply_chat_template(task.prompt(example), tokenize=False, add_generation_prompt=True)
        reply = completion_text(task, example, rng, config.corpus, progress) + tokenizer.eos_token
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        rows.append(prompt_ids + reply_ids)
        label_rows.append([-100] * len(prompt_ids) + reply_ids)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in label_rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return input_ids, mask, labels


def base_statistics(model, tokenizer, task: ChainTask, n_examples: int = 256, seed: int = 0) -> dict[str, float]:
    """The numbers that decide whether a base is good for R1-Zero (sampled at temperature 1)."""
    examples = task.generate(n_examples, seed=EVAL_SEED)
    free = evaluate(model, tokenizer, task, examples, seed=seed)
    forced_think = evaluate(model, tokenizer, task, examples, prefill=THINK_OPEN, seed=seed)
    forced_direct = evaluate(model, tokenizer, task, examples, prefill=ANSWER_OPEN, seed=seed)
    return {
        "pass@1": free.pass_at_1,
        "reasoning_rate": free.reasoning_rate,
        "reflection_rate": free.reflection_rate,
        "mean_length": free.mean_length,
        "forced_reasoning_pass@1": forced_think.pass_at_1,
        "forced_direct_pass@1": forced_direct.pass_at_1,
    }


def pretrain(out: str | Path, config: PretrainConfig = PretrainConfig(), progress: bool = True) -> dict[str, float]:
    """Pretrain, checkpointing under ``<out>.work``; save the final base to ``out``; return its statistics."""
    out = Path(out)
    work = out.with_name(out.name + ".work")
    torch.manual_seed(config.seed)
    tokenizer = build_tiny_tokenizer()
    task = ChainTask()
    model = build_tiny_model(tokenizer, config.model, seed=config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98), weight_decay=config.weight_decay
    )
    rng = random.Random(config.seed)
    start = 0
    resume = latest_checkpoint(work)
    if resume is not None:
        state = load_checkpoint(resume, model, optimizer)
        start = state["step"]
        rng.setstate((state["corpus_rng"][0], tuple(state["corpus_rng"][1]), state["corpus_rng"][2]))
        print(f"resumed from {resume} at step {start}")
    log_path = work / "pretrain_log.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    model.train()
    bar = tqdm(range(start, config.steps), desc="pretrain", disable=not progress, initial=start, total=config.steps)
    began = time.time()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * lr_factor(step, config)
        input_ids, mask, labels = make_batch(tokenizer, task, rng, config, step / config.steps)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        done = step + 1
        if done % config.eval_every == 0 or done == config.steps:
            stats = base_statistics(model, tokenizer, task, config.eval_examples)
            model.train()
            record = {"step": done, "loss": loss.item(), "elapsed_s": time.time() - began, **stats}
            with log_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            bar.write(json.dumps(record))
            version, internal, gauss = rng.getstate()
            save_checkpoint(
                work / checkpoint_name(done), model, tokenizer, optimizer,
                {"step": done, "corpus_rng": [version, list(internal), gauss]},
            )
    model.eval()
    stats = base_statistics(model, tokenizer, task, config.eval_examples)
    save_checkpoint(out, model, tokenizer)
    atomic_write_text(out / "pretrain_config.json", json.dumps(asdict(config), indent=2))
    atomic_write_text(out / "base_statistics.json", json.dumps(stats, indent=2))
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/tiny-base")
    parser.add_argument("--steps", type=int, default=PretrainConfig.steps)
    parser.add_argument("--seed", type=int, default=PretrainConfig.seed)
    parser.add_argument("--eval-every", type=int, default=PretrainConfig.eval_every)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; results depend on it")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stats = pretrain(args.out, PretrainConfig(steps=args.steps, seed=args.seed, eval_every=args.eval_every))
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
