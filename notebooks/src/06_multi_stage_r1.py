# %% [markdown]
# # 06 · Multi-stage R1
#
# **What we will see.** DeepSeek-R1 is R1-Zero's recipe wrapped in three more stages, after the cold start of notebook 05. Each stage was added to fix something, and in this notebook each one has to show its fix, measured by a rule that no model was trained on:
#
# 2. **Reasoning RL with a language-consistency reward.** The paper saw chains of thought mix languages during RL, "particularly when RL prompts involve multiple languages". We recreate that condition: half of the RL prompts are posed in the tiny world's second language. We then run stage 2 with and without the reward, on 3 seeds each.
# 3. **Rejection sampling and SFT.** Sample the stage-2 model, keep only correct, readable, single-language, not overlong samples (about 600k in the paper), and mix in general data (about 200k). Then fine-tune **starting again from the base model**. We run both start points, the base and stage 2, on 3 seeds each.
# 4. **RL for all scenarios.** Rules score reasoning prompts, and a reward model trained on preferences scores general prompts. A reward model can be fooled, so we judge general replies by a **gold rule** instead: a reply is acceptable when it is exactly one of the task's preferred forms. Then we push the reward model until it is fooled, contain it, and find the setting in which RL against it makes general replies better than stage 3's.
#
# Stages that notebook 05 finished are read from `runs/pipeline/<profile>/`, not trained again.
#
# **Time.** On the cpu profile, about seven minutes on 2 cores. On the gpu profile, about 60 minutes on a free T4 (RL, reward model, rejection sampling, SFT, final RL): an **estimate** from FLOPs and memory bandwidth (`r1lib.estimates`), not a measurement.
#
# **On its own.** This notebook reads notebook 03's R1-Zero and notebook 05's cold start. When their runs are missing, the cpu profile takes the ones shipped with r1lib (trained by `make stages` with the same code and seeds, their files checked against their recorded sha256) and starts at once; the gpu profile trains them first, and the cell after the install cell prints how long a T4 needs for that (an estimate). The cell after the install cell prints where each comes from, and `TRAIN_STAGES = True` in it trains them here instead.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from r1lib.course import reward_hacking
from r1lib.course.predecessors import pipeline_r1_zero, pipeline_stage, plan
from r1lib.evaluate import evaluate
from r1lib.pipeline import (TABLE_COLUMNS, Pipeline, evaluate_stage, language_consistency, language_scores, pipeline_config,
                            relative_gains)
from r1lib.profiles import describe, get_profile, runs_dir
from r1lib.reward_model import bradley_terry_loss, preference_accuracy
from r1lib.rewards import make_prompt_language_consistency_reward, scoped_to_task
from r1lib.shipped import train_stages_default
from r1lib.solutions import run_solutions_default
from r1lib.tasks.general import REJECTION_KINDS, GeneralTask
from r1lib.widgets import html_table, say, show_html, show_source

%load_ext r1lib.solutions

profile = get_profile()
print(describe(profile))
RUN_SOLUTIONS = run_solutions_default(profile)  # True: the worked solution that trains a judge runs too (about a minute)
TRAIN_STAGES = train_stages_default()  # True: train what this notebook reads instead of taking the shipped stages
config = pipeline_config(profile)
pipeline = Pipeline(profile.model, config, runs_dir("pipeline", profile.name), data_dir=profile.data_dir)
print(plan("06", profile, TRAIN_STAGES, pipeline))
print(pipeline_r1_zero(pipeline, profile, TRAIN_STAGES))  # the R1-Zero row of the stage table
print(pipeline_stage(pipeline, "cold_start", profile, TRAIN_STAGES))  # where stage 2 starts
# Seeds of stage 2's RL and of stage 3's SFT: their configs' own, then the next ones (3 on the cpu profile).
SEEDS = tuple(config.reasoning_rl.seed + i for i in range(3 if profile.name == "cpu" else 1))
SFT_SEEDS = tuple(config.rejection_sft.seed + i for i in range(len(SEEDS)))
from r1lib.tasks.bilingual import example_language
second_share = sum(example_language(e) == "es" for e in pipeline.eval_examples) / len(pipeline.eval_examples)
print(f"seeds: {SEEDS}; {second_share:.0%} of the {len(pipeline.eval_examples)} held-out problems are in the second language")

# %% [markdown]
# ## Stage 2: reasoning RL, with and without language consistency
#
# A prompt in the second language carries a one-word system message, `es`, before the unchanged question. Its reasoning should then use `luego` for `so` and `espera` for `wait`. The paper defines the language-consistency reward as the share of the chain of thought's words that are in the **prompt's** target language. This is the library's version:

