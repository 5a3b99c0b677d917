# %% [markdown]
# # 06 · Multi-stage R1
#
# **What we will see.** DeepSeek-R1 is R1-Zero's recipe wrapped in three more stages. After the cold start of notebook 05:
#
# 2. **Reasoning RL** with a **language-consistency** reward added to accuracy and format. The paper reports that this costs a little accuracy and buys readability.
# 3. **Rejection sampling and SFT.** Sample the stage-2 model many times, keep only samples that are correct, readable, in one language and not overlong (about 600k in the paper), mix in non-reasoning data (about 200k: writing, factual questions, …), and fine-tune **starting again from the base model**, not from the stage-2 checkpoint.
# 4. **RL for all scenarios.** One RL run over reasoning prompts, scored by rules, and general prompts, scored by reward models trained on human preferences (helpfulness, harmlessness).
#
# We run every stage on the tiny world, where "general prompts" are polite requests (`greet Ana`) judged by a small Bradley-Terry reward model, and end with a table that compares the base, R1-Zero and every stage. Stages that notebook 05 finished are read from `runs/pipeline/<profile>/`, not trained again.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from r1lib.evaluate import evaluate
from r1lib.pipeline import TABLE_COLUMNS, Pipeline, evaluate_stage, pipeline_config
from r1lib.profiles import describe, get_profile, runs_dir
from r1lib.plots import series
from r1lib.reward_model import bradley_terry_loss, preference_accuracy
from r1lib.rewards import for_task
from r1lib.widgets import html_table, say, show_html, show_source

profile = get_profile()
print(describe(profile))
config = pipeline_config(profile)
pipeline = Pipeline(profile.model, config, runs_dir("pipeline", profile.name), data_dir=profile.data_dir)
if not pipeline.done("r1_zero"):
    pipeline.r1_zero()  # notebook 05 adopts notebook 03's run; standalone, the pipeline trains its own

# %% [markdown]
# ## Stage 2: reasoning RL with language consistency
#
# GRPO again, from the cold-start model, with three rewards: accuracy, the readable format of notebook 05, and DeepSeek-R1's language-consistency reward, the share of the reasoning's words that are in the target language:

# %%
show_source(pipeline.reasoning_rewards)
stage2 = pipeline.reasoning_rl()
stage2_history = [json.loads(line) for line in (stage2.parent / "metrics.jsonl").read_text().splitlines()]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, key, title in zip(axes, ["rewards/accuracy/mean", "rewards/readable_format_reward/mean", "rewards/language_consistency/mean"],
                          ["accuracy", "readable format", "language consistency"]):
    ax.plot(*series(stage2_history, key)); ax.set_title(title); ax.set_xlabel("RL step"); ax.set_ylabel("mean reward")
    ax.set_ylim(0, 1.05); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## A reward model for what rules cannot judge
#
# A reply to `greet Ana` is not right or wrong, only better or worse. Stage 4 needs a learned judge: a **Bradley-Terry reward model**, a copy of the base with a one-number head, trained on pairs of replies (one preferred, one rejected: rude, off topic, truncated, repetitive, …) to give the preferred one the higher score. Its loss is $-\log\sigma(r_{\text{chosen}} - r_{\text{rejected}})$:

# %%
show_source(bradley_terry_loss)
scorer = pipeline.scorer()
held_pairs = pipeline.general.pairs_for(pipeline.general_eval * 6, seed=config.seed + 1)
rm_accuracy = preference_accuracy(scorer, held_pairs)
say(f"On {len(held_pairs)} preference pairs of **held-out** requests, the reward model prefers the better reply "
    f"**{rm_accuracy:.0%}** of the time (chance: 50%).")

# %% [markdown]
# ## Stage 3: rejection sampling, then SFT from the base
#
# The stage-2 model is sampled several times per training prompt. A sample is kept only if it passes every filter; then general requests are answered by the same model and the reward model keeps its best reply per request, mixed in at the paper's ratio (a quarter of the data):

# %%
mix = pipeline.rejection_data()
counts = json.loads((pipeline.folder("rejection_data") / "stage.json").read_text())
rows = [[name, counts[name]] for name in ("sampled", "correct", "readable", "single_language", "short_enough")]
rows += [["kept (one per prompt, all filters)", counts["reasoning_kept"]], ["general replies chosen by the reward model", counts["general_kept"]]]
show_html(html_table(["reasoning samples", "count"], rows, monospace=False))
general_examples = [e for e in mix if not e.prompt[-1]["content"][:1].isdigit()][:3]
for e in general_examples:
    print(f"{e.prompt[-1]['content']!r} -> {e.completion!r}")

# %% [markdown]
# Why fine-tune the **base** again, rather than continue from stage 2? The stage-2 checkpoint has been shaped by RL on reasoning prompts only; the data now holds the best of what it learned, filtered, plus general replies. Training the base on that mix gives one model a clean, balanced start, without stage 2's narrow drift (this is also a question users ask about the R1 repository). We train both, so the table can show the difference.

