# %% [markdown]
# # 02 · GRPO from scratch
#
# **What we will see.** Group Relative Policy Optimisation (GRPO, from DeepSeekMath) is the RL algorithm behind R1. It has no value network: for each prompt it samples a **group** of `G` completions and uses the group itself as the baseline. We write its three pieces ourselves, in about thirty lines, check them against `r1lib`, and then look at each on numbers small enough to check by hand:
#
# 1. the whole objective, as one formula;
# 2. group advantages for four rollouts with rewards `[1, 1, 0, 0]`;
# 3. the clipped surrogate, and a real update in which the clip fires;
# 4. the k3 estimator of the KL divergence to a reference policy;
# 5. how the loss is normalised over tokens, and the **length bias** one of those choices creates;
# 6. why no value network: PPO's critic against GRPO's group baseline, and the memory that saves.


# %%
from r1lib.profiles import describe, get_profile

print(describe(get_profile()))

# %% [markdown]
# ## 1. The objective
#
# For a prompt $q$, sample $G$ completions $o_1, \dots, o_G$ from the policy that is about to be updated, $\pi_{\text{old}}$, and score them with rewards $r_1, \dots, r_G$. GRPO maximises
#
# $$
# \mathcal{J}(\theta) = \mathbb{E}\left[ \frac{1}{G}\sum_{i=1}^{G} \frac{1}{|o_i|} \sum_{t=1}^{|o_i|}
#   \Big( \min\big(\rho_{i,t} A_i,\ \operatorname{clip}(\rho_{i,t}, 1-\epsilon, 1+\epsilon)\,A_i\big)
#   - \beta\, \mathbb{D}_{\text{KL}}\big[\pi_\theta \,\|\, \pi_{\text{ref}}\big]_{i,t} \Big) \right]
# $$
#
# with
#
# * the **probability ratio** of token $t$: $\rho_{i,t} = \dfrac{\pi_\theta(o_{i,t} \mid q, o_{i,<t})}{\pi_{\text{old}}(o_{i,t} \mid q, o_{i,<t})}$;
# * the **group advantage**: $A_i = \dfrac{r_i - \operatorname{mean}(r_1..r_G)}{\operatorname{std}(r_1..r_G)}$, the same for every token of $o_i$;
# * the **k3 estimate of the KL** to the reference policy $\pi_{\text{ref}}$: $\mathbb{D}_{i,t} = \dfrac{\pi_{\text{ref}}}{\pi_\theta} - \log\dfrac{\pi_{\text{ref}}}{\pi_\theta} - 1$.
#
# The R1 paper writes the same objective per sequence (one ratio per completion); implementations, r1lib's and TRL's included, apply it per token as above. Two of its choices are up for debate, and `r1lib` exposes both: whether to divide by the std (`scale_rewards`), and how to average over tokens (`loss_type`; the $\frac{1}{|o_i|}$ above is the original `"grpo"`). The loss to *minimise* is $-\mathcal{J}$.
#
# Here it is in code, written out in full:

# %%
import math

import matplotlib.pyplot as plt
import torch


def my_group_advantages(rewards: torch.Tensor, G: int, scale: bool) -> torch.Tensor:
    grouped = rewards.view(-1, G)                       # one row per prompt
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:                                           # the original GRPO divides by the group's std
        centred = centred / (grouped.std(dim=1, keepdim=True) + 1e-4)
    return centred.view(-1)


def my_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    delta = ref_logp - logp                             # log(pi_ref / pi_theta), per token
    return delta.exp() - delta - 1


def my_grpo_loss(logp, old_logp, ref_logp, advantages, mask, epsilon=0.2, beta=0.04, max_len=None):
    ratio = (logp - old_logp).exp()                     # rho: 1 on the first use of a batch
    adv = advantages[:, None]                           # every token of a completion shares its advantage
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - epsilon, 1 + epsilon) * adv)
    per_token = -(surrogate - beta * my_k3(logp, ref_logp))
    if max_len is None:                                 # "grpo": mean per sequence, then over sequences
        return ((per_token * mask).sum(-1) / mask.sum(-1)).mean()
    return (per_token * mask).sum() / (mask.shape[0] * max_len)   # "dr_grpo": one constant for all tokens