# %%
show_source(make_prompt_language_consistency_reward)
question = pipeline.task.make_example([3, 5, 9]) if profile.is_tiny else pipeline.eval_examples[0]
if profile.is_tiny:
    from r1lib.tasks.bilingual import pose
    for language in ("en", "es"):
        prompt = pipeline.task.prompt(pose(question, language))
        scores = config.language_reward()([prompt] * 2, ["<think>3+5+9 so 8+9 so 7</think>", "<think>3+5+9 luego 8+9 luego 7</think>"])
        print(f"{language}: {prompt} -> score of an English trace {scores[0]}, of a Spanish trace {scores[1]}")

# %% [markdown]
# Stage 2 starts from the cold-start model. Its rewards are accuracy, the readable format and language consistency. In the ablation, the language reward is still computed and logged, but with weight 0, so the two runs differ only in what they are paid for. Both run on each seed:

# %%
show_source(pipeline.reasoning_rl)
runs = {(lc, seed): pipeline.reasoning_rl(language_reward=lc, seed=seed) for lc in (True, False) for seed in SEEDS}


def curve(folder, key):
    history = [json.loads(line) for line in (folder.parent / "metrics.jsonl").read_text().splitlines()]
    points = [(r["step"], r[key]) for r in history if r.get(key) is not None]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for lc, colour, label in ((True, "tab:blue", "with the language reward"), (False, "tab:red", "without it (weight 0)")):
    for ax, key in zip(axes, ("rewards/language_consistency/mean", "rewards/accuracy/mean")):
        curves = [curve(runs[(lc, seed)], key) for seed in SEEDS]
        steps = curves[0][0]
        values = np.array([c[1][: len(steps)] for c in curves])
        mean, err = values.mean(0), values.std(0, ddof=1) / np.sqrt(len(SEEDS)) if len(SEEDS) > 1 else 0 * values[0]
        ax.plot(steps, mean, color=colour, label=label)
        ax.fill_between(steps, mean - err, mean + err, color=colour, alpha=0.2)
axes[0].set_title("language consistency of training samples"); axes[1].set_title("accuracy of training samples")
for ax in axes:
    ax.set_xlabel("RL step"); ax.set_ylim(0, 1.02); ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# The curves average both languages' training samples over the seeds; the bands are ± one standard error. Now the held-out problems, half of them in each language, for every seed:

# %%
LANGUAGES = ("en", "es")  # the prompts' languages: first and second


def measure(folder):
    """Consistency and pass@1 on the held-out problems, overall and per prompt language."""
    model, tokenizer = pipeline.load(folder)
    result = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples, k=2, max_new_tokens=96, seed=7)
    row = {"consistency": language_consistency(result, config.language_reward(), pipeline.task, pipeline.eval_examples),
           "pass@1": result.pass_at_1}
    scores = language_scores(result, config.language_reward(), pipeline.task, pipeline.eval_examples)
    k = len(result.correct[0])
    for language in LANGUAGES:
        keep = [i for i, e in enumerate(pipeline.eval_examples) if example_language(e) == language]
        rows = [result.correct[i] for i in keep]
        judged = [s for s in (scores[i * k + j] for i in keep for j in range(k)) if s is not None]
        row[f"consistency/{language}"] = sum(judged) / len(judged) if judged else 1.0
        row[f"pass@1/{language}"] = sum(map(sum, rows)) / max(1, k * len(rows))
    return row


ablation = {key: measure(folder) for key, folder in runs.items()}
cold = measure(pipeline.cold_start())  # read back: notebook 05's, or the shipped one the first cell took
cold_consistency = cold["consistency"]


def mean_err(values):
    values = np.array(values, dtype=float)
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0


summary = {lc: {m: mean_err([ablation[(lc, s)][m] for s in SEEDS]) for m in ("consistency", "pass@1")} for lc in (True, False)}
gap, gap_err = (summary[True]["consistency"][0] - summary[False]["consistency"][0],
                float(np.hypot(summary[True]["consistency"][1], summary[False]["consistency"][1])))
cost, cost_err = (summary[True]["pass@1"][0] - summary[False]["pass@1"][0],
                  float(np.hypot(summary[True]["pass@1"][1], summary[False]["pass@1"][1])))
rows = [["cold start (before stage 2)", f"{cold_consistency:.3f}", f"{cold['pass@1']:.3f}"]]
rows += [[f"stage 2 {'with' if lc else 'without'} the language reward",
          f"{summary[lc]['consistency'][0]:.3f} ± {summary[lc]['consistency'][1]:.3f}",
          f"{summary[lc]['pass@1'][0]:.3f} ± {summary[lc]['pass@1'][1]:.3f}"] for lc in (True, False)]
