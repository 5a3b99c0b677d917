# %% [markdown]
# # 08 · Scaling up
#
# **What we will see.** Everything so far ran on one device with r1lib's own trainers, written to be read. Past one GPU the right tool is an existing engine: TRL's trainers on accelerate, with DeepSpeed ZeRO-3 or FSDP2 to shard the model and vLLM to sample. This notebook is the way out, for every stage of the course:
#
# 1. **Memory before the run**: what a step of the gpu profile needs on a free T4, estimated from the model's shape with constants measured on the CPU, and what to change when it does not fit;
# 2. **The same task and rewards in TRL**: the course's accuracy and format rewards (notebook 01), unchanged, drive TRL's `GRPOTrainer`; we train the tiny base with both engines on the same settings and compare;
# 3. **Launch files** for one GPU, several GPUs with ZeRO-3 or FSDP2, and a separate vLLM server, written by `python -m r1lib.scale`;
# 4. **What changes at real scale**, against the figures DeepSeek reported for R1;
# 5. **SFT and distillation** on TRL's `SFTTrainer` and GKD trainer.

# %%
import json
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from r1lib.grpo import GRPOTrainer
from r1lib.estimates import GIB, KNOWN_SHAPES, DeviceInfo, check_fits, estimate_memory, estimate_step_seconds, format_bytes
from r1lib.models import ModelSpec, load_model_and_tokenizer
from r1lib.plots import series
from r1lib.profiles import TINY_BASE, describe, get_profile, runs_dir
from r1lib.rewards import format_reward, make_accuracy_reward
from r1lib.scale import LaunchPlan, launch_commands, to_trl_grpo_config, trl_grpo_trainer, write_launch
from r1lib.tasks.registry import load_task
from r1lib.widgets import html_table, say, show_html, show_source

from transformers import PrinterCallback

warnings.filterwarnings("ignore", category=FutureWarning)  # TRL still calls transformers' renamed checkpointing API
profile = get_profile()
print(describe(profile))

# %% [markdown]
# ## 1. Memory before the run
#
# A GRPO step holds the weights, the trainable parameters' gradients and AdamW's two moments, the activations saved for the backward pass, and the logits of every completion token over the whole vocabulary (151,936 entries for Qwen2.5). `r1lib.estimates.estimate_memory` adds these up from the model's shape. Its per-token activation constants were fitted to the peak memory of real steps measured on the CPU over 16 Qwen2 shapes (`tests/helpers/peak_memory.py`; the test suite checks the estimate within 20% on the tiny base and on a random Qwen2 with a 32k vocabulary). In half precision on a GPU the same formula with 2-byte activations is an estimate, not a measurement.
#
# Every r1lib trainer calls it before its first step; on a GPU it prints the estimate and the expected time per step, and stops with a `MemoryError` naming the setting to lower when the run cannot fit. Here is the gpu profile's step on a Colab T4 (15 GiB, fp16), next to three variants; the last column says which fit:

# %%
T4 = DeviceInfo("cuda", "Tesla T4", 15 * GIB, (7, 5))
qwen = KNOWN_SHAPES["Qwen/Qwen2.5-0.5B"]
lora_parameters = 8.8e6  # rank 16 on every projection of Qwen2.5-0.5B
fp16 = dict(weight_bytes=2, activation_bytes=2)
variants = {
    "gpu profile: LoRA, checkpointing, batch 16": estimate_memory(qwen, 16, 200, 384, trainable=lora_parameters, gradient_checkpointing=True, **fp16),
    "the same without checkpointing": estimate_memory(qwen, 16, 200, 384, trainable=lora_parameters, **fp16),
    "all weights trained, checkpointing, batch 16": estimate_memory(qwen, 16, 200, 384, gradient_checkpointing=True, **fp16),
    "LoRA, checkpointing, batch 64": estimate_memory(qwen, 64, 200, 384, trainable=lora_parameters, gradient_checkpointing=True, **fp16),
}
verdicts = {}
for name, estimate in variants.items():
    try:
        check_fits(estimate, T4)
        verdicts[name] = "fits"
    except MemoryError as error:
        verdicts[name] = "stops: " + str(error).split(": ", 1)[1]
show_html(html_table(["run on a T4", "estimate", "verdict"],
                     [[name, format_bytes(e.total), verdicts[name]] for name, e in variants.items()], monospace=False))

