# %% [markdown]
# # 04 · Evaluation and the "aha moment"
#
# **What we will see.** How the R1 paper measures a reasoning model, applied to the R1-Zero run of notebook 03:
#
# * **pass@1 averaged over k samples.** The paper samples several answers per question at temperature 0.6 and reports the mean accuracy, because greedy decoding of a reasoning model is unstable and repetitive.
# * **pass@k**: is *any* of k samples right? The unbiased estimator avoids the bias of literally drawing k samples.
# * **cons@k** (self-consistency): the majority vote of k samples. On AIME 2024, R1-Zero scored 71.0 pass@1 and 86.7 cons@64.
# * **The "aha moment"**: the paper watched reflection words such as "wait" grow over training. We count the same ten words across the checkpoints of notebook 03.
# * A **completion browser** to read what the model actually wrote.

# %%
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from r1lib.checkpoint import latest_checkpoint
from r1lib.evaluate import REFLECTION_WORDS, evaluate, evaluate_checkpoints, pass_at_k, reflection_word_counts
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.models import load_model_and_tokenizer, load_trained
from r1lib.profiles import get_profile, runs_dir

profile = get_profile()
exp = build_experiment(profile, seed=0)
config = profile.grpo
run_dir = runs_dir("03_r1_zero", profile.name)

# %% [markdown]
# ## The checkpoints of notebook 03
#
# Notebook 03 saved a checkpoint every `save_steps` steps under `runs/03_r1_zero/<profile>/checkpoints/`. If you have not run it (or it was interrupted), the next cell trains the same run now; with `resume_from=True` it continues an interrupted run instead of starting over.

# %%
checkpoint_root = run_dir / "checkpoints"
final = latest_checkpoint(checkpoint_root)
if final is None or int(final.name.split("-")[1]) < config.max_steps:
    print("notebook 03's run is missing or unfinished: training it now")
    GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, config, run_dir,
                eval_examples=exp.eval_examples[: config.eval_examples]).train(resume_from=True)
    final = latest_checkpoint(checkpoint_root)
checkpoints = sorted(checkpoint_root.glob("step-*"))
print("checkpoints:", [c.name for c in checkpoints])

# %% [markdown]
# ## pass@1 over k samples, pass@k, and cons@k
#
# We sample `k` completions per held-out question from the base model and from the final R1-Zero checkpoint. For a question with `n` samples of which `c` are right, the unbiased pass@k is
# $$\text{pass@}k = 1 - \binom{n-c}{k} \Big/ \binom{n}{k},$$
# the chance that at least one of `k` samples drawn from the `n` is right. A check by hand: with `n=4, c=1`, pass@2 = 1 − C(3,2)/C(4,2) = 1 − 3/6 = 0.5.

# %%
print("pass@2 with n=4, c=1:", pass_at_k(4, 1, 2))
k = 8
n_questions = 64 if profile.name == "smoke" else min(200, len(exp.eval_examples))
questions = exp.eval_examples[:n_questions]

def load(path):
    return load_trained(profile.model, path)  # a full model, or a LoRA adapter on the profile's base

base_model, tokenizer = load_model_and_tokenizer(replace(profile.model, lora=None))
final_model, _ = load(final)
sampling = dict(k=k, temperature=config.temperature, max_new_tokens=config.max_completion_length, seed=7)
results = {"base": evaluate(base_model, tokenizer, exp.task, questions, **sampling),
           "R1-Zero": evaluate(final_model, tokenizer, exp.task, questions, **sampling)}
table = {}
for name, result in results.items():
    table[name] = {"pass@1": result.pass_at_1, f"cons@{k}": result.cons_at_k(exp.task, questions), f"pass@{k}": result.pass_at(k)}
    print(f"{name:>8}: " + "  ".join(f"{m} {v:.3f}" for m, v in table[name].items()))

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for name, result in results.items():
    ks = list(range(1, k + 1))
    ax.plot(ks, [result.pass_at(j) for j in ks], marker="o", label=f"{name} pass@k")
    ax.axhline(table[name][f"cons@{k}"], ls="--", color=ax.lines[-1].get_color(), alpha=0.6, label=f"{name} cons@{k}")
ax.set_xlabel("k"); ax.set_ylabel("accuracy"); ax.set_ylim(0, 1.02); ax.legend(fontsize=8); ax.set_title("pass@k and majority vote")
plt.show()