show_html(html_table(["held-out, both languages", "language consistency", "pass@1"], rows, monospace=False))
say(f"Without the reward, consistency falls from the cold start's {cold_consistency:.3f} to "
    f"**{summary[False]['consistency'][0]:.3f}**. With it, it ends at **{summary[True]['consistency'][0]:.3f}**: a gap of "
    f"{gap:.3f} ± {gap_err:.3f} over {len(SEEDS)} seeds. The reward changes pass@1 by {cost:+.3f} ± {cost_err:.3f}.")
drift = {language: float(np.mean([ablation[(False, s)][f"consistency/{language}"] for s in SEEDS])) for language in ("en", "es")}
say(f"Where the drift happens, without the reward: first-language prompts end at consistency {drift['en']:.3f}, "
    f"second-language prompts at **{drift['es']:.3f}**. The cold-start model answers second-language prompts right "
    f"{cold['pass@1/es']:.0%} of the time and first-language ones {cold['pass@1/en']:.0%}.")

# %% [markdown]
# **Why the drift.** Only a few of the cold-start examples were in the second language (notebook 05 counts them), and the sentence above compares how well the cold-start model reasons in each. Rewarded for answers alone, RL moves second-language prompts towards the language in which the model reasons best. That is the paper's picture of language mixing, in miniature. The language reward pays for staying in the prompt's language, and what that costs in pass@1 is the number above, with its error bar. The paper reports a small cost, and accepted it for readability.
#
# ## A reward model for what rules cannot judge
#
# A reply to `greet Ana` is not right or wrong, only better or worse. Stage 4 needs a learned judge: a **Bradley-Terry reward model**, a copy of the base with a one-number head, trained on pairs of replies (one preferred, one rejected: rude, wrong name, truncated, empty, off topic, repetitive) to give the preferred one the higher score. Its loss is $-\log\sigma(r_{\text{chosen}} - r_{\text{rejected}})$:

# %%
show_source(bradley_terry_loss)
scorer = pipeline.scorer()
held_pairs = pipeline.general.pairs_for(pipeline.general_eval * 12, seed=config.seed + 1)
rm_accuracy = preference_accuracy(scorer, held_pairs)
by_kind = {kind: preference_accuracy(scorer, [p for p in held_pairs if p.kind == kind]) for kind in REJECTION_KINDS}
show_html(html_table(["rejected reply", "the reward model prefers the better reply"],
                     [[kind, f"{accuracy:.0%}"] for kind, accuracy in by_kind.items()], monospace=False))
say(f"On {len(held_pairs)} preference pairs of **held-out** requests, the reward model prefers the better reply "
    f"**{rm_accuracy:.0%}** of the time (chance: 50%). Against a reply to the **wrong name** it manages "
    f"**{by_kind['wrong_subject']:.0%}**: reading whether the name in the reply matches the request is beyond it.")

# %% [markdown]
# Remember that weak spot. A reward model is a learned approximation of a preference, and RL finds its errors.
#
# ## Stage 3: rejection sampling, then SFT
#
# The stage-2 model is sampled several times per training prompt. A sample is kept only if it passes every filter, and "one language" is now judged against the prompt's own language. Then general requests are answered by the same model, and the reward model keeps its best reply per request, mixed in at up to the paper's ratio (a quarter of the data; the share reached is printed):

# %%
mix = pipeline.rejection_data()
counts = json.loads((pipeline.folder("rejection_data") / "stage.json").read_text())
rows = [[name, counts[name]] for name in ("sampled", "correct", "readable", "single_language", "short_enough")]
rows += [["kept (one per prompt, all filters)", counts["reasoning_kept"]], ["general replies chosen by the reward model", counts["general_kept"]]]
show_html(html_table(["reasoning samples", "count"], rows, monospace=False))
general = GeneralTask()
requests = {r.question: r for r in general.all_examples()}
chosen_general = [e for e in mix if e.prompt[-1]["content"] in requests]
verdicts = {}
for e in chosen_general:
    verdict = general.judge(e.completion, requests[e.prompt[-1]["content"]])
    verdicts[verdict] = verdicts.get(verdict, 0) + 1
chosen_wrong = verdicts.get("wrong_subject", 0)
say(f"General replies are {len(chosen_general) / len(mix):.0%} of the mix. The gold judge on those the reward model chose: "
    + ", ".join(f"{v} {count}" for v, count in sorted(verdicts.items(), key=lambda item: -item[1])) + "."
    + (f" **{chosen_wrong}** of them greet or thank the wrong person." if chosen_wrong else ""))

# %% [markdown]
# Whatever the reward model picked goes into stage 3's data, replies to the wrong name included when there are any: it cannot see names. A data filter is only as good as its judge.
#
# Why fine-tune the **base** again, rather than continue from stage 2? The paper does not argue it at length. The stage-2 checkpoint has been shaped by RL on reasoning prompts only. The new data holds the best of what it learned, filtered, plus general replies, and training the base on that mix gives one model a balanced start. We train both start points on each seed:

# %%
stage3_runs = {(start, seed): pipeline.rejection_sft(start, seed=seed) for start in ("base", "reasoning_rl") for seed in SFT_SEEDS}
start_rows = {}
for (start, seed), folder in stage3_runs.items():
    model, tokenizer = pipeline.load(folder)
    start_rows[(start, seed)] = evaluate_stage(model, tokenizer, pipeline)
start_summary = {start: {c: mean_err([start_rows[(start, s)][c] for s in SFT_SEEDS]) for c in ("pass@1", "gold_general", "readable_rate")}
                 for start in ("base", "reasoning_rl")}
fig, ax = plt.subplots(figsize=(6.5, 3))
for i, column in enumerate(("pass@1", "gold_general", "readable_rate")):
    for j, start in enumerate(("base", "reasoning_rl")):
        mean, err = start_summary[start][column]
        ax.bar(i + 0.38 * j, mean, 0.36, yerr=err, capsize=3, color=("tab:blue", "tab:orange")[j],
               label=("from the base", "from stage 2")[j] if i == 0 else None)
ax.set_xticks(np.arange(3) + 0.19, ["pass@1", "gold general quality", "readable"]); ax.set_ylim(0, 1.05)
ax.legend(fontsize=8); ax.grid(alpha=0.3, axis="y"); ax.set_title(f"stage 3, {len(SEEDS)} seeds (± standard error)")
plt.tight_layout(); plt.show()
b, s2 = start_summary["base"], start_summary["reasoning_rl"]
say(f"From the base: pass@1 {b['pass@1'][0]:.3f} ± {b['pass@1'][1]:.3f}, gold {b['gold_general'][0]:.3f} ± "
    f"{b['gold_general'][1]:.3f}. From stage 2: pass@1 {s2['pass@1'][0]:.3f} ± {s2['pass@1'][1]:.3f}, gold "
    f"{s2['gold_general'][0]:.3f} ± {s2['gold_general'][1]:.3f}.")


def compare(column):
    """'higher', 'lower' or 'level' for stage 2's start against the base's: beyond twice the error, or not."""
    difference = s2[column][0] - b[column][0]
    return "level" if abs(difference) <= 2 * float(np.hypot(b[column][1], s2[column][1])) else ("higher" if difference > 0 else "lower")


say(f"Starting from stage 2, pass@1 is **{compare('pass@1')}** and gold general quality **{compare('gold_general')}** than "
    f"from the base (level: within twice the error)."
    + (" Stage 2's start keeps what its RL added to reasoning, and without a readability debt to clear, the restart "
       "from the base gains nothing here." if compare("pass@1") == "higher" and compare("gold_general") != "lower" else ""))

# %% [markdown]
# **What the tiny world can and cannot say here.** R1's reasons to restart from the base were debts that its stage-2 model carried: readability, and general abilities worn away by reasoning-only RL. The tiny world has the second debt (its stage-2 model answers general requests worse than the base, see the table below) but not the first (the cold start already made it readable). Both start points train on the same mix, which repays the general debt either way. What the start point decides here is shown by the sentence below.
#
# ## Stage 4: RL for all scenarios
#
# One GRPO run over reasoning and general prompts. Four rewards, each **abstaining** (returning `None`) on the prompts it does not apply to: accuracy, format and language consistency on reasoning prompts, the reward model on general ones. `r1lib.rewards.scoped_to_task` does the scoping, with the `task` column every example carries:

# %%
show_source(scoped_to_task)
stage4 = pipeline.all_scenarios_rl()
stage4_history = [json.loads(line) for line in (stage4.parent / "metrics.jsonl").read_text().splitlines()]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(*curve(stage4, "rewards/accuracy/mean")); axes[0].set_title("reasoning prompts: accuracy")
axes[1].plot(*curve(stage4, "rewards/reward_model/mean")); axes[1].set_title("general prompts: reward-model score")
for ax in axes:
    ax.set_xlabel("RL step"); ax.set_ylabel("mean reward"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Reward hacking, shown and contained
#
# Stage 4 above is short and gentle: the reward model's weight is half the accuracy reward's, and its learning rate is half of stage 2's. To see what the reward model invites, we now run stage 4's general prompts against the reward model **alone**, from the stage-3 model, at a higher constant learning rate, and watch both judges every few steps:
#
# * **reward model alone**: all the steps, no KL penalty;
# * **final steps only**: the containment the paper reports. In its final RL stage, the general data and the preference rewards come in only for the last 400 of 1,700 steps, because longer training on the model-based reward led to reward hacking. Here that is the same share of this run's steps;
# * **KL to stage 3**: all the steps, with a strong KL penalty (β = 1) towards the stage-3 model;
# * **gentle**: half the steps at a fifth of the learning rate (1e-4), with a small KL penalty (β = 0.1). On the cpu profile stage 4 above has the same learning rate, but there general prompts are a quarter of each batch; here they are all of it.

# %%
show_source(reward_hacking.arm_config)
study = reward_hacking.run_study(pipeline, steps=100 if profile.name != "smoke" else 6, probe_every=10 if profile.name != "smoke" else 3)
labels = {arm.name: arm.label for arm in reward_hacking.ARMS}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for name, points in study.items():
    steps = [p["step"] for p in points]
    axes[0].plot(steps, [p["rm_score"] for p in points], marker="o", label=labels[name])
    axes[1].plot(steps, [p["gold_general"] for p in points], marker="o", label=labels[name])
axes[0].set_title("what stage 4 optimises: reward-model score"); axes[1].set_title("what we want: gold quality")
axes[1].set_ylim(0, 1.02)
for ax in axes:
    ax.set_xlabel("RL step on general prompts"); ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()
end = {name: points[-1] for name, points in study.items()}
stage3_quality = study["rm_alone"][0]
say(f"From the stage-3 model (reward-model score {stage3_quality['rm_score']:.2f}, gold {stage3_quality['gold_general']:.2f}): "
    f"the reward model alone ends at score **{end['rm_alone']['rm_score']:.2f}** with gold **{end['rm_alone']['gold_general']:.2f}**. "
    f"Final steps only: score {end['final_steps']['rm_score']:.2f}, gold {end['final_steps']['gold_general']:.2f}. "
    f"KL to stage 3: score {end['kl']['rm_score']:.2f}, gold {end['kl']['gold_general']:.2f}. "
    f"Gentle: score {end['gentle']['rm_score']:.2f}, gold {end['gentle']['gold_general']:.2f}.")
collapse = next((p["step"] for p in study["rm_alone"] if p["gold_general"] < stage3_quality["gold_general"] - 0.2), None)
say(f"Alone, the reward model's gold first falls 0.2 below stage 3's at step {collapse}." if collapse is not None
    else "In this run the reward model alone never takes gold 0.2 below stage 3's.")

# %% [markdown]
# The probe's gold (8 replies to each held-out request) is too coarse to tell a small gain from noise. So we compare the gentle run's replies with stage 3's **request by request**: 16 replies to each, from the same seed, on the requests stage 4's prompts are drawn from and on the held-out ones (the figure gives their counts). Pairing removes what the requests differ in (some names are harder for every model), and the standard error is that of the per-request differences:

# %%
show_source(reward_hacking.gold_change)
gentle = pipeline.final("all_scenarios_rl_gentle")
request_sets = {"requests RL trained on": reward_hacking.training_requests(pipeline), "held-out requests": pipeline.general_eval}
better = {name: reward_hacking.gold_change(pipeline, gentle, pipeline.final("rejection_sft"), requests)
          for name, requests in request_sets.items()}
fig, ax = plt.subplots(figsize=(6, 2.6))
for i, (name, change) in enumerate(better.items()):
    ax.barh(i, change["change"], xerr=2 * change["stderr"], capsize=4, color="tab:green")
ax.set_yticks(range(len(better)), [f"{name} ({c['requests']})" for name, c in better.items()])
ax.axvline(0, color="black", lw=0.8); ax.invert_yaxis(); ax.grid(alpha=0.3, axis="x")
ax.set_xlabel("gold quality, gentle run minus stage 3 (± 2 standard errors)")
plt.tight_layout(); plt.show()
trained_on, held_out = better["requests RL trained on"], better["held-out requests"]
say(f"On the requests RL trained on, gold goes from {trained_on['before']:.3f} to **{trained_on['after']:.3f}**: "
    f"**{trained_on['change']:+.3f} ± {trained_on['stderr']:.3f}**. On held-out requests: {held_out['before']:.3f} → "
    f"{held_out['after']:.3f}, {held_out['change']:+.3f} ± {held_out['stderr']:.3f}"
    + (" (more than twice its error)." if held_out["change"] > 2 * held_out["stderr"] else
       ", within twice its error: on names it never trained on, the gain is not shown."))

# %% [markdown]
# The replies the hacked policy's reward model likes best, among those the gold judge rejects, found automatically:

# %%
hacked = pipeline.folder("all_scenarios_rl_rm_alone") / "final"
model, tokenizer = pipeline.load(hacked)
hacks = reward_hacking.top_hacks(model, tokenizer, scorer, pipeline.general_eval)
show_html(html_table(["request", "reply", "reward-model score", "gold verdict"],
                     [[h["request"], h["reply"], f"{h['score']:+.2f}", h["verdict"]] for h in hacks]))

# %% [markdown]
# **What it means.** The reward model's score rises while the gold judge watches quality fall: that is reward hacking. The hacks are what the reward model cannot see, and the table above shows their kinds. The paper's containment limits how long the policy is exposed to the reward model; the KL limits how far it may move. At a high learning rate they only keep part of stage 3's gold. Small steps near stage 3 do more: the policy moves only a little towards what the reward model likes, and gold rises above stage 3's on the requests it trained on. On held-out names the sentences above say whether it rises too; a reward model blind to names has little that is true to teach there, which is why R1 used rules wherever a rule exists (exercise 4 tries another kind of judge). Note also the hacked model's reasoning in the table below: trained on general prompts alone, with no rule reward to hold it, it forgets how to reason.
#
# ## Stage by stage
#
# Every model, measured the same way. Reasoning: 4 samples for each held-out problem (half of them in the second language), giving pass@1 ± standard error, cons@4, language consistency against each prompt's language, the readable rate and the mean length. General: 16 replies to each held-out request, giving **gold quality** (the share the rule accepts, ± standard error over requests) and, as a second opinion, the reward model's mean score.

# %%
rows = {"base": "base", "R1-Zero": "r1_zero", "cold start": "cold_start", "stage 2": "reasoning_rl",
        "stage 2 without the language reward": "reasoning_rl_without_lc",
        "stage 3 (from base)": "rejection_sft", "stage 3 (from stage 2)": "rejection_sft_from_reasoning_rl",
        "stage 4": "all_scenarios_rl", "stage 4, reward model alone (hacked)": "all_scenarios_rl_rm_alone",
        "stage 4, final steps only (contained)": "all_scenarios_rl_final_steps", "stage 4, KL to stage 3": "all_scenarios_rl_kl",
        "stage 4, gentle (contained)": "all_scenarios_rl_gentle"}
table, samples = {}, {}
for name, stage in rows.items():
    model, tokenizer = pipeline.load(pipeline.model_of(stage))
    table[name] = evaluate_stage(model, tokenizer, pipeline)
    samples[name] = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples[:1], k=1, max_new_tokens=96, seed=5).completions[0][0]


