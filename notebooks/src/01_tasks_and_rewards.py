# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/r1-course/r1-course/blob/main/notebooks/01_tasks_and_rewards.ipynb)
#
# # 01 · Tasks and rewards
#
# **What we will see.** R1-Zero's only training signal is a *rule*: a verifier that checks the final answer, plus a check of the output format. No reward model, no human labels. In this notebook we
#
# 1. generate tasks and verify answers,
# 2. run the **accuracy** and **format** rewards on hand-made completions you can check by eye,
# 3. see why rules resist reward hacking, and write a naive reward that *can* be hacked.

# %%
# Colab only: fetch the course and install r1lib. Anywhere else (make course, make lab) this does nothing.
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.exists("/content/r1-course"):
    subprocess.run(["git", "clone", "--depth", "1", "https://github.com/r1-course/r1-course", "/content/r1-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/r1-course[gpu,notebooks]"], check=True)
    os.chdir("/content/r1-course/notebooks")
    sys.path.insert(0, "/content/r1-course")

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
# The GPU profile's GSM8K task compares numbers instead of strings, so `$1,234.00` matches `1234`:

# %%
gsm = GSM8KTask()
money = Example("How much?", "1234")
print([gsm.check_answer(a, money) for a in ["1234", "$1,234.00", "about 1234 dollars", "1243"]])

# %% [markdown]
# ## The two R1-Zero rewards
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
# ## Why rules resist hacking — and a reward that does not
#
# The accuracy reward looks only at one thing: the content of the last answer block, compared exactly with the reference. There is nothing to game but being right. A *naive* reward that checks whether the right number appears **anywhere** in the completion looks reasonable, but a policy can collect it by listing every digit:

# %%
def naive_reward(prompts, completions, answer, **columns):
    """Hackable on purpose: credit when the reference appears anywhere in the text."""
    return [float(str(gold) in text) for text, gold in zip(completions, answer)]

hack = "<answer>0 1 2 3 4 5 6 7 8 9</answer>"
print("naive reward of the hack:   ", naive_reward(None, [hack], answer=["9"]))
print("accuracy reward of the hack:", accuracy_reward(None, [hack], answer=["9"]))

# %% [markdown]
# A random policy answering 10 digits at once gets the naive reward **every time**, so RL would learn to do exactly that. Notebook 04 trains against both rewards and plots the difference.
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
# 2. Make the naive reward harder to hack without looking at the answer tag. Can you?
# 3. Add a `ChainTask(modulus=7)` and check that `solution_steps` still ends on the answer.

# %% [solution]
# Solution to exercise 3 (collapsed).
seven = ChainTask(modulus=7)
e7 = seven.make_example([6, 6, 6])
print(seven.solution_steps(e7), e7.answer)

# %% [markdown]
# ## Checks

# %%
assert acc == [1.0, 1.0, 0.0, 1.0, 0.0]
assert fmt == [1.0, 1.0, 1.0, 0.0, 0.0]
assert naive_reward(None, [hack], answer=["9"]) == [1.0] and accuracy_reward(None, [hack], answer=["9"]) == [0.0]
assert elapsed_ms < 1000
assert seven.solution_steps(e7)[-1] == e7.answer
print("all checks passed")
