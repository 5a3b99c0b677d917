# %% [markdown]
# # 05 · Cold start: readable reasoning from a few examples
#
# **What we will see.** R1-Zero reasons well but reads badly. The R1 paper names two problems: its chains of thought **mix languages**, and they come in a **bare format** with nothing for a reader but the raw reasoning. DeepSeek-R1 therefore started its second model from a small **cold-start** set: "thousands" of long chains of thought in one readable format, `|special_token|<reasoning_process>|special_token|<summary>`, and fine-tuned the base on them before any RL. In this notebook we
#
# 1. measure both problems on notebook 03's R1-Zero;
# 2. build a cold-start set from R1-Zero's own correct samples, rewritten into their prompt's language with a summary;
# 3. fine-tune the base on it (supervised fine-tuning, SFT);
# 4. sweep the set's size, from nothing to everything, and watch what it does to readability and to how fast the next RL stage learns.
#
# From here on, some prompts are posed in the tiny world's **second language**: a one-word system message, `es`, before the question asks for reasoning with `luego` and `espera` instead of `so` and `wait`. The paper saw language mixing "particularly when RL prompts involve multiple languages", and notebook 06 needs that condition. About half of the held-out problems are posed that way (the share is printed below); R1-Zero (notebook 03) only ever saw the first language.
#
# Everything runs through `r1lib.pipeline`, which keeps each stage in its own folder under `runs/pipeline/<profile>/`; notebook 06 continues from there.
#
# **Time.** On the cpu profile, a few minutes on 2 cores. On the gpu profile, about 60 minutes on a free T4 (SFT, then four short stage-2 RL runs for the sweep): an **estimate** from FLOPs and memory bandwidth (`r1lib.estimates`), not a measurement.
#
# **On its own.** This notebook reads notebook 03's R1-Zero (seed 0). When its run is missing, the cpu profile takes the one shipped with r1lib (trained by `make stages` with the same code and seed, its files checked against their recorded sha256) and starts at once; the gpu profile trains the pipeline's own R1-Zero first, and the cell after the install cell prints how long a T4 needs for that (an estimate). The cell after the install cell prints where each comes from, and `TRAIN_STAGES = True` in it trains them here instead.

# %%
import json

import matplotlib.pyplot as plt
from r1lib.cold_start import rewrite_readable
from r1lib.course.predecessors import pipeline_r1_zero, plan
from r1lib.evaluate import evaluate
from r1lib.pipeline import Pipeline, language_scores, off_language_share, pipeline_config, readable_rate
from r1lib.profiles import describe, get_profile, runs_dir
from r1lib.plots import series
from r1lib.causal_lm import CausalLMTrainer, CrossEntropyLoss
from r1lib.records import load_jsonl
from r1lib.sft import SFTTrainer
from r1lib.shipped import train_stages_default
from r1lib.widgets import html_table, say, show_html, show_source

profile = get_profile()
print(describe(profile))
TRAIN_STAGES = train_stages_default()  # True: train what this notebook reads instead of taking the shipped stages
print(plan("05", profile, TRAIN_STAGES))
config = pipeline_config(profile)
pipeline = Pipeline(profile.model, config, runs_dir("pipeline", profile.name), data_dir=profile.data_dir)
print(f"profile {profile.name}: reasoning task {config.reasoning_task}, stages under {pipeline.root}")
second = sum(e.info.get("language") == "es" for e in pipeline.eval_examples)
print(f"{second} of the {len(pipeline.eval_examples)} held-out problems are posed in the second language")

# %% [markdown]
# ## R1-Zero, as a reader sees it
#
# The pipeline's first stage is R1-Zero. When the pipeline's R1-Zero has notebook 03's settings, the pipeline adopts notebook 03's model (seed 0): its run when it finished, else the one shipped with r1lib. Otherwise it trains its own.