def cell(row, column):
    error = row.get(f"{column}_stderr")
    return f"{row[column]:.3f}" + (f" ± {error:.3f}" if error is not None else "")


show_html(html_table(["model", *TABLE_COLUMNS], [[name, *(cell(row, c) for c in TABLE_COLUMNS)] for name, row in table.items()],
                     monospace=False))
(pipeline.root / "table.json").write_text(json.dumps(table, indent=1))
gains = relative_gains(table, "stage 4", "R1-Zero")
show_html(html_table(["column", "stage 4 against R1-Zero"],
                     [[c, f"{g:+.0%}" if np.isfinite(g) else f"from 0 to {s4_value:.2f}"]
                      for c, g in gains.items() for s4_value in [table["stage 4"][c]]], monospace=False))

# %%
fig, axes = plt.subplots(1, len(TABLE_COLUMNS), figsize=(3.0 * len(TABLE_COLUMNS), 4.4), sharey=False)
names = list(table)
for ax, column in zip(axes, TABLE_COLUMNS):
    errors = [table[n].get(f"{column}_stderr", 0.0) for n in names]
    ax.barh(np.arange(len(names)), [table[n][column] for n in names], xerr=errors, color="tab:blue")
    ax.set_yticks(np.arange(len(names)), names if ax is axes[0] else [""] * len(names))
    ax.invert_yaxis(); ax.set_title(column); ax.grid(alpha=0.3, axis="x")
axes[TABLE_COLUMNS.index("rm_score")].set_xlabel("reward-model score")
axes[TABLE_COLUMNS.index("mean_length")].set_xlabel("tokens")
plt.tight_layout(); plt.show()

# %% [markdown]
# One held-out problem, answered by each model:

# %%
first = pipeline.eval_examples[0]
show_html(html_table(["model", f"{pipeline.task.prompt(first)} → {first.answer}"], [[n, t] for n, t in samples.items()]))

# %%
z, s2, s4, base = table["R1-Zero"], table["stage 2"], table["stage 4"], table["base"]
zero_split, final_split = measure(pipeline.model_of("r1_zero")), measure(stage4)
s3 = table["stage 3 (from base)"]
say(f"Language consistency: R1-Zero {z['language_consistency']:.2f}, stage 2 **{s2['language_consistency']:.2f}**, without "
    f"the language reward {table['stage 2 without the language reward']['language_consistency']:.2f}. Readable samples: "
    f"R1-Zero {z['readable_rate']:.0%}, cold start {table['cold start']['readable_rate']:.0%}. Gold general quality: base "
    f"{base['gold_general']:.2f}, stage 2 {s2['gold_general']:.2f}, stage 3 **{s3['gold_general']:.2f}**, stage 4 "
    f"{s4['gold_general']:.2f}. Final pass@1 {s4['pass@1']:.3f} against R1-Zero's {z['pass@1']:.3f} "
    f"({gains['pass@1']:+.0%}). By prompt language, R1-Zero {zero_split['pass@1/en']:.3f} (first) and "
    f"{zero_split['pass@1/es']:.3f} (second); stage 4 {final_split['pass@1/en']:.3f} and {final_split['pass@1/es']:.3f}.")