parts = ["weights", "gradients", "optimizer", "activations", "logits"]
fig, ax = plt.subplots(figsize=(9, 3.2))
left = np.zeros(len(variants))
for part in parts:
    values = np.array([getattr(e, part) / GIB for e in variants.values()])
    ax.barh(list(variants), values, left=left, label=part)
    left += values
ax.axvline(15 * 0.9, color="black", linestyle="--", label="90% of a T4")
ax.set_xlabel("GiB per step (estimated)")
ax.invert_yaxis()
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, hiding none
plt.tight_layout()
plt.show()
seconds = estimate_step_seconds(qwen, T4, 16, 200, 384)
say(f"On a T4 the gpu profile's step is estimated at **{format_bytes(variants['gpu profile: LoRA, checkpointing, batch 16'].total)}** "
    f"and about **{seconds:.0f} s** (from FLOPs and memory bandwidth, not measured here): {seconds * 200 / 60:.0f} minutes for its 200 steps.")

# %% [markdown]
# **What it means.** At batch 16 the logits are the biggest single item once the activations are checkpointed; that is why the error message for the batch-64 run asks for a smaller `per_device_train_batch_size` or `max_completion_length`, and why r1lib (like TRL) computes log-probabilities chunk by chunk instead of materialising a log-softmax of the same size. Training all weights multiplies the fixed cost: fp32 weights, gradients and two AdamW moments take 16 bytes per parameter, against 2 bytes for a frozen fp16 weight under LoRA.
#
# ## 2. The same task and rewards in TRL
#
# A reward in r1lib is a plain function `(prompts, completions, **columns) -> list[float | None]`, which is TRL's convention, and a task's prompts are chat messages, which is TRL's conversational format. So `r1lib.scale.trl_grpo_trainer` only builds a dataset and hands over; `to_trl_grpo_config` copies every setting the two configs share (they use the same names):

# %%
show_source(trl_grpo_trainer)

# %% [markdown]
# We train the tiny base on the chain task twice, from the same weights and with the same settings, once with r1lib's trainer and once with TRL's, and record reward and time per step.

# %%
STEPS = {"smoke": 4, "cpu": 60, "gpu": 60}[profile.name]
data = load_task("chain", 2000, 0, seed=0)
settings = dict(num_generations=8, per_device_train_batch_size=64, learning_rate=2e-4, lr_scheduler_type="cosine",
                beta=0.01, loss_type="dr_grpo", scale_rewards="none", max_completion_length=64, temperature=1.0,
                max_steps=STEPS, save_steps=STEPS, logging_steps=1, log_completions=0)
config = profile.grpo.__class__(**settings, eval_steps=10_000)
rewards = [make_accuracy_reward(data.task), format_reward]
curves, seconds_per_step = {}, {}

model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)))
began = time.perf_counter()
history = GRPOTrainer(model, tokenizer, data.task, rewards, data.train, config,
                      runs_dir("08_scaling_up", profile.name, "r1lib"), progress=False).train()
seconds_per_step["r1lib"] = (time.perf_counter() - began) / STEPS
curves["r1lib"] = series(history, "rewards/accuracy/mean")

model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)))
trl_args = to_trl_grpo_config(config, runs_dir("08_scaling_up", profile.name, "trl"), disable_tqdm=True, seed=0)
trainer = trl_grpo_trainer(model, tokenizer, data.task, data.train, trl_args, reward_funcs=rewards)
trainer.remove_callback(PrinterCallback)  # without a progress bar TRL prints every log line; the figure shows them
began = time.perf_counter()
trainer.train()
seconds_per_step["TRL"] = (time.perf_counter() - began) / STEPS
logged = [e for e in trainer.state.log_history if "rewards/accuracy/mean" in e]
curves["TRL"] = ([e["step"] for e in logged], [e["rewards/accuracy/mean"] for e in logged])

fig, ax = plt.subplots(figsize=(6.5, 3.2))
for name, (steps, values) in curves.items():
    ax.plot(steps, values, label=f"{name} ({seconds_per_step[name]:.1f} s per step)")
ax.set_xlabel("step")
ax.set_ylabel("accuracy reward (batch mean)")
ax.set_ylim(0, 1)
ax.legend()
plt.tight_layout()
plt.show()


