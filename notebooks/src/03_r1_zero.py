# %% [markdown]
# # 03 · R1-Zero: reinforcement learning from the base model
#
# **What we will see.** DeepSeek-R1-Zero was trained with GRPO straight from a base model, with no supervised fine-tuning. The only signals were *is the answer right?* and *is the format right?* Nobody told it to reason at length. Yet over training
#
# * accuracy rose (AIME pass@1 from 15.6% to 71.0% in the paper),
# * responses grew longer: the model learned to spend more tokens thinking,
# * reflection ("wait, …") appeared on its own.
#
# We reproduce the signature on the tiny world in a few minutes on a CPU: **pass@1 up, length up, reasoning up**. On the GPU profile, the same cells train Qwen2.5 on GSM8K.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from r1lib.evaluate import evaluate
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.plots import plot_before_after, plot_history
from r1lib.profiles import get_profile, runs_dir
from r1lib.widgets import LiveCurves

torch.manual_seed(0)
profile = get_profile()
exp = build_experiment(profile, seed=0)
config = profile.grpo
print(f"profile {profile.name}: {config.max_steps} steps, {config.prompts_per_step} prompts x {config.num_generations} completions per step")
print(f"loss_type={config.loss_type}, scale_rewards={config.scale_rewards}, beta={config.beta}, lr={config.learning_rate}")

# %% [markdown]
# ## Before training
#
# We measure the base model on the **held-out** evaluation prompts (training prompts are drawn disjoint from them): pass@1 sampled at temperature 1, how often it reasons, and how long its completions are.

# %%
def measure(model):
    result = evaluate(model, exp.tokenizer, exp.task, exp.eval_examples, k=2, temperature=config.temperature,
                      max_new_tokens=config.max_completion_length, seed=123)
    return result, result.summary()

base_result, before = measure(exp.model)
print(json.dumps({k: round(v, 3) for k, v in before.items()}, indent=1))

# %% [markdown]
# ## The run
#
# Everything below is `r1lib.grpo.GRPOTrainer`. One step is: sample `G` completions for each of a few prompts → score them with the accuracy and format rewards → group advantages → the clipped loss with a small KL to the frozen base (β) → one optimiser step. These are the trainer's own lines (printed from the library, not copied):

# %%
from r1lib.widgets import show_source
show_source(GRPOTrainer.training_step, GRPOTrainer.prepare, GRPOTrainer.optimise)

# %% [markdown]
# Settings that matter on the tiny world: `loss_type="dr_grpo"` and `scale_rewards="none"` (no length bias, no per-prompt re-weighting), truncated completions masked out, β = 0.01. The curves redraw live; metrics go to `runs/03_r1_zero/metrics.jsonl`, sampled completions to `completions.jsonl`, and checkpoints to `checkpoints/`. Stop the cell at any time: the trainer saves a checkpoint, and `trainer.train(resume_from=True)` continues.

# %%
run_dir = runs_dir("03_r1_zero", profile.name)
trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, exp.reward_funcs, exp.train_examples, config, run_dir,
                      eval_examples=exp.eval_examples[: config.eval_examples], callbacks=[LiveCurves(every=10)])
began = time.time()
history = trainer.train()
rl_seconds = time.time() - began
print(f"{trainer.state.step} GRPO steps in {rl_seconds:.0f}s ({rl_seconds / max(1, trainer.state.step):.2f}s per step)")

# %% [markdown]
# ## The curves
#
# Training reward (accuracy + format, smoothed), held-out pass@1, mean completion length in tokens, and the fraction of completions that reason inside `<think>`:

# %%
fig = plot_history(history, ["reward", "eval/pass@1", "completions/mean_length", "eval/reasoning_rate"],
                   ["training reward", "held-out pass@1", "completion length (tokens)", "reasoning rate"])
plt.show()

# %% [markdown]
# ## After training

# %%
trained_result, after = measure(exp.model)
print(f"{'':>16} {'before':>8} {'after':>8}")
for key in before:
    print(f"{key:>16} {before[key]:8.3f} {after[key]:8.3f}")
