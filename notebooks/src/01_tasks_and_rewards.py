# %% [markdown]
# # 01 · Tasks and rewards
#
# **What we will see.** R1-Zero's only training signal is a *rule*: a verifier that checks the final answer, plus a check of the output format. No reward model, no human labels. In this notebook we
#
# 1. generate tasks and verify answers,
# 2. run the **accuracy** and **format** rewards on hand-made completions you can check by eye,
# 3. see why rules resist reward hacking, then train against a plausible-looking reward that *can* be hacked, and watch RL find the hole.


# %%
from r1lib.profiles import describe, get_profile

print(describe(get_profile()))

# %% [markdown]
# ## A task: generate, prompt, verify
#
# A task in `r1lib` knows three things: how to make examples, how to prompt for one, and how to check an answer. It never calls the model. The tiny world's `ChainTask` sums digits modulo 10, and knows the step-by-step solution a reasoner would write:

# %%
from r1lib.tasks import ChainTask, GSM8KTask, Example, verify

chain = ChainTask()
example = chain.make_example([3, 5, 9, 2])
print("question:", example.question, " answer:", example.answer)
print("solution steps:", chain.solution_steps(example))
print("a seeded stream:", [e.question for e in chain.generate(5, seed=0)])

# %% [markdown]
# `verify` extracts the **last** `<answer>…</answer>` block and asks the task whether it is right. Plain string search, no `eval`, no regular expressions that can blow up: the input is arbitrary model output.

# %%
for completion in ["<think>3+5+9+2 so 8+9+2 so 7+2 so 9</think><answer>9</answer>",
                   "<answer>9</answer>", "<answer>4</answer>", "The answer is 9"]:
    print(f"{verify(chain, completion, example)!s:>5}  {completion}")

# %% [markdown]
# The search task's verifier is different in kind: there is no single right answer, so it checks a *property* of the answer (two of the given digits, each used at most as often as it appears, whose sum ends in the target). Checking is cheap even where finding is not:

# %%
from r1lib.tasks.search import SearchTask

search = SearchTask()
pick = search.make_example([3, 8, 5, 9], 7)
for answer in ["8+9", "9+8", "3+5", "8+8", "17", "8+9+0"]:
    print(f"{answer:>6}: {search.check_answer(answer, pick)}")

# %% [markdown]
# The GPU profile's GSM8K task compares numbers instead of strings, so `$1,234.00` matches `1234`:

# %%
gsm = GSM8KTask()
money = Example("How much?", "1234")
print([gsm.check_answer(a, money) for a in ["1234", "$1,234.00", "about 1234 dollars", "1243"]])

# %% [markdown]
# ## The accuracy and format rewards
#
# R1-Zero was trained on two rule rewards: is the answer right, and is the output in the required format. The course keeps both, with one deliberate change to the format. In the DeepSeek-R1 paper, R1-Zero's template asked the model to reason inside `<think>` tags before answering, and the format reward required the tags. `r1lib`'s `format_reward` makes the `<think>` block optional: a direct `<answer>9</answer>` is well formed too (second line below). The model is therefore free not to reason, and any reasoning that appears in notebook 03 was chosen because it paid, not because the format demanded it.
#
# Rewards in `r1lib` have TRL's signature, `f(prompts, completions, **columns) -> list[float | None]`, so they plug into TRL's `GRPOTrainer` unchanged (notebook 08). Dataset columns such as `answer` arrive as keyword arguments.

# %%
from r1lib.rewards import format_reward, make_accuracy_reward, combine_rewards

accuracy_reward = make_accuracy_reward(chain)
completions = [
    "<think>3+5+9+2 so 8+9+2 so 7+2 so 9</think><answer>9</answer>",  # right and well formed
    "<answer>9</answer>",                                             # right, direct
    "<think>3+5+9+2 so 8+9+2 so 6+2 so 8</think><answer>8</answer>",  # well formed, wrong
    "I think it is <answer>9</answer> probably",                     # right, but messy
    "<think>unfinished",                                              # neither
]
answers = ["9"] * len(completions)
acc = accuracy_reward([None] * 5, completions, answer=answers)
fmt = format_reward([None] * 5, completions)
total = combine_rewards([acc, fmt])
for c, a, f, t in zip(completions, acc, fmt, total):
    print(f"accuracy={a:.0f} format={f:.0f} total={t:.0f}  {c}")

# %% [markdown]
# ## More rule-based rewards
#
# R1 and its successors added a few more rules. Each is a plain function with the same signature, so they combine freely (`combine_rewards` takes weights, and so does `GRPOConfig.reward_weights`).
#
# * **Language consistency** (R1, stage 2): the share of the reasoning's words that are in the target language. R1-Zero mixed languages in its chains of thought; this reward trades a little accuracy for readable reasoning. The tiny world has a second "language" for its connector words (`luego`, `espera` instead of `so`, `wait`), so there is something to fix.
# * **Soft format** and **tag count**: partial credit for almost-right formats, useful early in training.

