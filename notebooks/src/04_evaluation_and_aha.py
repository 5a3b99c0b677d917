# %% [markdown]
# # 04 · Evaluation and the "aha moment"
#
# **What we will see.** How the R1 paper measures a reasoning model, applied to the R1-Zero run of notebook 03, and then the scene the paper made famous:
#
# * **pass@1 averaged over k samples.** The paper samples several answers per question at temperature 0.6 and reports the mean accuracy, because greedy decoding of a reasoning model is unstable and repetitive.
# * **pass@k**: is *any* of k samples right? Sampling k answers and checking is itself an unbiased but noisy way to measure it; the estimator below is unbiased too and has less variance.
# * **cons@k** (self-consistency): the majority vote of k samples. In the Nature paper, R1-Zero scored 77.9% pass@1 on AIME 2024 and 86.7% with self-consistency. (The earlier arXiv version reported 71.0% pass@1 and 86.7% cons@64.)
# * **The aha moment.** During RL the paper saw reflection words such as "wait" become much more frequent, suddenly in its telling, with the model re-examining its steps. We show when and why that happens in the tiny world: not on chains, but on the search task, where checking a candidate is easier than finding the answer. (In the tiny world the rise is not sudden; we measure how it spreads over the steps.)
# * A **completion browser** to read what the model actually wrote.
#
# **Time.** On the cpu profile, about a minute on 2 cores. On the gpu profile, about 30 minutes on a free T4 (200 GRPO steps on the search task, plus the evaluations): an **estimate** from FLOPs and memory bandwidth (`r1lib.estimates`), not a measurement.
#
# **On its own.** This notebook reads notebook 03's R1-Zero (seed 0). When its run is missing, the cpu profile takes the one shipped with r1lib (trained by `make stages` with the same code and seed, its files checked against their recorded sha256) and starts at once; the gpu profile trains it first, and the cell after the install cell prints how long a T4 needs for that (an estimate). The cell after the install cell prints where each comes from, and `TRAIN_STAGES = True` in it trains them here instead.

# %%
import json
import time
from dataclasses import replace

import matplotlib.pyplot as plt
from r1lib.checkpoint import complete_checkpoints
from r1lib.course.predecessors import plan, r1_zero
from r1lib.evaluate import (ALL_REFLECTION_WORDS, evaluate, evaluate_checkpoints, has_reflection,
                            pass_at_k, reflection_word_counts)
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.models import load_model_and_tokenizer, load_trained
from r1lib.plots import running_mean, series
from r1lib.profiles import TINY_BASE, describe, get_profile, runs_dir
from r1lib.shipped import train_stages_default
from r1lib.widgets import html_table, say, show_html

profile = get_profile()
print(describe(profile))
TRAIN_STAGES = train_stages_default()  # True: train what this notebook reads instead of taking the shipped stages
print(plan("04", profile, TRAIN_STAGES))
config = profile.grpo
exp = build_experiment(profile, seed=0)

# %% [markdown]
# ## The run of notebook 03
#
# Notebook 03 saved a checkpoint every `save_steps` steps under `runs/03_r1_zero/<profile>/seed-0/checkpoints/`. `r1lib.course.predecessors.r1_zero` takes its last one when the run finished. Otherwise it takes the R1-Zero shipped with r1lib on the cpu profile, the same run rebuilt by `make stages`. Failing both, or with `TRAIN_STAGES = True`, it trains the run now, and `resume_from=True` continues an interrupted one instead of starting over. It says which it took:

# %%
found = r1_zero(profile, "chain", train_yourself=TRAIN_STAGES)
print(found)
final = found.path

# %% [markdown]
# ## pass@1 over k samples, pass@k, and cons@k
#
# We sample `k` completions per held-out question from the base model and from the final R1-Zero checkpoint. For a question with `n` samples of which `c` are right, the unbiased pass@k is
# $$\text{pass@}k = 1 - \binom{n-c}{k} \Big/ \binom{n}{k},$$
# the chance that at least one of `k` samples drawn without replacement from the `n` is right. Why not just plug the observed rate $c/n$ into $1-(1-c/n)^k$? Because that is biased: it understates pass@k (Jensen's inequality: $1-(1-p)^k$ is concave in $p$, so its value at a noisy estimate of $p$ is too low on average). The combinatorial form uses all $n$ samples and is exactly unbiased. A check by hand: with `n=4, c=1`, pass@2 = 1 − C(3,2)/C(4,2) = 1 − 3/6 = 0.5.

