# %% [markdown]
# # 00 · Setup and a tour
#
# **What we will see.** This course rebuilds DeepSeek-R1 from its pieces. Everything runs in one of two *profiles*:
#
# * **`cpu`, the tiny world.** A Qwen2-shaped model of under a million parameters that *we* pretrained from scratch on three families of synthetic problems. It runs on 2 laptop cores in minutes.
# * **`gpu`, the real thing.** A Qwen2.5 base model from the Hugging Face hub on GSM8K, in fp16 on a free Colab T4, with a LoRA adapter.
#
# Both go through **the same `r1lib` calls**: the tiny model is a real `transformers` model and its tokenizer a real `PreTrainedTokenizerFast`. In this notebook we pick a profile, meet the tiny world's tasks, look at the tokenizer and the model, sample from the base model, and read the one measurement of the base that every later notebook starts from.

# %% [markdown]
# ## Choosing a profile
#
# `get_profile()` reads the environment variable `R1LIB_PROFILE` (`cpu`, `smoke` or `gpu`). Without it, it picks `gpu` when CUDA is available and `cpu` otherwise. `smoke` is the tiny world with very short runs, used by CI. To switch, set the variable before starting Python, or call `get_profile("cpu")` explicitly.

# %%
import json
import platform

import matplotlib.pyplot as plt
import torch
import transformers
from r1lib.profiles import TINY_BASE, describe, get_profile

profile = get_profile()
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}")
print(f"CUDA available: {torch.cuda.is_available()}")
print(describe(profile))

# %% [markdown]
# ## The tiny world's three tasks
#
# The tiny model was pretrained on three families of documents. Each task in `r1lib` knows how to make examples, how to prompt for one, and how to check an answer; it never calls the model.
#
# * **chain**: a sum of 2–7 digits modulo 10. `3+5+9+2` → `9`. A tiny model cannot answer long chains in one shot, but it can rewrite the expression one step at a time (`3+5+9+2 so 8+9+2 so 7+2 so 9`).
# * **search**: `3859=7` asks for two of the digits 3, 8, 5, 9 whose sum ends in 7. Finding the pair in one shot is a guess; *checking* a pair is one step (`3+8=1`: not 7). This is where reflection will pay (notebook 04).
# * **general**: polite requests (`greet Ana`) with no right answer, only better and worse replies; a reward model judges those (notebook 06).

# %%
from r1lib.tasks import ChainTask, GeneralTask
from r1lib.tasks.search import SearchTask

chain, search, general = ChainTask(), SearchTask(), GeneralTask()
for task in (chain, search, general):
    example = task.sample(__import__("random").Random(3))
    print(f"{task.name:>8}: prompt {task.prompt(example)}  reference answer {example.answer!r}")
print("search accepts any right pair:", search.check_answer("9+8", search.make_example([3, 8, 5, 9], 7)))

# %% [markdown]
# ## The model and the tokenizer
#
# `build_experiment` turns a profile into everything a run needs: model, tokenizer, task, disjoint train/eval examples and the two rewards of R1-Zero's kind, accuracy and format (with a deliberate difference, below). On the GPU profile it downloads Qwen2.5 and GSM8K; on the CPU profile it loads the shipped tiny base from `data/tiny-base/` and *generates* its problems (`task="search"` picks the other reasoning task).

# %%
from r1lib.experiment import build_experiment

exp = build_experiment(profile, seed=0)
model, tokenizer, task = exp.model, exp.tokenizer, exp.task
n_params = sum(p.numel() for p in model.parameters())
print(type(model).__name__, f"{n_params / 1e6:.2f}M parameters")
print(type(tokenizer).__name__, f"vocabulary of {len(tokenizer)} tokens")
print(f"{len(exp.train_examples)} training prompts, {len(exp.eval_examples)} held-out evaluation prompts")

