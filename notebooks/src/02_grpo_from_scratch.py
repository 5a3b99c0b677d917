# %% [markdown]
# # 02 · GRPO from scratch
#
# **What we will see.** Group Relative Policy Optimisation (GRPO, from DeepSeekMath) is the RL algorithm behind R1. It has no value network: for each prompt it samples a **group** of `G` completions and uses the group itself as the baseline. We build its loss one piece at a time, on numbers small enough to check by hand:
#
# 1. group advantages for four rollouts with rewards `[1, 1, 0, 0]`;
# 2. the clipped surrogate objective;
# 3. the k3 estimator of the KL divergence to a frozen reference;
# 4. how the loss is normalised over tokens, and the **length bias** one of those choices creates;
# 5. one real gradient step on a model.

# %%
import math
import matplotlib.pyplot as plt
import torch
from r1lib.grpo import GRPOConfig, completion_logps, group_advantages, grpo_loss, per_token_kl

# %% [markdown]
# ## 1. Group advantages
#
# Four completions of one prompt; two were right. The advantage of completion *i* is its reward minus the group mean,
# $A_i = r_i - \bar r$, optionally divided by the group's standard deviation (the original GRPO) — Dr. GRPO argues
# for *not* dividing, since that up-weights prompts that are nearly always or never solved.
#
# * mean = 0.5, so the advantages are `[+0.5, +0.5, −0.5, −0.5]`;
# * the (unbiased) standard deviation is √(1/3) ≈ 0.577, so scaled advantages are ≈ `[+0.87, +0.87, −0.87, −0.87]`.

# %%
rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
adv_none = group_advantages(rewards, num_generations=4, scale_rewards="none")
adv_group = group_advantages(rewards, num_generations=4, scale_rewards="group")
print("scale_rewards='none': ", adv_none.tolist())
print("scale_rewards='group':", [round(a, 4) for a in adv_group.tolist()])
print("a group where all agree:", group_advantages(torch.ones(4), 4, "group").tolist(), "-> no learning signal")

# %% [markdown]
# The last line matters in practice: a prompt the model always (or never) solves contributes **nothing**. When every group looks like that, the loss is 0 — a frequent "my GRPO loss is zero" question. The trainer logs it as `frac_reward_zero_std`.
#
# ## 2. The clipped surrogate
#
# Per token, with the probability ratio $\rho = \pi_\theta / \pi_{\text{old}}$, GRPO minimises
# $$-\min\big(\rho A,\ \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon_{\text{high}})\,A\big).$$
# Once the ratio has moved past the clip in the direction the advantage wants, the gradient vanishes: one batch cannot push the policy too far.

# %%
config = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type="bnpo", epsilon=0.2)
ratios = torch.linspace(0.5, 1.5, 101)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, a in zip(axes, [1.0, -1.0]):
    losses = [grpo_loss(torch.log(r).view(1, 1), torch.zeros(1, 1), torch.tensor([a]), torch.ones(1, 1), config).loss.item() for r in ratios]
    ax.plot(ratios, losses); ax.axvspan(0.8, 1.2, alpha=0.1)
    ax.set_title(f"A = {a:+.0f}"); ax.set_xlabel("ratio π/π_old"); ax.set_ylabel("loss")
plt.tight_layout(); plt.show()

# %% [markdown]
# Flat regions are where clipping stops the gradient: above 1.2 when $A>0$, below 0.8 when $A<0$.
#
# ## 3. The KL penalty, and the k3 estimator
#
# R1 keeps the policy near a frozen reference with $\beta\,\mathrm{KL}(\pi_\theta\,\|\,\pi_{\text{ref}})$. Per token, it uses Schulman's "k3" estimator, with $\delta = \log\pi_{\text{ref}} - \log\pi_\theta$:
# $$k_3 = e^{\delta} - \delta - 1 \;\ge 0.$$
# It is never negative, and its average over tokens sampled from $\pi_\theta$ is an **unbiased** estimate of the KL. We check both on two small distributions.