# %%
print("pass@2 with n=4, c=1:", pass_at_k(4, 1, 2))
k = 8
n_questions = 64 if profile.name == "smoke" else min(200, len(exp.eval_examples))
questions = exp.eval_examples[:n_questions]

def load(path):
    return load_trained(profile.model, path)  # a full model, or a LoRA adapter on the profile's base

base_model, tokenizer = load_model_and_tokenizer(replace(profile.model, lora=None), trainable=False)
final_model, _ = load(final)
sampling = dict(k=k, temperature=config.temperature, max_new_tokens=config.max_completion_length, seed=7)
results = {"base": evaluate(base_model, tokenizer, exp.task, questions, **sampling),
           "R1-Zero": evaluate(final_model, tokenizer, exp.task, questions, **sampling)}
table = {}
for name, result in results.items():
    table[name] = {"pass@1": result.pass_at_1, f"cons@{k}": result.cons_at_k(exp.task, questions), f"pass@{k}": result.pass_at(k)}
    print(f"{name:>8}: " + "  ".join(f"{m} {v:.3f}" for m, v in table[name].items()) + f"   (pass@1 ± {result.pass_at_1_stderr:.3f})")
if profile.is_tiny:
    stats = json.loads((TINY_BASE / "base_statistics.json").read_text())
    say(f"These samples give the base a pass@1 of {table['base']['pass@1']:.2f} ± {results['base'].pass_at_1_stderr:.2f}; "
        f"the shared measurement of notebook 00 says {stats['chain/pass@1']:.2f} ± {stats['chain/pass@1_stderr']:.2f}. "
        f"Different samples, same model: they agree within their errors.")

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for name, result in results.items():
    ks = list(range(1, k + 1))
    ax.plot(ks, [result.pass_at(j) for j in ks], marker="o", label=f"{name} pass@k")
    ax.axhline(table[name][f"cons@{k}"], ls="--", color=ax.lines[-1].get_color(), alpha=0.6, label=f"{name} cons@{k}")
ax.set_xlabel("k"); ax.set_ylabel("accuracy"); ax.set_ylim(0, 1.08); ax.legend(fontsize=8); ax.set_title("pass@k and majority vote")
plt.show()

# %% [markdown]
# **What it means.** Majority voting beats a single sample when the right answer is the *most likely* one even if it is far from certain: wrong answers scatter over many values while right ones agree. pass@k is an upper bound that needs a verifier to pick the right sample; cons@k needs none. After RL, pass@1 has moved much closer to pass@k: RL made the model's *first* try good, which is exactly what it was rewarded for.
#
# ## The aha moment
#
# Notebook 03 showed reasoning and length rising on chains, but not reflection. That is not a failure of RL, it is a property of the chain task: checking a step of a chain is exactly as hard as doing it, so a trace that says "wait" and redoes a step gains nothing. Reflection can only pay where **checking a candidate is much easier than producing the answer**.
#
# The search task is built that way. `3859=7` asks for two of the digits whose sum ends in 7. A guessed pair is often wrong; checking a pair is one step (`3+8=1`, not 7). The base saw three kinds of search documents in pretraining: direct guesses (most), careless traces that check the first pair and answer it even when it fails, and a few diligent traces that say `wait` after a failed check and try the next pair until one works.
#
# So be clear about what `wait` is here: the word that separates one try from the next in a search loop (`<think>3+8=1 wait 3+5=8 wait …</think>`), learned from those diligent documents. It is not the model rereading its own reasoning in words, as in the paper's example. Counting it measures how often the model keeps searching after a failed check, and that is all it measures.
#
# First, which reflection words can the tiny model say at all? The paper tracked ten. In the tiny world's tokenizer, only `wait` is a single token, with `espera` as its second-language twin; the others can only be spelled letter by letter and never appear in the corpus:

# %%
single = {w: len(tokenizer(f" {w} ", add_special_tokens=False)["input_ids"]) == 1 for w in ALL_REFLECTION_WORDS}
print("single tokens:", [w for w, one in single.items() if one])
print("spelled out only:", [w for w, one in single.items() if not one])

# %% [markdown]
# Now R1-Zero on the search task, from the same base, with exactly the settings of notebook 03 and the same two rewards. No reward mentions reflection.