# %%
found = pipeline_r1_zero(pipeline, profile, train_yourself=TRAIN_STAGES)
print(found)
r1_zero = found.path
model, tokenizer = pipeline.load(r1_zero)
zero = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples, k=2, max_new_tokens=96, seed=0)
flat = [c for row in zero.completions for c in row]
language = (config.language_reward(), pipeline.task, pipeline.eval_examples)  # each sample against its prompt's language
zero_mixing = off_language_share(zero, *language)
say(f"R1-Zero on {len(pipeline.eval_examples)} held-out problems (some posed in the second language, which it never saw): "
    f"pass@1 **{zero.pass_at_1:.2f}**; "
    f"**{zero_mixing:.0%}** of its samples use a word outside their prompt's language; **{readable_rate(zero):.0%}** are in a readable "
    f"format with a summary.")
mixed = [c for c, score in zip(flat, language_scores(zero, *language)) if score is not None and score < 1][:4]
show_html(html_table(["R1-Zero samples that leave their prompt's language"], [[c] for c in mixed]))

# %% [markdown]
# ## Building the cold-start set
#
# The paper collected its cold-start data in several ways (few-shot prompting with long chains of thought, asking models for detailed answers with reflection, and R1-Zero's own outputs in a readable form), then had human annotators post-process it. We keep the idea and replace the model and the humans with a rule, which the tiny world allows:
#
# 1. sample R1-Zero on training prompts and keep a sample only if its answer verifies and it reasons;
# 2. rewrite it into **one language**, the prompt's (`luego` → `so` for a first-language prompt, `so` → `luego` for a second-language one);
# 3. add a **summary** for the reader between the reasoning and the answer. Our version of the paper's pattern is `<think>reasoning</think>summary<answer>answer</answer>`.

# Every example is R1-Zero's own output, filtered and tidied: the cold start is in effect **self-distillation** of R1-Zero into the base, one of the paper's sources too. Nothing in it is smarter than R1-Zero; it is cleaner.

# %%
show_source(rewrite_readable)

# %%
example = pipeline.train_examples[0]
if profile.is_tiny:
    from r1lib.tasks.bilingual import pose
    demos = [(pose(pipeline.task.make_example([3, 5, 9]), language), text) for language in ("en", "es")
             for text in ["<think>3+5+9 luego 8+9 so 7</think><answer>7</answer>", "<think>3+5+9 so 8+9 so 6</think><answer>6</answer>"]]
else:
    demos = [(example, "<think>3+5+9 luego 8+9 so 7</think><answer>7</answer>")]
for demo, text in demos:
    print(f"{demo.info.get('language', 'en')} prompt: {text!r}\n  -> {rewrite_readable(text, demo, pipeline.task)!r}")

# %% [markdown]
# The pipeline builds the whole set once and saves it as TRL's conversational prompt-completion jsonl. The same command from a shell: `python -m r1lib.pipeline --profile cpu --until cold_start_data`.

# %%
cold_set = pipeline.cold_start_data()
saved = pipeline.folder("cold_start_data") / "cold_start.jsonl"
record = json.loads(saved.read_text().splitlines()[0])
second = sum(1 for e in cold_set if e.prompt[0]["role"] == "system")
print(f"{len(cold_set)} examples in {saved}, {second} of them ({second / len(cold_set):.0%}) in the second language")
print(json.dumps(record, indent=1)[:400])
assert load_jsonl(saved) == cold_set

# %% [markdown]
# ## Fine-tuning the base on it
#
# Supervised fine-tuning is a subclass of the same `Trainer` as GRPO (same checkpoints, resume, logs), through the one causal-LM step that pretraining and distillation also use. Each example is rendered exactly as a rollout would see it, `chat template(prompt) + completion + EOS`, and the loss is the mean cross-entropy over the completion tokens only: the model learns to *answer*, not to predict prompts. These are the library's lines:

# %%
show_source(CausalLMTrainer.training_step, CausalLMTrainer.micro_batch_loss, CrossEntropyLoss.__call__)