# %% [markdown]
# **What it means.**
#
# * The **cold start** fixed what R1-Zero did badly: a readable format with a summary, which RL could not find on its own (notebook 05's sweep).
# * **Stage 2**'s language reward is what keeps second-language prompts answered in their language; without it, RL lets them drift.
# * Reasoning-only training (cold start, stage 2) wears down general replies below the base's. **Stage 3**'s mix raises them again, judged by the gold rule and not only by the reward model.
# * **Stage 4** holds the reasoning with rules. Its reward model, pushed hard, makes general replies worse: the table's hacked row has the highest reward-model score of all and the lowest gold. Run gently on general prompts, it makes them better than stage 3's on the requests it trained on, by the amount measured above.
# * R1-Zero's pass@1 here is on prompts in both languages, and R1-Zero never saw the second one (the sentence above splits it by language). The paper's +17–25% over R1-Zero is on real benchmarks. The tiny world's relative gains measure a different thing and should not be compared with them.
#
# ## Exercises
# 1. Split the stage-2 ablation by language: which prompts lose consistency without the reward, first-language or second-language ones?
# 2. Stage 4 gives the reward model half the weight of accuracy. Compare the two rewards' scales in stage 4's log. Why might a larger weight hurt reasoning?
# 3. Use the gold judge on stage 4's logged general replies (`completions.jsonl`). Which verdicts does the reward model score highest?
# 4. Another kind of judge. DPO (Rafailov et al., 2023) trains the language model itself on the preference pairs, and its **implicit reward** $\beta\,[\log \pi_\theta(y \mid x) - \log \pi_{\text{ref}}(y \mid x)]$ scores a reply token by token, each token conditioned on the request. Train one on the same pairs (`pipeline.implicit_scorer()`), compare its accuracy against wrong names with the Bradley-Terry model's, then run the gentle arm against it (`reward_hacking.DPO_ARM`) and compare gold with the gentle run's. Does reading the reply token by token, each token conditioned on the request, make it see names? Its solution trains the judge and an RL run, so it runs only with `RUN_SOLUTIONS = True` (first code cell); the published notebook shows its output.

# %% [solution]
# Solution to exercise 1 (collapsed): consistency per prompt language, with and without the reward, every seed.
for lc in (True, False):
    for language in ("en", "es"):
        values = [ablation[(lc, seed)][f"consistency/{language}"] for seed in SEEDS]
        print(f"{'with' if lc else 'without'} the reward, {language} prompts: consistency "
              + ", ".join(f"{v:.3f}" for v in values) + f" (seeds {SEEDS})")
# Compare the two languages' lines without the reward: which prompts moved towards the other language?

# %% [solution]
# Solution to exercise 2 (collapsed): the two scales, read from the config and the log.
weights = dict(zip(["accuracy", "readable_format", "language_consistency", "reward_model"], config.all_scenarios_rl.reward_weights))
rule_max = weights["accuracy"] + weights["readable_format"] + weights["language_consistency"]
rm_scores = [v for m in stage4_history if (v := m.get("rewards/reward_model/mean")) is not None]
print(f"weights {weights}; a reasoning completion earns at most {rule_max} from rules; the reward model's mean scores "
      f"span {min(rm_scores):.2f}..{max(rm_scores):.2f}, times its weight {weights['reward_model']}")
# With scale_rewards="none", a group's advantages are its raw reward differences: general prompts with large score
# gaps would dominate every batch's gradient and pull the shared weights away from reasoning.

# %% [solution]
# Solution to exercise 3 (collapsed).
logged = [json.loads(line) for line in (stage4.parent / "completions.jsonl").read_text().splitlines()]
by_question = {r.question: r for r in general.all_examples()}
scored = {}
for record in logged:
    score = record["rewards"].get("reward_model")
    if score is not None and record["question"] in by_question:
        scored.setdefault(general.judge(record["completion"], by_question[record["question"]]), []).append(score)
for verdict, scores in sorted(scored.items(), key=lambda item: -np.mean(item[1])):
    print(f"{verdict:>14}: {len(scores):4d} replies, mean reward-model score {np.mean(scores):+.2f}")
# Set the wrong-subject line beside the acceptable one and the rude one: how far apart does the reward model put them?