# %% [markdown]
# The same three pieces in `r1lib` (`r1lib.grpo.loss`) carry options (batch-level scaling, GSPO's sequence-level ratio, DAPO's asymmetric clip, unscorable completions) and metrics, but on the same inputs they must give the same numbers. On random log-probabilities for 3 prompts × 4 completions × 6 tokens:

# %%
from r1lib.grpo import GRPOConfig, group_advantages, grpo_loss, per_token_kl

generator = torch.Generator().manual_seed(0)
logp = -torch.rand(12, 6, generator=generator) * 3
old_logp = logp + torch.randn(12, 6, generator=generator) * 0.3
ref_logp = logp + torch.randn(12, 6, generator=generator) * 0.3
mask = (torch.rand(12, 6, generator=generator) > 0.2).float()
mask[:, 0] = 1
rewards = torch.randint(0, 2, (12,), generator=generator).float()

comparisons = {}
for scale, loss_type in [(True, "grpo"), (False, "dr_grpo")]:
    config = GRPOConfig(num_generations=4, per_device_train_batch_size=12, loss_type=loss_type, beta=0.04,
                        scale_rewards="group" if scale else "none", max_completion_length=6)
    mine_adv, lib_adv = my_group_advantages(rewards, 4, scale), group_advantages(rewards, 4, config.scale_rewards)
    mine = my_grpo_loss(logp, old_logp, ref_logp, mine_adv, mask, max_len=None if loss_type == "grpo" else 6)
    lib = grpo_loss(logp, old_logp, lib_adv, mask, config, ref_logp).loss
    comparisons[loss_type] = (float((mine_adv - lib_adv).abs().max()), abs(mine.item() - lib.item()))
    print(f"{loss_type:>8}: advantages differ by {comparisons[loss_type][0]:.1e}, losses {mine.item():+.6f} vs {lib.item():+.6f}")
kl_difference = float((my_k3(logp, ref_logp) - per_token_kl(logp, ref_logp)).abs().max())
print(f"k3 KL differs by at most {kl_difference:.1e}")

# %% [markdown]
# ## 2. Group advantages
#
# Four completions of one prompt; two were right. The advantage of completion *i* is its reward minus the group mean, optionally divided by the group's standard deviation (the original GRPO). Dr. GRPO argues for *not* dividing, since that up-weights prompts that are nearly always or never solved.
#
# * mean = 0.5, so the advantages are `[+0.5, +0.5, −0.5, −0.5]`;
# * the (unbiased) standard deviation is √(1/3) ≈ 0.577, so scaled advantages are ≈ `[+0.87, +0.87, −0.87, −0.87]`.

# %%
four = torch.tensor([1.0, 1.0, 0.0, 0.0])
adv_none = group_advantages(four, num_generations=4, scale_rewards="none")
adv_group = group_advantages(four, num_generations=4, scale_rewards="group")
print("scale_rewards='none': ", adv_none.tolist())
print("scale_rewards='group':", [round(a, 4) for a in adv_group.tolist()])
print("a group where all agree:", group_advantages(torch.ones(4), 4, "group").tolist(), "-> no learning signal")

# %% [markdown]
# The last line matters in practice: a prompt the model always (or never) solves contributes **nothing**. When every group looks like that, the loss is 0, a frequent "my GRPO loss is zero" question. The trainer logs the share of such groups as `frac_reward_zero_std`.
#
# ## 3. The clipped surrogate, and a clip that fires
#
# Per token, GRPO minimises $-\min\big(\rho A,\ \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon_{\text{high}})\,A\big)$. Once the ratio has moved past the clip in the direction the advantage wants, the gradient of that token vanishes: one batch cannot push the policy too far.