# %%
from r1lib.rewards import soft_format_reward, tag_count_reward, tiny_language_consistency_reward

traces = {
    "English": "<think>3+5+9 so 8+9 so 7</think><answer>7</answer>",
    "Spanish": "<think>3+5+9 luego 8+9 luego 7</think><answer>7</answer>",
    "mixed": "<think>3+5+9 so 8+9 luego 7</think><answer>7</answer>",
    "no words": "<answer>7</answer>",
}
language = tiny_language_consistency_reward(None, list(traces.values()))
for (name, trace), score in zip(traces.items(), language):
    print(f"{name:>9}: language consistency {score}  soft format {soft_format_reward(None, [trace])[0]}  tags {tag_count_reward(None, [trace])[0]}")

# %% [markdown]
# * **Length-aware rewards.** Long chains of thought are good when they help and wasteful when they do not. The *cosine-scaled* reward (from "Demystifying Long Chain-of-Thought Reasoning") pays a right answer more when it is short, and penalises a wrong answer less when it is long (the model was at least trying). DAPO's *soft overlong punishment* only starts penalising near the length limit. A plot says it faster than words:

# %%
import matplotlib.pyplot as plt
from r1lib.rewards import make_cosine_scaled_reward, make_repetition_penalty, make_soft_overlong_punishment

cosine = make_cosine_scaled_reward(chain, max_len=200)
overlong = make_soft_overlong_punishment(max_completion_length=200, soft_cache_length=50)
lengths = list(range(20, 201, 10))
def padded(answer, n):
    body = "<answer>" + answer + "</answer>"
    return "<think>" + "x" * max(0, n - len(body) - 15) + "</think>" + body
right = cosine(None, [padded("9", n) for n in lengths], answer=["9"] * len(lengths))
wrong = cosine(None, [padded("4", n) for n in lengths], answer=["9"] * len(lengths))
penalty = overlong(None, ["y" * n for n in lengths])
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(lengths, right, label="right answer"); axes[0].plot(lengths, wrong, label="wrong answer")
axes[0].set_title("cosine-scaled correctness"); axes[0].set_xlabel("completion length (characters)"); axes[0].legend()
axes[1].plot(lengths, penalty, color="tab:red"); axes[1].set_title("soft overlong punishment (limit 200)")
axes[1].set_xlabel("completion length (characters)")
plt.tight_layout(); plt.show()
repetition = make_repetition_penalty(ngram_size=3)
print("repetition penalty:", repetition(None, ["one two three four five six", "so so so so so so so so"]))

# %% [markdown]
# ## Why rules resist hacking — and a reward that does not
#
# The accuracy reward looks at one thing only: the content of the last answer block, compared exactly with the reference. A completion with no answer gets nothing, and a wrong answer gets nothing, however it is dressed. It is not unbeatable, though: a guess that happens to be right is paid in full, like a reasoned answer, so a policy can earn reward by guessing. It just cannot earn more than the guess's chance of being right, so guessing never pays better than being right.
#
# Now a reward that looks just as reasonable: it **punishes wrong answers**, `0` for a wrong answer and `1` otherwise. Its author thought of right and wrong answers, but not of a completion that gives *no* answer at all, for instance one that is cut off at the length limit before it finishes:

# %%
from r1lib.format import extract_answer

def lenient_reward(prompts, completions, answer, **columns):
    """Hackable on purpose: only a wrong answer is punished; no answer at all counts as "not wrong"."""
    scores = []
    for text, gold in zip(completions, answer):
        given = extract_answer(text)
        scores.append(0.0 if given is not None and given != str(gold) else 1.0)
    return scores

unfinished = "<think>3+5+9+2 so 8+9+2 so"
print("lenient reward:", lenient_reward(None, [unfinished, "<answer>4</answer>"], answer=["9", "9"]))
print("exact accuracy:", accuracy_reward(None, [unfinished, "<answer>4</answer>"], answer=["9", "9"]))

# %% [markdown]
# Would RL find the hole? We train two copies of the base model for the same number of GRPO steps: one on the lenient reward, one on the exact accuracy reward. To make the hole reachable we cap completions at 32 tokens, too short to reason through the longest chains, and keep truncated completions in the loss (`mask_truncated_completions=False`, a setting people do use). Both runs *log* the exact accuracy, but the lenient run gives it weight 0 (`reward_weights=[1, 0]`): it is watched, not optimised.

# %%
from r1lib.experiment import build_experiment
from r1lib.grpo import GRPOTrainer
from r1lib.plots import running_mean, series
from r1lib.profiles import get_profile, runs_dir, with_overrides
from r1lib.widgets import say