# %% [markdown]
# A prompt goes through the tokenizer's **chat template**. In the tiny world the structure tags and the connector words are single tokens: a lesson from prototyping, where a tiny model spelling `<think>` character by character learned nothing for hundreds of steps. Everything else is one token per character.

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
# `rollout` samples `G` completions for each prompt with a KV cache, and returns token ids, masks, texts and truncation flags. This is exactly what GRPO does at every step. We score each completion with the course's two rule rewards: **accuracy** (is the `<answer>` right?) and **format** (is it `[<think>…</think>]<answer>…</answer>`?).
#
# The brackets mark a deliberate difference from R1-Zero. In the DeepSeek-R1 paper, R1-Zero's template asked the model to reason inside `<think>` tags before answering, and its format reward required the tags. Here the `<think>` block is optional: a bare `<answer>` is well formed too, and the tiny world's prompt is the bare expression, with no instruction at all. (On the GPU profile the system prompt paraphrases R1-Zero's template, but the format reward is the same.) So whether to reason at all is left to the model, and RL has to find out that it pays. In that one respect the tiny world is a stricter test of "reasoning emerges" than R1-Zero was, where the template had already asked for it.

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
if not any("<think>" in text for text in out.texts):
    # None of these reasoned (the base rarely does): one more sample, with <think> pre-filled, shows what its
    # reasoning looks like (its own generator, so the cells below see the same numbers as before).
    forced = rollout(model, tokenizer, [render_prompts(tokenizer, [task.prompt(example)])[0] + "<think>"], 1,
                     profile.grpo.max_completion_length, 1.0, generator=torch.Generator().manual_seed(1))
    print(f"\nwith <think> pre-filled: {('<think>' + forced.texts[0])[:200]!r}")

# %% [markdown]
# ## What the base model does, measured once
#
# The tiny base was built to be a good starting point for R1-Zero: it **mostly answers directly** (often wrongly) and **rarely reasons**, but when it reasons it is usually right. The pretraining command measured that once, on the tiny world's fixed held-out set: 4 samples at temperature 1 for each of 256 problems per task, freely, with `<think>` pre-filled (forced reasoning) and with `<answer>` pre-filled (forced direct answer). Every notebook quotes these numbers from `data/tiny-base/base_statistics.json`, with their standard error from sampling: pass@1 measured on another set of samples differs by about that much, so a difference of a point or two between two measurements is noise, not a change.

# %%
from r1lib.widgets import say