# %%
config = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type="bnpo", epsilon=0.2)
ratios = torch.linspace(0.5, 1.5, 101)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, a in zip(axes, [1.0, -1.0]):
    losses = [grpo_loss(torch.log(r).view(1, 1), torch.zeros(1, 1), torch.tensor([a]), torch.ones(1, 1), config).loss.item() for r in ratios]
    ax.plot(ratios, losses); ax.axvspan(0.8, 1.2, alpha=0.1)
    ax.set_title(f"A = {a:+.0f}"); ax.set_xlabel("ratio π/π_old"); ax.set_ylabel("loss of one token")
plt.tight_layout(); plt.show()

# %% [markdown]
# Flat regions are where clipping stops the gradient: above 1.2 when $A>0$, below 0.8 when $A<0$.
#
# But notice when the ratio can differ from 1 at all. On the **first** update of a freshly sampled batch, $\pi_\theta = \pi_{\text{old}}$: every ratio is exactly 1 and the clip does nothing. It only fires when completions sampled by the policy are still being trained on after the policy has moved. There are two ways to get there:
#
# * **reuse a batch** for several updates (`num_iterations` > 1, as in PPO's several epochs per batch);
# * **spread one batch of rollouts over several updates**, one mini-batch each. This is what R1-Zero did. The Nature paper's methods give the numbers: 32 questions × 16 outputs = 512 completions per training step; each rollout produced 8,192 outputs, split at random into 16 mini-batches of 512 (one training step each) and trained on for a single pass. Only the first of those 16 updates sees ratios of exactly 1; the other 15 train on completions sampled by an older policy, their ratios move away from 1, and the clip can act. (For R1's first RL stage the paper set the clip ratio ε to 10 and noted that a lower value cut off the gradient of many tokens, which only happens when ratios move.) TRL does the same when one generation batch spans several optimizer steps (`steps_per_generation` larger than `gradient_accumulation_steps`); it then computes the sampling policy's log-probabilities for the ratio.
#
# The course's runs (notebook 03) do neither: `num_iterations=1` and one update per sampled batch, so there the clip never acts and the step size is held by the learning rate and the KL alone.
#
# Let us watch it fire, the simplest way. We sample one group from the base model, then take two updates on the same batch, the way `GRPOTrainer` does with `num_iterations=2`, and count the tokens whose ratio left the trust region $[1-\epsilon, 1+\epsilon]$ in the direction their advantage pushes.

# %%
from r1lib.experiment import build_experiment
from r1lib.logprobs import completion_logps
from r1lib.profiles import get_profile
from r1lib.rollout import render_prompts, rollout
from r1lib.tasks import example_columns
from r1lib.widgets import say

profile = get_profile()
exp = build_experiment(profile)
model, tokenizer, task = exp.model, exp.tokenizer, exp.task
G = 8
generator = torch.Generator(device=next(model.parameters()).device).manual_seed(1)
example = next(e for e in exp.train_examples if len(e.question) >= 9)
for attempt in range(20):  # a group with both right and wrong answers, so there is something to learn
    out = rollout(model, tokenizer, render_prompts(tokenizer, [task.prompt(example)]), G,
                  profile.grpo.max_completion_length, 1.0, generator=generator)
    columns = {k: v * G for k, v in example_columns([example]).items()}
    group_rewards = torch.tensor(exp.reward_funcs[0]([None] * G, out.texts, **columns))
    if group_rewards.std() > 0:
        break
advantages = group_advantages(group_rewards, G, "none")
print("rewards:", group_rewards.tolist()); print("advantages:", advantages.tolist())

batch = (out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask)
cfg = GRPOConfig(num_generations=G, per_device_train_batch_size=G, loss_type="dr_grpo", epsilon=0.2, num_iterations=2,
                 max_completion_length=profile.grpo.max_completion_length)
optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3 if profile.is_tiny else 1e-5)
with torch.no_grad():
    old_logps, _ = completion_logps(model, *batch)  # the policy that sampled the group: pi_old
before = (old_logps * out.completion_mask).sum(-1)
clipped_tokens = []
for iteration in range(cfg.num_iterations):
    logps, _ = completion_logps(model, *batch)
    result = grpo_loss(logps, old_logps, advantages, out.completion_mask, cfg)
    ratio = (logps - old_logps).exp().detach()
    pushed_out = ((ratio > 1 + cfg.epsilon) & (advantages[:, None] > 0)) | ((ratio < 1 - cfg.epsilon) & (advantages[:, None] < 0))
    clipped_tokens.append(int((pushed_out & out.completion_mask.bool()).sum()))
    print(f"update {iteration + 1}: ratio in [{ratio[out.completion_mask.bool()].min():.3f}, "
          f"{ratio[out.completion_mask.bool()].max():.3f}], clipped tokens {clipped_tokens[-1]} of "
          f"{int(out.completion_mask.sum())}, clip_ratio {result.clip_ratio_low + result.clip_ratio_high:.3f}")
    optimizer.zero_grad(); result.loss.backward(); optimizer.step()
with torch.no_grad():
    change = (completion_logps(model, *batch)[0] * out.completion_mask).sum(-1) - before
up, down = change[advantages > 0].mean().item(), change[advantages < 0].mean().item()
say(f"The first update saw every ratio at exactly 1 and clipped **{clipped_tokens[0]}** tokens. The second update, on "
    f"the same batch with a moved policy, clipped **{clipped_tokens[1]}**: those tokens no longer pushed the policy. "
    f"After both updates the log-probability of the right completions changed by {up:+.2f} on average, of the wrong ones "
    f"by {down:+.2f}.")

# %% [markdown]
# ## 4. The KL penalty, and the k3 estimator
#
# R1 keeps the policy near a reference policy with $\beta\,\mathrm{KL}(\pi_\theta\,\|\,\pi_{\text{ref}})$. The reference was not frozen for the whole run: the Nature paper's methods say that every 400 steps R1-Zero's reference was replaced by the latest policy (notebook 08's table), so the penalty holds each stretch of training near where it began, not the whole run near the base. `r1lib` and TRL offer the same (`sync_ref_model=True`, `ref_model_sync_steps=400`, `ref_model_mixup_alpha=1.0`); the course's runs keep the base as a frozen reference. The KL is estimated per token with Schulman's "k3" estimator, $\delta = \log\pi_{\text{ref}} - \log\pi_\theta$, $k_3 = e^{\delta} - \delta - 1 \ge 0$. It is never negative, and its average over tokens sampled from $\pi_\theta$ is an **unbiased** estimate of the KL. We check both on two small distributions.

# %%
p = torch.tensor([0.5, 0.3, 0.2]); q = torch.tensor([0.2, 0.5, 0.3])
exact = (p * (p / q).log()).sum().item()
samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
k3 = per_token_kl(p.log()[samples], q.log()[samples])
print(f"exact KL(p||q) = {exact:.4f}   mean k3 over samples = {k3.mean().item():.4f}   min k3 = {k3.min().item():.4f}")
deltas = torch.linspace(-2, 2, 101)
plt.figure(figsize=(4, 3)); plt.plot(deltas, per_token_kl(torch.zeros_like(deltas), deltas))
plt.xlabel("log π_ref − log π"); plt.ylabel("k3 (nats)"); plt.title("k3 ≥ 0, zero only at δ = 0"); plt.show()