# %%
stage3 = pipeline.rejection_sft()  # from the base, as the paper does
stage3_alt = pipeline.rejection_sft("reasoning_rl")  # the alternative: continue from stage 2

# %% [markdown]
# ## Stage 4: RL for all scenarios
#
# One GRPO run over reasoning and general prompts. Four rewards, each **abstaining** (returning `None`) on the prompts it does not apply to: accuracy, format and language consistency on reasoning prompts, the reward model on general ones. `r1lib.rewards.for_task` does the scoping, with the `task` column every example carries:

# %%
show_source(for_task)
stage4 = pipeline.all_scenarios_rl()
stage4_history = [json.loads(line) for line in (stage4.parent / "metrics.jsonl").read_text().splitlines()]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(*series(stage4_history, "rewards/accuracy/mean")); axes[0].set_title("reasoning prompts: accuracy")
axes[1].plot(*series(stage4_history, "rewards/reward_model/mean")); axes[1].set_title("general prompts: reward model")
for ax in axes:
    ax.set_xlabel("RL step"); ax.set_ylabel("mean reward"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Stage by stage
#
# Every model, measured the same way: 4 samples for each held-out chain (pass@1, cons@4, language consistency, readable rate, mean length), and 4 replies to each held-out general request scored by the reward model.

# %%
rows = {"base": "base", "R1-Zero": "r1_zero", "cold start": "cold_start", "stage 2": "reasoning_rl",
        "stage 3 (from base)": "rejection_sft", "stage 3 (from stage 2)": "rejection_sft_from_reasoning_rl",
        "stage 4": "all_scenarios_rl"}
table, samples = {}, {}
for name, stage in rows.items():
    model, tokenizer = pipeline.load(pipeline.model_of(stage))
    table[name] = evaluate_stage(model, tokenizer, pipeline)
    samples[name] = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples[:1], k=1, max_new_tokens=96, seed=5).completions[0][0]
show_html(html_table(["model", *TABLE_COLUMNS], [[name, *(f"{row[c]:.3f}" for c in TABLE_COLUMNS)] for name, row in table.items()],
                     monospace=False))
(pipeline.root / "table.json").write_text(json.dumps(table, indent=1))

# %%
fig, axes = plt.subplots(1, len(TABLE_COLUMNS), figsize=(3.2 * len(TABLE_COLUMNS), 3.6), sharey=False)
names = list(table)
for ax, column in zip(axes, TABLE_COLUMNS):
    ax.barh(np.arange(len(names)), [table[n][column] for n in names], color="tab:blue")
    ax.set_yticks(np.arange(len(names)), names if ax is axes[0] else [""] * len(names))
    ax.invert_yaxis(); ax.set_title(column); ax.grid(alpha=0.3, axis="x")
axes[TABLE_COLUMNS.index("general_score")].set_xlabel("reward-model score")
axes[TABLE_COLUMNS.index("mean_length")].set_xlabel("tokens")
plt.tight_layout(); plt.show()

# %% [markdown]
# One held-out chain, answered by each model:

# %%
question = pipeline.eval_examples[0]
show_html(html_table(["model", f"{question.question} → {question.answer}"], [[n, t] for n, t in samples.items()]))

# %%
z, s2, s4 = table["R1-Zero"], table["stage 2"], table["stage 4"]
say(f"Stage 2 against R1-Zero: language consistency **{z['language_consistency']:.2f} → {s2['language_consistency']:.2f}**, "
    f"pass@1 {z['pass@1']:.3f} → {s2['pass@1']:.3f}. Readable samples: R1-Zero {z['readable_rate']:.0%}, cold start "
    f"{table['cold start']['readable_rate']:.0%}. General-request score: stage 2 {s2['general_score']:.2f}, stage 3 "
    f"{table['stage 3 (from base)']['general_score']:.2f}, stage 4 **{s4['general_score']:.2f}**. Final pass@1 "
    f"{s4['pass@1']:.3f} against R1-Zero's {z['pass@1']:.3f}.")
from_base, from_stage2 = table["stage 3 (from base)"], table["stage 3 (from stage 2)"]
say(f"Stage 3 from the base: pass@1 {from_base['pass@1']:.3f}, general score {from_base['general_score']:.2f}; from stage 2: "
    f"pass@1 {from_stage2['pass@1']:.3f}, general score {from_stage2['general_score']:.2f}.")