plot_before_after(before, after, ["pass@1", "reasoning_rate", "mean_length", "reflection_rate"], "base vs R1-Zero (held-out)")
plt.show()

# %% [markdown]
# ## Early vs late, side by side
#
# The same held-out prompts, answered by the base model (left) and by the trained policy (right). Sampled at temperature 1, so each is one draw, not the only possible answer.

# %%
from IPython.display import HTML, display

def cell(text, right):
    colour = "#e6f4ea" if right else "#fce8e6"
    return f"<td style='background:{colour};font-family:monospace;text-align:left'>{text}</td>"

rows = []
for i, example in enumerate(exp.eval_examples[:8]):
    rows.append(f"<tr><td style='font-family:monospace'>{example.question[:80]} → {example.answer}</td>"
                + cell(base_result.completions[i][0][:300], base_result.correct[i][0])
                + cell(trained_result.completions[i][0][:300], trained_result.correct[i][0]) + "</tr>")
display(HTML("<table><tr><th>prompt</th><th>base model</th><th>after GRPO</th></tr>" + "".join(rows) + "</table>"))

# %% [markdown]
# And from the training log: completions sampled at the first and at the last step.

# %%
logged = [json.loads(line) for line in (run_dir / "completions.jsonl").read_text().splitlines()]
for step in (1, trainer.state.step):
    print(f"--- step {step}")
    for record in [r for r in logged if r["step"] == step][:4]:
        print(f"reward={record['reward']:.0f} | {record['question'][:60]} -> {record['completion'][:150]}")

# %% [markdown]
# **What it means.** Nobody told the model to think. It was rewarded only for right answers in the right format, and it discovered that the rare step-by-step behaviour of its pretraining gets more answers right. RL amplified it: reasoning became the default, completions got longer, and accuracy climbed towards what the base could reach when *forced* to reason. That is the R1-Zero signature. Its ceiling is set by the base: RL sharpened an ability the base already had, it did not create arithmetic from nothing.
#
# Worth noticing in longer runs: on short chains, thinking buys little, and a policy with a high learning rate may drift back to direct answers there. Thinking is learned where it pays.
#
# ## Exercises
# 1. Re-run with `loss_type="grpo"` and `scale_rewards="group"` (the original GRPO) via `r1lib.profiles.with_overrides`. Do length and accuracy behave differently?
# 2. Set `beta=0.0`. Does the run drift further from the base (watch `kl` in `metrics.jsonl`)?
# 3. Remove the format reward. Does the model still learn to reason?

# %% [solution]
# Solution sketch for exercise 1 (collapsed): train a second policy with the original GRPO settings.
from r1lib.profiles import with_overrides
original = with_overrides(profile, loss_type="grpo", scale_rewards="group", max_steps=min(30, config.max_steps))
print(original.grpo.loss_type, original.grpo.scale_rewards, original.grpo.max_steps)
# exp2 = build_experiment(original); GRPOTrainer(exp2.model, ..., original.grpo, runs_dir("03_original")).train()

# %% [markdown]
# ## Checks

# %%
gain = after["pass@1"] - before["pass@1"]
print(f"pass@1 {before['pass@1']:.3f} -> {after['pass@1']:.3f} (+{gain:.3f}); length {before['mean_length']:.1f} -> {after['mean_length']:.1f}; {rl_seconds:.0f}s of RL")
if profile.is_tiny:
    required_gain = 0.40 if profile.name == "cpu" else 0.15
    assert gain >= required_gain, f"pass@1 rose by {gain:.3f}, expected at least {required_gain}"
    assert after["mean_length"] > before["mean_length"]
    assert after["reasoning_rate"] > before["reasoning_rate"]
    if profile.name == "cpu":
        assert rl_seconds <= 300, f"RL took {rl_seconds:.0f}s, more than 5 minutes"
else:
    assert after["pass@1"] >= before["pass@1"]
print("all checks passed")
