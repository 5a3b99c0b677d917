# %% [markdown]
# # 00 · Setup and a tour
#
# **What we will see.** This course rebuilds DeepSeek-R1 from its pieces. Everything runs in one of two *profiles*:
#
# * **`cpu` — the tiny world.** A ~0.9M-parameter Qwen2-shaped model that *we* pretrained from scratch on a synthetic corpus of digit-chain problems (`3+5+9+2` → `9`, sums modulo 10). It runs on 2 laptop cores in minutes.
# * **`gpu` — the real thing.** A Qwen2.5 base model from the Hugging Face hub, GSM8K, fp16 on a free Colab T4, with a LoRA adapter.
#
# Both profiles go through **the same `r1lib` calls**: the tiny model is a real `transformers` model and its tokenizer a real `PreTrainedTokenizerFast`. In this notebook we pick a profile, look at the tokenizer and the model, and sample one rollout from the base model.

# %% [markdown]
# ## Choosing a profile
#
# `get_profile()` reads the environment variable `R1LIB_PROFILE` (`cpu`, `smoke` or `gpu`). Without it, it picks `gpu` when CUDA is available and `cpu` otherwise. `smoke` is the tiny world with very short runs, used by CI.

# %%
import platform
import torch
import transformers
from r1lib.profiles import get_profile

profile = get_profile()
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}")
print(f"CUDA available: {torch.cuda.is_available()}")
print(f"profile: {profile.name}  model: {profile.model.name_or_path}  task: {profile.task}")

# %% [markdown]
# ## The model, the tokenizer and the task
#
# `build_experiment` turns a profile into everything a run needs: model, tokenizer, task, disjoint train/eval examples and the two R1-Zero rewards. On the GPU profile it downloads Qwen2.5 and GSM8K; on the CPU profile it loads the shipped tiny base from `data/tiny-base/` and *generates* its problems.

# %%
from r1lib.experiment import build_experiment

exp = build_experiment(profile, seed=0)
model, tokenizer, task = exp.model, exp.tokenizer, exp.task
n_params = sum(p.numel() for p in model.parameters())
print(type(model).__name__, f"{n_params / 1e6:.2f}M parameters")
print(type(tokenizer).__name__, f"vocabulary of {len(tokenizer)} tokens")
print(f"{len(exp.train_examples)} training prompts, {len(exp.eval_examples)} held-out evaluation prompts")

# %% [markdown]
# A prompt goes through the tokenizer's **chat template**. In the tiny world, the structure tags are single tokens: a lesson from prototyping, where a tiny model spelling `<think>` character by character learned nothing for hundreds of steps.

# %%
example = exp.train_examples[0]
prompt = tokenizer.apply_chat_template(task.prompt(example), tokenize=False, add_generation_prompt=True)
print(repr(prompt[-300:]))
sample = "<think>3+5+9 so 8+9 so 7</think><answer>7</answer>"
pieces = tokenizer.convert_ids_to_tokens(tokenizer(sample, add_special_tokens=False)["input_ids"])
print(pieces)

# %% [markdown]
# ## One rollout from the base model
#
# `rollout` samples `G` completions for each prompt with a KV cache, and returns token ids, masks, texts and truncation flags. This is exactly what GRPO will do at every step. We score each completion with the two R1-Zero rewards: **accuracy** (is the `<answer>` right?) and **format** (is it `[<think>…</think>]<answer>…</answer>`?).

# %%
from r1lib.rollout import render_prompts, rollout
from r1lib.tasks import example_columns

G = 8
generator = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
out = rollout(model, tokenizer, render_prompts(tokenizer, [task.prompt(example)]), num_generations=G,
              max_new_tokens=profile.grpo.max_completion_length, temperature=1.0, generator=generator)
columns = {k: v * G for k, v in example_columns([example]).items()}
accuracy, fmt = (f([None] * G, out.texts, **columns) for f in exp.reward_funcs)
print(f"question: {example.question[:200]}   reference answer: {example.answer}\n")
for text, acc, form, n in zip(out.texts, accuracy, fmt, out.completion_lengths.tolist()):
    print(f"acc={acc:.0f} fmt={form:.0f} tokens={n:3d} | {text[:160]!r}")

# %% [markdown]
# ## What the base model does, in numbers
#
# On the tiny world, the base was built to be a good starting point for R1-Zero (DESIGN.md §3): it **mostly answers directly** (often wrongly), and **rarely reasons**, but when it does, it is usually right. We measure that on the held-out set by sampling at temperature 1, once freely, once with `<think>` pre-filled (forced reasoning) and once with `<answer>` pre-filled (forced direct answer).

# %%
import matplotlib.pyplot as plt
from r1lib.evaluate import evaluate

n_eval = 96 if profile.name == "smoke" else len(exp.eval_examples)
eval_set = exp.eval_examples[:n_eval]
limit = profile.grpo.max_completion_length
free = evaluate(model, tokenizer, task, eval_set, max_new_tokens=limit)
forced_think = evaluate(model, tokenizer, task, eval_set, max_new_tokens=limit, prefill="<think>")
forced_direct = evaluate(model, tokenizer, task, eval_set, max_new_tokens=limit, prefill="<answer>")
stats = {"pass@1 (free)": free.pass_at_1, "forced <think>": forced_think.pass_at_1, "forced <answer>": forced_direct.pass_at_1,
         "reasoning rate": free.reasoning_rate}
for k, v in stats.items():
    print(f"{k:>16}: {v:.2f}")
fig, ax = plt.subplots(figsize=(6, 3))
bars = ax.bar(list(stats), list(stats.values()), color=["tab:blue", "tab:green", "tab:red", "0.6"])
ax.bar_label(bars, fmt="%.2f"); ax.set_ylim(0, 1); ax.set_title("the base model, sampled at temperature 1")
plt.show()

# %% [markdown]
# **What it means.** Reasoning *pays* (forced `<think>` ≫ forced `<answer>`), but the base model rarely chooses it. R1-Zero's reinforcement learning has something to amplify: notebook 03 shows GRPO discovering that thinking pays, with accuracy and answer length rising together.
#
# ## Exercises
# 1. Sample the same prompt at temperature 0.3 and 1.5. How do the rewards change?
# 2. Find a long chain (6–7 terms) in `exp.eval_examples` and compare forced reasoning and forced direct answers on it alone.
# 3. Print `tokenizer.chat_template`. What would you change to give the tiny model a system prompt?

# %% [solution]
# Solution to exercise 2 (collapsed).
long_chains = [e for e in exp.eval_examples if len(e.question) >= 11][:32]
think = evaluate(model, tokenizer, task, long_chains, k=4, prefill="<think>", max_new_tokens=limit).pass_at_1
direct = evaluate(model, tokenizer, task, long_chains, k=4, prefill="<answer>", max_new_tokens=limit).pass_at_1
print(f"long chains: forced think {think:.2f} vs forced direct {direct:.2f}")

# %% [markdown]
# ## Checks
# The last cell asserts what this notebook promised, so CI notices if the course stops teaching it.

# %%
assert isinstance(model, transformers.PreTrainedModel)
assert out.completion_ids.shape[0] == G and len(out.texts) == G
if profile.is_tiny:
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1 for t in ["<think>", "</think>", "<answer>", "</answer>"])
    assert 0.10 <= free.pass_at_1 <= 0.50, free.pass_at_1
    assert free.reasoning_rate <= 0.30, free.reasoning_rate
    assert forced_think.pass_at_1 >= forced_direct.pass_at_1 + 0.30, (forced_think.pass_at_1, forced_direct.pass_at_1)
print("all checks passed")