stats = json.loads((TINY_BASE / "base_statistics.json").read_text())
tasks = ["chain", "search"]
measures = {"free pass@1": "pass@1", "forced <think>": "forced_reasoning_pass@1",
            "forced <answer>": "forced_direct_pass@1", "reasons": "reasoning_rate", "reflects": "reflection_rate"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
for ax, name in zip(axes, tasks):
    values = [stats[f"{name}/{key}"] for key in measures.values()]
    bars = ax.bar(range(len(measures)), values, color=["tab:blue", "tab:green", "tab:red", "0.6", "tab:purple"])
    # The file records the error of free pass@1 only.
    ax.errorbar(0, values[0], yerr=stats[f"{name}/pass@1_stderr"], fmt="none", ecolor="black", capsize=4)
    ax.bar_label(bars, fmt="%.2f", padding=3)
    ax.set_xticks(range(len(measures)), list(measures), rotation=20, ha="right")
    ax.set_ylim(0, 1.1); ax.set_ylabel("share of samples"); ax.set_title(f"{name}: the base at temperature 1")
fig.text(0.5, -0.02, "error bar: ± one standard error of free pass@1 (base_statistics.json records no error for the others)",
         ha="center", fontsize=8)
plt.tight_layout(); plt.show()
for name in tasks:
    say(f"**{name}**: pass@1 {stats[f'{name}/pass@1']:.2f} ± {stats[f'{name}/pass@1_stderr']:.2f}; "
        f"forced reasoning {stats[f'{name}/forced_reasoning_pass@1']:.2f} vs forced direct "
        f"{stats[f'{name}/forced_direct_pass@1']:.2f}; it reasons in {stats[f'{name}/reasoning_rate']:.0%} of samples "
        f"and says `wait` (or `espera`) in {stats[f'{name}/reflection_rate']:.1%}.")

# %% [markdown]
# **What it means.** On chains, reasoning *pays* (forced `<think>` is far above forced `<answer>`), but the base rarely chooses it: R1-Zero's reinforcement learning has something to amplify (notebook 03). On search, most of the base's rare reasoning is *careless*: it checks one pair and answers it, right or wrong, so forced reasoning is only somewhat better than a guess. A few of its traces, like a few documents of its corpus, go on after a failed check with `wait` until a pair checks out. Whether RL finds out that those pay is the aha moment of notebook 04.
#
# ## Exercises
# 1. Sample the same prompt at temperature 0.3 and 1.5. How does the accuracy of the 8 completions change?
# 2. Find the long chains (6–7 terms) among `exp.eval_examples` and compare forced reasoning and forced direct answers on them alone.
# 3. Print `tokenizer.chat_template`. How would you give the tiny model a system prompt, and what would the model make of it?

# %% [solution]
# Solution to exercise 1 (collapsed): the accuracy of 32 samples at three temperatures.
for temperature in (0.3, 1.0, 1.5):
    sampled = rollout(model, tokenizer, render_prompts(tokenizer, [task.prompt(example)]), 32,
                      profile.grpo.max_completion_length, temperature, generator=torch.Generator().manual_seed(1))
    right = exp.reward_funcs[0]([None] * 32, sampled.texts, **{k: v * 32 for k, v in example_columns([example]).items()})
    print(f"temperature {temperature}: {sum(right) / 32:.2f} right, mean length {sampled.completion_lengths.float().mean():.1f}")
# Low temperatures repeat the base's most likely habit (a direct answer); high ones add variety and noise.

# %% [solution]
# Solution to exercise 2 (collapsed).
from r1lib.evaluate import evaluate

long_chains = [e for e in exp.eval_examples if len(e.info.get("terms", [])) >= 6][:32] or exp.eval_examples[:32]
limit = profile.grpo.max_completion_length
think = evaluate(model, tokenizer, task, long_chains, k=4, prefill="<think>", max_new_tokens=limit).pass_at_1
direct = evaluate(model, tokenizer, task, long_chains, k=4, prefill="<answer>", max_new_tokens=limit).pass_at_1
print(f"{len(long_chains)} long chains: forced think {think:.2f} vs forced direct {direct:.2f}")
# A direct answer to a 7-term chain is close to a guess (1 in 10); step by step the model gets most right.

# %% [solution]
# Solution to exercise 3 (collapsed): the template prints a system message verbatim before the user turn.
print(tokenizer.chat_template)
with_system = [{"role": "system", "content": "Think step by step."}, {"role": "user", "content": "3+4"}]
print(repr(tokenizer.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True)))
# The tiny model never saw a system message in pretraining: to it, these are just unfamiliar characters.

# %% [markdown]
# ## Checks
# The last cell asserts what this notebook promised, so CI notices if the course stops teaching it.

# %%
assert isinstance(model, transformers.PreTrainedModel)
assert out.completion_ids.shape[0] == G and len(out.texts) == G
if profile.is_tiny:
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1 for t in ["<think>", "</think>", "<answer>", "</answer>"])
    assert 0.10 <= stats["chain/pass@1"] <= 0.50 and stats["chain/reasoning_rate"] <= 0.30
    assert stats["chain/forced_reasoning_pass@1"] >= stats["chain/forced_direct_pass@1"] + 0.30
    assert stats["search/forced_reasoning_pass@1"] > stats["search/forced_direct_pass@1"]
    assert stats["search/reflection_rate"] <= 0.10
    assert think > direct
print("all checks passed")