# %% [solution]
%%solution
# Solution to exercise 4 (collapsed): the implicit judge against wrong names, then the gentle arm against it.
from r1lib.dpo import dpo_loss
show_source(dpo_loss)
implicit = pipeline.implicit_scorer()  # trains the DPO judge on first use (about 25 s on the cpu profile)
wrong_names = [p for p in held_pairs if p.kind == "wrong_subject"]
print(f"against wrong names on held-out requests: Bradley-Terry {preference_accuracy(scorer, wrong_names):.0%}, "
      f"DPO's implicit reward {preference_accuracy(implicit, wrong_names):.0%} ({len(wrong_names)} pairs)")
dpo_run = reward_hacking.run_arm(pipeline, reward_hacking.DPO_ARM, steps=100 if profile.name != "smoke" else 6,
                                 probe_every=10 if profile.name != "smoke" else 3)
for name, requests in request_sets.items():
    change = reward_hacking.gold_change(pipeline, dpo_run, pipeline.final("rejection_sft"), requests)
    print(f"{name}: gold {change['before']:.3f} -> {change['after']:.3f}, {change['change']:+.3f} ± {change['stderr']:.3f} "
          f"(the Bradley-Terry gentle run: {better[name]['change']:+.3f} ± {better[name]['stderr']:.3f})")
# The implicit judge is a whole language model, so it costs a second model's memory and forward pass per score.

# %% [markdown]
# ## The GPU profile
#
# On a GPU, `pipeline_config(get_profile("gpu"))` runs the same stages on a Qwen2.5 base with GSM8K. The cold start comes from GSM8K's own worked solutions, rewritten in the readable format. Language consistency is the share of Latin-script words (R1-Zero mixed Chinese into English), and the prompts stay in one language. The reward model starts from the same base. The sizes were chosen for a free T4, but the course has not timed them there; notebook 08 has the memory estimates.
#
# ## Checks

# %%
# The smoke profile runs each stage for a few steps, one seed: too short for stage 2's drift or for hacking to show,
# so it checks only what a few SFT steps already do (the readable format) and skips the rest.
if profile.is_tiny:
    assert table["cold start"]["readable_rate"] > table["R1-Zero"]["readable_rate"]
if profile.name == "cpu":
    assert end["rm_alone"]["rm_score"] > stage3_quality["rm_score"]  # the policy climbs the reward model
    # Stage 2 under prompts in two languages, 3 seeds: the drift without the reward, and the reward's effect.
    assert summary[False]["consistency"][0] < cold_consistency - 0.1, (summary, cold_consistency)
    assert drift["es"] < drift["en"] - 0.3, drift  # the drift is on the second-language prompts
    assert gap > 2 * gap_err and summary[True]["consistency"][0] >= cold_consistency, (gap, gap_err, summary)
    # Reward hacking: the hacked run ends above the contained ones by the reward model, below them by gold.
    for contained in ("final_steps", "kl", "gentle"):
        assert end["rm_alone"]["rm_score"] > end[contained]["rm_score"], end
        assert end["rm_alone"]["gold_general"] < end[contained]["gold_general"], end
    # Contained gently, stage 4's general RL leaves gold above stage 3's, paired over requests.
    assert trained_on["change"] > 2 * trained_on["stderr"], better
    assert held_out["change"] > 0, better  # the sentence above says whether it clears twice its error
    for contained in ("final_steps", "kl"):  # "at a high learning rate they only keep part of stage 3's gold"
        assert end[contained]["gold_general"] < stage3_quality["gold_general"], end
    assert end["kl"]["gold_general"] > end["rm_alone"]["gold_general"] + 0.3, end  # the KL holds most of stage 3's gold
    assert end["rm_alone"]["gold_general"] < stage3_quality["gold_general"] - 0.3, end  # gold collapses
    assert by_kind["wrong_subject"] < 0.6 and rm_accuracy >= 0.75, by_kind  # the blind spot the hacks exploit
    # The general debt of reasoning-only training, and stage 3 repaying it.
    assert max(table["cold start"]["gold_general"], table["stage 2"]["gold_general"]) < table["base"]["gold_general"]
    assert table["stage 3 (from base)"]["gold_general"] > table["stage 2"]["gold_general"]
    assert table["stage 4, reward model alone (hacked)"]["rm_score"] == max(row["rm_score"] for row in table.values())
    assert table["stage 4, reward model alone (hacked)"]["gold_general"] == min(row["gold_general"] for row in table.values())
    assert table["stage 4, reward model alone (hacked)"]["pass@1"] < table["stage 3 (from base)"]["pass@1"] - 0.3  # "forgets how to reason"
    assert table["stage 4"]["pass@1"] >= table["stage 3 (from base)"]["pass@1"] - 0.03  # rules hold the reasoning
    assert table["stage 4"]["pass@1"] >= table["R1-Zero"]["pass@1"] - 0.05
print("all checks passed")