# %%
p = torch.tensor([0.5, 0.3, 0.2]); q = torch.tensor([0.2, 0.5, 0.3])
exact = (p * (p / q).log()).sum().item()
samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
k3 = per_token_kl(p.log()[samples], q.log()[samples])
print(f"exact KL(p||q) = {exact:.4f}   mean k3 over samples = {k3.mean().item():.4f}   min k3 = {k3.min().item():.4f}")
deltas = torch.linspace(-2, 2, 101)
plt.figure(figsize=(4, 3)); plt.plot(deltas, per_token_kl(torch.zeros_like(deltas), deltas))
plt.xlabel("log π_ref − log π"); plt.ylabel("k3"); plt.title("k3 ≥ 0, zero only at δ = 0"); plt.show()

# %% [markdown]
# ## 4. Normalising over tokens, and the length bias
#
# The per-token losses are masked (padding does not count) and then averaged — but *how* they are averaged is a real design choice:
#
# | `loss_type` | divides by | used by |
# |---|---|---|
# | `grpo` | each sequence's length, then the number of sequences | the original GRPO |
# | `bnpo` | all tokens in the batch | |
# | `dapo` | all tokens in the whole generation batch | DAPO |
# | `dr_grpo` | a constant: batch size × `max_completion_length` | Dr. GRPO |
#
# A two-sequence batch: sequence 1 has 2 tokens with $A=+2$, sequence 2 has 3 tokens with $A=-1$. With the ratio at 1, every token's loss is $-A$.

# %%
mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
advantages = torch.tensor([2.0, -1.0])
logps = torch.zeros(2, 3)
by_hand = {"grpo": ((-4 / 2) + (3 / 3)) / 2, "bnpo": (-4 + 3) / 5, "dapo": (-4 + 3) / 5, "dr_grpo": (-4 + 3) / (2 * 4)}
for loss_type, expected in by_hand.items():
    cfg = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type=loss_type, max_completion_length=4)
    value = grpo_loss(logps, logps, advantages, mask, cfg).loss.item()
    print(f"{loss_type:>8}: r1lib {value:+.4f}   by hand {expected:+.4f}")

# %% [markdown]
# Now the bias. Under `grpo`, each sequence's loss is divided by **its own length**. So a *wrong* answer ($A<0$) is punished less per token the longer it is, and a right answer is rewarded more per token the shorter it is. The model can reduce its penalty on wrong answers by rambling. We measure the gradient the loss puts on one token of a wrong answer, for different lengths:

# %%
def push_on_first_token(length: int, loss_type: str) -> float:
    cfg = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type=loss_type, max_completion_length=64)
    m = torch.zeros(1, 64); m[0, :length] = 1
    lp = torch.zeros(1, 64, requires_grad=True)
    grpo_loss(lp, lp.detach(), torch.tensor([-1.0]), m, cfg).loss.backward()
    return lp.grad[0, 0].item()

lengths = [2, 4, 8, 16, 32, 64]
bias = {lt: [push_on_first_token(n, lt) for n in lengths] for lt in ["grpo", "dr_grpo"]}
for lt, values in bias.items():
    print(f"{lt:>8}:", " ".join(f"{v:.4f}" for v in values))
plt.figure(figsize=(5, 3))
for lt, values in bias.items():
    plt.plot(lengths, values, marker="o", label=lt)
plt.xscale("log", base=2); plt.xlabel("length of a wrong answer (tokens)"); plt.ylabel("penalty per token")
plt.legend(); plt.title("per-sequence normalisation favours long wrong answers"); plt.show()

# %% [markdown]
# With `grpo`, a 64-token wrong answer is penalised 32× less per token than a 2-token one. In prototyping, this (with a weak base model) collapsed a run into maximum-length babble. `dr_grpo`'s constant denominator treats every token alike; it is what the course uses by default, together with masking truncated completions.
#
# ## 5. One real gradient step
#
# The same loss on a real model. We sample a group for one prompt, score it, compute per-token log-probabilities with `completion_logps` and take one optimiser step. The completions with positive advantage should become more likely, those with negative advantage less likely.