def window(values, first: bool) -> float:
    part = values[: max(1, len(values) // 4)] if first else values[-max(1, len(values) // 4):]
    return float(np.mean(part))


rise = {name: (window(values, True), window(values, False)) for name, (_, values) in curves.items()}
say(f"Over {STEPS} steps, the accuracy reward went from **{rise['TRL'][0]:.2f} to {rise['TRL'][1]:.2f}** with TRL and "
    f"from **{rise['r1lib'][0]:.2f} to {rise['r1lib'][1]:.2f}** with r1lib (means of the first and last quarter of the steps). "
    f"On this CPU a step took {seconds_per_step['TRL']:.1f} s with TRL and {seconds_per_step['r1lib']:.1f} s with r1lib.")

# %% [markdown]
# **What it means.** The rewards, the task and the settings went over unchanged, and both engines learn from them. The curves are not identical (the two trainers draw different prompts and samples from the same seed) and the speeds are not comparable at scale: r1lib's sampler drops finished rows and reuses one tokenisation on a CPU, while TRL's strengths (vLLM, ZeRO-3, FSDP2) only show on GPUs. `benchmarks/grpo_step_vs_trl.py` measures the CPU step time of both in one process.
#
# ## 3. Launch files
#
# `python -m r1lib.scale write` translates a profile's stage config to TRL's, and writes three files: `accelerate.yaml` (how processes share the model), `<stage>.json` (TRL's settings) and `launch.sh`. The choices:
#
# * `--setup single | ddp | zero3 | fsdp2`: one GPU; a full copy per GPU; the weights, gradients and optimizer state sharded over GPUs with DeepSpeed ZeRO-3 or PyTorch FSDP2 (needed once a model's 16 bytes per parameter exceed one GPU);
# * `--generation transformers | vllm-colocate | vllm-server`: sample with the training model; with vLLM inside each training process (weights shared, a slice of memory reserved); or with a separate `trl vllm-serve` on its own GPU, which receives the new weights after every update;
# * `--precision bf16 | fp16`: required, because it belongs to the GPUs that will run the files, not to the machine that writes them (a T4 has no real bf16, and its vLLM must be told `--dtype half`).
#
# The batch per optimizer step stays the config's: it is divided over the training processes when it divides evenly, and a warning names the batch you would get otherwise (a vLLM server on one of 8 GPUs leaves 7 to train). A model other than the profile's needs its own `--learning-rate` and `--lora-r`: a 0.5B model's settings are not a 7B model's.

# %%
plans = {
    "one T4 (Colab)": LaunchPlan("grpo", "single", 1, "transformers", "fp16", model="Qwen/Qwen2.5-0.5B"),
    "8 GPUs, ZeRO-3, vLLM server": LaunchPlan("grpo", "zero3", 8, "vllm-server", "bf16", model="Qwen/Qwen2.5-7B"),
    "4 GPUs, FSDP2, vLLM colocated": LaunchPlan("grpo", "fsdp2", 4, "vllm-colocate", "bf16", model="Qwen/Qwen2.5-3B"),
}
launch_root = runs_dir("08_scaling_up", profile.name, "launch")
written = {}
for name, plan in plans.items():
    folder = launch_root / name.split(" (")[0].replace(" ", "_").replace(",", "")
    with warnings.catch_warnings(record=True) as caught:  # shown as notes below, with the plan they concern
        warnings.simplefilter("always")
        written[name] = write_launch(plan, profile.grpo, folder)
    print(f"## {name}: {folder}")
    print("\n".join(launch_commands(plan)))  # as launch.sh runs them: $HERE is its own folder
    print("".join(f"note: {w.message}\n" for w in caught))
print(written["8 GPUs, ZeRO-3, vLLM server"]["accelerate"].read_text())

# %% [markdown]
# On the cluster, `bash launch.sh` starts everything. In each training process `python -m r1lib.scale train` loads the task through r1lib's registry (GSM8K from the hub, or `--data-dir` for local files) and the accuracy and format rewards, and runs TRL. The test suite loads every combination with accelerate's own config loader and TRL's config classes, and runs the single-process path for two steps on the tiny base.
#
# ## 4. What changes at real scale
#
# The course's runs and the one DeepSeek reported differ by orders of magnitude in every dimension. The R1 column is as reported in the DeepSeek-R1 paper (Nature, 2025): R1-Zero's RL on DeepSeek-V3-Base (671B parameters, 37B active).

# %%
tiny_grpo, gpu_grpo = get_profile("cpu").grpo, get_profile("gpu").grpo
scale_table = [
    ["prompts per step x samples", f"{tiny_grpo.prompts_per_step} x {tiny_grpo.num_generations}",
     f"{gpu_grpo.prompts_per_step} x {gpu_grpo.num_generations}", "32 x 16 (512 samples)"],
    ["longest completion (tokens)", str(tiny_grpo.max_completion_length), str(gpu_grpo.max_completion_length),
     "32,768, then 65,536"],
    ["learning rate", f"{tiny_grpo.learning_rate:g} ({tiny_grpo.lr_scheduler_type})", f"{gpu_grpo.learning_rate:g} (LoRA)", "3e-6"],
    ["KL coefficient; reference", f"{tiny_grpo.beta:g}; the base", f"{gpu_grpo.beta:g}; none", "0.001; replaced by the policy every 400 steps"],
    ["compute", f"about {seconds_per_step['r1lib'] * tiny_grpo.max_steps:.0f} s on this machine ({tiny_grpo.max_steps} steps)",
     f"about {seconds * gpu_grpo.max_steps / 60:.0f} min (estimated)",
     "about 101k H800 GPU-hours (512 GPUs for about 198 h), $202k at $2 per GPU-hour; all of R1 below"],
]
show_html(html_table(["", "tiny world (cpu)", "gpu profile (T4)", "DeepSeek-R1-Zero"], scale_table, monospace=False))

# %% [markdown]
# **What R1 cost, as DeepSeek reported it.** The supplementary information of the DeepSeek-R1 paper (Nature, 2025) has a cost table that prices H800 time at $2 per GPU-hour; news reports of the paper (The Register's, for one) give the same GPU counts and hours:
#
# | stage | H800 GPU-hours | cost at $2 per GPU-hour |
# |---|---|---|
# | DeepSeek-R1-Zero (512 GPUs for about 198 h) | about 101k | $202k |
# | SFT data creation | about 5k | $10k |
# | DeepSeek-R1 (512 GPUs for about 80 h) | about 41k | $82k |
# | **total** | **about 147k** | **$294k** |
#
# The $294k is post-training, on top of a base model that already existed. Nature's news story on the paper set it beside about $6M for that base. DeepSeek-V3's technical report (arXiv:2412.19437) gives the details: 2.788M H800 GPU-hours for the base's official training, 2.664M of them pre-training, $5.576M at the same $2 per GPU-hour, which the report says leaves out earlier research and ablation experiments.
#
# Three consequences for a run of your own. **Sequence length** dominates memory and time: logits and activations grow with it, and the longest completion sets the step's duration, which is why large runs separate generation (vLLM, continuous batching) from training. **Batch size** sets the variance of the gradient: 512 samples per step at R1's scale, 16 in the gpu profile on a T4 (the table above). **The reference** costs a full copy of the weights unless, as with LoRA, it is the base with the adapter switched off; at R1's scale it is refreshed so that the KL term does not hold the policy near a model it has long outgrown.
#
# ## 5. SFT and distillation
#
# Multi-stage R1 (notebooks 05-06) and distillation (07) write their SFT data as jsonl in TRL's prompt-completion format, so TRL's `SFTTrainer` reads them as they are; `to_trl_sft_config` and `to_trl_gkd_config` translate the settings. A short SFT run with TRL on cold-start data sampled from the tiny base:

# %%
import trl
from r1lib.cold_start import build_cold_start
from r1lib.scale import to_trl_sft_config
from datasets import Dataset

model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)))
cold_start = build_cold_start(model, tokenizer, data.task, data.train[:256], max_examples={"smoke": 32}.get(profile.name, 128))
sft_steps = {"smoke": 4}.get(profile.name, 30)
sft_args = to_trl_sft_config(profile.sft.__class__(per_device_train_batch_size=16, learning_rate=5e-4, max_steps=sft_steps,
                                                  save_steps=sft_steps, logging_steps=1),
                             runs_dir("08_scaling_up", profile.name, "trl_sft"), disable_tqdm=True)