# %% [markdown]
# **What it means.** Majority voting beats a single sample when the right answer is the *most likely* one even if it is far from certain: wrong answers scatter over many values while right ones agree. pass@k is an upper bound that needs a verifier to pick the right sample; cons@k needs none. After RL, pass@1 has moved much closer to pass@k: RL made the model's *first* try good, which is exactly what it was rewarded for.
#
# ## The aha moment, measured
#
# Now every checkpoint of the run. For each we sample the held-out questions and record pass@1, mean length, the fraction of completions that reason, and the frequency of each of the ten reflection words that the Nature version of the paper tracks.

# %%
samples = 2 if profile.name == "smoke" else 4  # reflection is rare: the CPU profile samples more to measure it
per_checkpoint = evaluate_checkpoints(checkpoints, exp.task, questions, load, k=samples,
                                      temperature=config.temperature, max_new_tokens=config.max_completion_length, seed=11)
base_curve = evaluate(base_model, tokenizer, exp.task, questions, k=samples, temperature=config.temperature,
                      max_new_tokens=config.max_completion_length, seed=11)
curve = [(0, base_curve)] + per_checkpoint
steps = [s for s, _ in curve]
reflection = [r.reflection_rate for _, r in curve]
lengths = [r.mean_length for _, r in curve]
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
axes[0].plot(steps, [r.pass_at_1 for _, r in curve], marker="o"); axes[0].set_title("pass@1")
axes[1].plot(steps, lengths, marker="o"); axes[1].set_title("mean completion length (tokens)")
axes[2].plot(steps, [r.reasoning_rate for _, r in curve], marker="o"); axes[2].set_title("reasoning rate")
axes[3].plot(steps, reflection, marker="o", color="tab:red"); axes[3].set_title("completions with a reflection word")
for ax in axes: ax.set_xlabel("GRPO step"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %%
words = {step: reflection_word_counts([c for row in r.completions for c in row]) for step, r in curve}
first, last = steps[0], steps[-1]
print(f"{'word':>9} {'step ' + str(first):>10} {'step ' + str(last):>10}")
for word in REFLECTION_WORDS:
    print(f"{word:>9} {words[first][word]:10.3f} {words[last][word]:10.3f}")

# %% [markdown]
# In the tiny world, "wait" exists because a few pretraining traces corrected a slip (`6+2 wait 7+2`), and it only ever appears inside reasoning. As RL made reasoning the default, those self-corrections came along: reflection rose with reasoning and length, from a low base (a few percent of samples, so it takes a few hundred samples to see; the `smoke` profile's short run is too small to measure it reliably). RL did not make the tiny model reflect *more often per reasoning trace*: nothing in its rewards pays for reflection. In the paper the rise is dramatic because the base model is far richer and long problems reward checking one's work; the measurement is the same.
#
# ## Reading completions
#
# Numbers hide a lot. The browser shows the completions sampled during training, step by step, with each reward (green: right answer, red: wrong).

# %%
from r1lib.widgets import CompletionBrowser

browser = CompletionBrowser(run_dir / "completions.jsonl")
browser.show();

# %% [markdown]
# ## Exercises
# 1. Repeat the pass@k table at temperature 0.6, the paper's setting. Which metric changes most?
# 2. Which chain lengths does the base model get wrong that R1-Zero gets right? Group `results["R1-Zero"].correct` by `len(e.info["terms"])`.
# 3. Find a completion containing "wait" in the browser. Was the corrected step actually right?

# %% [solution]
# Solution to exercise 2 (collapsed).
from collections import defaultdict
by_length = defaultdict(lambda: [0, 0, 0])
for example, base_row, rl_row in zip(questions, results["base"].correct, results["R1-Zero"].correct):
    if "terms" in example.info:
        stats = by_length[len(example.info["terms"])]
        stats[0] += sum(base_row); stats[1] += sum(rl_row); stats[2] += len(base_row)
for terms, (b, r, n) in sorted(by_length.items()):
    print(f"{terms} terms: base {b / n:.2f}  R1-Zero {r / n:.2f}")

# %% [markdown]
# ## Checks

# %%
assert pass_at_k(4, 1, 2) == 0.5
for name in results:
    assert table[name][f"cons@{k}"] > table[name]["pass@1"], (name, table[name])
    assert table[name][f"pass@{k}"] >= table[name][f"cons@{k}"] - 1e-9
assert len(curve) >= 3, "the curves need the base and at least two checkpoints"
if profile.is_tiny:
    assert table["R1-Zero"]["pass@1"] > table["base"]["pass@1"] + 0.1
    assert lengths[-1] > lengths[0], lengths
if profile.name == "cpu":
    assert reflection[-1] > reflection[0], reflection
print("all checks passed")