# %% [markdown]
# ## 5. Normalising over tokens, and the length bias
#
# The per-token losses are masked (padding does not count) and then averaged, and *how* they are averaged is a real design choice:
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
two_mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
two_adv = torch.tensor([2.0, -1.0])
zeros = torch.zeros(2, 3)
by_hand = {"grpo": ((-4 / 2) + (3 / 3)) / 2, "bnpo": (-4 + 3) / 5, "dapo": (-4 + 3) / 5, "dr_grpo": (-4 + 3) / (2 * 4)}
normalised = {}
for loss_type, expected in by_hand.items():
    c = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type=loss_type, max_completion_length=4)
    normalised[loss_type] = grpo_loss(zeros, zeros, two_adv, two_mask, c).loss.item()
    print(f"{loss_type:>8}: r1lib {normalised[loss_type]:+.4f}   by hand {expected:+.4f}")

# %% [markdown]
# Now the bias. Under `grpo`, each sequence's loss is divided by **its own length**. So a *wrong* answer ($A<0$) is punished less per token the longer it is. The model can reduce its penalty on wrong answers by rambling. We measure the gradient the loss puts on one token of a wrong answer, for different lengths:

# %%
def push_on_first_token(length: int, loss_type: str) -> float:
    c = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type=loss_type, max_completion_length=64)
    m = torch.zeros(1, 64); m[0, :length] = 1
    lp = torch.zeros(1, 64, requires_grad=True)
    grpo_loss(lp, lp.detach(), torch.tensor([-1.0]), m, c).loss.backward()
    return lp.grad[0, 0].item()

lengths = [2, 4, 8, 16, 32, 64]
bias = {lt: [push_on_first_token(n, lt) for n in lengths] for lt in ["grpo", "dr_grpo"]}
for lt, values in bias.items():
    print(f"{lt:>8}:", " ".join(f"{v:.4f}" for v in values))
plt.figure(figsize=(5, 3))
for lt, values in bias.items():
    plt.plot(lengths, values, marker="o", label=lt)
plt.xscale("log", base=2); plt.xlabel("length of a wrong answer (tokens)"); plt.ylabel("gradient on one of its tokens")
plt.legend(); plt.title("per-sequence normalisation favours long wrong answers"); plt.show()

# %% [markdown]
# With `grpo`, a 64-token wrong answer is penalised 32× less per token than a 2-token one. With a weak base this can collapse a run into maximum-length babble. `dr_grpo`'s constant denominator treats every token alike; the course uses it by default, together with masking truncated completions.
#
# ## 6. Why no value network: PPO against GRPO
#
# PPO, the algorithm GRPO descends from, needs an **advantage per token**, and estimates it with a learned **value network** (the critic): a second model as large as the policy, trained alongside it to predict future reward from every prefix. GRPO replaces the critic with the group: the baseline of a completion is simply the mean reward of the other completions of the same prompt. That has three consequences:
#
# * **memory and compute**: no second trainable model. In mixed-precision training with Adam a trainable parameter costs about 16 bytes (2 for the weight, 2 for its gradient, 4 for an fp32 master copy, 8 for Adam's two moments), so a critic of the policy's size costs as much again as the policy's training state;
# * **a baseline that is never wrong for the current policy**: it is measured, not learned, so there is no critic to fall behind;
# * **one advantage per completion**, not per token: with a reward only at the end (right or wrong), a critic has little to add, which is the situation of R1.
#
# The price is sampling `G` completions per prompt. For the model of this notebook, and for the 671B-parameter model R1 was trained on:

# %%
BYTES_PER_TRAINABLE_PARAMETER = 16  # bf16 weight + bf16 gradient + fp32 master + Adam's two fp32 moments
own = sum(p.numel() for p in model.parameters())
for name, parameters in [(f"this notebook's model ({own / 1e6:.2f}M)", own), ("DeepSeek-V3/R1 (671B)", 671e9)]:
    print(f"a critic the size of {name}: {parameters * BYTES_PER_TRAINABLE_PARAMETER / 2**30:,.3f} GiB of training state saved")

