"""Rollout throughput: r1lib's KV-cached sampler vs Hugging Face ``model.generate``.

    python benchmarks/rollout_vs_generate.py [--model data/tiny-base] [--repeats 10]

Both produce 8 completions for each of 8 tiny-world prompts, up to 40 new tokens, on the same model
in the same process. The headline ratio uses greedy decoding, so both sides generate exactly the
same tokens (checked); a sampled run at temperature 1 is reported too (there the token counts
differ by chance). Tokens per second counts generated tokens up to EOS. Prints the ratio
r1lib / generate (the goal is >= 3 on the CPU) and the run's peak memory. The two are interleaved
seed by seed, so that a noisy machine slows both alike.
"""

from __future__ import annotations

import argparse

import torch

import time

from _common import ROOT, peak_memory_mb, reset_peak_memory
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.rollout import render_prompts, rollout
from r1lib.tasks import ChainTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "data" / "tiny-base"))
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model_and_tokenizer(ModelSpec(args.model, device=device))
    task = ChainTask()
    prompts = render_prompts(tokenizer, [task.prompt(e) for e in task.generate(args.prompts, seed=3)])
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(device)
    width = encoded["input_ids"].shape[1]
    expanded = {k: v.repeat_interleave(args.generations, dim=0) for k, v in encoded.items()}  # G copies per prompt

    def ours(temperature: float, seed: int = 0):
        out = rollout(model, tokenizer, prompts, args.generations, args.max_new_tokens, temperature,
                      generator=torch.Generator(device=device).manual_seed(seed))
        return [row[mask.bool()].tolist() for row, mask in zip(out.completion_ids, out.completion_mask)]

    def reference(temperature: float, seed: int = 0):
        torch.manual_seed(seed)
        sampling = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if temperature > 0 else dict(do_sample=False)
        with torch.no_grad():
            ids = model.generate(**expanded, **sampling, max_new_tokens=args.max_new_tokens,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        rows = []
        for row in ids[:, width:].tolist():
            cut = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
            rows.append(row[:cut])
        return rows

    for temperature in (0.0, 1.0):
        totals = {"generate": [0, 0.0], "r1lib": [0, 0.0]}
        runs = {"generate": reference, "r1lib": ours}
        reset_peak_memory()
        for run in runs.values():
            run(temperature)  # warm-up
        # Interleave the two, seed by seed, so that the machine's slow moments hit both alike.
        for seed in range(args.repeats):
            for name, run in runs.items():
                began = time.perf_counter()
                rows = run(temperature, seed)
                totals[name][1] += time.perf_counter() - began
                totals[name][0] += sum(len(r) for r in rows)
        for name, (tokens, seconds) in totals.items():
            print(f"[temperature {temperature}] {name:>9}: {tokens / seconds:8.0f} tokens/s ({seconds / args.repeats * 1000:.0f} ms "
                  f"per {args.prompts}x{args.generations} batch, {tokens / args.repeats:.0f} tokens)")
        if temperature == 0.0:
            print(f"greedy outputs identical: {ours(0.0) == reference(0.0)}")
        speed = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
        print(f"[temperature {temperature}] ratio r1lib / generate (tokens per second): "
              f"{speed['r1lib'] / speed['generate']:.2f}  (goal >= 3)")
    print(f"peak memory of the whole run: {peak_memory_mb():.0f} MB")
    print(f"device {device}, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