sft_trainer = trl.SFTTrainer(model=model, processing_class=tokenizer, args=sft_args,
                             train_dataset=Dataset.from_list([e.to_record() for e in cold_start]))
sft_trainer.remove_callback(PrinterCallback)
sft_trainer.train()
sft_losses = [e["loss"] for e in sft_trainer.state.log_history if "loss" in e]
print(f"{len(cold_start)} cold-start examples; TRL SFT loss {sft_losses[0]:.3f} -> {sft_losses[-1]:.3f} in {sft_steps} steps")
for stage, teacher in (("sft", None), ("distill", "Qwen/Qwen2.5-7B")):
    plan = LaunchPlan(stage, "zero3", 8, "transformers", "bf16", model="Qwen/Qwen2.5-1.5B", teacher=teacher,
                      data="runs/pipeline/gpu/rejection_data/rejection.jsonl")
    print(f"{stage}: " + launch_commands(plan)[0].replace(f"{Path.cwd()}/", ""))  # paths shown from this folder

# %% [markdown]
# ## Exercises
# 1. Would Qwen2.5-1.5B, trained with LoRA, fit on a T4 at the gpu profile's batch and lengths? What is the largest `per_device_train_batch_size` that fits?
# 2. Write the launch files for one machine with 8 GPUs, ZeRO-3 and a vLLM server, and read `num_processes` in the accelerate file. Why is it not 8?
# 3. Pass a third reward of your own to `trl_grpo_trainer`, written like r1lib's (`(prompts, completions, **columns)`). Where does TRL log it?