# %% [markdown]
# **What it means.** Everything GRPO does fits in the thirty lines at the top: centre the rewards of a group, weight each token's log-probability ratio by its completion's advantage, keep the ratio inside a trust region when completions outlive the policy that sampled them (a reused batch, or one spread over several updates), and stay near a reference. One update on the base model moved probability from the wrong completions of a group to the right ones, with no value network and no reward model: the group was its own baseline. Notebook 03 repeats this hundreds of times, from the base model, and watches what behaviour emerges.
#
# ## Exercises
# 1. Set `epsilon_high=0.28` (DAPO's "clip-higher") and redraw the clipped objective. Which side changes?
# 2. Compute the advantages of `[1, 0, 0, 0]` with and without scaling. Why does scaling make rare successes count more?
# 3. Add the `bnpo` curve to the length-bias plot. Is it biased within one batch? Across batches?

# %% [solution]
# Solution to exercise 1 (collapsed): only the A > 0 side moves; its flat region now starts at 1.28.
high = GRPOConfig(num_generations=2, per_device_train_batch_size=2, loss_type="bnpo", epsilon=0.2, epsilon_high=0.28)
fig, ax = plt.subplots(figsize=(4.5, 3))
for a in (1.0, -1.0):
    ax.plot(ratios, [grpo_loss(torch.log(r).view(1, 1), torch.zeros(1, 1), torch.tensor([a]), torch.ones(1, 1), high).loss.item()
                     for r in ratios], label=f"A = {a:+.0f}")
ax.axvline(1.28, ls="--", color="0.5"); ax.axvline(0.8, ls="--", color="0.5")
ax.set_xlabel("ratio π/π_old"); ax.set_ylabel("loss of one token"); ax.legend(); plt.show()
# Raising the upper clip lets rare good tokens grow more per batch, which DAPO found keeps entropy from collapsing.

# %% [solution]
# Solution to exercise 2 (collapsed).
rare = torch.tensor([1.0, 0.0, 0.0, 0.0])
print(group_advantages(rare, 4, "none").tolist(), [round(x, 3) for x in group_advantages(rare, 4, "group").tolist()])
# The group's std is 0.5, so scaling doubles every advantage: the one success gets +1.5 instead of +0.75.
# A group with [1,1,1,0] has the same std: scaling weighs rare failures and rare successes alike, and up-weights
# nearly-solved and nearly-unsolved prompts against those in the middle.

# %% [solution]
# Solution to exercise 3 (collapsed).
bias["bnpo"] = [push_on_first_token(n, "bnpo") for n in lengths]
print("bnpo:", " ".join(f"{v:.4f}" for v in bias["bnpo"]))
# Alone in its batch the sequence is the batch, so bnpo divides by its own length like grpo. Within a batch every
# token gets the same weight (1 / total tokens), which is unbiased; across batches the weight still depends on how
# many tokens that batch happened to have, which dapo fixes by dividing by the whole generation batch's count.

# %% [markdown]
# ## Checks

# %%
assert all(a < 1e-6 and b < 1e-6 for a, b in comparisons.values()) and kl_difference < 1e-6
assert adv_none.tolist() == [0.5, 0.5, -0.5, -0.5]
assert abs(adv_group[0].item() - 0.5 / (math.sqrt(1 / 3) + 1e-4)) < 1e-5
assert all(abs(normalised[k] - v) < 1e-6 for k, v in by_hand.items())
assert clipped_tokens[0] == 0 and clipped_tokens[1] > 0, clipped_tokens
assert k3.min().item() >= 0 and abs(k3.mean().item() - exact) < 0.01
assert abs(bias["grpo"][0] / bias["grpo"][-1] - 32) < 1e-3 and abs(bias["dr_grpo"][0] - bias["dr_grpo"][-1]) < 1e-9
assert up > down, (up, down)
if profile.is_tiny:
    assert up > 0 > down, (up, down)
print("all checks passed")
