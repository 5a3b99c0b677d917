"""Measure the peak CPU memory of r1lib policy-gradient steps, in a fresh process.

Usage: python peak_memory.py HIDDEN LAYERS HEADS KV_HEADS INTERMEDIATE VOCAB BATCH PROMPT COMPLETION
Prints a JSON line: the parameter count and the peak resident memory the step added (bytes).
The peak is the kernel's high-water mark (VmHWM), reset after imports so that only the model,
the optimizer and the step count.
"""

import json
import sys
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from r1lib.logprobs import completion_logps


def resident(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def main() -> None:
    hidden, layers, heads, kv_heads, intermediate, vocab, batch, prompt, completion = map(int, sys.argv[1:10])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=prompt + completion, tie_word_embeddings=True)
    prompt_ids = torch.randint(0, vocab, (batch, prompt))
    completion_ids = torch.randint(0, vocab, (batch, completion))
    masks = torch.ones(batch, prompt, dtype=torch.long), torch.ones(batch, completion)
    # A warm-up step on a one-layer model loads the kernels and libraries, which are not the run's memory.
    warm = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                                        num_hidden_layers=1, num_attention_heads=heads, num_key_value_heads=kv_heads,
                                        max_position_embeddings=prompt + completion))
    completion_logps(warm, prompt_ids[:1], masks[0][:1], completion_ids[:1], masks[1][:1])[0].mean().backward()
    del warm
    before = resident("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    model = Qwen2ForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(2):  # the second step is the steady state: AdamW's moments exist from the first
        logps, _ = completion_logps(model, prompt_ids, masks[0], completion_ids, masks[1])
        (-logps.mean()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del logps
    parameters = sum(p.numel() for p in model.parameters())
    print(json.dumps({"parameters": parameters, "peak_bytes": resident("VmHWM:") - before}))


if __name__ == "__main__":
    main()