# %%
cold_start = pipeline.cold_start()
sft_history = [json.loads(line) for line in (cold_start.parent / "metrics.jsonl").read_text().splitlines()]
model, tokenizer = pipeline.load(cold_start)
after_sft = evaluate(model, tokenizer, pipeline.task, pipeline.eval_examples, k=2, max_new_tokens=96, seed=0)
fig, ax = plt.subplots(figsize=(5, 3))
steps, losses = series(sft_history, "loss")
ax.plot(steps, losses); ax.set_xlabel("SFT step"); ax.set_ylabel("cross-entropy (nats per token)"); ax.set_title("cold-start SFT")
ax.grid(alpha=0.3); plt.show()
say(f"After SFT on {config.cold_start.size or len(cold_set)} examples: readable **{readable_rate(after_sft):.0%}** "
    f"(R1-Zero: {readable_rate(zero):.0%}), outside their prompt's language {off_language_share(after_sft, *language):.0%} "
    f"(R1-Zero: {zero_mixing:.0%}), pass@1 {after_sft.pass_at_1:.2f} (R1-Zero: {zero.pass_at_1:.2f}).")
print(after_sft.completions[0][0])

# %% [markdown]
# ## How many examples? A sweep
#
# The paper used "thousands"; later work found far fewer can be enough for a strong base (s1: 1,000 examples; LIMO: 817). In the tiny world we try no cold start at all, about 50 examples, the configured 500, and everything that verified. Each model then goes through the same stage-2 RL (accuracy + readable format + language consistency, notebook 06), and we watch held-out pass@1 along the way and how readable its samples stay.

# %%
total = len(cold_set)
sizes = sorted({0, min(50, total), min(500, total), total})
sweep = pipeline.cold_start_sweep(sizes)
curves = {}
for entry in sweep:
    history = [json.loads(line) for line in (pipeline.root / entry["stage"] / "metrics.jsonl").read_text().splitlines()]
    curves[entry["size"]] = {"pass@1": series(history, "eval/pass@1"),
                             "readable": series(history, "rewards/readable_format_reward/mean")}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for size, curve in curves.items():
    axes[0].plot(*curve["pass@1"], marker="o", label=f"{size} examples")
    axes[1].plot(*curve["readable"], marker=".", label=f"{size} examples")
axes[0].set_title("stage 2: held-out pass@1"); axes[0].set_ylabel("pass@1")
axes[1].set_title("stage 2: readable samples"); axes[1].set_ylabel("share of training samples")
for ax in axes:
    ax.set_xlabel("RL step"); ax.set_ylim(-0.04, 1.04); ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()

target = 0.9 * max(max(c["pass@1"][1]) for c in curves.values())
rows = []
for size, curve in curves.items():
    steps, values = curve["pass@1"]
    reached = next((s for s, v in zip(steps, values) if v >= target), None)
    readable_end = curve["readable"][1][-1] if curve["readable"][1] else 0.0
    rows.append([size, f"{values[0]:.2f}", f"{values[-1]:.2f}", reached if reached is not None else "not reached", f"{readable_end:.2f}"])
show_html(html_table(["cold-start examples", "pass@1 at RL start", "pass@1 at RL end", f"first step with pass@1 ≥ {target:.2f}",
                      "readable at RL end"], rows, monospace=False))
sweep_end = {size: (curve["pass@1"][1][-1], curve["readable"][1][-1] if curve["readable"][1] else 0.0) for size, curve in curves.items()}

# %%
by_size = {size: {"start": curve["pass@1"][1][0], "end": curve["pass@1"][1][-1],
                  "readable": sweep_end[size][1]} for size, curve in curves.items()}
few, configured = min(50, total), min(500, total)
say(f"No cold start: stage 2 ends at pass@1 {by_size[0]['end']:.2f} with **{by_size[0]['readable']:.0%}** readable samples. "
    f"{few} examples: it starts at {by_size[few]['start']:.2f}, ends at {by_size[few]['end']:.2f}, "
    f"{by_size[few]['readable']:.0%} readable. {configured} examples: {by_size[configured]['start']:.2f} → "
    f"{by_size[configured]['end']:.2f}, {by_size[configured]['readable']:.0%} readable. All {total}: "
    f"{by_size[total]['start']:.2f} → {by_size[total]['end']:.2f}, {by_size[total]['readable']:.0%} readable.")