profile = get_profile()
steps = {"smoke": 30, "cpu": 60, "gpu": 30}[profile.name]
runs = {}
for name, rewards, weights in [("lenient reward", ["lenient", "accuracy"], [1.0, 0.0]), ("accuracy reward", ["accuracy"], [1.0])]:
    exp = build_experiment(profile, seed=0)
    funcs = {"lenient": lenient_reward, "accuracy": make_accuracy_reward(exp.task)}
    config = with_overrides(profile, max_steps=steps, eval_steps=steps, save_steps=steps, reward_weights=weights,
                            max_completion_length=32, mask_truncated_completions=False).grpo
    trainer = GRPOTrainer(exp.model, exp.tokenizer, exp.task, [funcs[r] for r in rewards], exp.train_examples, config,
                          runs_dir("01_hacking", profile.name, name.split()[0]))
    runs[name] = trainer.train()

# %%
import matplotlib.pyplot as plt
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, (name, history) in zip(axes, runs.items()):
    # The reward is drawn dashed over the accuracy: in the exact run the two are the same line.
    for key, label, style in [("rewards/accuracy/mean", "true accuracy", dict(linewidth=3, alpha=0.6)),
                              ("reward", "reward being optimised", dict(linestyle="--", color="black")),
                              ("completions/clipped_ratio", "cut off at the limit", dict(color="tab:red"))]:
        x, y = series(history, key)
        ax.plot(x, running_mean(y, 5), label=label, **style)
    ax.set_title(f"trained on the {name}"); ax.set_xlabel("GRPO step"); ax.grid(alpha=0.3); ax.legend(fontsize=8)
axes[0].set_ylabel("mean over the step's completions\n(running mean of 5 steps)")
plt.tight_layout(); plt.show()
lenient_history, exact_history = runs["lenient reward"], runs["accuracy reward"]

def final(history, key):
    """Mean of a metric over the last 10 steps (one batch of 8 prompts is noisy)."""
    return sum(m[key] for m in history[-10:]) / len(history[-10:])

gap = final(lenient_history, "reward") - final(lenient_history, "rewards/accuracy/mean")
accuracy_lenient, accuracy_exact = final(lenient_history, "rewards/accuracy/mean"), final(exact_history, "rewards/accuracy/mean")
cut_lenient, cut_exact = final(lenient_history, "completions/clipped_ratio"), final(exact_history, "completions/clipped_ratio")
for name, history in runs.items():
    print(f"{name:>16}, last 10 steps: reward {final(history, 'reward'):.2f}, true accuracy "
          f"{final(history, 'rewards/accuracy/mean'):.2f}, cut off {final(history, 'completions/clipped_ratio'):.2f}")
# 10 steps x 8 prompts x 8 completions: a mean over 640 samples, whose standard error is at most 0.02.
say(f"The lenient reward reports **{final(lenient_history, 'reward'):.2f}** while the same completions are right "
    f"**{accuracy_lenient:.2f}** of the time: a gap of {gap:.2f}. The exact reward's run is right {accuracy_exact:.2f} "
    f"of the time, and its reward *is* its accuracy. Completions cut off at the limit: {cut_lenient:.2f} with the "
    f"lenient reward, {cut_exact:.2f} with the exact one.")

# %% [markdown]
# **What it means.** The policy found the hole. On chains it cannot finish within 32 tokens, an exact-reward policy has one option, a guess, and a guess is usually wrong; the lenient-reward policy has a better one: start reasoning and never finish, because an unfinished completion is "not wrong". Read the cut-off curves with care: the share of completions cut off at the limit rises in *both* panels, because both policies reason more as training goes on (a direct answer is a few tokens; only a reasoning trace on a long chain reaches the limit). The growth alone is not the hack; the difference between the runs is. Over the last 10 steps more completions are cut off with the lenient reward than with the exact one (the shares are in the sentence above), and the lenient reward pays each unfinished one as "not wrong", so its reported reward sits far above the true accuracy. Look at what the hole did *not* do: it did not make the model much worse at the task (the two runs' true accuracies are close, within a few standard errors). It made the *reward* lie. Training curves, model selection and every decision based on the reward now overstate the model, and every further step optimises the lie.
#
# This is the worry behind DeepSeek's choice of rewards for reasoning. R1 scored reasoning with rules only (an exact answer check and a format check), and the paper explains why it did not use a neural reward model there: a learned reward is a proxy of the goal, and large-scale RL finds the places where proxy and goal part. Our lenient reward is a hand-written proxy, not a neural one, and it was gamed at once; a learned proxy has more such places, and they are harder to see. Where no rule can judge (a polite reply, a helpful answer), R1's last stage did use reward models, with care: notebook 06.
#
# Rewards also receive hostile input. They must never execute it, never crash, and stay fast:

# %%
import time
hostile = ["__import__('os').system('echo pwned')", "<answer>" * 10_000, "<answer>" + "9" * 1_000_000 + "</answer>", "\x00\udcff"]
began = time.perf_counter()
print(accuracy_reward(None, hostile, answer=["9"] * 4), format_reward(None, hostile))
elapsed_ms = (time.perf_counter() - began) * 1000
print(f"{elapsed_ms:.1f} ms for all four")

# %% [markdown]
# ## Exercises
# 1. Write a reward that gives 0.5 for a well-formed answer that is wrong and 1.0 for a right one. What would RL do with it?
# 2. Fix `lenient_reward` with one line. Then re-run the lenient training: is the policy still rewarded for running out of tokens?
# 3. Add a `ChainTask(modulus=7)` and check that `solution_steps` still ends on the answer.

# %% [solution]
# Solution to exercise 1 (collapsed). Half credit for form makes a wrong answer worth half a right one.
from r1lib.format import is_strict_format

def half_credit_reward(prompts, completions, answer, **columns):
    scores = []
    for text, gold in zip(completions, answer):
        scores.append(1.0 if extract_answer(text) == str(gold) else 0.5 if is_strict_format(text) else 0.0)
    return scores

print(half_credit_reward(None, ["<answer>9</answer>", "<answer>4</answer>", "9"], answer=["9"] * 3))
# Within a group, GRPO only sees differences: right (1) still beats wrong (0.5), so RL still pushes towards
# right answers, but a well-formed wrong answer now beats an unfinished one. That is exactly what a format
# reward does; the risk is a model that settles for well-formed wrong answers when being right is hard.

# %% [solution]
# Solution to exercise 2 (collapsed): no answer is wrong too. One line changes: `given is not None and`
# goes, so a missing answer scores 0. The fixed reward *is* the accuracy, so "reward minus accuracy" is 0 by
# construction and proves nothing; what tells whether the hole closed is the share of completions cut off at
# the limit, set beside the lenient run's over the same first steps.
def fixed_reward(prompts, completions, answer, **columns):
    return [1.0 if extract_answer(text) == str(gold) else 0.0 for text, gold in zip(completions, answer)]

short = {"smoke": 10, "cpu": 20, "gpu": 10}[profile.name]
exp = build_experiment(profile, seed=0)
config = with_overrides(profile, max_steps=short, eval_steps=short, save_steps=short, reward_weights=[1.0, 0.0],
                        max_completion_length=32, mask_truncated_completions=False).grpo
fixed = GRPOTrainer(exp.model, exp.tokenizer, exp.task, [fixed_reward, make_accuracy_reward(exp.task)], exp.train_examples,
                    config, None, progress=False).train()
fixed_gap = sum(m["reward"] - m["rewards/accuracy/mean"] for m in fixed) / len(fixed)
def cut_share(history, steps):
    """The share cut off at the limit, averaged over the last 10 of the first ``steps`` training steps."""
    window = [m["completions/clipped_ratio"] for m in history if "completions/clipped_ratio" in m][:steps][-10:]
    return sum(window) / len(window)


cut_fixed, cut_lenient_early = cut_share(fixed, short), cut_share(lenient_history, short)
print(f"cut off at the limit over steps {short - 9}-{short}: fixed reward {cut_fixed:.2f}, lenient reward "
      f"{cut_lenient_early:.2f}; reward minus true accuracy with the fixed reward: {fixed_gap:.3f} (0 by construction)")

# %% [solution]
# Solution to exercise 3 (collapsed).
seven = ChainTask(modulus=7)
e7 = seven.make_example([6, 6, 6])
print(seven.solution_steps(e7), e7.answer)

# %% [markdown]
# ## Checks

# %%
assert acc == [1.0, 1.0, 0.0, 1.0, 0.0]
assert language[0] == 1.0 and language[1] == 0.0 and language[2] == 0.5 and language[3] is None
assert right[0] > right[-1] > 0 > wrong[-1] > wrong[0] and penalty[0] == 0.0 > penalty[-1]
assert fmt == [1.0, 1.0, 1.0, 0.0, 0.0]
assert lenient_reward(None, [unfinished], answer=["9"]) == [1.0] and accuracy_reward(None, [unfinished], answer=["9"]) == [0.0]
assert elapsed_ms < 1000
assert abs(fixed_gap) < 1e-6  # the fixed reward is the accuracy
if profile.is_tiny:
    assert gap >= 0.15, f"the lenient reward should overstate accuracy clearly, gap {gap:.2f}"
    assert cut_lenient > cut_exact
if profile.name == "cpu":
    assert abs(accuracy_lenient - accuracy_exact) <= 0.10, (accuracy_lenient, accuracy_exact)  # "close", as the text says
assert seven.solution_steps(e7)[-1] == e7.answer
print("all checks passed")