# %%
search_exp = build_experiment(profile, seed=0, task="search")
aha_dir = runs_dir("04_aha", profile.name)
aha = GRPOTrainer(search_exp.model, search_exp.tokenizer, search_exp.task, search_exp.reward_funcs, search_exp.train_examples,
                  config, aha_dir, eval_examples=search_exp.eval_examples)
began = time.time()
aha_history = aha.train(resume_from=True)
aha_seconds = time.time() - began
print(f"{aha.state.step} GRPO steps, {aha_seconds:.0f}s in this session")

# %% [markdown]
# We measure every checkpoint as the base was measured (4 samples for each of the 256 held-out problems): the share of *all* samples containing a reflection word, and the share of *reasoning traces* containing one. The second tells whether reflection grows by itself, or only rides along with reasoning becoming more common.

# %%
samples = 4 if profile.is_tiny else 2
checkpoints = complete_checkpoints(aha_dir / "checkpoints")
measured = evaluate_checkpoints(checkpoints, search_exp.task, search_exp.eval_examples, load, k=samples,
                                temperature=config.temperature, max_new_tokens=config.max_completion_length, seed=0)
base_search = evaluate(base_model, tokenizer, search_exp.task, search_exp.eval_examples, k=samples,
                       temperature=config.temperature, max_new_tokens=config.max_completion_length, seed=0)
curve = [(0, base_search)] + measured
steps = [s for s, _ in curve]
overall = [r.reflection_rate for _, r in curve]
per_trace = [r.reflection_per_trace for _, r in curve]
accuracy = [r.pass_at_1 for _, r in curve]
lengths = [r.mean_length for _, r in curve]

fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
train_steps, train_overall = series(aha_history, "completions/reflection_rate")
axes[0].plot(train_steps, running_mean(train_overall, 3), color="0.75", label="training samples (3-step mean)")
axes[0].plot(steps, overall, marker="o", lw=2, color="tab:red", label="held-out: all samples")
axes[0].plot(steps, per_trace, marker="s", lw=2, color="tab:purple", label="held-out: reasoning traces")
axes[0].set_ylim(0, 1); axes[0].set_ylabel("share containing wait/espera"); axes[0].set_title("reflection"); axes[0].legend(fontsize=8)
axes[1].plot(steps, accuracy, marker="o", lw=2); axes[1].set_ylim(0, 1); axes[1].set_ylabel("pass@1 (held-out)")
axes[1].set_title("accuracy")
axes[2].plot(steps, lengths, marker="o", lw=2); axes[2].set_ylabel("tokens"); axes[2].set_title("completion length")
for ax in axes:
    ax.set_xlabel("GRPO step"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()
say(f"Reflection: **{overall[0]:.1%} → {overall[-1]:.1%}** of all samples, **{per_trace[0]:.0%} → {per_trace[-1]:.0%}** "
    f"of reasoning traces. pass@1 {accuracy[0]:.2f} → {accuracy[-1]:.2f}; length {lengths[0]:.1f} → {lengths[-1]:.1f} "
    f"tokens; {aha_seconds:.0f}s of RL in this session.")

# %% [markdown]
# How fast did it happen? The paper describes the rise of its reflection words as sudden. The training log has the share of sampled completions that reflect at every step; in windows of 10 steps we can see whether the tiny world's rise is a jump or a climb:

# %%
window = 10
windows = [(start + 1, start + window, sum(train_overall[start : start + window]) / len(train_overall[start : start + window]))
           for start in range(0, len(train_overall), window)]
print("  ".join(f"steps {a}-{b}: {v:.0%}" for a, b, v in windows))
jumps = [b[2] - a[2] for a, b in zip(windows, windows[1:])]
steepest = max(range(len(jumps)), key=lambda i: jumps[i]) if jumps else 0
# A diligent search that succeeds on its first pair never says wait: the share of problems whose first pair fails
# is the ceiling of reflection per trace.
ceiling = sum(not search_exp.task.search_steps(e)[0][1] for e in search_exp.eval_examples) / len(search_exp.eval_examples)
# A jump puts most of the climb into one window; a gradual rise spreads it over several.
first_window, peak_window = windows[0][2], max(v for _, _, v in windows)
climb = peak_window - first_window
steepest_share = jumps[steepest] / climb if jumps and climb > 0 else 1.0
most_of_climb = next(w for w in windows if w[2] >= first_window + 0.9 * climb)  # the first window at 90% of the climb
if jumps:
    say(f"The largest change between two windows is **+{jumps[steepest]:.0%}**, from steps {windows[steepest][0]}–"
        f"{windows[steepest][1]} to {windows[steepest + 1][0]}–{windows[steepest + 1][1]}. That is "
        f"**{steepest_share:.0%}** of the whole climb from {first_window:.0%} (steps 1–{window}) to the peak of "
        f"{peak_window:.0%}, and the rate first covers 90% of the climb in steps {most_of_climb[0]}–{most_of_climb[1]}: "
        f"a gradual rise over several windows, not the sudden jump of the paper's telling. At the end, "
        f"{per_trace[-1]:.0%} of reasoning traces reflect, against a ceiling of {ceiling:.0%}: the share of problems "
        f"whose first pair fails, where a search has to go on.")

# %% [markdown]
# Both languages' reflection words, before and after:

# %%
words_before = reflection_word_counts([c for row in base_search.completions for c in row])
words_after = reflection_word_counts([c for row in measured[-1][1].completions for c in row])
rows = [[w, f"{words_before[w]:.3f}", f"{words_after[w]:.3f}"] for w in ALL_REFLECTION_WORDS]
show_html(html_table(["word", "base", f"step {steps[-1]}"], rows, monospace=False))

# %% [markdown]
# What a successful `wait` looks like, and the same problems answered by the base:

# %%
final_search = measured[-1][1]
shown = []
for i, example in enumerate(search_exp.eval_examples):
    for j, text in enumerate(final_search.completions[i]):
        if " wait " in text and final_search.correct[i][j]:
            shown.append((example, base_search.completions[i][0], base_search.correct[i][0], text))
            break
    if len(shown) == 5:
        break
green, red = "#e6f4ea", "#fce8e6"
show_html(html_table(["problem", "base", "after RL"], [[f"{e.question}", b, a] for e, b, _, a in shown],
                     [[None, green if ok else red, green] for _, _, ok, _ in shown]))

# %% [markdown]
# **How to read it.** The base already *knew* diligent search: a few of its pretraining documents showed it, and it sometimes produced it. RL did not invent reflection; it found that traces which go on after a failed check are right far more often than guesses or careless traces, and amplified them. Three conditions made that possible:
#
# * **reflection must pay**: in the chain task, re-checking a step costs as much as the step, and nothing makes `wait` worth its tokens there;
# * **the shortcut must not be learnable**: direct answers in the search documents are guesses, so there is no one-shot answer for the model to learn instead of searching;
# * **the behaviour must exist in the base**, however rarely, so that sampling finds it and the group advantage can reward it.
#
# That is also how we read R1-Zero's aha moment, and it agrees with a later study of base models: Liu et al. (2025), "Understanding R1-Zero-Like Training: A Critical Perspective" (arXiv:2503.20783), found self-reflection, "aha" moments included, in the outputs of base models, DeepSeek-V3-Base among them, before any RL. The tiny world shows the other half on a small scale: RL made a rare behaviour of the base frequent, on the task where it paid.
#
# ## Reading completions
#
# Numbers hide a lot. The browser shows the completions sampled during the search run, step by step and prompt by prompt (four prompts per step, all eight completions of each), with every reward (green: right answer, red: wrong). Drag the slider from the first steps to the last.

# %%
from r1lib.widgets import CompletionBrowser

browser = CompletionBrowser(aha_dir / "completions.jsonl")
browser.show();

# %% [markdown]
# The same log without the widget (a viewer that shows no widgets sees this): the first logged prompt of the first step against the first of the last step. A group whose completions all earn the same reward has advantage 0 everywhere and teaches nothing.

# %%
rows = []
for step in (browser.steps[0], browser.steps[-1]):
    question = browser.questions(step)[0]
    rows += [[step, question, r["completion"], f"{r['reward']:.0f}", f"{r['advantage']:+.2f}"]
             for r in browser.completions(step, question)]
show_html(html_table(["step", "problem", "completion", "reward", "advantage"], rows))

# %% [markdown]
# ## Exercises
# 1. Repeat the pass@k table at temperature 0.6, the paper's setting. Which metric changes most?
# 2. Which chain lengths does the base model get wrong that R1-Zero gets right? Group `results["R1-Zero"].correct` by `len(e.info["terms"])`.
# 3. Among the final search samples that reflect, how often is the answer right, and how many checks did they make? Compare with the samples that do not reflect.

# %% [solution]
# Solution to exercise 1 (collapsed).
cool = dict(sampling, temperature=0.6)
changes = {}
for name, m in (("base", base_model), ("R1-Zero", final_model)):
    r = evaluate(m, tokenizer, exp.task, questions, **cool)
    at_cool = {"pass@1": r.pass_at_1, f"cons@{k}": r.cons_at_k(exp.task, questions), f"pass@{k}": r.pass_at(k)}
    for metric, value in at_cool.items():
        changes[(name, metric)] = value - table[name][metric]
    print(f"{name:>8} at T=0.6: " + "  ".join(f"{m_} {v:.3f} ({v - table[name][m_]:+.3f})" for m_, v in at_cool.items())
          + f"  reasoning {r.reasoning_rate:.2f} ({r.reasoning_rate - results[name].reasoning_rate:+.2f})")
largest = max(changes, key=lambda key: abs(changes[key]))
print(f"largest change from T={config.temperature} to T=0.6: {largest[0]}'s {largest[1]}, {changes[largest]:+.3f}")
# A lower temperature pulls each sample towards the model's habit. R1-Zero's habit is to reason, and reasoning is
# right, so little changes. The base's habit is a direct guess: at T=0.6 fewer of its samples reason, so the
# majority of 8 follows the guesses (cons@8), fewer samples are right (pass@1), and the 8 samples are less diverse,
# so fewer problems get even one right answer (pass@8).

# %% [solution]
# Solution to exercise 2 (collapsed).
from collections import defaultdict
by_length = defaultdict(lambda: [0, 0, 0])
for example, base_row, rl_row in zip(questions, results["base"].correct, results["R1-Zero"].correct):
    if "terms" in example.info:
        counts = by_length[len(example.info["terms"])]
        counts[0] += sum(base_row); counts[1] += sum(rl_row); counts[2] += len(base_row)
for terms, (b, r, n) in sorted(by_length.items()):
    print(f"{terms} terms: base {b / n:.2f}  R1-Zero {r / n:.2f}")

# %% [solution]
# Solution to exercise 3 (collapsed).
reflecting = [(c, ok) for row, oks in zip(final_search.completions, final_search.correct) for c, ok in zip(row, oks) if has_reflection(c)]
plain = [(c, ok) for row, oks in zip(final_search.completions, final_search.correct) for c, ok in zip(row, oks) if not has_reflection(c)]
checks = [c.count("=") for c, _ in reflecting]
print(f"reflecting samples: {len(reflecting)}, right {sum(ok for _, ok in reflecting) / max(1, len(reflecting)):.2f}, "
      f"{sum(checks) / max(1, len(checks)):.1f} checks on average")
print(f"other samples: {len(plain)}, right {sum(ok for _, ok in plain) / max(1, len(plain)):.2f}")

# %% [markdown]
# ## Checks

# %%
assert pass_at_k(4, 1, 2) == 0.5
for name in results:
    assert table[name][f"cons@{k}"] >= table[name]["pass@1"], (name, table[name])
    assert table[name][f"pass@{k}"] >= table[name][f"cons@{k}"] - 1e-9
assert len(curve) >= 3, "the curves need the base and at least two checkpoints"
if profile.is_tiny:
    assert table["R1-Zero"]["pass@1"] > table["base"]["pass@1"] + (0.1 if profile.name == "cpu" else 0.0)
    assert abs(table["base"]["pass@1"] - stats["chain/pass@1"]) <= 3 * (results["base"].pass_at_1_stderr + stats["chain/pass@1_stderr"])
    assert single["wait"] and single["espera"] and sum(single.values()) == 2
if profile.name == "cpu":
    assert overall[0] <= 0.10 and overall[-1] >= 0.40, overall  # the aha moment, on all samples
    assert per_trace[-1] >= per_trace[0] + 0.20, per_trace  # and per reasoning trace: not just riding along
    assert accuracy[-1] >= accuracy[0] + 0.30, accuracy
    assert aha_seconds <= 300, aha_seconds
    assert shown, "no successful wait -> retry to show"
    assert per_trace[-1] <= ceiling + 0.05  # reflection where a search has to go on, not a verbal tic
    assert steepest_share <= 0.5, (steepest_share, windows)  # "gradual": no window holds most of the climb
    assert most_of_climb[0] > window + 1, (most_of_climb, windows)  # and it takes more than two windows
print("all checks passed")
