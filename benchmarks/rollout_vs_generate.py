"""Rollout throughput: r1lib's KV-cached sampler vs Hugging Face ``model.generate``.

    python benchmarks/rollout_vs_generate.py [--model data/tiny-base] [--repeats 5]

Both sample 8 completions for each of 8 tiny-world prompts at temperature 1, up to 40 new tokens,
on the same model in the same process. Tokens per second counts generated tokens up to EOS.
Prints the ratio r1lib / generate (the goal is >= 3 on the CPU) and each side's peak memory.
"""

from __future__ import annotations

import argparse

import torch

from _common import ROOT, median_time, peak_memory_mb, reset_peak_memory
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.rollout import render_prompts, rollout
from r1lib.tasks import ChainTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "data" / "tiny-base"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model_and_tokenizer(ModelSpec(args.model, device=device))
    task = ChainTask()
    prompts = render_prompts(tokenizer, [task.prompt(e) for e in task.generate(args.prompts, seed=3)])
    counted = {}

    def ours():
        out = rollout(model, tokenizer, prompts, args.generations, args.max_new_tokens, 1.0,
                      generator=torch.Generator(device=device).manual_seed(0))
        counted["ours"] = int(out.completion_mask.sum())

    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(device)

    def reference():
        with torch.no_grad():
            ids = model.generate(**encoded, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=args.max_new_tokens, num_return_sequences=args.generations,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        new = ids[:, encoded["input_ids"].shape[1]:]
        ended = (new == tokenizer.eos_token_id).int().cumsum(dim=1)
        counted["generate"] = int(((ended == 0) | ((ended == 1) & (new == tokenizer.eos_token_id))).sum())

    results = {}
    for name, run in (("generate", reference), ("r1lib", ours)):
        reset_peak_memory()
        seconds = median_time(run, args.repeats)
        tokens = counted["ours" if name == "r1lib" else "generate"]
        results[name] = (tokens / seconds, seconds, peak_memory_mb())
        print(f"{name:>9}: {tokens / seconds:8.0f} tokens/s  ({seconds * 1000:.0f} ms per batch of "
              f"{args.prompts}x{args.generations}, {tokens} tokens), peak memory {results[name][2]:.0f} MB")
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"ratio r1lib / generate (tokens per second): {results['r1lib'][0] / results['generate'][0]:.2f}  (goal >= 3)")


if __name__ == "__main__":
    main()