# %% [markdown]
# **What it means.** Without a cold start, stage-2 RL has to discover the readable format by chance, and a summary between `</think>` and `<answer>` is something the base has never written: the readable reward stays out of reach and RL optimises accuracy alone. A few dozen examples are enough to teach the format; a few hundred also start RL from a model that is right most of the time, so RL has less left to do. Beyond that the sweep shows little more to gain in the tiny world, in line with what s1 and LIMO found for strong bases: a cold start teaches a *format and a habit*, not the underlying skill, and a small clean set does that.
#
# ## Exercises
# 1. Check the cold-start set: is every example single-language, readable, and right?
# 2. Fine-tune with `packing=True` (several examples per row, attention kept within each). Is the loss the same? Is it faster?
# 3. What does the SFT'd model do on *general* requests such as `greet Ana`? Judge its replies with the gold rule of `GeneralTask.judge`, against the base's.

# %% [solution]
# Solution to exercise 1 (collapsed).
from r1lib.format import extract_answer, is_readable_format
from r1lib.tasks.base import Example

problems = []
for item in cold_set:
    question = item.prompt[-1]["content"]
    example = pipeline.task.make_example([int(t) for t in question.split("+")]) if profile.is_tiny else None
    ok = is_readable_format(item.completion) and config.language_reward()([item.prompt], [item.completion])[0] in (None, 1.0)
    if example is not None:
        ok = ok and pipeline.task.check_answer(extract_answer(item.completion), example)
    if not ok:
        problems.append(item)
print(f"{len(problems)} of {len(cold_set)} examples fail a check")

# %% [solution]
# Solution to exercise 2 (collapsed): the same loss on the same examples, fewer padded tokens.
import time
from dataclasses import replace

from r1lib.records import encode_example, pack

encoded = [encode_example(tokenizer, e) for e in cold_set[:64]]
print(f"{len(encoded)} examples in {len(pack(encoded, 256))} packed rows of at most 256 tokens")
for packing in (False, True):
    fresh, tok = pipeline.load(pipeline.base.name_or_path)
    trainer = SFTTrainer(fresh, tok, cold_set, replace(config.cold_start_sft, max_steps=5, packing=packing, eval_steps=1000),
                         progress=False)
    began = time.time()
    history = trainer.train()
    print(f"packing={packing}: loss {history[-1]['loss']:.3f} after 5 steps, {time.time() - began:.1f}s")
# With rows this short the gain is small; with long and short examples mixed, packing saves most of the padding.

# %% [solution]
# Solution to exercise 3 (collapsed): 16 seeded replies to each held-out request, judged by the gold rule.
from r1lib.pipeline import general_quality

gold = {}
for name, folder in (("base", pipeline.base.name_or_path), ("cold start", cold_start)):
    general_model, general_tokenizer = pipeline.load(folder)
    gold[name] = quality = general_quality(general_model, general_tokenizer, pipeline.general_eval, k=16, seed=3)
    flaws = {k.split("/")[1]: round(v, 3) for k, v in quality.items() if k.startswith("general/") and v and k != "general/acceptable"}
    print(f"{name}: acceptable {quality['gold_general']:.3f}; flawed {flaws}")
# The cold-start set holds only reasoning. SFT on it wears general replies down (the gold share drops and the
# flawed kinds grow) without teaching them anything else; notebook 06's stage 3 mixes general replies back in.

# %% [markdown]
# ## Checks

# %%
assert len(cold_set) >= (config.cold_start.size or 1) and not problems
assert readable_rate(after_sft) > readable_rate(zero)  # the cold start made the output readable
if profile.name == "cpu":
    assert off_language_share(after_sft, *language) < zero_mixing
    assert gold["cold start"]["gold_general"] < gold["base"]["gold_general"], gold  # exercise 3's "wears down"
    assert by_size[0]["readable"] < 0.5, by_size  # no cold start: the format stays out of reach
    assert by_size[few]["readable"] > 0.8 and by_size[configured]["readable"] > 0.8, by_size  # a few dozen teach it
    assert by_size[configured]["start"] > by_size[few]["start"] > by_size[0]["start"], by_size
    assert by_size[configured]["start"] > 0.5, by_size  # "right most of the time" when RL starts
    assert abs(by_size[total]["end"] - by_size[configured]["end"]) < 0.05, by_size  # little more to gain
print("all checks passed")