# %%
from r1lib.experiment import build_experiment
from r1lib.profiles import get_profile
from r1lib.rollout import render_prompts, rollout
from r1lib.tasks import example_columns

profile = get_profile()
exp = build_experiment(profile)
model, tokenizer, task = exp.model, exp.tokenizer, exp.task
G = 8
generator = torch.Generator(device=next(model.parameters()).device).manual_seed(1)
example = next(e for e in exp.train_examples if len(e.question) >= 9)
for attempt in range(20):  # find a group with both right and wrong answers, so there is something to learn
    out = rollout(model, tokenizer, render_prompts(tokenizer, [task.prompt(example)]), G,
                  profile.grpo.max_completion_length, 1.0, generator=generator)
    columns = {k: v * G for k, v in example_columns([example]).items()}
    group_rewards = torch.tensor(exp.reward_funcs[0]([None] * G, out.texts, **columns))
    if group_rewards.std() > 0:
        break
advantages = group_advantages(group_rewards, G, "none")
print("rewards:", group_rewards.tolist()); print("advantages:", advantages.tolist())

cfg = GRPOConfig(num_generations=G, per_device_train_batch_size=G, loss_type="dr_grpo",
                 max_completion_length=profile.grpo.max_completion_length)
args = (out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask)
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5 if profile.is_tiny else 1e-3)
with torch.no_grad():
    old_logps, _ = completion_logps(model, *args)  # the policy that sampled the group
logps, _ = completion_logps(model, *args)  # the policy being optimised (identical before the step)
loss = grpo_loss(logps, old_logps, advantages, out.completion_mask, cfg).loss
loss.backward(); optimizer.step()
with torch.no_grad():
    after = (completion_logps(model, *args)[0] * out.completion_mask).sum(-1)
change = after - (old_logps * out.completion_mask).sum(-1)
for a, d in zip(advantages.tolist(), change.tolist()):
    print(f"advantage {a:+.2f}  ->  change in log-probability of the completion {d:+.3f}")
up = change[advantages > 0].mean().item(); down = change[advantages < 0].mean().item()
print(f"mean change: positive advantage {up:+.3f}, negative advantage {down:+.3f}")

# %% [markdown]
# **What it means.** One step of GRPO moved probability mass from the wrong completions of the group to the right ones, with no value network and no reward model: the group was its own baseline. Notebook 03 repeats this thousands of times, from the base model, and watches what behaviour emerges.
#
# ## Exercises
# 1. Set `epsilon_high=0.28` (DAPO's "clip-higher") and redraw the clipped objective. Which side changes?
# 2. Compute the advantages of `[1, 0, 0, 0]` with and without scaling. Why does scaling make rare successes count more?
# 3. Add the `bnpo` curve to the length-bias plot. Is it biased within one batch? Across batches?

# %% [solution]
# Solution to exercise 2 (collapsed).
rare = torch.tensor([1.0, 0.0, 0.0, 0.0])
print(group_advantages(rare, 4, "none").tolist(), [round(x, 3) for x in group_advantages(rare, 4, "group").tolist()])

# %% [markdown]
# ## Checks

# %%
assert adv_none.tolist() == [0.5, 0.5, -0.5, -0.5]
assert abs(adv_group[0].item() - 0.5 / (math.sqrt(1 / 3) + 1e-4)) < 1e-5
assert k3.min().item() >= 0 and abs(k3.mean().item() - exact) < 0.01
assert abs(bias["grpo"][0] / bias["grpo"][-1] - 32) < 1e-3 and abs(bias["dr_grpo"][0] - bias["dr_grpo"][-1]) < 1e-9
assert up > 0 > down if profile.is_tiny else up > down, (up, down)
print("all checks passed")