# %% [solution]
# Solution to exercise 1 (collapsed).
bigger = KNOWN_SHAPES["Qwen/Qwen2.5-1.5B"]
lora_1_5b = 18.5e6  # rank 16 on every projection of the 1.5B model
for batch in (4, 8, 16, 32, 64):
    e = estimate_memory(bigger, batch, 200, 384, trainable=lora_1_5b, gradient_checkpointing=True, **fp16)
    print(f"batch {batch:>2}: {format_bytes(e.total)}", "fits" if e.total < 0.9 * 15 * GIB else "does not fit")
# The logits (batch x 384 x 151,936 x 2 bytes, twice) decide it; halving max_completion_length doubles the batch that fits.

# %% [solution]
# Solution to exercise 2 (collapsed).
plan = LaunchPlan("grpo", "zero3", 8, "vllm-server", "bf16", model="Qwen/Qwen2.5-7B")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    paths = write_launch(plan, profile.grpo, launch_root / "eight")
print("".join(f"note: {w.message}\n" for w in caught))
print(paths["accelerate"].read_text().split("num_processes: ")[1].split()[0], "training processes")
# 7: one GPU serves vLLM, and accelerate starts one training process per remaining GPU. The note above, if any,
# says what that does to the batch. r1lib writes one machine's files; spreading a run over several machines also
# needs num_machines, machine_rank and the main process's address in the accelerate file, set per machine.

# %% [solution]
# Solution to exercise 3 (collapsed).
def brevity(prompts, completions, completion_ids=None, **columns):
    """A third reward: a small bonus for short completions (TRL passes completion_ids too)."""
    return [max(0.0, 1 - len(ids) / 64) * 0.1 for ids in completion_ids]


model, tokenizer = load_model_and_tokenizer(ModelSpec(str(TINY_BASE)))
extra = trl_grpo_trainer(model, tokenizer, data.task, data.train, to_trl_grpo_config(
    config, runs_dir("08_scaling_up", profile.name, "trl_extra"), max_steps=2, disable_tqdm=True), reward_funcs=[*rewards, brevity])
extra.remove_callback(PrinterCallback)
extra.train()
print(sorted(k for k in extra.state.log_history[0] if k.startswith("rewards/")))
# TRL logs every reward function under its __name__: rewards/brevity/mean and rewards/brevity/std.

# %% [markdown]
# ## Checks

# %%
assert verdicts["gpu profile: LoRA, checkpointing, batch 16"] == "fits"
assert verdicts["LoRA, checkpointing, batch 64"].startswith("stops") and "per_device_train_batch_size" in verdicts["LoRA, checkpointing, batch 64"]
assert variants["the same without checkpointing"].activations > 5 * variants["gpu profile: LoRA, checkpointing, batch 16"].activations
assert len(curves["TRL"][0]) == STEPS and len(curves["r1lib"][0]) >= STEPS
assert all((TINY_BASE.exists(), *(p.exists() for paths in written.values() for p in paths.values())))
assert "trl vllm-serve" in written["8 GPUs, ZeRO-3, vLLM server"]["launch"].read_text()
if profile.name == "cpu":
    assert np.mean(sft_losses[-5:]) < np.mean(sft_losses[:5])  # TRL's SFT learned from r1lib's records
    assert rise["TRL"][1] > rise["TRL"][0] + 0.15 and rise["r1lib"][1] > rise["r1lib"][0] + 0.15, rise  # both learn
print("all checks passed")