# %% [markdown]
# **What it means.**
#
# * The **cold start** fixed what R1-Zero did badly: one language, a readable format with a summary. RL could not have found that format on its own (notebook 05's sweep).
# * **Stage 2**'s language-consistency reward kept the reasoning in one language. The paper reports that this costs a little accuracy; in the tiny world the difference in pass@1 is within a point or two either way, because here one language is not harder than the other.
# * The models trained on reasoning alone (cold start, stage 2) answer general requests worse than the base. **Stage 3**'s mix brings general replies back. **Stage 4** then optimises them against the reward model while the rule rewards hold the reasoning; whether that makes them *better* this table cannot say, because its general score is the very reward model stage 4 optimised (exercise 3 shows replies it scores highest that a person would not want). Each stage fixes what the previous one left out, and none of them gives up more than a few points of the accuracy R1-Zero reached.
# * Stage 3 **from the base** is the paper's choice, a clean start on broad data; **from stage 2** keeps whatever stage 2's RL added. The sentence below compares the two on this run.
#
# ## Exercises
# 1. Ablate the language-consistency reward: run stage 2 with only accuracy and format. What happens to language consistency and to accuracy?
# 2. Stage 4 gives the reward model half the weight of accuracy. Why might a larger weight hurt reasoning? (Look at the reward scales.)
# 3. Read the general replies stage 4 prefers. Has the policy found anything the reward model likes that a person would not?

# %% [solution]
# Solution to exercise 1 (collapsed): stage 2 without the language reward, a short run from the cold start.
from dataclasses import replace

from r1lib.grpo import GRPOTrainer
from r1lib.pipeline import language_consistency

short = replace(config.reasoning_rl, max_steps={"smoke": 4, "cpu": 40, "gpu": 20}[profile.name], reward_weights=None,
                eval_steps=1000, save_steps=1000)
model, tokenizer = pipeline.load(pipeline.model_of("cold_start"))
rewards = pipeline.reasoning_rewards()[:2]  # accuracy and format only
GRPOTrainer(model, tokenizer, pipeline.task, rewards, pipeline.train_examples, short, None, progress=False).train()
ablated = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples, k=2, max_new_tokens=96, seed=7)
print(f"without the language reward: consistency {language_consistency(ablated, config.language_reward()):.3f}, "
      f"pass@1 {ablated.pass_at_1:.3f}")
# The cold start is already single-language, so a short run keeps it; the reward matters over long runs, where
# RL would otherwise amplify whatever language the rewarded samples happened to use (notebook 03).

# %% [solution]
# Solution to exercise 2 (collapsed).
rule_scale = max(m.get("reward", 0) for m in stage4_history[1:])
rm_scores = [v for m in stage4_history if (v := m.get("rewards/reward_model/mean")) is not None]
print(f"rule rewards sum to at most 2.0 per reasoning completion; reward-model scores span {min(rm_scores):.2f}..{max(rm_scores):.2f}")
# With scale_rewards="none", a group's advantages are its raw reward differences: general prompts with large score
# gaps would dominate every batch's gradient and pull the shared weights away from reasoning.

# %% [solution]
# Solution to exercise 3 (collapsed).
logged = [json.loads(line) for line in (stage4.parent / "completions.jsonl").read_text().splitlines()]
general_logged = [r for r in logged if r["rewards"].get("reward_model") is not None]
distinct = {(r["question"], r["completion"]): r["rewards"]["reward_model"] for r in general_logged}
for (question, reply), score in sorted(distinct.items(), key=lambda item: -item[1])[:8]:
    print(f"{score:+.2f}  {question!r} -> {reply!r}")
# Look for replies that mix two polite templates or repeat the name: a reward model trained on a few flaws only
# knows those flaws. That is reward hacking in the small, and why R1 kept rule rewards wherever a rule exists.

# %% [markdown]
# ## The GPU profile
#
# On a GPU, `pipeline_config(get_profile("gpu"))` runs the same stages on a Qwen2.5 base with GSM8K: the cold start comes from GSM8K's own worked solutions rewritten in the readable format, language consistency is the share of Latin-script words (R1-Zero mixed Chinese into English), and the reward model starts from the same base. The sizes fit a free T4 in an afternoon; notebook 08 has the memory estimates.
#
# ## Checks

# %%
if profile.is_tiny:
    assert table["stage 2"]["language_consistency"] > table["R1-Zero"]["language_consistency"]
    assert table["cold start"]["readable_rate"] > table["R1-Zero"]["readable_rate"]
    assert table["stage 4"]["general_score"] > table["stage 2"]["general_score"]
if profile.name == "cpu":
    assert table["stage 4"]["pass@1"] >= table["R1-Zero"]["pass@1"] - 0.05
    assert abs(table["stage 2"]["pass@1"] - table["R1-Zero"]["pass@1"]) <= 0.03  # "within a point or two either way"
    assert table["stage 3 (from base)"]["general_score"] > table["stage 2"]["general_score"]
    assert max(table["cold start"]["general_score"], table["stage 2"]["general_score"]) < table["base"]["general_score"]
    assert all(row["pass@1"] >= table["R1-Zero"]["pass@1"] - 0.05 for name, row in table.items() if name != "base")
    assert rm_accuracy >= 0.8
print("all checks passed")
